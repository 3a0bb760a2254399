"""Vita-CLIP trained and evaluated from the store's frame cache, through the same trainer, evaluator and predict as
every other method (on the session's quick demo store, which holds the tiny CLIP's frame cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tolerance import assert_close_scaled


@pytest.fixture(scope="module")
def vita_run(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xmic.adapt.config import TrainConfig
    from xmic.adapt.trainer import train

    out = tmp_path_factory.mktemp("vita") / "run"
    cfg = TrainConfig(dataset="synth-epic", target="noun", method="vita-clip", encoder="demo-clip")
    cfg.epochs, cfg.batch_size = 1, 16
    train(cfg, demo / "cache", out, progress=False)
    return out


def test_frame_bank_batches_are_the_normalised_frame_cache(demo: Path) -> None:
    from xmic.adapt.frame_bank import load_frame_bank
    from xmic.cache.reader import StoreReader
    from xmic.demo.store import DEMO_NUM_FRAMES

    reader = StoreReader(demo / "cache", "synth-epic")
    bank = load_frame_bank(reader, target="noun", encoder="demo-clip", splits=("train",), device="cpu")
    assert bank.frames is not None and bank.store_frames == DEMO_NUM_FRAMES  # small: held in memory
    rows = bank.rows[:3]
    slots = torch.randint(DEMO_NUM_FRAMES, (3, 16), generator=torch.Generator().manual_seed(0))  # any slots, any order
    batch = bank.batch(rows, slots)
    raw = reader.load_frames("demo-clip", rows.numpy(), slots.numpy()).float() / 255  # (3, 16, 3, S, S)
    spec = reader.spec.encoders["demo-clip"]
    mean, std = torch.tensor(spec.mean)[:, None, None], torch.tensor(spec.std)[:, None, None]
    assert_close_scaled(batch.cls, (raw - mean) / std, k=16)
    assert batch.cond.shape == (3, 16, 0, 0)
    streamed = type(bank)(**{**bank.__dict__, "frames": None})  # the path of a cache too big for memory
    assert_close_scaled(streamed.batch(rows, slots).cls, batch.cls, k=16)


def test_vita_clip_trains_only_its_prompts_and_evaluates(demo: Path, vita_run: Path) -> None:
    import json

    from safetensors.torch import load_file

    from xmic.evaluate.evaluator import evaluate_run

    state = load_file(str(vita_run / "model.safetensors"))
    assert state and all(k.startswith("vita.") for k in state)
    assert not any("encoder.layers" in k or "text_model" in k for k in state)  # no frozen CLIP weights saved
    result = evaluate_run(vita_run, demo / "cache")
    text = json.dumps(result)
    assert "synth-epic" in text and "synth-ego4d" in text and '"method": "vita-clip"' in text


def test_vita_clip_prediction_equals_the_store_path(demo: Path, vita_run: Path) -> None:
    """A clip predicted from its video (frames cropped on the fly) matches the evaluator on the frame cache within
    the cache's JPEG loss."""
    from xmic.adapt.frame_bank import load_frame_bank
    from xmic.adapt.run_io import load_run
    from xmic.adapt.trainer import class_text
    from xmic.cache.reader import StoreReader
    from xmic.evaluate.evaluator import predict_logits
    from xmic.predict import predict_clip

    reader = StoreReader(demo / "cache", "synth-ego4d")
    row = int(np.flatnonzero(reader.segments["split"] == "val")[0])
    seg = {k: v[row] for k, v in reader.segments.items()}
    video = demo / "data" / "ego4d" / "v2" / "clips" / f"{seg['video_id']}.mp4"
    pred = predict_clip(
        video, vita_run, vocab="synth-ego4d", top=3, start=seg["start_frame"] / seg["fps"],
        end=(seg["stop_frame"] + 1) / seg["fps"], hands="none",
    )  # fmt: skip
    model, cfg, _meta = load_run(vita_run)
    bank = load_frame_bank(reader, target="noun", encoder="demo-clip", splits=None, device="cpu")
    bank.rows = torch.tensor([row])
    classes = class_text(reader, cfg.encoder, "noun", cfg.template, "cpu")
    expected = torch.softmax(predict_logits(model, bank, classes, frames=cfg.frames)[0].double(), 0).numpy()
    assert pred.classes == reader.vocab["noun"]
    np.testing.assert_allclose(pred.probs, expected, atol=2e-2)
