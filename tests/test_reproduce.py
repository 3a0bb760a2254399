"""Rebuilding a paper table on a synthetic store: runs, reuse, results JSON and the Markdown."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xmic.cache.synthetic import write_random_store
from xmic.evaluate import paper_numbers as pn
from xmic.evaluate.reproduce import (
    TABLE_SPECS,
    ReproduceError,
    ReproduceSettings,
    eval_splits_of,
    reproduce_table,
)
from xmic.evaluate.reproduce_cli import parse_datasets, parse_seeds, reproduce_cmd

NAMES = {"epic": "syn-epic", "ego4d": "syn-ego4d"}
VOCAB = {
    "syn-epic": {"verb": ["take", "put", "open"], "noun": ["pan", "knife", "cup", "plate"]},
    "syn-ego4d": {"verb": ["take", "hold", "turn"], "noun": ["cup", "plate", "phone", "door"]},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "cache.zarr"
    for seed, (group, evaluation) in enumerate((("syn-epic", "validation"), ("syn-ego4d", "val"))):
        n = 48
        split = np.where(np.arange(n) < 32, "train", evaluation)
        write_random_store(
            path,
            dataset=group,
            n=n,
            num_frames=8,
            encoders={"clip-vit-b16": 32},
            vocab=VOCAB[group],
            split=split,
            seed=seed,
        )
    return path


def settings_for(store: Path, out: Path, **kw) -> ReproduceSettings:
    base = dict(
        cache=store,
        out=out,
        seeds=(0, 1),
        datasets=dict(NAMES),
        rows=("zero-shot", "xmic"),
        epochs=1,
        frames=4,
        batch_size=16,
        device="cpu",
        progress=False,
    )
    base.update(kw)
    return ReproduceSettings(**base)


@pytest.fixture
def paper_with_number(monkeypatch):
    """Table 1 with one typed-in number, so the Markdown shows a paper value and a Δ."""
    table = copy.deepcopy(pn.PAPER_TABLES[1])
    table.rows["X-MIC"]["noun|ego4d>ego4d|top1"] = 12.34
    monkeypatch.setitem(pn.PAPER_TABLES, 1, table)
    return table


def test_table1_trains_evaluates_renders_and_reuses(store, tmp_path, paper_with_number):
    settings = settings_for(store, tmp_path / "out")
    report = reproduce_table(1, settings, echo=lambda _: None)
    # 2 rows x 2 targets x 2 directions x 2 seeds
    assert report.trained == 16 and report.reused == 0
    assert set(report.results) == {"ZS CLIP", "X-MIC"}
    assert "DINOv2" in report.skipped["X-MIC+DINO"]  # "xmic" also selects X-MIC+DINO, which this store cannot run
    assert {r["method"] for r in report.results["ZS CLIP"]} == {"zero-shot"}
    assert {r["method"] for r in report.results["X-MIC"]} == {"xmic"}

    # our number, computed here from the raw results: X-MIC, nouns, trained and tested on Ego4D, two seeds
    values = [
        100 * r["datasets"]["syn-ego4d"]["top1"]
        for r in report.results["X-MIC"]
        if r["target"] == "noun" and r["train_dataset"] == "syn-ego4d"
    ]
    assert len(values) == 2
    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    line = f"| X-MIC | nouns · Ego4D → Ego4D | 12.34 | {mean:.2f} ± {std:.2f} (n=2) | {mean - 12.34:+.2f} |"
    assert line in report.markdown
    assert "| ZS CLIP | verbs · Epic → Ego4D · hm | 2.88 |" in report.markdown  # the paper's number
    assert "Epochs overridden to 1" in report.markdown
    assert "store " + str(store) in report.markdown and "preset authors-code" in report.markdown
    assert report.md_path.read_text() == report.markdown
    assert report.png_path == tmp_path / "out" / "table1.png"
    assert report.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    record = json.loads(report.json_path.read_text())
    assert record["rows"]["X-MIC+DINO"]["status"] == "not run"
    assert record["paper"]["rows"]["X-MIC"]["noun|ego4d>ego4d|top1"] == 12.34
    for r in record["rows"]["X-MIC"]["results"]:
        assert r["preset"] == "authors-code"
        assert r["store"] == str(store)
        assert r["encoders"]["clip-vit-b16"]["dim"] == 32
        assert r["epochs"] == 1 and r["frames"] == 4

    checkpoints = sorted((tmp_path / "out" / "runs").glob("xmic-*/model.safetensors"))
    assert len(checkpoints) == 8
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    again = reproduce_table(1, settings, echo=lambda _: None)
    assert again.trained == 0 and again.reused == 16
    assert [p.stat().st_mtime_ns for p in checkpoints] == stamps
    assert again.markdown == report.markdown

    # a run whose config.json differs from the one asked for is trained again, the others are reused
    config = next((tmp_path / "out" / "runs").glob("xmic-syn-epic-noun-s0-*/config.json"))
    changed = json.loads(config.read_text())
    changed["lr"] = 1.0
    config.write_text(json.dumps(changed))
    third = reproduce_table(1, settings, echo=lambda _: None)
    assert third.trained == 1 and third.reused == 15
    assert json.loads(config.read_text())["lr"] == 5e-4


def test_table2_reuses_table1_runs_and_reports_shared_novel(store, tmp_path):
    settings = settings_for(store, tmp_path / "out", rows=("zero-shot",), seeds=(0,))
    reproduce_table(1, settings, echo=lambda _: None)
    report = reproduce_table(2, settings, echo=lambda _: None)
    assert report.trained == 0 and report.reused == 4
    r = next(r for r in report.results["ZS CLIP"] if r["target"] == "noun" and r["train_dataset"] == "syn-epic")
    cross = r["datasets"]["syn-ego4d"]
    assert cross["shared"]["classes"] == 2 and cross["novel"]["classes"] == 2  # cup, plate | phone, door
    assert f"| {100 * cross['shared']['top1']:.2f} (n=1) |" in report.markdown
    assert "Shared classes: equal normalised names." in report.markdown


def test_paper_numbers_file_fills_the_paper_column(store, tmp_path):
    from xmic.evaluate.paper_file import write_template

    path = tmp_path / "paper.csv"
    write_template(path, [1])
    text = path.read_text().replace(
        "1,ZS CLIP,noun|epic>epic|top1,nouns · Epic → Epic,8.74,", "1,ZS CLIP,noun|epic>epic|top1,x,7.5,"
    )
    path.write_text(text)
    settings = settings_for(store, tmp_path / "out", rows=("zero-shot",), seeds=(0,), targets=("noun",))
    report = reproduce_table(1, dataclasses.replace(settings, paper_numbers=path), echo=lambda _: None)
    ours = next(r for r in report.results["ZS CLIP"] if r["train_dataset"] == "syn-epic")
    value = 100 * ours["datasets"]["syn-epic"]["top1"]
    assert f"| ZS CLIP | nouns · Epic → Epic | 7.50 | {value:.2f} (n=1) | {value - 7.5:+.2f} |" in report.markdown
    assert f"Paper numbers: all 12 cells, from {path} laid over {pn.CITATION}, Table 1." in report.markdown
    assert json.loads(report.json_path.read_text())["paper"]["rows"]["ZS CLIP"]["noun|epic>epic|top1"] == 7.5

    path.write_text(text.replace(",x,7.5,", ",x,seven,"))
    bad = CliRunner().invoke(
        reproduce_cmd,
        ["--table", "1", "--cache", str(store), "--out", str(tmp_path / "bad"), "--paper-numbers", str(path)],
    )
    assert bad.exit_code == 1 and "'seven' is not a number" in bad.output
    assert not (tmp_path / "bad" / "runs").exists()  # refused before any training


def test_xmic_options_reach_the_xmic_runs_only_and_are_stated(store, tmp_path):
    settings = settings_for(store, tmp_path / "out", seeds=(0,), targets=("noun",), xmic_options={"mlp_hidden": 8})
    report = reproduce_table(1, settings, echo=lambda _: None)
    assert "X-MIC options changed from DESIGN.md's adapter: mlp_hidden=8." in report.markdown
    configs = {
        p.parent.name.split("-")[0]: json.loads(p.read_text())
        for p in (tmp_path / "out" / "runs").glob("*/config.json")
    }
    assert configs["xmic"]["extra"] == {"xmic": {"mlp_hidden": 8}}
    assert configs["zero"]["extra"] == {}


def test_no_matplotlib_means_no_figure_and_says_so(store, tmp_path, monkeypatch):
    import xmic.evaluate.table_plot as table_plot

    monkeypatch.setattr(table_plot, "pyplot_or_none", lambda: None)
    lines: list[str] = []
    settings = settings_for(store, tmp_path / "out", rows=("zero-shot",), seeds=(0,), targets=("noun",))
    report = reproduce_table(1, settings, echo=lines.append)
    assert report.png_path is None and not (tmp_path / "out" / "table1.png").exists()
    assert "matplotlib is not installed" in lines[-1] and report.md_path.is_file()


def test_missing_dataset_says_how_to_extract(store, tmp_path):
    settings = settings_for(store, tmp_path / "out", datasets={**NAMES, "egtea": "egtea"})
    with pytest.raises(ReproduceError, match=r"--egtea-root") as err:
        reproduce_table(3, settings, echo=lambda _: None)
    assert "xmic extract --dataset egtea" in str(err.value)
    mapped = settings_for(store, tmp_path / "out", datasets={**NAMES, "egtea": "syn-egtea"})
    with pytest.raises(ReproduceError, match="no complete dataset group 'syn-egtea'"):
        reproduce_table(3, mapped, echo=lambda _: None)


def test_missing_group_is_extracted_with_the_runner(store, tmp_path, monkeypatch):
    """Table 3 on a store without EGTEA: the runner is called with the EGTEA root, then the table is built."""
    import shutil

    import xmic.extract.runner as runner

    cache = tmp_path / "cache.zarr"
    shutil.copytree(store, cache)
    calls = []

    def fake_run_extraction(config, echo=print):
        calls.append(config)
        vocab = {"verb": ["take", "put"], "noun": ["cup", "egg", "knife"]}
        write_random_store(config.cache, dataset=config.dataset, n=12, num_frames=8, encoders={"clip-vit-b16": 32},
                           vocab=vocab, split="test_split1", seed=5)  # fmt: skip

    monkeypatch.setattr(runner, "run_extraction", fake_run_extraction)
    model = tmp_path / "hand_landmarker.task"
    model.write_bytes(b"")
    settings = settings_for(
        cache, tmp_path / "out", rows=("zero-shot",), seeds=(0,), targets=("noun",),
        datasets={**NAMES, "egtea": "egtea"}, roots={"egtea": tmp_path / "EGTEA"}, hoa_dir=tmp_path / "hoa",
        hand_model=model,
    )  # fmt: skip
    report = reproduce_table(3, settings, echo=lambda _: None)
    assert len(calls) == 1
    config = calls[0]
    assert (config.dataset, config.root, config.splits, config.cache) == ("egtea", tmp_path / "EGTEA", ("test",), cache)
    assert config.hands == "mediapipe"  # the EPIC hand-object detections are for EPIC only
    assert config.hand_options == {"hand_model": str(model)}
    (r,) = report.results["ZS CLIP"]
    assert r["datasets"]["egtea"]["n"] == 12 and r["datasets"]["egtea"]["kind"] == "cross"
    assert "| ZS CLIP | nouns · Ego4D → EGTEA |" in report.markdown
    reproduce_table(3, settings, echo=lambda _: None)
    assert len(calls) == 1  # the group is there now


def test_unknown_row_and_table(store, tmp_path):
    with pytest.raises(ReproduceError, match="has no row nope"):
        reproduce_table(1, settings_for(store, tmp_path, rows=("nope",)), echo=lambda _: None)
    with pytest.raises(ReproduceError, match="no table 8"):
        reproduce_table(8, settings_for(store, tmp_path), echo=lambda _: None)


def test_table_specs_match_paper_rows():
    for number, spec in TABLE_SPECS.items():
        assert spec.keys == list(pn.PAPER_TABLES[number].rows)
        needed = {(pn.parse_column(c).train, pn.parse_column(c).test) for c in pn.PAPER_TABLES[number].columns}
        have = {(train, test) for train, tests in spec.directions for test in tests}
        assert needed <= have, f"table {number} needs directions it does not run"
    views = {r.key: r.overrides["views"] for r in TABLE_SPECS[4].rows}
    assert views == {"F": "F", "H": "H", "F+H": "F+H"}
    norms = {r.key: (r.overrides["n1"], r.overrides["n2"], r.overrides["n3"]) for r in TABLE_SPECS[6].rows}
    assert norms == {
        "n1": (True, False, False),
        "none": (False, False, False),
        "n2,n3": (False, True, True),
        "n1,n2,n3": (True, True, True),
        "n1,n2": (True, True, False),
        "n1,n3": (True, False, True),
    }
    assert {r.encoder for r in TABLE_SPECS[5].rows} == {"clip-vit-b16", "clip-vit-l14", "lavila-tsf-l14"}
    assert not any(r.unavailable for r in TABLE_SPECS[5].rows)
    templates = {(r.key, r.part): (r.method, r.overrides["template"]) for r in TABLE_SPECS[7].rows}
    assert templates[("Egocentric image a <class>", "ZS")] == ("zero-shot", "Egocentric image a {}")
    assert templates[("<class>", "X-MIC")] == ("xmic", "{}")
    assert TABLE_SPECS[6].targets == ("noun",)
    assert all(spec.directions == (("ego4d", ("ego4d", "epic")),) for n, spec in TABLE_SPECS.items() if n >= 4)


class SpecReader:
    """What resolve_row reads of a StoreReader: the spec, the group's name and its stored prompt templates."""

    def __init__(self, spec, templates=None):
        from xmic.cache.schema import PROMPT_TEMPLATES

        self.spec, self.dataset = spec, spec.dataset
        self.templates = list(PROMPT_TEMPLATES if templates is None else templates)

    def text_templates(self, encoder, target):
        return self.templates if encoder in self.spec.encoders else []

    def frames_encoder(self, encoder):
        from xmic.cache.errors import StoreError

        if encoder not in self.spec.frames:
            raise StoreError(
                f"dataset group {self.dataset!r}: no frame cache of {encoder}; `xmic extract ... --frames-cache`"
            )
        return encoder


def test_resolve_row_needs(tmp_path, monkeypatch):
    from xmic.cache.schema import StoreSpec
    from xmic.cache.synthetic import synthetic_encoder_spec
    from xmic.evaluate.reproduce import METHOD_ROWS, resolve_row

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("XMIC_MODEL_DIR", raising=False)
    rows = {r.key: r for r in METHOD_ROWS}
    clip = {"clip-vit-b16": synthetic_encoder_spec("clip-vit-b16", 32)}
    with_dino = {**clip, "dinov2-vitb14": synthetic_encoder_spec("dinov2-vitb14", 48)}
    plain = [SpecReader(StoreSpec("a", 8, clip)), SpecReader(StoreSpec("b", 8, with_dino))]
    both = [SpecReader(StoreSpec("a", 8, with_dino)), SpecReader(StoreSpec("b", 8, with_dino))]
    settings = ReproduceSettings(cache=tmp_path / "c.zarr")
    b16 = {"encoder": "clip-vit-b16"}

    reason = resolve_row(rows["Vita-CLIP"], settings, both)[1]
    assert "visual encoder" in reason and "no frame cache of clip-vit-b16" in reason and "--frames-cache" in reason
    assert "DINOv2" in resolve_row(rows["X-MIC+DINO"], settings, plain)[1]  # one group lacks DINOv2
    overrides, reason = resolve_row(rows["X-MIC+DINO"], settings, both)
    assert reason is None and overrides == {"method": "xmic", "second_encoder": "dinov2-vitb14", **b16}
    assert "--model-dir" in resolve_row(rows["CoOp"], settings, both)[1]
    weights = tmp_path / "clip"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_bytes(b"")
    settings.model_dir = weights
    overrides, reason = resolve_row(rows["A5"], settings, both)
    assert reason is None and overrides == {"method": "a5", "text_model_dir": str(weights), **b16}

    # no --model-dir: the folder the store was extracted from, when it still holds the weights
    settings.model_dir = None
    extracted = dataclasses.replace(with_dino["clip-vit-b16"], source=str(weights))
    from_source = [SpecReader(StoreSpec("a", 8, {**with_dino, "clip-vit-b16": extracted}))]
    assert resolve_row(rows["CoOp"], settings, from_source) == (
        {"method": "coop", "text_model_dir": str(weights), **b16},
        None,
    )
    gone = dataclasses.replace(extracted, source=str(tmp_path / "moved"))
    moved = [SpecReader(StoreSpec("a", 8, {"clip-vit-b16": gone}))]
    assert "--model-dir" in resolve_row(rows["CoOp"], settings, moved)[1]


def test_resolve_row_backbones_and_prompts(tmp_path):
    from xmic.cache.schema import StoreSpec
    from xmic.cache.synthetic import synthetic_encoder_spec
    from xmic.evaluate.reproduce import resolve_row

    settings = ReproduceSettings(cache=tmp_path / "c.zarr")
    b16 = {"clip-vit-b16": synthetic_encoder_spec("clip-vit-b16", 32)}
    both = {**b16, "clip-vit-l14": synthetic_encoder_spec("clip-vit-l14", 48)}
    rows = {r.label: r for spec in (TABLE_SPECS[5], TABLE_SPECS[7]) for r in spec.rows}
    only_b16 = [SpecReader(StoreSpec("e", 8, b16)), SpecReader(StoreSpec("k", 8, b16))]
    with_l14 = [SpecReader(StoreSpec("e", 8, both)), SpecReader(StoreSpec("k", 8, both))]

    reason = resolve_row(rows["CLIP ViT-L/14 | X-MIC"], settings, only_b16)[1]
    assert "needs clip-vit-l14 features in every dataset group (e, k)" in reason
    assert "--extra-encoder clip-vit-l14`" in reason and "model-dir" not in reason
    overrides, reason = resolve_row(rows["CLIP ViT-L/14 | X-MIC"], settings, with_l14)
    assert reason is None and overrides == {
        "method": "xmic",
        "encoder": "clip-vit-l14",
        "second_encoder": "clip-vit-l14",
    }
    overrides, reason = resolve_row(rows["CLIP ViT-L/14 | ZS"], settings, with_l14)
    assert reason is None and overrides == {"method": "zero-shot", "encoder": "clip-vit-l14"}
    reason = resolve_row(rows["LaViLa ViT-L/14 | ZS"], settings, with_l14)[1]
    assert "needs lavila-tsf-l14 features" in reason and "--extra-encoder lavila-tsf-l14" in reason
    assert "clip_openai_timesformer_large.narrator_rephraser.ep_0003.md5sum_c89337.pth from https://" in reason
    lavila = {**b16, "lavila-tsf-l14": synthetic_encoder_spec("lavila-tsf-l14", 256)}
    with_lavila = [SpecReader(StoreSpec("e", 8, lavila)), SpecReader(StoreSpec("k", 8, lavila))]
    overrides, reason = resolve_row(rows["LaViLa ViT-L/14 | X-MIC"], settings, with_lavila)
    assert reason is None
    assert overrides == {"method": "xmic", "encoder": "lavila-tsf-l14", "second_encoder": "lavila-tsf-l14"}
    assert resolve_row(rows["CLIP ViT-B/16 | ZS"], settings, with_lavila)[0]["encoder"] == "clip-vit-b16"
    # both CLIPs in the store: every other row classifies with the paper's default, ViT-B/16
    assert resolve_row(rows["CLIP ViT-B/16 | X-MIC"], settings, with_l14)[0]["second_encoder"] == "clip-vit-b16"

    prompt = rows["Egocentric image a <class> · X-MIC"]
    assert resolve_row(prompt, settings, only_b16) == (
        {"method": "xmic", "template": "Egocentric image a {}", "encoder": "clip-vit-b16"},
        None,
    )
    old = [SpecReader(StoreSpec("e", 8, b16), templates=["{}", "Image of a {}"]), only_b16[1]]
    reason = resolve_row(prompt, settings, old)[1]
    assert "no clip-vit-b16 text embeddings for the prompt 'Egocentric image a {}' in e" in reason
    assert resolve_row(rows["<class> · ZS"], settings, old)[1] is None


def test_eval_splits_exclude_training_splits():
    class R:
        def __init__(self, splits):
            self.segments = {"split": np.array(splits)}

    got = eval_splits_of([R(["train", "validation"]), R(["train_split1", "test_split1+2+3"])])
    assert got == ("test_split1+2+3", "validation")


def test_cli_runs_and_parses(store, tmp_path):
    result = CliRunner().invoke(
        reproduce_cmd,
        [
            "--table", "1", "--cache", str(store), "--datasets", "epic=syn-epic,ego4d=syn-ego4d",
            "--rows", "zero-shot", "--targets", "noun", "--frames", "4", "--out", str(tmp_path / "cli"),
            "--device", "cpu", "--quiet", "--epic-root", "",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "## Table 1" in result.output and "| ZS CLIP | nouns · Epic → Ego4D |" in result.output
    assert (tmp_path / "cli" / "table1.json").is_file()
    bad = CliRunner().invoke(reproduce_cmd, ["--table", "3", "--cache", str(store), "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "xmic extract --dataset ego4d" in bad.output
    assert parse_seeds("0, 1,2") == (0, 1, 2) and parse_seeds("") == (0,)
    assert parse_datasets("epic=a", {"epic": "epic", "ego4d": "ego4d"}) == {"epic": "a", "ego4d": "ego4d"}


def test_settings_are_json_recordable(tmp_path):
    s = settings_for(tmp_path / "c.zarr", tmp_path / "o")
    assert json.loads(json.dumps(dataclasses.asdict(s), default=str))["datasets"] == NAMES


def test_xmic_rows_refuse_groups_without_hand_boxes_unless_allowed(tmp_path):
    from xmic.cache.schema import StoreSpec
    from xmic.cache.synthetic import synthetic_encoder_spec
    from xmic.evaluate.reproduce import hands_header, resolve_row

    clip = {"clip-vit-b16": synthetic_encoder_spec("clip-vit-b16", 32)}
    readers = [SpecReader(StoreSpec("e", 8, clip)), SpecReader(StoreSpec("k", 8, clip))]
    no_hands = {"k": "dataset group 'k' was extracted with --hands none"}
    settings = ReproduceSettings(cache=tmp_path / "c.zarr")
    rows = {r.label: r for r in TABLE_SPECS[4].rows + TABLE_SPECS[1].rows}
    reason = resolve_row(rows["F+H"], settings, readers, no_hands)[1]
    assert "'k' was extracted with --hands none" in reason and "--allow-no-hands" in reason
    assert resolve_row(rows["X-MIC"], settings, readers, no_hands)[1] == reason
    assert resolve_row(rows["ZS CLIP"], settings, readers, no_hands)[1] is None  # no hand view: runs
    assert resolve_row(rows["F+H"], settings, readers, {})[1] is None
    settings.allow_no_hands = True
    assert resolve_row(rows["F+H"], settings, readers, no_hands)[1] is None

    lines = hands_header({"ego4d": readers[0], "epic": readers[1]}, no_hands, settings)
    assert lines[0] == "Hand boxes: ego4d = none, epic = none."
    assert lines[1].startswith("**Without hand boxes** (--allow-no-hands): k;")
    settings.allow_no_hands = False
    assert hands_header({"ego4d": readers[0]}, {}, settings) == ["Hand boxes: ego4d = none."]


def test_a_run_with_the_old_flag_meanings_is_never_reused(tmp_path):
    from xmic.adapt.config import TrainConfig
    from xmic.cache.schema import StoreSpec
    from xmic.evaluate.reproduce import finished_run

    cfg = TrainConfig.from_preset("authors-code", dataset="e", method="xmic")
    spec = StoreSpec("e", 8, {})
    run = tmp_path / "run"
    run.mkdir()
    cfg.save(run / "config.json")
    (run / "run.json").write_text(json.dumps({"store": {"spec": spec.to_json()}}))
    assert finished_run(run, cfg, spec)
    old = json.loads((run / "config.json").read_text())
    del old["flags_version"]  # written before n2/n3 took the paper's meanings
    (run / "config.json").write_text(json.dumps(old))
    assert not finished_run(run, cfg, spec)


def test_cli_hand_options(store, tmp_path, monkeypatch):
    monkeypatch.delenv("XMIC_HAND_MODEL", raising=False)
    monkeypatch.delenv("XMIC_MODEL_DIR", raising=False)
    base = ["--table", "3", "--cache", str(store), "--datasets", "epic=syn-epic,ego4d=syn-ego4d", "--quiet"]
    base += ["--out", str(tmp_path / "o"), "--egtea-root", str(tmp_path)]
    bad = CliRunner().invoke(reproduce_cmd, [*base, "--hands", "egtea=doh"])
    assert bad.exit_code == 2 and "unknown hand-box provider 'doh'" in bad.output
    no_folder = CliRunner().invoke(reproduce_cmd, [*base, "--hands", "egtea=hoa", "--hoa-dir", str(tmp_path)])
    assert no_folder.exit_code == 1 and "--hands egtea=hoa needs --hoa-dir egtea=DIR" in no_folder.output
    absent = tmp_path / "absent.task"
    res = CliRunner().invoke(reproduce_cmd, [*base, "--hand-model", str(absent)])
    assert res.exit_code == 1 and f"--hand-model {absent} does not exist" in res.output
    assert "hand_landmarker.task" in res.output and "make HAND_MODEL=PATH" in res.output
    res = CliRunner().invoke(reproduce_cmd, [*base, "--hands", "egtea=none"])
    assert res.exit_code == 1 and "--allow-no-hands" in res.output
