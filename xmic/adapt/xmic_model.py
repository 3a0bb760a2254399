"""The X-MIC adapter (Kukleva et al., CVPR 2024) as DESIGN.md specifies it.

Per video: conditioning views -> ego-spatial block -> temporal block -> MLP gives ``a_v`` (B, D); the
per-video classifier is ``l2norm(t_k + alpha * a_v)`` for every frozen class-text embedding ``t_k``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from xmic.adapt.base import ClassText, FeatureBatch, VideoClassifier, l2norm, video_embedding
from xmic.adapt.blocks import ResidualAttentionBlock


@dataclass
class XMICConfig:
    """Options of the adapter; each non-default value is an ablation of the paper.

    Attributes:
        dim: D, width of the CLIP joint space (classified view and text).
        cond_dim: Dc, width of the conditioning encoder (= D for CLIP, 768 for DINOv2-B/14).
        num_frames: T frames the temporal embedding covers.
        views: conditioning views, "F+H", "F" or "H" (Table 4).
        n1: l2-normalise the conditioning features before the adapter (Table 6).
        n2: l2-normalise the class-text embeddings before adding a_v (Table 6; off in the authors' setting).
        n3: l2-normalise the adapted classifier t_k + alpha * a_v (Table 6).
        alpha: weight of a_v in the sum.
        spatial_layers / temporal_layers / heads: transformer sizes.
        mlp_hidden: bottleneck width of the MLP that gives a_v; None = Dc / 16 (32 at Dc = 512).
        logit_scale_init: initial exp(s); CLIP's 100.
    """

    dim: int = 512
    cond_dim: int = 512
    num_frames: int = 16
    views: str = "F+H"
    n1: bool = True
    n2: bool = False
    n3: bool = True
    alpha: float = 2.0
    spatial_layers: int = 1
    temporal_layers: int = 2
    heads: int = 4
    mlp_hidden: int | None = None
    logit_scale_init: float = 100.0


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
        """``cond`` (B, T, V, Dc) -> ``a_v`` (B, D)."""
        b, t, v, dc = cond.shape
        u = l2norm(cond) if self.config.n1 else cond
        u = self.spatial(u.reshape(b * t, v, dc)).mean(dim=1).reshape(b, t, dc)
        u = self.temporal(u + self.time_embed[:t]).mean(dim=1)
        return self.mlp(u)

    def adapted_text(self, a_v: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Per-video classifier: ``a_v`` (B, D), ``text`` (K, D) -> (B, K, D)."""
        t = l2norm(text) if self.config.n2 else text
        w = t.unsqueeze(0) + self.config.alpha * a_v.unsqueeze(1)
        return l2norm(w) if self.config.n3 else w

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """Logits (B, K) = exp(s) * <v, adapted text>, v = l2norm(mean_T l2norm(cls)).

        Frames are l2-normalised before the temporal mean (as the zero-shot baseline does), so that
        a_v = 0 reproduces the zero-shot ranking exactly.
        """
        a_v = self.instance_vector(batch.cond)
        weights = self.adapted_text(a_v, classes.emb.to(a_v.dtype))
        v = video_embedding(batch.cls).to(weights.dtype)
        return self.logit_scale.exp() * torch.einsum("bd,bkd->bk", v, weights)
