"""Transformer building blocks shared by X-MIC and the baselines (pre-LN, QuickGELU, no dropout)."""

from __future__ import annotations

import torch
from torch import nn


class QuickGELU(nn.Module):
    """CLIP's activation: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """One pre-LN transformer layer: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``.

    Args:
        dim: token width D.
        heads: attention heads.
        mlp_hidden: hidden width of the MLP (X-MIC uses D/4).
    """

    def __init__(self, dim: int, heads: int = 4, mlp_hidden: int | None = None) -> None:
        super().__init__()
        hidden = mlp_hidden if mlp_hidden is not None else dim // 4
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), QuickGELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, L, D) -> (B, L, D)."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TemporalEncoder(nn.Module):
    """Learned temporal embedding plus ``layers`` attention blocks over frame tokens, then the mean over time.

    Args:
        dim: token width D.
        num_frames: T, the length of the learned embedding.
        layers: number of blocks.
        heads: attention heads per block.
        mlp_hidden: hidden width of each block's MLP (None: D / 4).
    """

    def __init__(
        self, dim: int, num_frames: int = 16, layers: int = 2, heads: int = 4, mlp_hidden: int | None = None
    ) -> None:
        super().__init__()
        self.time_embed = nn.Parameter(torch.zeros(num_frames, dim))
        nn.init.normal_(self.time_embed, std=0.01)
        self.blocks = nn.Sequential(*[ResidualAttentionBlock(dim, heads, mlp_hidden) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, T, D) -> (B, D)."""
        return self.blocks(x + self.time_embed[: x.shape[1]]).mean(dim=1)
