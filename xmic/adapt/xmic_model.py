"""The X-MIC adapter (Kukleva et al., CVPR 2024) as DESIGN.md specifies it.

Per video: conditioning views (B, T, V, Dc) -> ego-spatial block -> temporal block -> MLP gives the
X-MIC vector ``a_v`` (B, D); the per-video classifier is ``l2norm(t_k + alpha * a_v)`` for every frozen
class-text embedding ``t_k`` (K, D), and it scores the pooled classified-view feature ``v`` (B, D).

Normalisation flags keep the paper's meanings (Table 6): ``n1`` normalises the conditioning features,
``n2`` the X-MIC vector ``a_v`` and ``n3`` the class-text embeddings ``t_k``, the latter two before the
sum; the sum itself is always normalised (a cosine classifier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from xmic.adapt.base import ClassText, FeatureBatch, VideoClassifier, l2norm, video_embedding
from xmic.adapt.blocks import ResidualAttentionBlock
from xmic.adapt.config import VIDEO_POOLS


@dataclass
class XMICConfig:
    """Options of the adapter; each non-default value is an ablation of the paper.

    Attributes:
        dim: D, width of the CLIP joint space (classified view and text).
        cond_dim: Dc, width of the conditioning encoder (= D for CLIP, 768 for DINOv2-B/14).
        num_frames: T frames the temporal embedding covers.
        views: conditioning views, "F+H", "F" or "H" (Table 4).
        n1: l2-normalise the conditioning features (second encoder) before the adapter (Table 6; on by default).
        n2: l2-normalise the X-MIC vector a_v before the sum with the text (Table 6).
        n3: l2-normalise the frozen class-text embeddings t_k before the sum (Table 6).
            Whatever the flags, the sum t_k + alpha * a_v is l2-normalised.
        alpha: weight of a_v in the sum.
        video_pool: the classified video feature v (B, D) from its frames (B, T, D): "mean" =
            l2norm(mean over T of the raw frame features), the authors' choice; "norm-mean" =
            l2norm(mean over T of l2norm(frame)), the zero-shot baseline's feature.
        spatial_layers / temporal_layers / heads: transformer sizes.
        mlp_hidden: bottleneck width of the MLP that gives a_v; None = Dc / 16 (32 at Dc = 512).
        logit_scale_init: initial exp(s), the CLIP model's own (100 for OpenAI's; the trainer passes the store's).
    """

    dim: int = 512
    cond_dim: int = 512
    num_frames: int = 16
    views: str = "F+H"
    n1: bool = True
    n2: bool = False
    n3: bool = False
    alpha: float = 2.0
    video_pool: str = "mean"
    spatial_layers: int = 1
    temporal_layers: int = 2
    heads: int = 4
    mlp_hidden: int | None = None
    logit_scale_init: float = 100.0

    def __post_init__(self) -> None:
        if self.video_pool not in VIDEO_POOLS:
            raise ValueError(f"video_pool must be one of {', '.join(VIDEO_POOLS)}, got {self.video_pool!r}")


def pool_video(cls: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """The classified video feature: ``cls`` (B, T, D) per-frame CLIP features -> (B, D), unit length.

    ``"mean"``: ``l2norm(mean_T cls)``, frames averaged unnormalised; ``"norm-mean"``: ``l2norm(mean_T
    l2norm(cls))``, each frame normalised first (:func:`~xmic.adapt.base.video_embedding`).
    """
    if how == "mean":
        return l2norm(cls.mean(dim=1))
    if how == "norm-mean":
        return video_embedding(cls)
    raise ValueError(f"video_pool must be one of {', '.join(VIDEO_POOLS)}, got {how!r}")


class XMIC(VideoClassifier):
    """X-MIC: a video-conditioned shift of every frozen class-text embedding."""

    def __init__(self, config: XMICConfig) -> None:
        super().__init__()
        self.config = config
        dc, d = config.cond_dim, config.dim
        self.spatial = nn.Sequential(*[ResidualAttentionBlock(dc, config.heads) for _ in range(config.spatial_layers)])
        self.time_embed = nn.Parameter(torch.empty(config.num_frames, dc))
        nn.init.normal_(self.time_embed, std=0.01)
        self.temporal = nn.Sequential(
            *[ResidualAttentionBlock(dc, config.heads) for _ in range(config.temporal_layers)]
        )
        hidden = config.mlp_hidden or dc // 16
        self.mlp = nn.Sequential(nn.Linear(dc, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.ReLU())
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))

    def instance_vector(self, cond: torch.Tensor) -> torch.Tensor:
        """The X-MIC vector: ``cond`` (B, T, V, Dc) -> ``a_v`` (B, D); ``cond`` is normalised first when ``n1``."""
        b, t, v, dc = cond.shape
        u = l2norm(cond) if self.config.n1 else cond
        u = self.spatial(u.reshape(b * t, v, dc)).mean(dim=1).reshape(b, t, dc)
        u = self.temporal(u + self.time_embed[:t]).mean(dim=1)
        return self.mlp(u)

    def adapted_text(self, a_v: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Per-video classifier ``l2norm(t_k + alpha * a_v)``: ``a_v`` (B, D), ``text`` (K, D) -> (B, K, D).

        ``a_v`` is normalised first when ``n2`` is set, ``text`` when ``n3`` is set.
        """
        a = l2norm(a_v) if self.config.n2 else a_v
        t = l2norm(text) if self.config.n3 else text
        return l2norm(t.unsqueeze(0) + self.config.alpha * a.unsqueeze(1))

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """Logits (B, K) = exp(s) * <v, l2norm(t_k + alpha * a_v)>.

        ``batch.cls`` (B, T, D) gives ``v`` (B, D) by ``config.video_pool`` (:func:`pool_video`),
        ``batch.cond`` (B, T, V, Dc) gives ``a_v`` (B, D), ``classes.emb`` (K, D) the ``t_k``.
        With ``a_v = 0`` this is a cosine zero-shot classifier on ``v`` (the zero-shot baseline exactly when
        ``video_pool`` is "norm-mean").
        """
        a_v = self.instance_vector(batch.cond)
        weights = self.adapted_text(a_v, classes.emb.to(a_v.dtype))
        v = pool_video(batch.cls, self.config.video_pool).to(weights.dtype)
        return self.logit_scale.exp() * torch.einsum("bd,bkd->bk", v, weights)
