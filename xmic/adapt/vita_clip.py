"""Vita-CLIP (Wasim et al., CVPR 2023, "Vita-CLIP: Video and Text Adaptive CLIP via Multimodal Prompting").

A frozen CLIP classifies videos through prompts alone. Only the prompts (and the small modules that make them from
CLS tokens) are trained; every CLIP weight stays as loaded.

Vision side (``VitaClipVision``), for a clip of T frames run as B*T images through the frozen ViT:

* **time embedding** ``E_t`` (T, W): added to every token of frame t after CLIP's position embedding and before the
  pre-LayerNorm; N(0, 0.02) at init.
* **global (video-level) prompts** ``G_l`` (n_global, W) for every layer l (VPT-deep): the same learned tokens are
  appended to every frame's sequence before layer l and dropped after it.
* **local (frame-level) prompts**: at every layer l, the CLS tokens of the T frames of a video (layer input) go
  through a linear map ``c = P_l(cls)`` (B, T, W); frame prompt j is ``L_l[j] + c_j`` and *every* frame of the video
  receives all T of them, so each frame sees a conditioned summary of its siblings. One learned vector per frame
  position, hence T must equal ``num_frames``.
* **summary token**: ``s = c + MHA_l(LN_l(c))``, attention across the T frames of the video (heads as the ViT's);
  ``s_t`` is appended to frame t's sequence for the attention of layer l.

Inside layer l a frame's sequence is ``[CLS, patches, G_l, L_l + c, s_t]``; the layer's attention runs over all of
it, the local and summary tokens are dropped after the attention and the global ones after the MLP (their MLP
outputs are discarded, so they are dropped before it here: the kept tokens come out identical). The video
embedding is the mean over frames of the projected, post-LayerNormed CLS token, ``mean_t proj(LN(cls_t))``: the
summary token is not read out, it acts through the attention.

Text side: CoOp-style shared context, ``<bos> X*n_ctx <name> . <eos>`` through the frozen CLIP text tower
(:class:`~xmic.adapt.text_encoder.FrozenTextEncoder`), n_ctx = 8 vectors drawn from N(0, 0.02), class name at the
end. ``logits = exp(s) * <l2norm(video), l2norm(text_k)>`` with the authors' logit scale: exp(s) starts at
1 / 0.07 and trains.

Defaults and where they come from (the authors' released code, ``training/VitaCLIP_*.py`` and
``train_scripts/k400_train.sh``, the Kinetics-400 training that their zero-shot results are transferred from):
8 frames, 8 global prompts, local prompts and summary token on, 8 text context vectors at the "end" position with
random init. Global and local prompts start uniform in ``+-sqrt(6 / (3 p^2 + W))`` (p the patch size), the summary
attention xavier-uniform with zero biases, its LayerNorm at identity. Deliberate choices where their code offers
options or does something specific:

* the CLS maps ``P_l`` are not matched by the authors' freezing rule (which keeps names with "summary", "local",
  "global" or "time_embed" trainable), so in their runs they stay at PyTorch's default random Linear init and
  frozen; we do the same (``learn_cls_proj=False``), and save them with the prompts since they are random;
* their K400 script uses class-specific text context (CSC), which cannot name unseen classes; we use the shared
  context (their code's default, CoOp's generic context), which transfers to any vocabulary;
* their logit scale starts at 1 / 0.07 and trains (``nn.Parameter(log(1 / 0.07))``, outside the frozen towers); so
  does ours by default (``logit_scale=None, learn_scale=False`` gives CLIP's own, frozen);
* their time embedding is interpolated for other frame counts, but their layers assume ``num_frames`` frames per
  clip, so another T is refused here.

The frozen towers live outside the module tree (as in :mod:`xmic.adapt.prompt_learning`): ``parameters()`` and
``state_dict()`` hold only Vita-CLIP's own tensors, and the towers follow the prompts' device at each call. On
CUDA they run under ``torch.autocast(bfloat16)``; ``checkpoint_layers`` recomputes each ViT layer in the backward
pass to trade compute for activation memory.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from xmic.adapt.base import ClassText, l2norm
from xmic.adapt.baseline_options import VITA_LOGIT_SCALE
from xmic.adapt.prompt_learning import _PromptLearner
from xmic.adapt.text_encoder import FrozenTextEncoder
from xmic.attention import merge_heads, split_heads

#: Std of the time embedding at init (as the authors' code).
TIME_INIT_STD = 0.02
#: Defaults of the released Kinetics-400 configuration.
DEFAULT_FRAMES = 8
DEFAULT_GLOBAL_PROMPTS = 8
DEFAULT_TEXT_CTX = 8


def _prompt_init_bound(patch: int, width: int) -> float:
    """Half-width of the uniform init of the global and local prompts, ``sqrt(6 / (3 p^2 + W))`` (VPT's xavier)."""
    return math.sqrt(6.0 / float(3 * patch * patch + width))


def _vision_transformer(model: nn.Module) -> nn.Module:
    """The module holding ``embeddings``/``pre_layrnorm``/``encoder``/``post_layernorm`` (transformers 4 nests it
    as ``CLIPVisionModel.vision_model``, 5 does not)."""
    for _ in range(3):
        if hasattr(model, "embeddings") and hasattr(model, "encoder"):
            return model
        model = getattr(model, "vision_model", model)
    raise TypeError(f"{type(model).__name__} is not a Hugging Face CLIP vision tower")


class _FrozenVisionTower:
    """The frozen ViT and its projection; not an ``nn.Module``, so the owner's state holds none of its weights.

    Args:
        vision_model: ``CLIPVisionModel`` (or its inner transformer).
        projection: ``CLIPModel.visual_projection``, Linear(W, D).
    """

    def __init__(self, vision_model: nn.Module, projection: nn.Module) -> None:
        self.model = _vision_transformer(vision_model).eval().requires_grad_(False)
        self.projection = projection.eval().requires_grad_(False)
        self.layers = list(self.model.encoder.layers)

    @property
    def device(self) -> torch.device:
        return self.model.embeddings.patch_embedding.weight.device

    def to(self, device: torch.device) -> _FrozenVisionTower:
        if self.device != device:
            self.model.to(device)
            self.projection.to(device)
        return self

    def modules(self) -> tuple[nn.Module, nn.Module]:
        return self.model, self.projection


class SummaryAttention(nn.Module):
    """Pre-LN multi-head attention over the T frame tokens of each video, with a residual: ``c + MHA(LN(c))``.

    Separate q/k/v/out Linear(W, W), xavier-uniform weights and zero biases at init.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not a multiple of {heads} heads")
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(width, width) for _ in range(4))
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """``c`` (B, T, W) -> (B, T, W)."""
        h = self.norm(c)
        q, k, v = (split_heads(p(h), self.heads) for p in (self.q_proj, self.k_proj, self.v_proj))
        return c + self.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))


def _autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``enabled``; a disabled context elsewhere (exact fp32 on the CPU)."""
    on = enabled and device.type == "cuda"
    return torch.autocast(device_type=device.type if on else "cpu", dtype=torch.bfloat16, enabled=on)


class VitaClipVision(nn.Module):
    """The frozen CLIP vision tower with Vita-CLIP's time embedding and global, local and summary prompts.

    Args:
        clip_vision_model: Hugging Face ``CLIPVisionModel`` (``CLIPModel.vision_model``); frozen here.
        visual_projection: ``CLIPModel.visual_projection``, Linear(W, D); frozen here.
        num_frames: T, frames per clip (one local prompt and one time embedding per frame position).
        num_global_prompts: Global prompts per layer (0: none).
        local_prompts: Whether the CLS-conditioned frame-level prompts are used.
        summary_token: Whether the cross-frame summary token is used.
        time_embedding: Whether the learned time embedding is added.
        learn_cls_proj: Whether the CLS maps ``P_l`` are trained (the authors' code leaves them frozen at random).
        checkpoint_layers: Recompute each ViT layer in the backward pass (less activation memory).
        autocast: Run in bf16 autocast when the input is on CUDA.
    """

    def __init__(
        self,
        clip_vision_model: nn.Module,
        visual_projection: nn.Module,
        num_frames: int = DEFAULT_FRAMES,
        *,
        num_global_prompts: int = DEFAULT_GLOBAL_PROMPTS,
        local_prompts: bool = True,
        summary_token: bool = True,
        time_embedding: bool = True,
        learn_cls_proj: bool = False,
        checkpoint_layers: bool = False,
        autocast: bool = True,
    ) -> None:
        super().__init__()
        if num_frames < 1 or num_global_prompts < 0:
            raise ValueError(
                f"need num_frames >= 1 and num_global_prompts >= 0, got {num_frames}, {num_global_prompts}"
            )
        self.tower = _FrozenVisionTower(clip_vision_model, visual_projection)
        config = self.tower.model.config
        width, depth = int(config.hidden_size), len(self.tower.layers)
        self.num_frames, self.width, self.heads = num_frames, width, int(config.num_attention_heads)
        self.dim = int(self.tower.projection.weight.shape[0])
        self.num_global_prompts = num_global_prompts
        self.checkpoint_layers, self.autocast = checkpoint_layers, autocast
        bound = _prompt_init_bound(int(config.patch_size), width)
        device = self.tower.device

        self.time_embed = (
            nn.Parameter(torch.randn(num_frames, width, device=device) * TIME_INIT_STD) if time_embedding else None
        )
        self.global_prompts = (
            nn.Parameter(torch.empty(depth, num_global_prompts, width, device=device).uniform_(-bound, bound))
            if num_global_prompts
            else None
        )
        self.local_prompts = (
            nn.Parameter(torch.empty(depth, num_frames, width, device=device).uniform_(-bound, bound))
            if local_prompts
            else None
        )
        self.summary = (
            nn.ModuleList(SummaryAttention(width, self.heads) for _ in range(depth)).to(device)
            if summary_token
            else None
        )
        self.cls_proj = (
            nn.ModuleList(nn.Linear(width, width) for _ in range(depth)).to(device).requires_grad_(learn_cls_proj)
            if local_prompts or summary_token
            else None
        )

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The prompt parameters (those with ``requires_grad``)."""
        return [p for p in self.parameters() if p.requires_grad]

    def _anchor(self) -> torch.device:
        """The device of Vita-CLIP's own tensors (the tower follows it)."""
        for t in self.parameters():
            return t.device
        return self.tower.device

    def check_input(self, pixels: torch.Tensor) -> None:
        """A clear error unless ``pixels`` is (B, num_frames, 3, S, S) at the tower's resolution."""
        size = int(self.tower.model.config.image_size)
        if pixels.dim() != 5 or pixels.shape[2] != 3 or tuple(pixels.shape[-2:]) != (size, size):
            raise ValueError(f"pixels must be (B, T, 3, {size}, {size}) normalised frames, got {tuple(pixels.shape)}")
        if pixels.shape[1] != self.num_frames:
            raise ValueError(
                f"clips have {pixels.shape[1]} frames but Vita-CLIP was built for {self.num_frames}: its local prompts "
                "and time embedding hold one vector per frame position, so sample num_frames frames per clip"
            )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` (B, T, 3, S, S) normalised frames -> (B, D) video embedding (projected, not normalised)."""
        self.check_input(pixels)
        device = self._anchor()
        self.tower.to(device)
        b, t = pixels.shape[:2]
        with _autocast(device, self.autocast):
            x = self._embed(pixels.to(device).flatten(0, 1), b, t)  # (B*T, N, W)
            for i in range(len(self.tower.layers)):
                if self.checkpoint_layers and torch.is_grad_enabled():
                    x = checkpoint(self._layer, i, x, b, t, use_reentrant=False)
                else:
                    x = self._layer(i, x, b, t)
            cls = self.tower.projection(self.tower.model.post_layernorm(x[:, 0]))  # (B*T, D)
        return cls.float().view(b, t, -1).mean(dim=1)

    def _embed(self, frames: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """(B*T, 3, S, S) -> pre-LN tokens (B*T, N, W): CLIP's patch, CLS and position embeddings + time embedding."""
        x = self.tower.model.embeddings(frames)
        if self.time_embed is not None:
            x = (x.view(b, t, *x.shape[1:]) + self.time_embed[None, :, None, :]).flatten(0, 1)
        return self.tower.model.pre_layrnorm(x)

    def _prompt_tokens(self, i: int, x: torch.Tensor, b: int, t: int) -> list[torch.Tensor]:
        """The tokens appended to every frame's sequence in layer ``i``: [global (Ng), local (T), summary (1)]."""
        extra = []
        if self.global_prompts is not None:
            extra.append(self.global_prompts[i].expand(b * t, -1, -1))
        if self.cls_proj is not None:
            c = self.cls_proj[i](x[:, 0].view(b, t, -1))  # (B, T, W)
            if self.local_prompts is not None:
                local = self.local_prompts[i] + c  # (B, T, W): frame-position prompt + that frame's CLS
                extra.append(local.unsqueeze(1).expand(b, t, t, -1).reshape(b * t, t, -1))
            if self.summary is not None:
                extra.append(self.summary[i](c).reshape(b * t, 1, -1))
        return [e.to(x.dtype) for e in extra]

    def _layer(self, i: int, x: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """Frozen ViT layer ``i`` with the prompts appended: (B*T, N, W) -> (B*T, N, W)."""
        layer = self.tower.layers[i]
        seq = torch.cat([x, *self._prompt_tokens(i, x, b, t)], dim=1)
        h = layer.layer_norm1(seq)
        x = x + self._attention(layer.self_attn, h[:, : x.shape[1]], h)
        return x + layer.mlp(layer.layer_norm2(x))

    def _attention(self, attn: nn.Module, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """The layer's frozen attention from the ``queries`` (N, Lq, W) rows to all ``keys`` (N, Lk, W) rows."""
        q = split_heads(attn.q_proj(queries), self.heads)
        k, v = (split_heads(p(keys), self.heads) for p in (attn.k_proj, attn.v_proj))
        return attn.out_proj(merge_heads(F.scaled_dot_product_attention(q, k, v)))


def _load_clip_vision(clip_dir: Path) -> tuple[nn.Module, nn.Module, float]:
    """``(vision_model, visual_projection, logit_scale)`` of the local Hugging Face CLIP folder ``clip_dir``."""
    from transformers import CLIPModel
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        clip = CLIPModel.from_pretrained(clip_dir, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return clip.vision_model, clip.visual_projection, float(clip.logit_scale.detach())


class VitaClip(_PromptLearner):
    """Vita-CLIP on both sides: prompted frozen vision tower and CoOp-style text context through the frozen text tower.

    ``forward(pixels, classes)`` -> ``exp(s) * <l2norm(VitaClipVision(pixels)), l2norm(text(ctx, name_k))>``, (B, K).
    The text embeddings are recomputed at every training call and cached between no-grad calls.

    Args:
        clip_dir: Local Hugging Face CLIP folder (weights, config, tokenizer); nothing is downloaded.
        num_frames: T, frames per clip.
        n_ctx: Text context vectors (ignored when ``ctx_init`` is given).
        ctx_init: Words initialising the text context; None draws N(0, 0.02).
        class_position: "end", "middle" or "front" (see :func:`xmic.adapt.text_encoder.split_context`).
        learn_scale: Whether the logit scale is trained (the authors': yes).
        logit_scale: exp(s) at the start: the authors' 1 / 0.07, or None for the CLIP model's own.
        **vision: Options of :class:`VitaClipVision` (``num_global_prompts``, ``local_prompts``, ...).
    """

    def __init__(
        self,
        clip_dir: str | Path,
        num_frames: int = DEFAULT_FRAMES,
        *,
        n_ctx: int = DEFAULT_TEXT_CTX,
        ctx_init: str | None = None,
        class_position: str = "end",
        learn_scale: bool = True,
        logit_scale: float | None = VITA_LOGIT_SCALE,
        **vision: bool | int,
    ) -> None:
        text = FrozenTextEncoder(clip_dir)  # clear error when the folder holds no CLIP
        vision_model, projection, clip_scale = _load_clip_vision(Path(clip_dir))
        super().__init__(
            text, int(projection.weight.shape[0]), n_ctx, ctx_init, class_position, learn_scale, period=True
        )
        with torch.no_grad():
            self.logit_scale.fill_(clip_scale if logit_scale is None else math.log(logit_scale))
        self.vision = VitaClipVision(vision_model, projection, num_frames, **vision)

    @property
    def num_frames(self) -> int:
        return self.vision.num_frames

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The trained tensors: text context, time embedding, global/local prompts, summary attention, logit scale."""
        return [p for p in self.parameters() if p.requires_grad]

    def frozen_modules(self) -> tuple[nn.Module, ...]:
        """The frozen CLIP modules held outside the module tree: vision tower, visual projection, text tower."""
        return (*self.vision.tower.modules(), self.text.model)

    def class_embeddings(self, classes: ClassText | list[str]) -> torch.Tensor:
        """l2-normalised class embeddings (K, D) float32 from the learned context and the class names."""
        names = classes.names if isinstance(classes, ClassText) else list(classes)
        with _autocast(self.ctx.device, self.vision.autocast):
            return self.shared_text(names).float()

    def forward(self, pixels: torch.Tensor, classes: ClassText | list[str]) -> torch.Tensor:  # type: ignore[override]
        """``pixels`` (B, T, 3, S, S) normalised frames, K classes -> logits (B, K)."""
        v = l2norm(self.vision(pixels))
        return self.scores(v, self.class_embeddings(classes).to(v))
