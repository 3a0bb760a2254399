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
from xmic.adapt.blocks import TemporalEncoder
from xmic.adapt.text_encoder import FrozenTextEncoder, split_context

#: CoOp's initialisation of random context vectors.
CTX_INIT_STD = 0.02


def check_frames(cls: torch.Tensor, num_frames: int) -> None:
    """A clear error when a batch has more frames than a learned temporal embedding covers."""
    if cls.shape[1] > num_frames:
        raise ValueError(f"batch has {cls.shape[1]} frames but the temporal embedding covers {num_frames}")


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
    ) -> None:
        super().__init__()
        if text.dim != dim:
            raise ValueError(
                f"the text encoder at {text.model_dir} projects to {text.dim} but the cached features are {dim}-wide: "
                "use the CLIP weights the store was extracted with"
            )
        split_context(n_ctx, class_position)  # validates the position
        self.text = text
        self.class_position = class_position
        init = torch.randn(n_ctx, text.width) * CTX_INIT_STD if ctx_init is None else text.word_embeddings(ctx_init)
        self.ctx = nn.Parameter(init.cpu())
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)), requires_grad=learn_scale)
        self._eval_cache: tuple[tuple, torch.Tensor] | None = None

    def shared_text(self, names: list[str]) -> torch.Tensor:
        """l2-normalised class embeddings from the shared context, (K, D); reused between no-grad calls."""
        if torch.is_grad_enabled():
            self._eval_cache = None
            return l2norm(self.text.encode_with_context(names, self.ctx, self.class_position))
        key = (tuple(names), self.ctx._version, self.ctx.data_ptr(), self.ctx.device)
        if self._eval_cache is None or self._eval_cache[0] != key:
            self._eval_cache = (key, l2norm(self.text.encode_with_context(names, self.ctx, self.class_position)))
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

    ``logits = exp(s) * <video_embedding(cls), l2norm(text(ctx, name_k))>``; 16 vectors drawn from N(0, 0.02),
    class name at the end (``X*16 name.``), the paper's main setting.
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
    ) -> None:
        super().__init__(text, dim, n_ctx, ctx_init, class_position, learn_scale, logit_scale)

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D) -> logits (B, K)."""
        v = video_embedding(batch.cls.float())
        return self.scores(v, self.shared_text(classes.names).to(v))


class CoCoOp(_PromptLearner):
    """Co-CoOp (Zhou et al., CVPR 2022): the context shifted per video by a meta-net, ``ctx + pi(v)``.

    ``pi`` = Linear(D, D/16) ReLU Linear(D/16, W) on ``v = video_embedding(cls)``. Every video gets its own
    K prompts, so one step runs B x K prompts through the text tower (the paper trained with batch size 1;
    B = 128 with K = 521 Ego4D nouns is 66,688 prompts). They go through in passes of at most ``chunk``
    prompts; in training each pass is checkpointed (see ``FrozenTextEncoder.encode_with_context``), so the
    activation memory is that of one pass whatever B * K, and logits and gradients equal the unchunked ones.
    Context initialised from "a photo of a" as in the paper.

    Args:
        chunk: Prompts per text-tower pass (None: all B x K at once).
    """

    def __init__(
        self,
        text: FrozenTextEncoder,
        dim: int,
        n_ctx: int = 4,
        ctx_init: str | None = "a photo of a",
        class_position: str = "end",
        learn_scale: bool = True,
        chunk: int | None = 1024,
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__(text, dim, n_ctx, ctx_init, class_position, learn_scale, logit_scale)
        hidden = max(1, dim // 16)
        self.meta_net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, text.width))
        self.chunk = chunk

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D) -> logits (B, K); text features are (B, K, D)."""
        v = video_embedding(batch.cls.float())
        ctx = self.ctx.unsqueeze(0) + self.meta_net(v).unsqueeze(1)  # (B, n_ctx, W)
        text = self.text.encode_with_context(classes.names, ctx, self.class_position, chunk=self.chunk)
        return self.scores(v, l2norm(text).to(v))


class A5(_PromptLearner):
    """A5 (Ju et al., ECCV 2022, "Prompting visual-language models for efficient video understanding").

    Learned prompt vectors on both sides of the class name (``X*8 name X*8.``, 16 in all, N(0, 0.02)) through the
    frozen text tower, and a temporal transformer (learned temporal embedding + ``temporal_layers`` pre-LN
    blocks, mean over time) on the l2-normalised frame features:
    ``logits = exp(s) * <l2norm(Temporal(l2norm(cls))), l2norm(text)>``.
    """

    def __init__(
        self,
        text: FrozenTextEncoder,
        dim: int,
        num_frames: int = 16,
        n_ctx: int = 16,
        ctx_init: str | None = None,
        class_position: str = "middle",
        temporal_layers: int = 2,
        heads: int = 4,
        learn_scale: bool = True,
        logit_scale: float = CLIP_LOGIT_SCALE,
    ) -> None:
        super().__init__(text, dim, n_ctx, ctx_init, class_position, learn_scale, logit_scale)
        self.num_frames = num_frames
        self.temporal = TemporalEncoder(dim, num_frames, layers=temporal_layers, heads=heads)

    def forward(self, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
        """``batch.cls`` (B, T, D) -> logits (B, K)."""
        check_frames(batch.cls, self.num_frames)
        v = l2norm(self.temporal(l2norm(batch.cls.float())))
        return self.scores(v, self.shared_text(classes.names).to(v))
