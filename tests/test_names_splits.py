"""Class-name normalisation, vocabulary files, shared/novel splits and the ``xmic splits`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import find_realdata

from xmic.classnames import (
    ego4d_base_prompt,
    ego4d_names,
    egtea_names,
    epic_names,
    epic_prompt,
    normalise_name,
)
from xmic.evaluate.splits import novel_classes, read_split_file, shared_classes, split_from_file
from xmic.evaluate.splits_cli import splits
from xmic.evaluate.vocab_files import Vocab, read_vocab

EPIC_NOUN_ROWS = [
    ("0", "tap", "\"['tap', 'tap:water']\"", "appliances"),
    ("1", "board:chopping", "\"['board:chopping', 'board']\"", "cookware"),
    ("2", "pan:dust", "\"['pan:dust']\"", "cleaning equipment"),
    ("3", "nut", "\"['nut', 'nut:pine']\"", "nuts"),
    ("4", "machine:sous:vide", "\"['machine:sous:vide']\"", "appliances"),
    ("5", "bag", "\"['bag']\"", "containers"),
    ("6", "pepper", "\"['pepper']\"", "vegetables"),
]
EGO4D_NOUNS = [
    "bag_(bag,_grocery,_nylon,_plastic,_polythene,_shopping)",
    "baking_soda",
    "chopping_board",
    "faucet_(faucet,_tap)",
    "nut_(food)",
    "nut_(tool)",
    "pepper_(vegetable)_(capsicum,_pepper)",
    "pot",
    "pot_(planter)",
]
EGO4D_VERBS = ["take_(pick,_grab,_get)", "turn_on_(switch_on,_start,_light)", "wash", "operate_(use,_dial)"]
EGTEA_VERB_LINES = ["Inspect/Read 1", "Open 2", "Cut/Slice 3", "Turn_on 4", "Move Around 5"]


def write_epic_csv(path: Path, rows: list[tuple[str, ...]], header: str = "id,key,instances,category") -> Path:
    path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


@pytest.fixture
def epic_nouns(tmp_path: Path) -> Path:
    return write_epic_csv(tmp_path / "EPIC_100_noun_classes.csv", EPIC_NOUN_ROWS)


@pytest.fixture
def epic_verbs(tmp_path: Path) -> Path:
    rows = [("0", "take", "x", "y"), ("1", "turn-on", "x", "y"), ("2", "wash", "x", "y"), ("3", "use", "x", "y")]
    return write_epic_csv(tmp_path / "EPIC_100_verb_classes.csv", rows)


@pytest.fixture
def taxonomy(tmp_path: Path) -> Path:
    path = tmp_path / "fho_lta_taxonomy.json"
    path.write_text(json.dumps({"verbs": EGO4D_VERBS, "nouns": EGO4D_NOUNS}))
    return path


@pytest.fixture
def egtea_verbs(tmp_path: Path) -> Path:
    path = tmp_path / "verb_idx.txt"
    path.write_text("\n".join(EGTEA_VERB_LINES) + "\n")
    return path


# --- names -----------------------------------------------------------------------------------------


def test_epic_prompts_reverse_colon_parts_and_split_dashes():
    assert epic_names(["board:chopping", "pan:dust", "turn-on", "tap"]) == [
        ("board:chopping", "chopping board"),
        ("pan:dust", "dust pan"),
        ("turn-on", "turn on"),
        ("tap", "tap"),
    ]
    # Three parts: every part reversed, as the authors' split files write it.
    assert epic_prompt("machine:sous:vide") == "vide sous machine"
    assert epic_prompt("let-go") == "let go"


def test_ego4d_prompts_drop_synonyms_and_underscores():
    assert ego4d_base_prompt("bag_(bag,_grocery,_nylon,_plastic,_polythene,_shopping)") == "bag"
    assert ego4d_base_prompt("take_(pick,_grab,_get)") == "take"
    assert ego4d_base_prompt("baking_soda") == "baking soda"
    assert ego4d_base_prompt("turn_on_(switch_on,_start,_light)") == "turn on"
    assert ego4d_base_prompt("pepper_(vegetable)_(capsicum,_pepper)") == "pepper"


def test_ego4d_known_collisions_follow_the_authors():
    pairs = dict(ego4d_names(EGO4D_NOUNS))
    assert pairs["nut_(food)"] == "nut"
    assert pairs["nut_(tool)"] == "nut tool"
    assert pairs["pot"] == "pot"
    assert pairs["pot_(planter)"] == "planter"
    prompts = [p for _, p in ego4d_names(EGO4D_NOUNS)]
    assert len(set(prompts)) == len(prompts)
    assert [r for r, _ in ego4d_names(EGO4D_NOUNS)] == EGO4D_NOUNS


def test_ego4d_unknown_collisions_get_their_qualifier_then_a_number():
    raw = ["lock_(door)", "lock_(hair)", "lock", "lock_(door,_gate)"]
    assert [p for _, p in ego4d_names(raw)] == ["lock (door)", "lock (hair)", "lock", "lock (door) 2"]
    # No qualifier to tell them apart: numbered, skipping "lock 2", which another class already is.
    assert [p for _, p in ego4d_names(["lock", "lock_", "lock_2"])] == ["lock", "lock 3", "lock 2"]


def test_egtea_names_lower_case_with_spaces():
    assert egtea_names(["Cut/Slice", "Cutting_board", "Turn_on", "Move Around"]) == [
        ("Cut/Slice", "cut slice"),
        ("Cutting_board", "cutting board"),
        ("Turn_on", "turn on"),
        ("Move Around", "move around"),
    ]


def test_normalise_name():
    assert normalise_name("  Chopping_Board ") == "chopping board"
    assert normalise_name("turn-on") == normalise_name("turn on") == "turn on"
    assert normalise_name("Cut/Slice") == "cut slice"


# --- vocabulary files ------------------------------------------------------------------------------


def test_read_epic_csv(epic_nouns: Path):
    vocab = read_vocab(epic_nouns, "noun")
    assert vocab.source == "epic" and vocab.kind == "noun"
    assert vocab.ids == list(range(7))
    assert vocab.raw[1] == "board:chopping" and vocab.prompt[1] == "chopping board"
    assert vocab.prompt == ["tap", "chopping board", "dust pan", "nut", "vide sous machine", "bag", "pepper"]


def test_read_epic_csv_sorts_rows_by_id(tmp_path: Path):
    path = write_epic_csv(tmp_path / "c.csv", [("1", "b", "x", "y"), ("0", "a", "x", "y")])
    assert read_vocab(path, "verb").raw == ["a", "b"]


def test_read_ego4d_taxonomy(taxonomy: Path):
    nouns = read_vocab(taxonomy, "noun")
    verbs = read_vocab(taxonomy, "verb")
    assert nouns.source == "ego4d" and nouns.raw == EGO4D_NOUNS and nouns.ids == list(range(9))
    assert nouns.prompt[:3] == ["bag", "baking soda", "chopping board"]
    assert verbs.prompt == ["take", "turn on", "wash", "operate"]


def test_read_egtea_idx_is_zero_based(tmp_path: Path):
    path = tmp_path / "verb_idx.txt"
    path.write_text("Open 2\nInspect/Read 1\n\nCut/Slice 3\n")
    vocab = read_vocab(path, "verb")
    assert vocab.source == "egtea"
    assert vocab.ids == [0, 1, 2]
    assert vocab.raw == ["Inspect/Read", "Open", "Cut/Slice"]
    assert vocab.prompt == ["inspect read", "open", "cut slice"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", "id,instances\n0,x\n", r"a\.csv: line 1: missing column 'key'"),
        ("a.csv", "id,key\n0,tap\nzero,spoon\n", r"a\.csv: line 3: id 'zero' is not an integer"),
        ("a.csv", "id,key\n0,tap\n1,spoon\n1,plate\n", r"a\.csv: line 4: duplicate id 1 \(first on line 3\)"),
        ("a.csv", "id,key\n0,tap\n2,spoon\n", r"a\.csv: class ids must be 0\.\.1 without gaps; missing \[1\]"),
        ("a.csv", "id,key\n0,tap\n1,\n", r"a\.csv: line 3: empty key"),
        ("a.csv", "id,key\n0,pan:dust\n1,dust-pan\n", r"a\.csv: line 3: prompt name 'dust pan' repeats"),
        ("t.json", '{"verbs": ["take"], "nouns": ["bag"', r"t\.json: invalid JSON at line 1"),
        ("t.json", '{"verbs": ["take"]}', r"t\.json: not an Ego4D taxonomy, expected a 'nouns' list"),
        ("t.json", '{"nouns": ["bag", 3]}', r"t\.json: nouns\[1\] is 3"),
        ("t.json", '{"nouns": ["bag", "bag"]}', r"t\.json: nouns\[1\] 'bag' repeats nouns\[0\]"),
        ("v.txt", "Open 1\nClose two\n", r"v\.txt: line 2: index 'two' is not an integer"),
        ("v.txt", "Open 1\nClose 1\n", r"v\.txt: line 2: duplicate index 1 \(first on line 1\)"),
        ("v.txt", "Open 0\n", r"v\.txt: line 1: index 0 is not 1-based"),
        ("v.txt", "Open 1\nClose 3\n", r"v\.txt: class ids must be 1\.\.2 without gaps; missing \[2\]"),
        ("v.txt", "Open\n", r"v\.txt: line 1: expected '<name> <index>'"),
        ("v.yaml", "a: 1\n", r"v\.yaml: unknown vocabulary format"),
    ],
)
def test_malformed_vocab_files_name_file_and_row(tmp_path: Path, name: str, content: str, message: str):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_vocab(path, "noun")


def test_read_vocab_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_vocab(tmp_path / "nope.csv", "noun")


# --- shared / novel --------------------------------------------------------------------------------


def test_shared_and_novel_exact(epic_nouns: Path, taxonomy: Path):
    epic, ego = read_vocab(epic_nouns, "noun"), read_vocab(taxonomy, "noun")
    # tap (Ego4D says faucet), dust pan and vide sous machine are EPIC-only; nut matches nut_(food).
    assert shared_classes(epic, ego) == [1, 3, 5, 6]
    assert novel_classes(epic, ego) == [0, 2, 4]
    # The other direction: Ego4D ids 0 bag, 2 chopping board, 4 nut (food), 6 pepper.
    assert shared_classes(ego, epic) == [0, 2, 4, 6]
    assert shared_classes(epic, ["Chopping_Board", "TAP"]) == [0, 1]
    with pytest.raises(ValueError, match="unknown sharing rule 'semantic'"):
        shared_classes(epic, ego, rule="semantic")


def test_split_file_reader_and_both_name_forms(tmp_path: Path, epic_nouns: Path, taxonomy: Path):
    path = tmp_path / "epic_ego_common_exact_noun.txt"
    path.write_text("chopping board\n\n  nut \nbag\npepper\n")
    names = read_split_file(path)
    assert names == ["chopping board", "nut", "bag", "pepper"]
    epic, ego = read_vocab(epic_nouns, "noun"), read_vocab(taxonomy, "noun")
    assert split_from_file(epic, names) == shared_classes(epic, ego)
    # Prompt form with underscores, and the raw EPIC key form.
    assert split_from_file(epic, ["chopping_board", "pan:dust", "machine:sous:vide"]) == [1, 2, 4]
    # Raw Ego4D taxonomy names (the authors' ego_epic_* files) and their prompt forms.
    raw = ["bag_(bag,_grocery,_nylon,_plastic,_polythene,_shopping)", "nut_(food)", "chopping_board", "pot"]
    assert split_from_file(ego, raw) == [0, 2, 4, 7]
    assert split_from_file(ego, ["nut tool", "planter", "bag_(bag)"]) == [0, 5, 8]
    # Plain class-name lists work as a vocabulary too.
    assert split_from_file(["tap", "chopping board"], ["chopping_board"]) == [1]


def test_split_from_file_lists_every_unknown_name(epic_nouns: Path):
    epic = read_vocab(epic_nouns, "noun")
    with pytest.raises(ValueError, match=r"s\.txt: 2 name\(s\) match no class .*'spork', 'faucet'"):
        split_from_file(epic, ["bag", "spork", "faucet"], origin="s.txt")


def test_read_split_file_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_split_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="empty.txt: no class names"):
        read_split_file(empty)


# --- CLI -------------------------------------------------------------------------------------------


def run_splits(*args: str):
    return CliRunner().invoke(splits, list(args))


def test_cli_shared_and_novel(epic_nouns: Path, taxonomy: Path):
    result = run_splits("--vocab", str(epic_nouns), "--other", str(taxonomy), "--kind", "noun")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "1\tboard:chopping\tchopping board",
        "3\tnut\tnut",
        "5\tbag\tbag",
        "6\tpepper\tpepper",
    ]
    novel = run_splits("--vocab", str(epic_nouns), "--other", str(taxonomy), "--kind", "noun", "--novel")
    assert novel.exit_code == 0, novel.output
    assert [line.split("\t")[0] for line in novel.output.splitlines()] == ["0", "2", "4"]


def test_cli_verbs_across_three_formats(epic_verbs: Path, taxonomy: Path, egtea_verbs: Path):
    result = run_splits("--vocab", str(taxonomy), "--other", str(epic_verbs), "--kind", "verb")
    assert result.output.splitlines() == [
        "0\ttake_(pick,_grab,_get)\ttake",
        "1\tturn_on_(switch_on,_start,_light)\tturn on",
        "2\twash\twash",
    ]
    result = run_splits("--vocab", str(egtea_verbs), "--other", str(epic_verbs), "--kind", "verb")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["3\tTurn_on\tturn on"]


def test_cli_bad_file_is_a_clear_error(tmp_path: Path, taxonomy: Path):
    bad = write_epic_csv(tmp_path / "bad.csv", [("0", "tap", "x", "y"), ("x", "spoon", "x", "y")])
    result = run_splits("--vocab", str(bad), "--other", str(taxonomy), "--kind", "noun")
    assert result.exit_code == 1
    assert "bad.csv: line 3: id 'x' is not an integer" in result.output
    assert "Traceback" not in result.output


# --- real data (runs where ../shared/realdata holds the files) --------------------------------------


def _cli_names(vocab: Path, other: Path, kind: str, novel: bool) -> tuple[list[int], list[str]]:
    args = ["--vocab", str(vocab), "--other", str(other), "--kind", kind] + (["--novel"] if novel else [])
    result = run_splits(*args)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.splitlines()]
    return [int(r[0]) for r in rows], [r[2] for r in rows]


@pytest.mark.parametrize("kind", ["noun", "verb"])
@pytest.mark.parametrize("novel", [False, True], ids=["common", "non_common"])
def test_realdata_epic_ego_exact_splits_match_the_authors(kind: str, novel: bool):
    classes = find_realdata(f"EPIC_100_{kind}_classes.csv")
    taxonomy_path = find_realdata("fho_lta_taxonomy.json")
    split_path = find_realdata(f"epic_ego_{'non_common' if novel else 'common'}_exact_{kind}.txt")
    ids, prompts = _cli_names(classes, taxonomy_path, kind, novel)
    authors = read_split_file(split_path)
    ours = {normalise_name(p) for p in prompts}
    theirs = {normalise_name(n) for n in authors}
    only_ours, only_theirs = sorted(ours - theirs), sorted(theirs - ours)
    if only_ours or only_theirs:
        print(f"{split_path.name}: only ours {only_ours}; only the authors' {only_theirs}")
    assert ours == theirs
    assert split_from_file(read_vocab(classes, kind), authors, origin=split_path) == ids  # type: ignore[arg-type]


def test_realdata_ego_side_common_nouns_match_the_authors():
    taxonomy_path = find_realdata("fho_lta_taxonomy.json")
    classes = find_realdata("EPIC_100_noun_classes.csv")
    split_path = find_realdata("ego_epic_common_exact_noun.txt")
    ids, _ = _cli_names(taxonomy_path, classes, "noun", novel=False)
    ego = read_vocab(taxonomy_path, "noun")
    theirs = split_from_file(ego, read_split_file(split_path), origin=split_path)
    if ids != theirs:
        print("only ours", [ego.raw[i] for i in sorted(set(ids) - set(theirs))])
        print("only the authors'", [ego.raw[i] for i in sorted(set(theirs) - set(ids))])
    assert ids == theirs


def test_vocab_is_a_plain_dataclass():
    vocab = Vocab("epic", ["a"], ["a"], [0], "verb")
    assert len(vocab) == 1 and vocab.path == ""
