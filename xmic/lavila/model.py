"""LaViLa's video-text dual encoder: a TimeSformer video tower and a CLIP text tower in one joint space.

Zhao et al., "Learning Video Representations from Large Language Models" (CVPR 2023), models
``CLIP_OPENAI_TIMESFORMER_BASE`` / ``_LARGE``. The video tower is the "frozen-in-time" space-time transformer
initialised from OpenAI's CLIP ViT: per frame patch tokens plus one clip-level CLS token, and in every block a time
attention (each patch against the same spatial position in every frame) followed by a space attention (each patch
against the patches of its own frame). The CLS token attends to all tokens of the clip in both steps, and each patch
also attends to the CLS token. The space step reads the time step's output but its residual skips it:
``x + space(norm1(x + time(norm3(x))))``.

Every parameter is named like the key of the released checkpoints once DistributedDataParallel's ``module.`` is
stripped, so a released state dict loads strictly (see :mod:`xmic.lavila.checkpoint`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from xmic.attention import merge_heads, split_heads

HEAD_DIM = 64
BLOCK_NORM_EPS = 1e-6
CLIP_NORM_EPS = 1e-5
MLP_RATIO = 4
TEMPERATURE_INIT = 0.07

Axis = Literal["time", "space"]


@dataclass(frozen=True)
class LavilaConfig:
    """Sizes of a LaViLa dual encoder.

    Attributes:
        image_size: Square input crop in pixels (a multiple of ``patch_size``).
        patch_size: Side of the square patches cut from each frame.
        vision_width, vision_layers, vision_heads: Video transformer width, depth and attention heads.
        num_frames: Frames per clip that ``visual.temporal_embed`` is sized for (clips may have fewer).
        embed_dim: Width of the joint video-text space (``image_projection`` / ``text_projection`` columns).
        context_length, vocab_size: Text positions and BPE vocabulary size.
        text_width, text_heads, text_layers: Text transformer width, attention heads and depth.
        ln_pre: Whether the video tower normalises tokens before the first block (then the patch projection has
            no bias).
    """

    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    num_frames: int
    embed_dim: int
    context_length: int
    vocab_size: int
    text_width: int
    text_heads: int
    text_layers: int
    ln_pre: bool

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.vision_width % self.vision_heads or self.text_width % self.text_heads:
            raise ValueError(
                f"widths must split evenly into heads: vision {self.vision_width}/{self.vision_heads}, "
                f"text {self.text_width}/{self.text_heads}"
            )
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {self.num_frames}")

    @property
    def grid_size(self) -> int:
        """Patches along one side of a frame."""
        return self.image_size // self.patch_size

    @property
    def patches_per_frame(self) -> int:
        """Patch tokens per frame, P = grid_size ** 2."""
        return self.grid_size**2


LAVILA_CONFIGS: dict[str, LavilaConfig] = {
    "tsf-l14": LavilaConfig(
        image_size=224,
        patch_size=14,
        vision_width=1024,
        vision_layers=24,
        vision_heads=16,
        num_frames=4,
        embed_dim=256,
        context_length=77,
        vocab_size=49408,
        text_width=768,
        text_heads=12,
        text_layers=12,
        ln_pre=True,
    ),
    "tsf-b16": LavilaConfig(
        image_size=224,
        patch_size=16,
        vision_width=768,
        vision_layers=12,
        vision_heads=12,
        num_frames=4,
        embed_dim=256,
        context_length=77,
        vocab_size=49408,
        text_width=512,
        text_heads=8,
        text_layers=12,
        ln_pre=True,
    ),
}


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """The sigmoid approximation of GELU that OpenAI's CLIP was trained with."""
    return x * torch.sigmoid(1.702 * x)


class _VisionMlp(nn.Module):
    """Token-wise two-layer MLP of a space-time block (``fc1`` -> QuickGELU -> ``fc2``), width -> 4 width -> width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, MLP_RATIO * width)
        self.fc2 = nn.Linear(MLP_RATIO * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(quick_gelu(self.fc1(x)))


class _TextMlp(nn.Module):
    """Token-wise two-layer MLP of a CLIP text block (``c_fc`` -> QuickGELU -> ``c_proj``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, MLP_RATIO * width)
        self.c_proj = nn.Linear(MLP_RATIO * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(quick_gelu(self.c_fc(x)))


class _PatchEmbed(nn.Module):
    """Cuts each frame into non-overlapping patches and projects them: (N, 3, H, W) -> (N, P, width)."""

    def __init__(self, patch_size: int, width: int, bias: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(frames).flatten(2).transpose(1, 2)


class _DividedAttention(nn.Module):
    """Multi-head self-attention along one axis of a clip's (frame, patch) token grid, with a clip-level CLS token.

    Tokens are ``[CLS, frame 0 patches, frame 1 patches, ...]``. The CLS query attends to every token. A patch
    query attends to the CLS token and to the patches that share its frame (``axis="space"``) or its spatial position
    (``axis="time"``).
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, num_frames: int, axis: Axis) -> torch.Tensor:
        """(B, 1 + F * P, width) -> (B, 1 + F * P, width)."""
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)
        patch_out = self._grouped_attention(q, k, v, num_frames, axis)
        return self.proj(merge_heads(torch.cat([cls_out, patch_out], dim=2)))

    @staticmethod
    def _grouped_attention(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_frames: int, axis: Axis
    ) -> torch.Tensor:
        """Patch queries against [CLS key, keys of their group]; q, k, v (B, h, 1 + F * P, d) -> (B, h, F * P, d)."""
        b, h, t, d = q.shape
        per_frame = (t - 1) // num_frames

        def groups(z: torch.Tensor) -> torch.Tensor:
            grid = z[:, :, 1:].reshape(b, h, num_frames, per_frame, d)
            return grid.transpose(2, 3) if axis == "time" else grid

        qg, kg, vg = groups(q), groups(k), groups(v)
        n_groups, length = qg.shape[2], qg.shape[3]
        keys = torch.cat([k[:, :, None, :1].expand(b, h, n_groups, 1, d), kg], dim=3)
        values = torch.cat([v[:, :, None, :1].expand(b, h, n_groups, 1, d), vg], dim=3)
        out = F.scaled_dot_product_attention(
            qg.reshape(b, h * n_groups, length, d),
            keys.reshape(b, h * n_groups, length + 1, d),
            values.reshape(b, h * n_groups, length + 1, d),
        ).view(b, h, n_groups, length, d)
        if axis == "time":
            out = out.transpose(2, 3)
        return out.reshape(b, h, num_frames * per_frame, d)


class _SpaceTimeBlock(nn.Module):
    """Frozen-in-time block: time attention (``norm3``, ``timeattn``), space attention (``norm1``, ``attn``), MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)
        self.attn = _DividedAttention(width, heads)
        self.timeattn = _DividedAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)
        self.mlp = _VisionMlp(width)
        self.norm3 = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, 1 + F * P, width) -> same shape."""
        time_mixed = x + self.timeattn(self.norm3(x), num_frames, "time")
        x = x + self.attn(self.norm1(time_mixed), num_frames, "space")
        return x + self.mlp(self.norm2(x))


class LavilaVideoTower(nn.Module):
    """The TimeSformer video encoder (LaViLa's ``visual``): clip -> CLS feature before the joint projection."""

    def __init__(self, config: LavilaConfig) -> None:
        super().__init__()
        width = config.vision_width
        self.num_frames = config.num_frames
        self.image_size = config.image_size
        self.patch_embed = _PatchEmbed(config.patch_size, width, bias=not config.ln_pre)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.patches_per_frame, width))
        self.temporal_embed = nn.Parameter(torch.zeros(1, config.num_frames, width))
        self.ln_pre = nn.LayerNorm(width, eps=CLIP_NORM_EPS) if config.ln_pre else None
        self.blocks = nn.ModuleList(_SpaceTimeBlock(width, config.vision_heads) for _ in range(config.vision_layers))
        self.norm = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) pixels -> (B, 1 + F * P, width) tokens with CLS, spatial and temporal position added.

        A clip shorter than ``num_frames`` uses the first F temporal embeddings, as LaViLa does.
        """
        b, channels, frames, height, width = video.shape
        if channels != 3 or not 1 <= frames <= self.num_frames or (height, width) != (self.image_size,) * 2:
            raise ValueError(
                f"expected a (B, 3, F<={self.num_frames}, {self.image_size}, {self.image_size}) clip, "
                f"got {tuple(video.shape)}"
            )
        flat = video.transpose(1, 2).reshape(b * frames, channels, height, width)
        patches = self.patch_embed(flat).view(b, frames, -1, self.pos_embed.shape[-1])
        position = self.pos_embed[:, None, 1:] + self.temporal_embed[:, :frames, None]
        patches = patches + position
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        return torch.cat([cls, patches.flatten(1, 2)], dim=1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) normalised pixels -> (B, vision_width) normalised CLS output."""
        x = self.embed(video)
        if self.ln_pre is not None:
            x = self.ln_pre(x)
        frames = video.shape[2]
        for block in self.blocks:
            x = block(x, frames)
        return self.norm(x[:, 0])


class _CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with CLIP's packed input projection (``in_proj_weight``/``in_proj_bias``)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(C, L, width) -> (C, L, width); position i sees positions 0..i."""
        q, k, v = (split_heads(t, self.heads) for t in F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, -1))
        return self.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True)))


class _TextBlock(nn.Module):
    """Pre-norm CLIP text transformer block."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = _CausalSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width, eps=CLIP_NORM_EPS)
        self.mlp = _TextMlp(width)
        self.ln_2 = nn.LayerNorm(width, eps=CLIP_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _TextTransformer(nn.Module):
    """Stack of causal text blocks, named ``transformer.resblocks.N`` as in CLIP."""

    def __init__(self, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_TextBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class LavilaDualEncoder(nn.Module):
    """LaViLa's CLIP-style dual encoder: ``encode_video`` and ``encode_text`` map into one ``embed_dim`` space.

    Parameters are randomly initialised (CLIP's scheme); load real weights with
    :func:`xmic.lavila.checkpoint.load_lavila`. Build on ``torch.device("meta")`` to inspect shapes for free.
    """

    def __init__(self, config: LavilaConfig) -> None:
        super().__init__()
        self.config = config
        self.visual = LavilaVideoTower(config)
        self.transformer = _TextTransformer(config.text_width, config.text_heads, config.text_layers)
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.text_width))
        self.ln_final = nn.LayerNorm(config.text_width, eps=CLIP_NORM_EPS)
        self.image_projection = nn.Parameter(torch.empty(config.vision_width, config.embed_dim))
        self.text_projection = nn.Parameter(torch.empty(config.text_width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / TEMPERATURE_INIT)))
        self._init_parameters()

    @torch.no_grad()
    def _init_parameters(self) -> None:
        cfg = self.config
        for embedding in (self.visual.cls_token, self.visual.pos_embed, self.visual.temporal_embed):
            nn.init.trunc_normal_(embedding, std=0.02)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.image_projection, std=cfg.vision_width**-0.5)
        nn.init.normal_(self.text_projection, std=cfg.text_width**-0.5)

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) normalised pixels -> (B, embed_dim): visual CLS @ ``image_projection``, not L2-normalised."""
        return self.visual(video) @ self.image_projection

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(C, L) int64 token ids, L <= context_length -> (C, embed_dim), not L2-normalised.

        The feature is read at the end-of-text token, found as the highest id of each row (it is the last entry of
        the vocabulary), then projected with ``text_projection``.
        """
        if tokens.ndim != 2 or tokens.shape[1] > self.config.context_length:
            raise ValueError(f"expected (C, L<={self.config.context_length}) token ids, got {tuple(tokens.shape)}")
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.ln_final(self.transformer(x))
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return eot @ self.text_projection


_VISION_BLOCK = re.compile(r"^visual\.blocks\.(\d+)\.")
_TEXT_BLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.")


def _depth(keys: list[str], pattern: re.Pattern[str]) -> int:
    indices = [int(m.group(1)) for m in map(pattern.match, keys) if m]
    return max(indices) + 1 if indices else 0


def _shape(state_dict: dict[str, torch.Tensor], key: str, ndim: int) -> tuple[int, ...]:
    if key not in state_dict:
        raise ValueError(f"state dict has no {key!r}: not a LaViLa TimeSformer/CLIP dual encoder")
    shape = tuple(state_dict[key].shape)
    if len(shape) != ndim:
        raise ValueError(f"{key} has shape {shape}, expected {ndim} dimensions")
    return shape


def config_from_state_dict(state_dict: dict[str, torch.Tensor], num_frames: int) -> LavilaConfig:
    """Infer a :class:`LavilaConfig` from tensor shapes (keys without ``module.``).

    Depths come from the highest block index, heads are width // 64 (as in every OpenAI CLIP tower), the image size is
    patch size times the side of the square patch grid in ``visual.pos_embed``.

    Raises:
        ValueError: a key needed for a size is missing, has the wrong rank, or the patch grid is not square.
    """
    _, _, vision_width = _shape(state_dict, "visual.cls_token", 3)
    patch_size = _shape(state_dict, "visual.patch_embed.proj.weight", 4)[-1]
    patches = _shape(state_dict, "visual.pos_embed", 3)[1] - 1
    grid = math.isqrt(patches)
    if grid * grid != patches:
        raise ValueError(f"visual.pos_embed holds {patches} patch positions, not a square grid")
    vocab_size, text_width = _shape(state_dict, "token_embedding.weight", 2)
    context_length = _shape(state_dict, "positional_embedding", 2)[0]
    embed_dim = _shape(state_dict, "image_projection", 2)[1]
    keys = list(state_dict)
    return LavilaConfig(
        image_size=grid * patch_size,
        patch_size=patch_size,
        vision_width=vision_width,
        vision_layers=_depth(keys, _VISION_BLOCK),
        vision_heads=max(1, vision_width // HEAD_DIM),
        num_frames=num_frames,
        embed_dim=embed_dim,
        context_length=context_length,
        vocab_size=vocab_size,
        text_width=text_width,
        text_heads=max(1, text_width // HEAD_DIM),
        text_layers=_depth(keys, _TEXT_BLOCK),
        ln_pre="visual.ln_pre.weight" in state_dict,
    )
