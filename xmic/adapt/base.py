"""The common interface of every method trained from the cache.

A method sees a batch of cached features and a class vocabulary and returns logits:

    logits = model(batch, classes)            # (B, K)

``batch`` (``FeatureBatch``) holds ``cls`` (B, T, D): the CLIP features of the classified view, and
``cond`` (B, T, V, Dc): the conditioning views (hand crop and/or full frame) of the second encoder.
``classes`` (``ClassText``) holds the frozen class-text embeddings (K, D) and the prompt names (for the
prompt-learning baselines that run the frozen text encoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class FeatureBatch:
    """Cached features of B videos, T frames each.

    Attributes:
        cls: (B, T, D) CLIP image embeddings of the classified view.
        cond: (B, T, V, Dc) conditioning views of the second encoder (V = 1 or 2).
    """

    cls: torch.Tensor
    cond: torch.Tensor


@dataclass
class ClassText:
    """A class vocabulary: frozen text embeddings ``emb`` (K, D) float32 and the prompt ``names`` (K)."""

    emb: torch.Tensor
    names: list[str]
    template: str = "{}"


#: exp(s) of OpenAI's CLIP (its ``logit_scale`` is ln 100): the classifiers' scale when a store records none.
CLIP_LOGIT_SCALE = 100.0


def encoder_logit_scale(spec: Any) -> float:
    """The logit scale a method classifies with in the space of encoder ``spec`` (an ``EncoderSpec``): the model's
    own ``exp(s)`` as extraction recorded it, or CLIP's 100 for a store that recorded none."""
    return float(getattr(spec, "logit_scale", 0.0) or CLIP_LOGIT_SCALE)


def l2norm(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=dim, eps=1e-6)


class VideoClassifier(nn.Module):
    """Base class: ``forward(batch, classes) -> (B, K)`` logits. ``trainable`` says whether to fit it."""

    trainable: bool = True

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def video_embedding(cls: torch.Tensor) -> torch.Tensor:
    """Zero-shot video embedding: ``l2norm(mean_T l2norm(cls))``; ``cls`` (B, T, D) -> (B, D).

    The baselines' feature (each frame normalised before the mean). X-MIC pools its classified view with
    :func:`xmic.adapt.xmic_model.pool_video` (by default the mean of the raw frames).
    """
    return l2norm(l2norm(cls).mean(dim=1))
