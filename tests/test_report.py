"""``xmic report``: per-row predictions, per-class accuracy, confusion matrices and the Markdown around them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xmic.report import DatasetPredictions, render_report, summarize_run
from xmic.report.cli import report_cmd


def _run(demo: Path, method: str, group: str, target: str = "noun") -> Path:
    [run] = sorted(demo.glob(f"runs/{method}-{group}-{target}-s0-*"))
    return run


def test_confusion_and_per_class_on_known_predictions() -> None:
    p = DatasetPredictions(
        dataset="d",
        kind="within",
        classes=["a", "b", "c", "d"],
        rows=np.arange(6),
        segment_ids=[str(i) for i in range(6)],
        labels=np.array([0, 0, 1, 2, 2, 2]),
        preds=np.array([0, 1, 1, 2, 0, 2]),
        splits=("val",),
    )
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(p.confusion(), expected)
    per = {c.name: c for c in p.per_class()}
    assert (per["a"].n, per["a"].correct, per["a"].confused_with) == (2, 1, "b")
    assert (per["c"].n, per["c"].correct, per["c"].top1) == (3, 2, pytest.approx(2 / 3))
    assert per["b"].confused_with is None and per["d"].n == 0 and np.isnan(per["d"].top1)
    assert p.top1 == pytest.approx(4 / 6)


def test_per_class_accuracy_matches_a_count_from_the_predictions(demo: Path) -> None:
    summary = summarize_run(_run(demo, "xmic", "synth-epic"), demo / "cache")
    assert [p.kind for p in summary.predictions] == ["within", "cross"]
    assert summary.evaluation_source.startswith("eval-")  # reproduce's cached evaluation
    for p in summary.predictions:
        cm = p.confusion()
        assert cm.sum() == p.n == len(p.segment_ids) and np.trace(cm) == int((p.labels == p.preds).sum())
        for c in p.per_class():
            mine = [i for i in range(p.n) if p.labels[i] == c.index]
            assert c.n == len(mine)
            assert c.correct == sum(1 for i in mine if p.preds[i] == c.index)
        # the recomputed top-1 is the evaluator's
        assert p.top1 == pytest.approx(summary.evaluation["datasets"][p.dataset]["top1"], abs=1e-9)


def test_report_markdown_and_figures(demo: Path, tmp_path: Path) -> None:
    runs = [_run(demo, "xmic", "synth-epic"), _run(demo, "zero-shot", "synth-ego4d", "verb")]
    summaries = [summarize_run(r, demo / "cache") for r in runs]
    md_path, figures, notes = render_report(summaries, tmp_path / "out" / "report.md")
    text = md_path.read_text()
    for s in summaries:
        assert f"## {s.name}" in text and f"| method | {s.config['method']} |" in text
        for p in s.predictions:
            assert f"#### Per-class accuracy · {p.dataset} ({p.kind}" in text
            for c in p.per_class():
                assert f"| {c.name} | {c.n} | {c.correct} |" in text
    assert "No training (the method has no trainable parameters)." in text  # zero-shot
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert notes and not figures
        return
    assert len(figures) == 2 and all(f.is_file() and f.parent.name == "report_files" for f in figures)
    assert f"](report_files/{figures[0].name})" in text


def test_evaluation_is_computed_when_the_run_has_none(demo: Path, tmp_path: Path) -> None:
    src = _run(demo, "clip-adapter", "synth-epic", "verb")
    run = tmp_path / src.name
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("eval-*.json"))
    fresh, cached = summarize_run(run, demo / "cache"), summarize_run(src, demo / "cache")
    assert fresh.evaluation_source == f"computed from {demo / 'cache'}"
    for name, result in cached.evaluation["datasets"].items():
        assert fresh.evaluation["datasets"][name]["top1"] == pytest.approx(result["top1"])
    assert fresh.last_epoch["epoch"] == 2


def test_cli(demo: Path, tmp_path: Path) -> None:
    run = _run(demo, "coop", "synth-ego4d")
    out = tmp_path / "r.md"
    result = CliRunner().invoke(report_cmd, [str(run), "--out", str(out), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "(1 runs, 0 figures)" in result.output and out.is_file()
    result = CliRunner().invoke(report_cmd, [str(tmp_path), "--out", str(out)])
    assert result.exit_code != 0 and "is not an xmic run folder: config.json is missing" in result.output
