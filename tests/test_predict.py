"""``xmic predict``: one clip through stage one and a trained run; checked against the store-based path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import shared_path
from tolerance import assert_close_scaled

from xmic.predict import predict_clip, predict_cmd

LINE = re.compile(r"^\s*(\d+)\. (.+?)\s+([0-9.]+)$")


def _run(demo: Path, method: str, group: str, target: str = "noun") -> Path:
    [run] = sorted(demo.glob(f"runs/{method}-{group}-{target}-s0-*"))
    return run


def _ranked(output: str) -> list[tuple[str, float]]:
    return [(m.group(2), float(m.group(3))) for m in map(LINE.match, output.splitlines()) if m]


def test_prediction_equals_the_store_path(demo: Path) -> None:
    """A clip of the store predicted from its video gives the evaluator's probabilities for that row."""
    _check_against_store(demo, _run(demo, "xmic", "synth-epic"))


def test_lavila_prediction_equals_the_store_path(demo: Path, tmp_path: Path) -> None:
    """The same with LaViLa as the classified and conditioning encoder: predict groups the clip's slots into
    4-frame clips exactly as extraction did."""
    from xmic.adapt.config import TrainConfig
    from xmic.adapt.trainer import train

    cfg = TrainConfig(dataset="synth-epic", target="noun", encoder="demo-lavila", second_encoder="demo-lavila")
    cfg.epochs, cfg.batch_size, cfg.train_split = 1, 16, "train"
    train(cfg, demo / "cache", tmp_path / "run", progress=False)
    _check_against_store(demo, tmp_path / "run")


def _check_against_store(demo: Path, run: Path) -> None:
    from xmic.adapt.data import load_bank
    from xmic.adapt.run_io import load_run
    from xmic.adapt.trainer import class_text
    from xmic.cache.reader import StoreReader
    from xmic.evaluate.evaluator import predict_logits

    reader = StoreReader(demo / "cache", "synth-ego4d")
    row = int(np.flatnonzero(reader.segments["split"] == "val")[0])
    seg = {k: v[row] for k, v in reader.segments.items()}
    video = demo / "data" / "ego4d" / "v2" / "clips" / f"{seg['video_id']}.mp4"
    pred = predict_clip(
        video,
        run,
        vocab="synth-ego4d",
        top=3,
        start=seg["start_frame"] / seg["fps"],
        end=(seg["stop_frame"] + 1) / seg["fps"],
        hands="given",
        hand_opts={"hand_boxes": str(demo / "data" / "ego4d" / "hand_boxes")},
    )
    np.testing.assert_array_equal(pred.frame_index, reader.frame_index[row])
    assert_close_scaled(pred.boxes, reader.hand_box[row], k=16, equal_nan=True)
    model, cfg, _meta = load_run(run)
    bank = load_bank(
        reader, target="noun", encoder=cfg.encoder, second_encoder=cfg.second_encoder, views=cfg.views,
        classified_view=cfg.classified_view, splits=None,
    )  # fmt: skip
    bank.rows = torch.tensor([row])
    classes = class_text(reader, cfg.encoder, "noun", cfg.template, "cpu")
    expected = torch.softmax(predict_logits(model, bank, classes, frames=cfg.frames)[0].double(), 0).numpy()
    assert pred.classes == reader.vocab["noun"]
    assert_close_scaled(pred.probs, expected, k=4, dtype=torch.float16)  # the store holds float16 features
    assert [n for n, _ in pred.top] == [reader.vocab["noun"][i] for i in np.argsort(-expected, kind="stable")[:3]]


def test_file_vocabulary_matches_the_stored_text(demo: Path) -> None:
    """An EPIC class CSV embedded with the text tower gives the run's own vocabulary and the same probabilities."""
    run = _run(demo, "coop", "synth-epic")
    video = next((demo / "data" / "epic").glob("P*/videos/*.MP4"))
    stored = predict_clip(video, run, top=10, end=1.0, hands="none")
    csv = demo / "data" / "epic" / "annotations" / "EPIC_100_noun_classes.csv"
    from_file = predict_clip(video, run, vocab=str(csv), top=10, end=1.0, hands="none")
    assert from_file.classes == stored.classes and from_file.vocab_source.startswith(f"class file {csv} (epic nouns")
    assert stored.vocab_source.startswith("the run's own classes, store group synth-epic of ")
    assert_close_scaled(from_file.probs, stored.probs, k=256, dtype=torch.float32)
    assert from_file.probs.sum() == pytest.approx(1.0) and np.isnan(stored.boxes).all()  # --hands none


def test_cli_prints_a_ranking(demo: Path) -> None:
    run = _run(demo, "xmic", "synth-epic", "verb")
    video = next((demo / "data" / "ego4d" / "v2" / "clips").glob("*.mp4"))
    args = [str(video), "--run", str(run), "--top", "4", "--start", "0.2", "--hands", "none"]
    result = CliRunner().invoke(predict_cmd, args)
    assert result.exit_code == 0, result.output
    ranked = _ranked(result.output)
    vocab = json.loads((run / "run.json").read_text())["vocab"]
    assert len(ranked) == 4 and all(name in vocab for name, _ in ranked)
    scores = [p for _, p in ranked]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-6
    assert re.search(r"\[0\.20-[0-9.]+ s, frames 6-", result.output)  # 0.2 s at 30 fps


def test_errors_name_the_problem(demo: Path, tmp_path: Path) -> None:
    from xmic.demo.tiny_models import make_tiny_clip

    run = _run(demo, "xmic", "synth-epic")
    video = next((demo / "data" / "ego4d" / "v2" / "clips").glob("*.mp4"))
    result = CliRunner().invoke(predict_cmd, [str(video), "--run", str(run), "--vocab", "kitchen-z", "--hands", "none"])
    assert result.exit_code != 0 and "'kitchen-z' is neither a file nor a dataset group" in result.output
    result = CliRunner().invoke(predict_cmd, [str(video), "--run", str(run), "--start", "99", "--hands", "none"])
    assert result.exit_code != 0 and "empty clip" in result.output and str(video) in result.output
    other = make_tiny_clip(tmp_path / "clip-vit-b16", dim=32)
    with pytest.raises(ValueError, match="not the one the run was trained on"):
        predict_clip(video, run, model_dir=other, hands="none")


def test_real_ego4d_clip(demo: Path) -> None:
    """The real Ego4D sample through a demo-trained run: mechanics only (a ranked list of the demo's classes)."""
    clips = sorted(shared_path("realdata", "media").glob("*.mp4"))
    if not clips:
        pytest.skip(f"no .mp4 in {shared_path('realdata', 'media')}")
    run = _run(demo, "xmic", "synth-ego4d")
    args = [str(clips[0]), "--run", str(run), "--top", "5", "--end", "2", "--hands", "none"]
    result = CliRunner().invoke(predict_cmd, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: this run's encoders (demo-clip") and "means nothing" in result.stderr
    ranked = _ranked(result.output)
    vocab = json.loads((run / "run.json").read_text())["vocab"]
    assert len(ranked) == 5 and {n for n, _ in ranked} <= set(vocab)
    scores = [p for _, p in ranked]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-6


def _no_hand_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from xmic.extract.hands.factory import HAND_MODEL_ENV

    monkeypatch.delenv(HAND_MODEL_ENV, raising=False)
    monkeypatch.delenv("XMIC_MODEL_DIR", raising=False)


def test_no_hand_source_stops_and_says_how_to_choose(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --hands, no flag implying one, no hand model found: one line saying how to choose, nothing classified."""
    _no_hand_model(monkeypatch)
    run = _run(demo, "xmic", "synth-epic")
    video = next((demo / "data" / "ego4d" / "v2" / "clips").glob("*.mp4"))
    result = CliRunner().invoke(predict_cmd, [str(video), "--run", str(run)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: no hand-box source chosen: give --hands mediapipe")
    assert "--hands none" in result.output and "the run's store was extracted with --hands given" in result.output
    # a flag implies its provider, as for xmic extract: the demo's given boxes
    boxes = demo / "data" / "ego4d" / "hand_boxes"
    result = CliRunner().invoke(predict_cmd, [str(video), "--run", str(run), "--hand-boxes", str(boxes), "--end", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r" [1-9][0-9]*/16 slots with a hand box, --hands given\] · run", result.output), result.output


def test_vocab_is_a_store_group_only_by_its_exact_name(demo: Path) -> None:
    run = _run(demo, "xmic", "synth-epic")
    video = next((demo / "data" / "ego4d" / "v2" / "clips").glob("*.mp4"))
    base = [str(video), "--run", str(run), "--hands", "none", "--end", "1"]
    result = CliRunner().invoke(predict_cmd, [*base, "--vocab", "ego4d"])
    assert result.exit_code == 1, result.output
    assert "--vocab 'ego4d' is neither a file nor a dataset group of the run's store" in result.output
    assert "a store group is named exactly: --vocab synth-ego4d" in result.output
    result = CliRunner().invoke(predict_cmd, [*base, "--vocab", "synth-ego4d"])
    assert result.exit_code == 0, result.output
    assert f"vocabulary store group synth-ego4d of {demo / 'cache'} (nouns, stored text of demo-clip" in result.output
    result = CliRunner().invoke(predict_cmd, [*base, "--vocab", "classes/EPIC_100_noun_classes.csv"])
    assert result.exit_code == 1 and "--vocab classes/EPIC_100_noun_classes.csv: no such class file" in result.output


def test_demo_encoder_warns_on_a_video_outside_a_generated_benchmark(demo: Path, tmp_path: Path) -> None:
    """The demo's own clips answer quietly; the same clip copied elsewhere (as a real video would be) warns."""
    import shutil

    run = _run(demo, "xmic", "synth-epic")
    video = next((demo / "data" / "ego4d" / "v2" / "clips").glob("*.mp4"))
    outside = tmp_path / "my_video.mp4"
    shutil.copy(video, outside)
    quiet = CliRunner().invoke(predict_cmd, [str(video), "--run", str(run), "--hands", "none", "--end", "1"])
    assert quiet.exit_code == 0 and "warning" not in quiet.output, quiet.output
    warned = CliRunner().invoke(predict_cmd, [str(outside), "--run", str(run), "--hands", "none", "--end", "1"])
    assert warned.exit_code == 0, warned.output
    assert warned.stderr.startswith("warning: this run's encoders (demo-clip") and "tiny random" in warned.stderr
    assert "its ranking means nothing" in warned.stderr and "warning" not in warned.stdout
    assert _ranked(warned.stdout) == _ranked(quiet.stdout)  # the same clip: the same answer, with the warning
