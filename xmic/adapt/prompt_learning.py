"""Prompt-learning baselines that run the frozen CLIP text encoder on learned context: CoOp, Co-CoOp and A5.

All three classify ``v`` (B, D), a video embedding from the cached frame features, against class-text embeddings
computed at every step from learned context vectors and the class names (``ClassText.names``; the prompt template
is replaced by the context). The text tower lives outside the module tree (see ``FrozenTextEncoder``), so
``parameters()`` and ``state_dict()`` hold only the learned tensors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from xmic.adapt.base import CLIP_LOGIT_SCALE, ClassText, FeatureBatch, VideoClassifier, l2norm, video_embedding
from xmic.adapt.baseline_options import POOLS, check_choice
from xmic.adapt.blocks import TemporalEncoder
from xmic.adapt.text_encoder import FrozenTextEncoder, split_context

#: CoOp's initialisation of random context vectors.
CTX_INIT_STD = 0.02


def check_frames(cls: torch.Tensor, num_frames: int) -> None:
    """A clear error when a batch has more frames than a learned temporal embedding covers."""
    if cls.shape[1] > num_frames:
        raise ValueError(f"batch has {cls.shape[1]} frames but the temporal embedding covers {num_frames}")


def pool_frames(cls: torch.Tensor, pool: str) -> torch.Tensor:
    """The baselines' pooled video feature, not normalised: ``cls`` (B, T, D) -> (B, D).

    ``"mean"``: ``mean_T cls``, the raw frames (the authors' trainers); ``"norm-mean"``: ``l2norm(mean_T
    l2norm(cls))``, zero-shot CLIP's feature (:func:`~xmic.adapt.base.video_embedding`).
    """
    check_choice("pool", pool, POOLS)
    return cls.mean(dim=1) if pool == "mean" else video_embedding(cls)


def temporal_input(cls: torch.Tensor, pool: str) -> torch.Tensor:
    """The frames a temporal block reads: raw for pool "mean" (the authors'), l2-normalised for "norm-mean"."""
    return cls if pool == "mean" else l2norm(cls)


class _PromptLearner(VideoClassifier):
    """Common part: the frozen text encoder, the learned context ``ctx`` (n_ctx, W) and the logit scale.

    Args:
        text: The frozen text encoder; its projection width must equal ``dim``.
        dim: D, the CLIP joint-space width of the cached features.
        n_ctx: Number of context vectors (ignored when ``ctx_init`` is given).
        ctx_init: Words whose token embeddings initialise the context (their count sets n_ctx); None draws
            N(0, 0.02) as CoOp did.
        class_position: Where the class name sits relative to the context: "end", "middle" or "front".
        learn_scale: Whether the logit scale is trained.
        logit_scale: exp(s) at the start, the CLIP model's own (100 for OpenAI's).
        period: Whether the prompts end in "." (CoOp's paper) or not (the X-MIC authors' code).
        pool: The video feature: "mean" of the raw frames (the authors') or "norm-mean" (see :func:`pool_frames`).
    """

    def __init__(
        self,
        text: FrozenTextEncoder,
        dim: int,
        n_ctx: int,
        ctx_init: str | None,
        class_position: str,
        learn_scale: bool,
        logit_scale: float = CLIP_LOGIT_SCALE,
        period: bool = False,
        pool: str = "mean",
    ) -> None:
        super().__init__()
        if text.dim != dim:
            raise ValueError(
                f"the text encoder at {text.model_dir} projects to {text.dim} but the cached features are {dim}-wide: "
                "use the CLIP weights the store was extracted with"
            )
        split_context(n_ctx, class_position)  # validates the position
        check_choice("pool", pool, POOLS)
        self.text = text
        self.class_position, self.period, self.pool = class_position, period, pool
        init = torch.randn(n_ctx, text.width) * CTX_INIT_STD if not ctx_init else text.word_embeddings(ctx_init)
        self.ctx = nn.Parameter(init.cpu())
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)), requires_grad=learn_scale)
        self._eval_cache: tuple[tuple, torch.Tensor] | None = None

    def encode(self, names: list[str], ctx: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Text embeddings (K, D) or (B, K, D) of the prompts with context ``ctx`` (not normalised)."""
        return self.text.encode_with_context(names, ctx, self.class_position, chunk=chunk, period=self.period)

    def shared_text(self, names: list[str]) -> torch.Tensor:
        """l2-normalised class embeddings from the shared context, (K, D); reused between no-grad calls."""
        if torch.is_grad_enabled():
            self._eval_cache = None
            return l2norm(self.encode(names, self.ctx))
        key = (tuple(names), self.ctx._version, self.ctx.data_ptr(), self.ctx.device)
        if self._eval_cache is None or self._eval_cache[0] != key:
            self._eval_cache = (key, l2norm(self.encode(names, self.ctx)))
        return self._eval_cache[1]

    def train(self, mode: bool = True) -> _PromptLearner:
        self._eval_cache = None
        return super().train(mode)

    def scores(self, v: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``exp(s) * <v, text>``; ``v`` (B, D) unit rows, ``text`` (K, D) or (B, K, D) unit rows -> (B, K)."""
        if text.dim() == 2:
            return self.logit_scale.exp() * v @ text.t()
        return self.logit_scale.exp() * torch.einsum("bd,bkd->bk", v, text)


class CoOp(_PromptLearner):
    """CoOp (Zhou et al., IJCV 2022): context vectors shared by all classes, learned through the frozen text tower.

    ``logits = exp(s) * <l2norm(pool(cls)), l2norm(text(ctx, name_k))>``; by default the X-MIC authors' form
    (``trainers/temporal_coop.py``, ``TEMPORAL.TYPE avg``): 16 vectors drawn from N(0, 0.02), class name at the
    end, no final period (``X*16 name``), the mean of the raw frames; the trained logit scale.
    """

    def __init__(
        self,
        text: FrozenTextEncoder,
        dim: int,
        n_ctx: int = 16,
        ctx_init: str | None = None,
        class_position: str = "end",
        learn_scale: bool = True,
        logit_scale: float = CLIP_LOGIT_SCALE,
        period: bool = False,
        pool: str = "mean",
    ) -> None:
        super().__init__(text, dim, n_ctx, ctx_init, class_position, learn_scale, logit_scale, period, pool)

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D) -> logits (B, K)."""
        v = l2norm(pool_frames(batch.cls.float(), self.pool))
        return self.scores(v, self.shared_text(classes.names).to(v))


class CoCoOp(_PromptLearner):
    """Co-CoOp (Zhou et al., CVPR 2022): the context shifted per video by a meta-net, ``ctx + pi(p)``.

    ``p = pool(cls)`` (the authors': the mean of the raw frames, unnormalised), ``pi`` = Linear(D, D/16) ReLU
    Linear(D/16, W), and ``logits = exp(s) * <l2norm(p), l2norm(text(ctx + pi(p), name_k))>``. By default the
    authors' ``trainers/temporal_cocoop.py``: 16 random context vectors (their ``N_CTX``/``CTX_INIT`` defaults),
    no final period; the paper's "a photo of a" init is an option. Every video gets its own K prompts, so one
    step runs B x K prompts through the text tower (the paper trained with batch size 1; B = 128 with K = 521
    Ego4D nouns is 66,688 prompts). They go through in passes of at most ``chunk`` prompts; in training each
    pass is checkpointed (see ``FrozenTextEncoder.encode_with_context``), so the activation memory is that of
    one pass whatever B * K, and logits and gradients equal the unchunked ones.

    Args:
        chunk: Prompts per text-tower pass (None: all B x K at once).
    """

    def __init__(
        self,
        text: FrozenTextEncoder,
        dim: int,
        n_ctx: int = 16,
        ctx_init: str | None = None,
        class_position: str = "end",
        learn_scale: bool = True,
        chunk: int | None = 1024,
        logit_scale: float = CLIP_LOGIT_SCALE,
        period: bool = False,
        pool: str = "mean",
    ) -> None:
        super().__init__(text, dim, n_ctx, ctx_init, class_position, learn_scale, logit_scale, period, pool)
        hidden = max(1, dim // 16)
        self.meta_net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, text.width))
        self.chunk = chunk

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D) -> logits (B, K); text features are (B, K, D)."""
        p = pool_frames(batch.cls.float(), self.pool)
        ctx = self.ctx.unsqueeze(0) + self.meta_net(p).unsqueeze(1)  # (B, n_ctx, W)
        text = self.encode(classes.names, ctx, chunk=self.chunk)
        v = l2norm(p)
        return self.scores(v, l2norm(text).to(v))


class A5(_PromptLearner):
    """A5 (Ju et al., ECCV 2022, "Prompting visual-language models for efficient video understanding").

    Learned context through the frozen text tower and a temporal transformer (learned temporal embedding +
    ``temporal_layers`` pre-LN blocks of ``heads`` heads and MLP width D / ``bottle_neck``, mean over time):
    ``logits = exp(s) * <l2norm(Temporal(u)), l2norm(text)>``. By default the X-MIC authors' form
    (``trainers/temporal_coop.py``, ``TEMPORAL.TYPE attention``): ``u`` the raw frames, 16 random context vectors
    before the class name (their code supports only "end"), no final period, 8 heads, width D / 4. Ju et al.'s
    prompts on both sides of the name (``class_position="middle"``) and normalised frames (``pool="norm-mean"``)
    are options.
    """

    def __init__(
        self,
        text: FrozenTextEncoder,
        dim: int,
        num_frames: int = 16,
        n_ctx: int = 16,
        ctx_init: str | None = None,
        class_position: str = "end",
        temporal_layers: int = 2,
        heads: int = 8,
        learn_scale: bool = True,
        logit_scale: float = CLIP_LOGIT_SCALE,
        period: bool = False,
        pool: str = "mean",
        bottle_neck: float = 4.0,
    ) -> None:
        super().__init__(text, dim, n_ctx, ctx_init, class_position, learn_scale, logit_scale, period, pool)
        self.num_frames = num_frames
        self.temporal = TemporalEncoder(
            dim, num_frames, layers=temporal_layers, heads=heads, mlp_hidden=int(dim / bottle_neck)
        )

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D) -> logits (B, K)."""
        check_frames(batch.cls, self.num_frames)
        v = l2norm(self.temporal(temporal_input(batch.cls.float(), self.pool)))
        return self.scores(v, self.shared_text(classes.names).to(v))
