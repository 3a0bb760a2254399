"""Every method classifies with the CLIP model's own logit scale, as extraction recorded it in the store.

The demo's tiny CLIP is pretrained at a fixed scale of 20 (``xmic.demo.pretrain``) and saved with it; the store,
the runs and the models must carry that 20, not OpenAI CLIP's 100. A store written before the field existed
falls back to 100.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tolerance import assert_close_scaled

from xmic.adapt.base import CLIP_LOGIT_SCALE, encoder_logit_scale, l2norm
from xmic.cache.schema import EncoderSpec

DEMO_SCALE = 20.0  # PretrainConfig.logit_scale, what the demo's tiny CLIP ends at


def _runs(demo: Path) -> list[Path]:
    return sorted(p.parent for p in (demo / "runs").glob("*/config.json"))


def test_the_demo_store_records_the_tiny_clips_scale(demo: Path) -> None:
    from xmic.cache.reader import StoreReader

    spec = StoreReader(demo / "cache", "synth-epic").spec.encoders["demo-clip"]
    assert spec.logit_scale == pytest.approx(DEMO_SCALE, rel=1e-5)
    assert encoder_logit_scale(spec) == pytest.approx(DEMO_SCALE, rel=1e-5)


def test_old_specs_without_a_scale_fall_back_to_clips_100() -> None:
    spec = EncoderSpec(
        "clip-vit-b16", "clip", "openai/clip-vit-base-patch16", 512, 224, 224, "bicubic", (0,) * 3, (1,) * 3
    )
    old = {k: v for k, v in spec.to_dict().items() if k != "logit_scale"}  # as a store written before the field
    assert EncoderSpec.from_dict(old).logit_scale == 0.0
    assert encoder_logit_scale(EncoderSpec.from_dict(old)) == CLIP_LOGIT_SCALE == 100.0
    assert EncoderSpec.from_dict(old).identity() == spec.identity()


def test_every_demo_run_starts_from_the_stores_scale(demo: Path) -> None:
    from xmic.adapt.run_io import load_run

    runs = _runs(demo)
    methods = set()
    for run in runs:
        meta = json.loads((run / "run.json").read_text())
        assert meta["logit_scale"] == pytest.approx(DEMO_SCALE, rel=1e-5), run
        model, cfg, _ = load_run(run)
        methods.add(cfg.method)
        scale = getattr(model, "logit_scale", None)
        if cfg.method == "zero-shot" or not scale.requires_grad:  # scale not trained: still the store's
            assert float(scale.detach().exp()) == pytest.approx(DEMO_SCALE, rel=1e-5), run
        elif scale is not None:  # trained from the store's scale: near it after a quick run, far from 100
            assert abs(math.log(float(scale.detach().exp())) - math.log(DEMO_SCALE)) < 0.5, run
    assert {"zero-shot", "xmic"} <= methods


def test_zero_shot_logits_are_the_scaled_cosines(demo: Path) -> None:
    from xmic.adapt.base import ClassText, FeatureBatch
    from xmic.adapt.run_io import load_run
    from xmic.cache.reader import StoreReader

    run = next(r for r in _runs(demo) if json.loads((r / "config.json").read_text())["method"] == "zero-shot")
    model, cfg, meta = load_run(run)
    reader = StoreReader(demo / "cache", meta["train_dataset"])
    feats = reader.load_features(cfg.encoder, cfg.classified_view)[:4, :: reader.spec.num_frames // cfg.frames]
    text = reader.load_text(cfg.encoder, cfg.target, cfg.template).float()
    cls = feats.float()  # (4, T, D)
    video = torch.stack([l2norm(sum(l2norm(f) for f in clip) / len(clip)) for clip in cls])  # frame by frame
    want = DEMO_SCALE * video @ l2norm(text).t()
    got = model(FeatureBatch(cls, cls[:, :, None]), ClassText(text, [str(i) for i in range(len(text))]))
    assert_close_scaled(got, want, k=64)


def test_a_run_from_before_the_field_classifies_at_100(demo: Path, tmp_path: Path) -> None:
    import shutil

    from xmic.adapt.run_io import load_run

    run = next(r for r in _runs(demo) if json.loads((r / "config.json").read_text())["method"] == "zero-shot")
    old = tmp_path / run.name
    shutil.copytree(run, old)
    meta = json.loads((old / "run.json").read_text())
    del meta["logit_scale"]
    (old / "run.json").write_text(json.dumps(meta))
    model, _, _ = load_run(old)
    assert float(model.logit_scale.exp()) == pytest.approx(CLIP_LOGIT_SCALE)
    assert float(load_run(run)[0].logit_scale.exp()) == pytest.approx(DEMO_SCALE, rel=1e-5)
