"""The documentation against the code: each dataset's ``--root`` tree in docs/extraction.md, built as written and
checked with ``xmic extract --dry-run``; README.md's commands exist; README.md and docs/ stand alone."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.cli import main

REPO = Path(__file__).resolve().parents[1]
EXTRACTION_DOC = REPO / "docs" / "extraction.md"
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
DATASETS = ("epic", "ego4d", "egtea")

VERBS = ["take", "put"]
NOUNS = ["plate", "knife"]
EGTEA_FPS = 24
VIDEO_FRAMES = 40


# --- the trees, as docs/extraction.md writes them ---------------------------------------------------------------


def doc_tree(dataset: str, text: str | None = None) -> list[tuple[str, bool]]:
    """``(path relative to --root, is a folder)`` of the tree that follows ``<!-- tree: dataset -->`` in the doc.

    The tree is a ``text`` block: two spaces of indent per level, folders end in ``/``, ``#`` starts a comment; its
    first line is the root itself.
    """
    text = EXTRACTION_DOC.read_text(encoding="utf-8") if text is None else text
    match = re.search(rf"<!-- tree: {dataset} -->\s*```text\n(.*?)```", text, re.S)
    assert match, (
        f"docs/extraction.md has no tree for {dataset} (a '<!-- tree: {dataset} -->' line before a text block)"
    )
    entries: list[tuple[str, bool]] = []
    stack: list[str] = []
    for line in match.group(1).splitlines()[1:]:  # the first line is the root
        body = re.sub(r"\s+#.*$", "", line).rstrip()
        if not body.strip():
            continue
        indent = len(body) - len(body.lstrip(" "))
        assert indent % 2 == 0 and indent >= 2, f"tree {dataset}: bad indent in {line!r}"
        depth = indent // 2 - 1
        assert depth <= len(stack), f"tree {dataset}: {line!r} is nested too deep"
        name = body.strip()
        stack[depth:] = [name.rstrip("/")]
        entries.append(("/".join(stack), name.endswith("/")))
    return entries


def doc_dry_run_splits(dataset: str) -> str:
    """The ``--split`` of the doc's ``xmic extract --dataset <dataset> ... --dry-run`` command."""
    text = EXTRACTION_DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith(f"xmic extract --dataset {dataset} ") and "--dry-run" in line:
            return re.search(r"--split (\S+)", line).group(1)
    raise AssertionError(f"docs/extraction.md has no `xmic extract --dataset {dataset} ... --dry-run` command")


def test_tree_parser_reads_nesting_and_comments() -> None:
    text = "<!-- tree: x -->\n```text\nroot/    # --root\n  a/\n    b.txt   # note\n  c/\n    d/\n      e.mp4\n```\n"
    assert doc_tree("x", text) == [("a", True), ("a/b.txt", False), ("c", True), ("c/d", True), ("c/d/e.mp4", False)]


# --- file contents for every name a tree may hold -----------------------------------------------------------------


def _csv(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue()


def _epic_split(videos: list[str], action: int) -> str:
    from xmic.synth.writers import EPIC_COLUMNS

    rows = [
        [f"{v}_{action}", v.split("_")[0], v, "00:00:00.00", "00:00:00.00", "00:00:00.30", 1, 18]
        + ["take plate", "take", 0, "plate", 1, "['plate']", "[1]"]
        for v in videos
    ]
    return _csv(list(EPIC_COLUMNS), rows)


def _ego4d_split(uids: list[str], action: int) -> str:
    clips = [
        {
            "clip_uid": uid,
            "action_idx": action,
            "action_clip_start_sec": 0.0,
            "action_clip_end_sec": 1.0,
            "action_clip_start_frame": 0,
            "action_clip_end_frame": 30,
            "verb": VERBS[0],
            "noun": NOUNS[1],
            "verb_label": 0,
            "noun_label": 1,
        }
        for uid in uids
    ]
    return json.dumps({"version": "v2", "clips": clips})


def annotation_text(name: str, media: list[str]) -> str:
    """What the test writes into the annotation file ``name`` of a tree whose media stems are ``media``."""
    epic = {"EPIC_100_train.csv": 0, "EPIC_100_validation.csv": 1}
    if name in epic:
        return _epic_split(media, epic[name])
    if name in ("EPIC_100_verb_classes.csv", "EPIC_100_noun_classes.csv"):
        names = VERBS if "verb" in name else NOUNS
        return _csv(["id", "key", "instances", "category"], [[i, n, f"['{n}']", "x"] for i, n in enumerate(names)])
    if name == "EPIC_100_video_info.csv":
        rate = lambda v: "50.0" if len(v.split("_")[1]) >= 3 else "59.94005994005994"  # noqa: E731
        return _csv(["video_id", "duration", "fps", "resolution"], [[v, "1.33", rate(v), "64x48"] for v in media])
    ego4d = {"fho_lta_train.json": 0, "fho_lta_val.json": 1}
    if name in ego4d:
        return _ego4d_split(media, ego4d[name])
    if name == "fho_lta_taxonomy.json":
        return json.dumps({"verbs": VERBS, "nouns": NOUNS})
    if re.fullmatch(r"(train|test)_split[123]\.txt", name):
        return "".join(f"{clip} 1 1 1\n" for clip in media)
    if name in ("verb_idx.txt", "noun_idx.txt"):
        names = VERBS if name.startswith("verb") else NOUNS
        return "".join(f"{n} {i}\n" for i, n in enumerate(names, start=1))
    if name == "action_idx.txt":
        return f"{VERBS[0]} {NOUNS[0]} 1\n"
    raise AssertionError(f"docs/extraction.md names {name!r}, which this test cannot fill: teach annotation_text")


def media_frames(dataset: str, stem: str) -> int:
    """Frames to write for a video: an EGTEA clip holds the span its name gives (``F<first>-F<last>``)."""
    if dataset == "egtea":
        from xmic.extract.datasets.egtea import parse_clip_name

        name = parse_clip_name(stem)
        return name.last_frame - name.first_frame + 1
    return VIDEO_FRAMES


def build_tree(dataset: str, root: Path) -> list[str]:
    """Create the doc's tree under ``root``: small generated videos, annotations naming them; the media stems."""
    from xmic.synth.video import write_test_video

    entries = doc_tree(dataset)
    media = [Path(p).stem for p, is_dir in entries if not is_dir and p.lower().endswith(".mp4")]
    assert media, f"the {dataset} tree holds no video"
    for rel, is_dir in entries:
        path = root / rel
        if is_dir:
            path.mkdir(parents=True, exist_ok=True)
        elif rel.lower().endswith(".mp4"):
            fps = EGTEA_FPS if dataset == "egtea" else 30
            write_test_video(path, media_frames(dataset, path.stem), 64, 48, fps=fps, gop=8)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(annotation_text(path.name, media), encoding="utf-8")
    return media


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xmic.bench.extract import write_tiny_encoders

    return write_tiny_encoders(tmp_path_factory.mktemp("docs-models"), ("clip-vit-b16",))


@pytest.mark.parametrize("dataset", DATASETS)
def test_documented_tree_passes_the_dry_run(dataset: str, tmp_path: Path, tiny_models: Path) -> None:
    root = tmp_path / dataset
    media = build_tree(dataset, root)
    splits = doc_dry_run_splits(dataset)
    cache = tmp_path / "cache"
    args = ["extract", "--dataset", dataset, "--root", str(root), "--split", splits, "--cache", str(cache)]
    args += ["--hands", "none", "--model-dir", str(tiny_models), "--dry-run", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.output.strip().splitlines()[-1])["dry_run"]
    n_splits = len(splits.split(","))
    assert len(info["splits"]) == n_splits, info["splits"]
    for name, split in info["splits"].items():
        assert split["missing_videos"] == [] and split["skipped"] == [], (name, split)
        assert split["videos_found"] == len(media), (name, split, media)
    assert info["rows"] == n_splits * len(media) and info["rows_missing_media"] == 0
    assert info["encoders"]["clip-vit-b16"]["weights"] == str(tiny_models / "clip-vit-b16")
    assert not cache.exists()


# --- README.md and docs/ -------------------------------------------------------------------------------------------


def test_readme_and_docs_stand_alone() -> None:
    assert DOCS, "docs/*.md not found"
    for path in [README, *DOCS]:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(REPO)
        assert "../shared" not in text, f"{where} points outside the repository (../shared)"
        assert "DESIGN.md" not in text, f"{where} names DESIGN.md; the design is docs/design.md"
        found = re.findall(r"(?i)\bissues?\b", text)
        assert not found, f"{where} mentions issues ({found}); write for users"


def test_readme_is_short_and_links_resolve() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) < 200
    for path in [README, *DOCS]:
        for link in re.findall(r"\]\(([^)#\s:]+)[)#]", path.read_text(encoding="utf-8")):
            target = (path.parent / link).resolve()
            assert target.exists(), f"{path.relative_to(REPO)} links {link}, which does not exist"


def _commands(path: Path = README) -> list[str]:
    """Every ``xmic ...`` / ``make ...`` / ``python ...`` command of a Markdown file: code-block lines (continuations
    joined, comments dropped) and inline code spans."""
    blocks, prose, block = [], [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if block is None:
                block = [] if line[3:].strip() in ("", "bash", "sh") else ["<not shell>"]
            else:
                if block[:1] != ["<not shell>"]:
                    blocks.append("\n".join(block))
                block = None
        elif block is not None:
            block.append(line)
        else:
            prose.append(line)
    commands: list[str] = []
    for text in blocks:
        for line in text.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    commands += [span.strip() for span in re.findall(r"`([^`\n]+)`", "\n".join(prose))]
    out = []
    for cmd in commands:
        words = cmd.split()
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the command
            words = words[1:]
        if "xmic.cli" in words:  # torchrun ... -m xmic.cli extract ...
            words = ["xmic", *words[words.index("xmic.cli") + 1 :]]
        if words and words[0] in ("xmic", "make", "python"):
            out.append(" ".join(words))
    return out


def _command_and_options(words: list[str]):
    import click

    cmd: click.Command = main
    path = ["xmic"]
    rest = words[1:]
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        if rest[0].isupper():  # a placeholder: `xmic COMMAND --help`
            return path, set()
        sub = cmd.commands.get(rest[0])
        assert sub is not None, f"`{' '.join(words)}`: {' '.join(path)} has no subcommand {rest[0]!r}"
        cmd, path, rest = sub, [*path, rest[0]], rest[1:]
    options = {o for p in cmd.params for o in [*p.opts, *p.secondary_opts]} | {"--help", "-h"}
    used = {m for w in rest for m in re.findall(r"^\[?(--?[a-z][a-z0-9-]*)", w)}
    return path, used - options


def _makefile_targets_and_variables() -> tuple[set[str], set[str]]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    targets: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.% -]+?):(?!=)", line)
        if match and not line.startswith("\t"):
            targets.update(t for t in match.group(1).split() if "%" not in t and not t.startswith("."))
    variables = set(re.findall(r"^([A-Z_]+)\s*\?=", text, re.M))
    return targets, variables


def _check_xmic(cmd: str, where: str) -> None:
    words = re.split(r"\s*(?:\||&&|;|>)", cmd, maxsplit=1)[0].split()  # the xmic part of a shell pipeline
    path, unknown = _command_and_options(words)
    assert not unknown, f"{where}: `{cmd}`: {' '.join(path)} has no option(s) {sorted(unknown)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_xmic_command_in_docs_exists(doc: Path) -> None:
    for cmd in _commands(doc):
        if cmd.startswith("xmic "):
            _check_xmic(cmd, f"docs/{doc.name}")


def test_every_readme_command_exists() -> None:
    commands = _commands()
    assert any(c.startswith("make demo") for c in commands) and any(c.startswith("make test") for c in commands)
    targets, variables = _makefile_targets_and_variables()
    for cmd in commands:
        words = cmd.split()
        if words[0] == "xmic":
            _check_xmic(cmd, "README")
        elif words[0] == "make":
            for word in words[1:]:
                if "=" in word:
                    name = word.split("=", 1)[0]
                    assert name in variables, f"README: `{cmd}`: the Makefile has no variable {name}"
                else:
                    assert word in targets, f"README: `{cmd}`: the Makefile has no target {word!r}"
        elif len(words) > 2 and words[1] == "-m":
            import importlib.util

            assert importlib.util.find_spec(words[2]) is not None, f"README: `{cmd}`: no module {words[2]}"
        elif len(words) > 1 and words[1].endswith(".py"):
            assert (REPO / words[1]).is_file(), f"README: `{cmd}`: no file {words[1]}"
