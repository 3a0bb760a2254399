"""A frozen CLIP text tower that accepts learned context vectors in place of prompt words (CoOp, Co-CoOp, A5).

Prompts are built as ``<bos> X X ... X <name> [.] <eos>`` (the context may also sit after the name). The
placeholder rows of the token-embedding output are overwritten with the learned context by a forward hook on
``model.get_input_embeddings()``, so the model's own forward (position embeddings, causal mask, EOS pooling,
projection) runs unchanged whatever the transformers version. Gradients reach the context, never the tower.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint

from xmic.adapt.shared_prefix import shared_prefix_forward, supports_shared_prefix

#: The word written where a context vector goes; CoOp used "X". Its own embedding is always overwritten.
PLACEHOLDER = "X"
#: Where the class name sits relative to the context, in CoOp's terms: after it ("end"), between two halves
#: ("middle") or before it ("front").
CLASS_POSITIONS = ("end", "middle", "front")


@dataclass
class _Prompts:
    """Token ids of one vocabulary's prompts. ``ids``/``mask`` (K, L); ``ctx_pos`` (K, n_ctx) context slots;
    ``eos`` (K,) the position the tower pools (its end-of-text token, found as the tower finds it), ``first_eos``
    the smallest of them."""

    ids: torch.Tensor
    mask: torch.Tensor
    ctx_pos: torch.Tensor
    eos: torch.Tensor
    first_eos: int

    def to(self, device: torch.device) -> _Prompts:
        moved = (t.to(device) for t in (self.ids, self.mask, self.ctx_pos, self.eos))
        return _Prompts(*moved, first_eos=self.first_eos)


def split_context(n_ctx: int, class_position: str) -> tuple[int, int]:
    """Numbers of context vectors ``(before, after)`` the class name for a CoOp class-token position."""
    if class_position == "end":
        return n_ctx, 0
    if class_position == "middle":
        return n_ctx // 2, n_ctx - n_ctx // 2
    if class_position == "front":
        return 0, n_ctx
    raise ValueError(f"class_position must be one of {', '.join(CLASS_POSITIONS)}, got {class_position!r}")


class FrozenTextEncoder:
    """CLIP ``CLIPTextModelWithProjection`` and its tokenizer from a local Hugging Face folder, frozen.

    Not an ``nn.Module`` on purpose: a method that holds one keeps only its own learned tensors in
    ``parameters()`` and ``state_dict()``. The tower follows the context tensor's device at each call.

    Args:
        model_dir: Local folder in Hugging Face layout (config.json, weights, tokenizer files) of the same CLIP
            the store's text embeddings were extracted with. Nothing is downloaded.
    """

    def __init__(self, model_dir: str | Path) -> None:
        from transformers import AutoTokenizer, CLIPTextModelWithProjection
        from transformers.utils import logging as hf_logging

        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"no CLIP weights at {path} (config.json missing): give the local folder of the CLIP checkpoint the "
                "store was extracted with, e.g. `huggingface-cli download openai/clip-vit-base-patch16 --local-dir DIR`"
            )
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # a full CLIPModel folder lists every vision weight as "unexpected"
        hf_logging.disable_progress_bar()  # one "Loading weights" bar per trained run would bury the training bars
        try:
            self.model = CLIPTextModelWithProjection.from_pretrained(path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        self._setup(path)

    def _setup(self, model_dir: Path) -> None:
        self.model.eval().requires_grad_(False)
        self.model_dir = model_dir
        self._cache: dict[tuple[tuple[str, ...], int, int, bool], _Prompts] = {}
        #: Run each prompt's shared leading tokens once (:mod:`xmic.adapt.shared_prefix`); False runs the whole
        #: Hugging Face forward on every prompt (the reference the tests and benchmarks compare with).
        self.share_prefix = supports_shared_prefix(self.model)

    @classmethod
    def from_model(cls, model, tokenizer, name: str = "<in memory>") -> FrozenTextEncoder:
        """Wrap an already built ``CLIPTextModelWithProjection`` and its tokenizer (benchmarks, tests)."""
        self = cls.__new__(cls)
        self.model, self.tokenizer = model, tokenizer
        self._setup(Path(name))
        return self

    @property
    def width(self) -> int:
        """W, the width of a token embedding (the size of one context vector)."""
        return int(self.get_input_embeddings().embedding_dim)

    @property
    def dim(self) -> int:
        """D, the width of the projected text embedding."""
        return int(self.model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        return self.get_input_embeddings().weight.device

    @property
    def max_length(self) -> int:
        return int(self.model.config.max_position_embeddings)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.model.get_input_embeddings()

    def to(self, device: torch.device | str) -> FrozenTextEncoder:
        """Move the tower (and the cached token ids) to ``device``."""
        device = torch.device(device)
        if self.device != device:
            self.model.to(device)
            self._cache = {k: p.to(device) for k, p in self._cache.items()}
        return self

    def _tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def word_embeddings(self, text: str) -> torch.Tensor:
        """Token embeddings of ``text`` without start/end tokens, (n, W) float32, detached (for context init)."""
        ids = torch.tensor(self._tokens(text), dtype=torch.long, device=self.device)
        if ids.numel() == 0:
            raise ValueError(f"{text!r} tokenises to nothing")
        return self.get_input_embeddings()(ids).detach().float().clone()

    def encode(self, names: list[str], template: str = "{}") -> torch.Tensor:
        """Plain text embeddings of ``template.format(name)`` for every name, (K, D) float32, no gradient."""
        batch = self.tokenizer([template.format(n) for n in names], padding=True, return_tensors="pt")
        with torch.no_grad():
            out = self.model(
                input_ids=batch["input_ids"].to(self.device), attention_mask=batch["attention_mask"].to(self.device)
            )
        return out.text_embeds.float()

    def prompts(self, names: list[str], n_before: int, n_after: int, period: bool = True) -> _Prompts:
        """Token ids of ``X*n_before <name> X*n_after`` (+ ``.`` when ``period``) for every name, cached.

        Each prompt is tokenised as one string, as CoOp-style code does (a name ending in punctuation merges with
        the period: ``").")`` is one token). The placeholders are words of their own, so the context slots are
        the n_before tokens after ``<bos>`` and the n_after before the period's tokens; they are checked.
        """
        key = (tuple(names), n_before, n_after, period)
        if key not in self._cache:
            tok = self.tokenizer
            slot = self._tokens(PLACEHOLDER)
            if len(slot) != 1:
                raise ValueError(f"placeholder {PLACEHOLDER!r} is {len(slot)} tokens in {self.model_dir}'s tokenizer")
            tail = len(self._tokens(f"{PLACEHOLDER}.")) - 1 if period and n_after else 0
            rows, positions = [], []
            for k, name in enumerate(names):
                if not self._tokens(name):
                    raise ValueError(f"class {k} has an empty name {name!r}")
                words = [PLACEHOLDER] * n_before + [name] + [PLACEHOLDER] * n_after
                text = " ".join(words) + ("." if period else "")
                ids = [tok.bos_token_id] + self._tokens(text) + [tok.eos_token_id]
                if len(ids) > self.max_length:
                    raise ValueError(
                        f"class {k} {name!r}: the prompt with {n_before + n_after} context tokens is {len(ids)} tokens, "
                        f"longer than the text encoder's {self.max_length}"
                    )
                end = len(ids) - 1 - tail
                pos = list(range(1, 1 + n_before)) + list(range(end - n_after, end))
                if any(ids[i] != slot[0] for i in pos):
                    raise ValueError(
                        f"class {k} {name!r}: the context placeholders do not tokenise apart from the name"
                    )
                positions.append(pos)
                rows.append(ids)
            length = max(len(r) for r in rows)
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            ids_t = torch.full((len(rows), length), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), length), dtype=torch.long)
            for k, r in enumerate(rows):
                ids_t[k, : len(r)] = torch.tensor(r)
                mask[k, : len(r)] = 1
            pos_t = torch.tensor(positions, dtype=torch.long).reshape(len(rows), n_before + n_after)
            eos = self._pooled_positions(ids_t)
            self._cache[key] = _Prompts(ids_t, mask, pos_t, eos, int(eos.min())).to(self.device)
        return self._cache[key]

    def _pooled_positions(self, ids: torch.Tensor) -> torch.Tensor:
        """(K,) the token each prompt of ``ids`` (K, L) is pooled at, chosen as ``CLIPTextModel`` chooses it."""
        eos_id = getattr(getattr(self.model, "text_model", None), "eos_token_id", self.tokenizer.eos_token_id)
        if eos_id == 2:  # checkpoints from before transformers fixed CLIP's eos id pool at the highest token id
            return ids.argmax(dim=-1)
        return (ids == eos_id).int().argmax(dim=-1)

    @contextmanager
    def _context_hook(self, ctx_rows: torch.Tensor, ctx_pos: torch.Tensor) -> Iterator[None]:
        """Overwrite token-embedding rows ``ctx_pos`` (N, n) with ``ctx_rows`` (N, n, W) while inside the block."""

        def hook(_module: torch.nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor:
            index = ctx_pos.unsqueeze(-1).expand(-1, -1, out.shape[-1])
            return out.scatter(1, index, ctx_rows.to(out.dtype))

        handle = self.get_input_embeddings().register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def encode_with_context(
        self,
        names: list[str],
        ctx: torch.Tensor,
        class_position: str = "end",
        chunk: int | None = None,
        period: bool = True,
    ) -> torch.Tensor:
        """Text embeddings of prompts whose context words are the vectors ``ctx``.

        Args:
            names: K class names.
            ctx: (n_ctx, W) context shared by all classes, or (B, n_ctx, W) one context per instance
                (B x K prompts go through the tower).
            class_position: "end" (``X X X X name.``), "middle" (half the context before the name, half after)
                or "front" (``name X X X X.``), as CoOp names them.
            chunk: At most this many prompts per tower pass (None: all at once). With gradients on, each pass
                is checkpointed (its activations are recomputed during the backward pass), so the memory of a
                training step is that of one pass plus the (prompts, D) outputs instead of growing with B * K.
                The result, and the gradients, equal those of the unchunked computation.
            period: Whether the prompts end in "." (CoOp's paper) or not (the X-MIC authors' code).

        Returns:
            (K, D) or (B, K, D) float32 projected text embeddings (not normalised).
        """
        if ctx.dim() not in (2, 3) or ctx.shape[-1] != self.width:
            raise ValueError(f"ctx must be (n_ctx, {self.width}) or (B, n_ctx, {self.width}), got {tuple(ctx.shape)}")
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be a positive number of prompts, got {chunk}")
        self.to(ctx.device)
        n_before, n_after = split_context(ctx.shape[-2], class_position)
        p = self.prompts(names, n_before, n_after, period)
        shared = ctx.dim() == 2
        contexts = ctx.unsqueeze(0) if shared else ctx
        b, k = contexts.shape[0], len(names)
        total = b * k
        step = total if chunk is None else min(chunk, total)
        checkpointed = step < total and torch.is_grad_enabled() and contexts.requires_grad
        n_prefix = 1 + n_before
        share = self.share_prefix and p.first_eos >= n_prefix
        parts = []
        for s in range(0, total, step):
            # prompt i of the flat (B x K) list is class i % K with the context of instance i // K
            flat = torch.arange(s, min(s + step, total), device=ctx.device)
            inst, cls = flat // k, flat % k
            if share:
                first, last = s // k, (min(s + step, total) - 1) // k
                run, args = (
                    self._run_shared,
                    (p.ids[cls], p.eos[cls], p.ctx_pos[cls], inst - first, contexts[first : last + 1], n_prefix),
                )
            else:
                run, args = self._run, (p.ids[cls], p.mask[cls], p.ctx_pos[cls], contexts[inst])
            if checkpointed:
                parts.append(checkpoint(run, *args, use_reentrant=False))
            else:
                parts.append(run(*args))
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        return out if shared else out.reshape(b, k, -1)

    def _run_shared(
        self,
        ids: torch.Tensor,
        eos: torch.Tensor,
        pos: torch.Tensor,
        owner: torch.Tensor,
        contexts: torch.Tensor,
        n_prefix: int,
    ) -> torch.Tensor:
        """One tower pass, each context's prefix once: N prompts ``ids`` (N, L) pooled at ``eos`` (N,), context
        slots ``pos`` (N, n), ``owner`` (N,) rows of ``contexts`` (U, n, W)."""
        return shared_prefix_forward(self.model, ids, eos, pos, owner, contexts, n_prefix)

    def _run(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """One tower pass: N prompts ``ids``/``mask`` (N, L), context slots ``pos`` (N, n), ``rows`` (N, n, W)."""
        with self._context_hook(rows, pos):
            return self.model(input_ids=ids, attention_mask=mask).text_embeds.float()
