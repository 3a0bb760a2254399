"""Build any method from a TrainConfig and the widths of the store's encoders."""

from __future__ import annotations

from xmic.adapt.base import CLIP_LOGIT_SCALE, VideoClassifier
from xmic.adapt.config import TrainConfig
from xmic.adapt.data import cond_views
from xmic.adapt.xmic_model import XMIC, XMICConfig


def build_model(cfg: TrainConfig, *, dim: int, cond_dim: int, logit_scale: float = CLIP_LOGIT_SCALE) -> VideoClassifier:
    """The method ``cfg.method`` for a D-wide CLIP space and a Dc-wide conditioning encoder; ``logit_scale`` is the
    exp(s) its classifier starts from, the CLIP model's own (:func:`xmic.adapt.base.encoder_logit_scale`)."""
    if cfg.method == "xmic":
        fixed = {
            "dim": dim,
            "cond_dim": cond_dim,
            "num_frames": cfg.frames,
            "views": cfg.views,
            "n1": cfg.n1,
            "n2": cfg.n2,
            "n3": cfg.n3,
            "video_pool": cfg.video_pool,
        }
        options = {"logit_scale_init": logit_scale, **cfg.extra.get("xmic", {})}
        clash = sorted(set(options) & set(fixed))
        if clash:
            raise ValueError(f"extra['xmic'] sets {clash}, which the run's config holds as fields: set those instead")
        return XMIC(XMICConfig(**fixed, **options))
    from xmic.adapt.baselines import build_baseline

    return build_baseline(
        cfg.method,
        dim=dim,
        num_frames=cfg.frames,
        text_model_dir=cfg.text_model_dir,
        logit_scale=logit_scale,
        options=cfg.baseline_options(),
    )


def num_cond_views(cfg: TrainConfig) -> int:
    return len(cond_views(cfg.views))
