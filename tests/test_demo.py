"""The one-command demo: a quick run end to end, its store groups, its files and numbers, and its parts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tolerance import assert_close_scaled

from xmic.demo.cli import demo_cmd
from xmic.demo.outputs import summary_lines
from xmic.demo.pipeline import REFERENCE_ROW, DemoResult, prepare_out, written
from xmic.demo.pretrain import contrastive_loss
from xmic.demo.results import compare_lines, method_table
from xmic.demo.store import rename_group
from xmic.demo.webdata import all_nouns, all_verbs, render_pairs
from xmic.evaluate.tables import DEMO_TITLE
from xmic.owned import MANIFEST

METHODS = ["ZS CLIP", "CLIP-Adapter", "CLIP-Adapter*", "CoOp", "Co-CoOp", "A5", "X-MIC"]
NOT_RUN = ["Vita-CLIP", "X-MIC+DINO"]
DIRECTIONS = {"synth-epic>synth-ego4d", "synth-ego4d>synth-epic"}


def test_table_has_every_method_with_percentages(demo: Path) -> None:
    md = (demo / "table1.md").read_text()
    assert md.splitlines()[0].endswith(f"({DEMO_TITLE})") and "Δ" not in md
    detailed = [line for line in md.splitlines() if line.startswith("| ") and " · " in line]  # not the grid
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in detailed]
    by_method: dict[str, list[list[str]]] = {}
    for cells in rows:
        by_method.setdefault(cells[0], []).append(cells[2:5])
    assert set(METHODS + NOT_RUN + [REFERENCE_ROW]) <= set(by_method)
    for method in METHODS + [REFERENCE_ROW]:
        assert len(by_method[method]) == 12  # 2 targets x 2 directions x (within, cross, hm)
        for ours, interval, chance in by_method[method]:
            value = float(re.match(r"([0-9.]+) \(n=1\)$", ours).group(1))  # one seed: no "±"
            low, high = map(float, re.match(r"\[([0-9.]+), ([0-9.]+)\]$", interval).groups())
            assert 0.0 <= low <= value <= high <= 100.0, (method, ours, interval)
            assert float(chance) in (10.0, 12.5)
    assert all(cells == ["not run", "–", "–"] for m in NOT_RUN for cells in by_method[m])
    assert "epic = store group 'synth-epic'" in md and "Epochs overridden to 2" in md and "**Quick run**" in md
    assert re.search(r"^\| chance \| 10\.00 \| 12\.50 \| 10\.00 \| 12\.50 \|$", md, re.M)
    assert "| *paper: X-MIC* |" in md  # the paper's numbers, as reference rows


def test_results_json_has_every_score(demo: Path) -> None:
    results = json.loads((demo / "results.json").read_text())
    assert set(results["methods"]) == set(METHODS)
    for method, targets in results["methods"].items():
        assert set(targets) == {"noun", "verb"}, method
        for directions in targets.values():
            assert set(directions) == DIRECTIONS
            for s in directions.values():
                assert all(0.0 <= s[k] <= 100.0 for k in ("within", "cross", "hm"))
                hm = 0.0 if min(s["within"], s["cross"]) == 0 else 2 / (1 / s["within"] + 1 / s["cross"])
                assert s["hm"] == pytest.approx(hm, abs=1e-6)
                for k in ("within", "cross", "hm"):
                    low, high = s[f"{k}_ci95"]
                    assert low <= s[k] + 0.01 and s[k] - 0.01 <= high, (method, k, s)
    assert set(results["not_run"]) == set(NOT_RUN)
    assert set(results["timings_seconds"]) == {"generate", "models", "extract", "train", "report", "total"}
    losses = results["encoders"]["pretrain"]["losses"]
    assert losses[-1] < losses[0]  # the tiny CLIP's contrastive loss went down
    counts = results["datasets"]["epic"]["counts"]
    assert (
        results["extraction"]["synth-epic"]["rows_ok"] == counts["train"]["segments"] + counts["validation"]["segments"]
    )
    assert results["comparison"][-1].startswith("X-MIC has the highest cross-dataset hm in ")
    training = results["training_last_epochs"]  # train top-1 of the last epochs, trained rows only
    assert "X-MIC" in training and "ZS CLIP" not in training
    for directions in training["X-MIC"].values():
        assert set(directions) == DIRECTIONS
        assert all(0.0 <= v <= 100.0 for d in directions.values() for v in d["train_top1"])
    vector = results["xmic_vector"]  # what the trained X-MIC vector does to the classifier
    assert set(vector) == {"noun", "verb"}
    for directions in vector.values():
        assert set(directions) == DIRECTIONS
        for stats in directions.values():
            assert stats["a_v_norm"] >= 0 and stats["text_norm"] > 0 and -1.0 <= stats["classifier_cosine"] <= 1.0


def test_store_groups_are_renamed_and_consistent(demo: Path) -> None:
    from xmic.cache.reader import StoreReader, list_datasets
    from xmic.cache.verify import verify_store

    cache = demo / "cache"
    assert list_datasets(cache) == ["synth-ego4d", "synth-epic"]
    assert sorted(p.name for p in (cache / "text" / "demo-clip").iterdir() if p.is_dir()) == list_datasets(cache)
    reader = StoreReader(cache, "synth-epic")
    assert reader.spec.dataset == "synth-epic" and reader.spec.config["group_renamed_from"] == "epic"
    assert reader.spec.encoders["demo-clip"].dim == 64 and reader.complete()
    assert reader.spec.encoders["demo-clip"].model_id == "xmic-demo/demo-clip"  # no real checkpoint's name
    assert reader.load_text("demo-clip", "noun").shape == (len(reader.vocab["noun"]), 64)
    assert verify_store(cache).ok


def test_store_extracted_in_processes_equals_one_extracted_in_turn(
    demo: Path, tmp_path: Path, one_torch_thread
) -> None:
    """The demo extracts its two datasets in parallel processes (where it may use two cores); a store extracted one
    dataset after another in this process holds the same arrays."""
    from xmic.cache.backend import Backend
    from xmic.demo.store import extract_demo_store

    if json.loads((demo / "results.json").read_text())["demo"]["processes"] < 2:
        pytest.skip("this machine gives the demo one core, so it extracted in one process")
    manifest = json.loads((demo / "data" / "manifest.json").read_text())
    serial = tmp_path / "cache"
    extract_demo_store(demo / "data", manifest, serial, demo / "models", jobs=1, progress=False, echo=lambda _m: None)
    with Backend(demo / "cache").session("r") as a, Backend(serial).session("r") as b:
        keys = sorted(a.walk_arrays())
        assert keys == sorted(b.walk_arrays()) and any(k.endswith("hand/features") or "features" in k for k in keys)
        for key in keys:
            np.testing.assert_array_equal(a.read(key), b.read(key), err_msg=key)


def test_figures_and_report(demo: Path) -> None:
    report = (demo / "report.md").read_text()
    runs = [p.name for p in (demo / "runs").iterdir() if "zero-shot-hand" not in p.name]
    assert len(runs) == 28 and all(f"## {name}" in report for name in runs)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in " ".join(json.loads((demo / "results.json").read_text())["notes"])
        return
    assert (demo / "plots" / "table1_bars.png").stat().st_size > 1000
    assert not (demo / "report_files").exists()  # confusion matrices: `xmic report` draws them on request


def test_summary_lines_name_files_and_times(demo: Path) -> None:
    results = json.loads((demo / "results.json").read_text())
    result = DemoResult(demo, results, "", timings=results["timings_seconds"])
    text = "\n".join(summary_lines(result))
    assert "X-MIC hm" in text and "ZS CLIP" in text and str(demo / "table1.md") in text
    assert re.search(r"wall time: generate [0-9.]+ s, models [0-9.]+ s, .* total [0-9.]+ s", text)


def test_rename_group_moves_features_text_and_spec(tmp_path: Path) -> None:
    from xmic.cache.reader import StoreReader, list_datasets
    from xmic.cache.synthetic import write_random_store

    cache = tmp_path / "store"
    write_random_store(cache, dataset="epic", n=12, num_frames=4, vocab={"verb": ["a", "b"], "noun": ["c", "d"]})
    before = StoreReader(cache, "epic")
    feats, text = before.load_features_numpy("clip-vit-b16", "full"), before.load_text("clip-vit-b16", "noun")
    rename_group(cache, "epic", "synth-epic")
    after = StoreReader(cache, "synth-epic")
    assert list_datasets(cache) == ["synth-epic"] and after.spec.dataset == "synth-epic"
    np.testing.assert_array_equal(after.load_features_numpy("clip-vit-b16", "full"), feats)
    assert torch.equal(after.load_text("clip-vit-b16", "noun"), text)  # the same bytes, renamed
    write_random_store(cache, dataset="epic", n=4, num_frames=4, vocab={"verb": ["a"], "noun": ["c"]})
    with pytest.raises(FileExistsError, match="already has a group 'synth-epic'"):
        rename_group(cache, "epic", "synth-epic")


def test_prepare_out_refuses_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match=r"thesis\.tex"):
        prepare_out(tmp_path)
    result = CliRunner().invoke(demo_cmd, ["--out", str(tmp_path), "--quick", "--quiet"])
    assert result.exit_code != 0 and "thesis.tex: not written by xmic" in result.output
    result = CliRunner().invoke(demo_cmd, ["--out", str(tmp_path / "new"), "--targets", "adverb"])
    assert result.exit_code != 0 and "targets must be noun and/or verb" in result.output
    with written(tmp_path / "old", "results.json"):
        (tmp_path / "old" / "results.json").write_text("{}")
    prepare_out(tmp_path / "old")  # an earlier demo is cleared
    assert [p.name for p in (tmp_path / "old").iterdir()] == [MANIFEST]


def test_compare_lines_counts_wins() -> None:
    methods = {
        "X-MIC": {"noun": {"a>b": {"hm": 30.0}, "b>a": {"hm": 10.0}}},
        "ZS CLIP": {"noun": {"a>b": {"hm": 20.0}, "b>a": {"hm": 12.0}}},
        "CLIP-Adapter": {"noun": {"a>b": {"hm": 25.0}, "b>a": {"hm": None}}},
    }
    lines = compare_lines(methods, "X-MIC", ("ZS CLIP", "CLIP-Adapter"))
    assert lines[0].endswith("<- best") and "CLIP-Adapter –" in lines[1] and not lines[1].endswith("<- best")
    assert lines[-1].startswith("X-MIC has the highest cross-dataset hm in 1 of 2 cases")
    result = {
        "target": "noun",
        "train_dataset": "a",
        "datasets": {"a": {"kind": "within", "top1": 0.5, "n": 4}, "b": {"kind": "cross", "top1": 0.25, "n": 8}},
        "hm": {"b": 1 / 3},
    }
    table = method_table({"X": [result]})
    assert table["X"]["noun"]["a>b"]["within"] == 50.0 and table["X"]["noun"]["a>b"]["hm"] == pytest.approx(100 / 3)


@pytest.mark.numeric
def test_contrastive_loss_is_clip_loss_when_captions_are_distinct() -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=1)
    logits = 10.0 * img @ txt.T
    labels = torch.arange(6)
    reference = (
        torch.nn.functional.cross_entropy(logits, labels) + torch.nn.functional.cross_entropy(logits.T, labels)
    ) / 2
    assert_close_scaled(contrastive_loss(img, txt, labels, torch.tensor(10.0)), reference, k=64)
    # two images of caption 0: the text side counts both as positives
    target = torch.tensor([0, 0, 1])
    lg = 10.0 * img[:3] @ txt[:2].T  # (3, 2)
    col = lg.T.softmax(dim=1)  # (2, 3): each caption over the images
    t2i = -(torch.log(col[0, 0] + col[0, 1]) + torch.log(col[1, 2])) / 2
    expected = (torch.nn.functional.cross_entropy(lg, target) + t2i) / 2
    assert_close_scaled(contrastive_loss(img[:3], txt[:2], target, torch.tensor(10.0)), expected, k=64)


def test_render_pairs_is_deterministic_and_labelled() -> None:
    a, b = render_pairs(30, size=32, seed=3), render_pairs(30, size=32, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (30, 32, 32, 3) and a.images.dtype == np.uint8
    assert a.kinds.count("verb") == 12
    for caption, cls, kind in zip(a.captions, a.classes, a.kinds, strict=True):
        assert cls in (all_verbs() if kind == "verb" else all_nouns()) and cls in caption
    assert not np.array_equal(render_pairs(30, size=32, seed=4).images, a.images)


def test_demo_encoders_have_their_own_registry_entries(tmp_path: Path) -> None:
    from xmic.registry import ENCODERS, get_encoder_spec
    from xmic.weights import ModelNotFoundError, find_model_dir

    assert ENCODERS["clip-vit-b16"].model_id == "openai/clip-vit-base-patch16"  # real entries keep their ids
    for name in ("demo-clip", "demo-dinov2"):
        spec = get_encoder_spec(name)
        assert spec.model_id == f"xmic-demo/{name}"
        with pytest.raises(ModelNotFoundError, match="only `xmic demo` writes them"):
            find_model_dir(spec, tmp_path)


def test_standing_says_above_or_below_and_whether_intervals_are_apart() -> None:
    from xmic.demo.standing import gap
    from xmic.evaluate.tables import Summary

    x = Summary(40.0, None, 1, ci=(35.0, 45.0))
    assert gap(x, Summary(20.0, None, 1, ci=(15.0, 25.0))).text() == "above (+20.0, intervals apart)"
    assert gap(x, Summary(38.5, None, 1, ci=(33.0, 44.0))).text() == "above (+1.5, within the noise)"
    assert gap(x, Summary(52.0, None, 1, ci=(45.5, 58.0))).text() == "below (-12.0, intervals apart)"
    assert gap(x, Summary(40.0, None, 1)).text() == "level (+0.0)"  # no interval: nothing said about the noise
    assert gap(x, None) is None


def test_demo_table_says_where_xmic_stands(demo: Path) -> None:
    from xmic.demo.standing import AGAINST

    results = json.loads((demo / "results.json").read_text())
    standing = results["standing"]
    assert sorted(standing) == sorted(AGAINST)
    for other, cells in standing.items():
        assert len(cells) == 4, cells
        for label, cell in cells.items():
            target, direction = label.split(" ")[0][:-1], label.split(" ")[1]
            train, test = direction.split("→")
            key = next(k for k in results["methods"]["X-MIC"][target] if k.startswith(f"synth-{train.lower()}"))
            theirs = (
                results["reference_zero_shot_hand_crop"][target][key]
                if "hand crop" in other
                else results["methods"][other][target][key]
            )
            expected = results["methods"]["X-MIC"][target][key]["hm"] - theirs["hm"]
            assert abs(cell["diff"] - expected) < 0.011, (other, label, cell, expected)
    text = (demo / "table1.md").read_text()
    assert "Where X-MIC stands" in text
    assert text.index("Where X-MIC stands") < text.index("| row | column |")
