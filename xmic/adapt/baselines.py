"""Baselines trained from the cache: zero-shot CLIP, CLIP-Adapter, CLIP-Adapter*, and the factory for all of them.

The prompt-learning baselines (CoOp, Co-CoOp, A5) live in ``prompt_learning.py``. Vita-CLIP (``vita_clip.py``)
prompts inside the frozen visual encoder, so it trains on the store's frame cache (``xmic extract --frames-cache``,
:mod:`xmic.adapt.frame_bank`): its batches hold pixels, not features.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xmic.adapt.base import CLIP_LOGIT_SCALE, ClassText, FeatureBatch, VideoClassifier, l2norm, video_embedding
from xmic.adapt.baseline_options import FROZEN_BRANCHES, POOLS, check_choice
from xmic.adapt.blocks import TemporalEncoder
from xmic.adapt.prompt_learning import A5, CoCoOp, CoOp, check_frames, pool_frames, temporal_input

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
    """CLIP-Adapter (Gao et al., 2021) on the pooled video feature ``f = pool(cls)``.

    ``x = (1 - ratio) * f + ratio * A(f)`` and ``logits = exp(s) * <l2norm(x), l2norm(t_k)>``. By default the X-MIC
    authors' form (the ``CLIP_ADAPTER`` + ``VID2VID`` switch of their ``trainers/xmic.py``, ``TEMPORAL.TYPE avg``):
    ``f`` the mean of the raw frames, 0.2 frozen + 0.8 adapter, the logit scale trained. Gao et al.'s form is
    ``ratio=0.2`` on the zero-shot feature (``pool="norm-mean"``) with exp(s) frozen.

    Args:
        dim: D.
        ratio: Weight of the adapter's output (0 gives zero-shot CLIP on ``f``).
        reduction: Bottleneck reduction of the adapter (4).
        learn_scale: Whether exp(s) is trained.
        logit_scale: exp(s) at the start, the CLIP model's own.
        pool: "mean" (raw frames) or "norm-mean" (:func:`~xmic.adapt.prompt_learning.pool_frames`).
    """

    def __init__(
        self,
        dim: int,
        ratio: float = 0.8,
        reduction: int = 4,
        learn_scale: bool = True,
        logit_scale: float = CLIP_LOGIT_SCALE,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        check_choice("pool", pool, POOLS)
        self.ratio, self.pool = ratio, pool
        self.adapter = Adapter(dim, reduction)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)), requires_grad=learn_scale)

    def branches(self, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) -> (frozen branch g, adapter input h), both (B, D); here both are ``pool(cls)``."""
        f = pool_frames(cls, self.pool)
        return f, f

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D), ``classes.emb`` (K, D) -> logits (B, K)."""
        g, h = self.branches(batch.cls.float())
        x = (1.0 - self.ratio) * g + self.ratio * self.adapter(h)
        return self.logit_scale.exp() * l2norm(x) @ l2norm(classes.emb.to(x)).t()


class CLIPAdapterStar(CLIPAdapter):
    """CLIP-Adapter* (the paper's "CLIP-Adapter with temporal attention"): CLIP-Adapter on a temporal feature.

    ``h = Temporal(u)`` with ``u`` the frames (raw for ``pool="mean"``, l2-normalised for "norm-mean") and
    ``Temporal`` = learned temporal embedding, ``temporal_layers`` pre-LN blocks of ``heads`` heads and MLP width
    D / ``bottle_neck`` over the T frame tokens, mean over T; ``x = (1 - ratio) * g + ratio * A(h)``,
    ``logits = exp(s) * <l2norm(x), l2norm(t_k)>``. The authors' form (their ``xmic.py`` CLIP-Adapter switch with
    ``TEMPORAL.TYPE attention``): ``g = mean_T(cls)`` (``frozen_branch="mean"``), raw frames, ratio 0.8, 8 heads,
    width 4D (their ``TFM_BOTTLE_NECK`` 0.25), exp(s) trained. ``frozen_branch="temporal"`` takes
    ``g = h = l2norm(Temporal(u))`` (CLIP-Adapter's residual on the temporal feature).
    """

    def __init__(
        self,
        dim: int,
        num_frames: int = 16,
        ratio: float = 0.8,
        reduction: int = 4,
        temporal_layers: int = 2,
        heads: int = 8,
        learn_scale: bool = True,
        logit_scale: float = CLIP_LOGIT_SCALE,
        pool: str = "mean",
        frozen_branch: str = "mean",
        bottle_neck: float = 0.25,
    ) -> None:
        super().__init__(dim, ratio, reduction, learn_scale, logit_scale, pool)
        check_choice("frozen_branch", frozen_branch, FROZEN_BRANCHES)
        self.num_frames, self.frozen_branch = num_frames, frozen_branch
        self.temporal = TemporalEncoder(
            dim, num_frames, layers=temporal_layers, heads=heads, mlp_hidden=int(dim / bottle_neck)
        )

    def branches(self, cls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_frames(cls, self.num_frames)
        h = self.temporal(temporal_input(cls, self.pool))
        if self.frozen_branch == "temporal":
            h = l2norm(h)
            return h, h
        return pool_frames(cls, self.pool), h


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
    options: Any = None,
    **kwargs: Any,
) -> VideoClassifier:
    """The baseline ``name`` for D = ``dim`` features and ``num_frames`` frames per clip.

    Args:
        name: One of ``BASELINE_NAMES``.
        dim: D, width of the cached CLIP features and text embeddings.
        num_frames: T, frames per clip (length of the learned temporal embeddings).
        text_model_dir: Local folder of the CLIP weights the store was extracted with; required by coop, cocoop, a5,
            vita-clip.
        logit_scale: exp(s) the classifier starts from, the CLIP model's own (Vita-CLIP's options set its own).
        options: The method's options (:mod:`xmic.adapt.baseline_options`); None = the authors' form.
        **kwargs: Further constructor arguments (e.g. Vita-CLIP's vision options); they win over ``options``.
    """
    from xmic.adapt.baseline_options import resolve_options

    if options is None:
        options = resolve_options(name, "authors") if name in BASELINE_NAMES else None
    kw = {**(dataclasses.asdict(options) if options is not None else {}), **kwargs}
    if name in METHODS:
        return METHODS[name](dim, num_frames, logit_scale=logit_scale, **kw)
    if name in TEXT_METHODS:
        if text_model_dir is None:
            raise ValueError(
                f"method {name!r} runs the frozen CLIP text encoder: give text_model_dir (--text-model-dir), the "
                "local folder of the same CLIP weights the store was extracted with"
            )
        from xmic.adapt.text_encoder import FrozenTextEncoder

        if name == "vita-clip":
            return VitaClipMethod(text_model_dir, num_frames, **kw)
        text = FrozenTextEncoder(text_model_dir)
        if name == "a5":
            return A5(text, dim, num_frames, logit_scale=logit_scale, **kw)
        return TEXT_METHODS[name](text, dim, logit_scale=logit_scale, **kw)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINE_NAMES)}")
