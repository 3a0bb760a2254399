"""Baselines trained from the cache: zero-shot CLIP, CLIP-Adapter, CLIP-Adapter*, and the factory for all of them.

The prompt-learning baselines (CoOp, Co-CoOp, A5) live in ``prompt_learning.py``. Vita-CLIP (``vita_clip.py``)
prompts inside the frozen visual encoder, so it trains on the store's frame cache (``xmic extract --frames-cache``,
:mod:`xmic.adapt.frame_bank`): its batches hold pixels, not features.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xmic.adapt.base import CLIP_LOGIT_SCALE, ClassText, FeatureBatch, VideoClassifier, l2norm, video_embedding
from xmic.adapt.blocks import TemporalEncoder
from xmic.adapt.prompt_learning import A5, CoCoOp, CoOp, check_frames

VITA_CLIP_MESSAGE = (
    "Vita-CLIP learns prompt tokens inside the CLIP vision transformer, so it trains on the frames themselves: it "
    "needs the store's frame cache (`xmic extract ... --frames-cache`) and the local CLIP weights (--model-dir)"
)


class ZeroShot(VideoClassifier):
    """Zero-shot CLIP: ``exp(s) * <l2norm(mean_T l2norm(cls)), l2norm(t_k)>`` with the CLIP model's own exp(s)
    (``logit_scale``, 100 for OpenAI's); nothing to train, an empty state."""

    trainable = False

    def __init__(self, logit_scale: float = CLIP_LOGIT_SCALE) -> None:
        super().__init__()
        self.register_buffer("logit_scale", torch.tensor(math.log(logit_scale)), persistent=False)

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D), ``classes.emb`` (K, D) -> logits (B, K)."""
        v = video_embedding(batch.cls.float())
        return self.logit_scale.exp().to(v) * v @ l2norm(classes.emb.to(v)).t()


class Adapter(nn.Sequential):
    """CLIP-Adapter's bottleneck: Linear(D, D/r, no bias) ReLU Linear(D/r, D, no bias) ReLU; (..., D) -> (..., D)."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        hidden = max(1, dim // reduction)
        super().__init__(nn.Linear(dim, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, dim, bias=False), nn.ReLU())


class CLIPAdapter(VideoClassifier):
    """CLIP-Adapter (Gao et al., 2021) on the zero-shot video embedding ``f = video_embedding(cls)``.

    ``x = ratio * A(f) + (1 - ratio) * f`` and ``logits = exp(s) * <l2norm(x), l2norm(t_k)>``. As in the original,
    only the adapter is trained: the logit scale stays at CLIP's (``logit_scale``, 100) unless ``learn_scale``.

    Args:
        dim: D.
        ratio: Residual ratio (0.2 in the paper for ImageNet-like data; 0 gives zero-shot CLIP).
        reduction: Bottleneck reduction of the adapter (4).
        learn_scale: Whether exp(s) is trained.
        logit_scale: exp(s) at the start, the CLIP model's own.
    """

    def __init__(
        self,
        dim: int,
        ratio: float = 0.2,
        reduction: int = 4,
        learn_scale: bool = False,
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__()
        self.ratio = ratio
        self.adapter = Adapter(dim, reduction)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)), requires_grad=learn_scale)

    def video_feature(self, cls: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> f (B, D), the input of the adapter."""
        return video_embedding(cls)

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D), ``classes.emb`` (K, D) -> logits (B, K)."""
        f = self.video_feature(batch.cls.float())
        x = self.ratio * self.adapter(f) + (1.0 - self.ratio) * f
        return self.logit_scale.exp() * l2norm(x) @ l2norm(classes.emb.to(x)).t()


class CLIPAdapterStar(CLIPAdapter):
    """CLIP-Adapter* (the paper's "CLIP-Adapter with temporal attention"): CLIP-Adapter on a temporal feature.

    ``f = l2norm(Temporal(l2norm(cls)))`` with ``Temporal`` = learned temporal embedding, ``temporal_layers``
    pre-LN attention blocks over the T frame tokens and the mean over T (the same temporal block and video
    feature as A5); then CLIP-Adapter's residual bottleneck on it, ``x = ratio * A(f) + (1 - ratio) * f``, and
    ``logits = exp(s) * <l2norm(x), l2norm(t_k)>``. The blocks are residual, so at initialisation ``f`` is
    close to the zero-shot frame mean and the model starts near CLIP-Adapter.
    """

    def __init__(
        self,
        dim: int,
        num_frames: int = 16,
        ratio: float = 0.2,
        reduction: int = 4,
        temporal_layers: int = 2,
        heads: int = 4,
        learn_scale: bool = False,
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__(dim, ratio, reduction, learn_scale, logit_scale)
        self.num_frames = num_frames
        self.temporal = TemporalEncoder(dim, num_frames, layers=temporal_layers, heads=heads)

    def video_feature(self, cls: torch.Tensor) -> torch.Tensor:
        check_frames(cls, self.num_frames)
        return l2norm(self.temporal(l2norm(cls)))


class VitaClipMethod(VideoClassifier):
    """Vita-CLIP (:class:`xmic.adapt.vita_clip.VitaClip`) behind the common interface: ``batch.cls`` holds the
    clips' normalised pixels ``(B, T, 3, S, S)`` (a :class:`~xmic.adapt.frame_bank.FrameBank` batch)."""

    def __init__(self, clip_dir: str | Path, num_frames: int, **options: Any) -> None:
        super().__init__()
        from xmic.adapt.vita_clip import VitaClip

        self.vita = VitaClip(clip_dir, num_frames, **options)

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        return self.vita(batch.cls, classes)


#: Methods that run the frozen CLIP text encoder (Vita-CLIP: both towers) and so need its weights.
TEXT_METHODS: dict[str, type[VideoClassifier]] = {"coop": CoOp, "cocoop": CoCoOp, "a5": A5, "vita-clip": VitaClipMethod}
#: Methods that read the store's frame cache instead of its features.
FRAME_METHODS = ("vita-clip",)
#: Every baseline name, in table order.
BASELINE_NAMES = ("zero-shot", "clip-adapter", "clip-adapter-star", "coop", "cocoop", "a5", "vita-clip")


def _build_zero_shot(dim: int, num_frames: int, **kw: Any) -> VideoClassifier:
    return ZeroShot(**kw)


def _build_adapter(dim: int, num_frames: int, **kw: Any) -> VideoClassifier:
    return CLIPAdapter(dim, **kw)


def _build_adapter_star(dim: int, num_frames: int, **kw: Any) -> VideoClassifier:
    return CLIPAdapterStar(dim, num_frames, **kw)


#: Baselines that need no text encoder: name -> builder(dim, num_frames, **options).
METHODS: dict[str, Callable[..., VideoClassifier]] = {
    "zero-shot": _build_zero_shot,
    "clip-adapter": _build_adapter,
    "clip-adapter-star": _build_adapter_star,
}


def build_baseline(
    name: str,
    *,
    dim: int,
    num_frames: int,
    text_model_dir: str | Path | None = None,
    logit_scale: float = CLIP_LOGIT_SCALE,
    **options: Any,
) -> VideoClassifier:
    """The baseline ``name`` for D = ``dim`` features and ``num_frames`` frames per clip.

    Args:
        name: One of ``BASELINE_NAMES``.
        dim: D, width of the cached CLIP features and text embeddings.
        num_frames: T, frames per clip (length of the learned temporal embeddings).
        text_model_dir: Local folder of the CLIP weights the store was extracted with; required by coop, cocoop, a5,
            vita-clip.
        logit_scale: exp(s) the classifier starts from, the CLIP model's own (Vita-CLIP reads it from the weights).
        **options: Extra constructor arguments of the method (e.g. ``ratio``, ``n_ctx``, ``class_position``).
    """
    if name in METHODS:
        return METHODS[name](dim, num_frames, logit_scale=logit_scale, **options)
    if name in TEXT_METHODS:
        if text_model_dir is None:
            raise ValueError(
                f"method {name!r} runs the frozen CLIP text encoder: give text_model_dir (--text-model-dir), the "
                "local folder of the same CLIP weights the store was extracted with"
            )
        from xmic.adapt.text_encoder import FrozenTextEncoder

        if name == "vita-clip":
            return VitaClipMethod(text_model_dir, num_frames, **options)
        text = FrozenTextEncoder(text_model_dir)
        if name == "a5":
            return A5(text, dim, num_frames, logit_scale=logit_scale, **options)
        return TEXT_METHODS[name](text, dim, logit_scale=logit_scale, **options)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINE_NAMES)}")
