"""The text tower with each context's shared prefix run once equals the full Hugging Face forward on every prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_clips import tiny_clip_with_text_width
from tolerance import assert_close_scaled

from xmic.adapt.base import ClassText, FeatureBatch
from xmic.adapt.prompt_learning import A5, CoCoOp, CoOp
from xmic.adapt.text_encoder import FrozenTextEncoder

D, W, T, B = 64, 48, 4, 3
NAMES = ["cut onion", "knife", "chopping board", "x ray", "pan"]  # 1 to 3 tokens: padded suffixes
WORDS = ["a", "photo", "video", "of", "the", "cut", "onion", "knife", "chopping", "board", "ray", "pan"]


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> FrozenTextEncoder:
    path: Path = tiny_clip_with_text_width(tmp_path_factory.mktemp("clip") / "tiny", WORDS, dim=D, width=W, seed=2)
    return FrozenTextEncoder(path)


def _encode(text: FrozenTextEncoder, share: bool, ctx: torch.Tensor, position: str, chunk: int | None):
    text.share_prefix = share
    try:
        ctx = ctx.clone().requires_grad_(True)
        out = text.encode_with_context(NAMES, ctx, position, chunk=chunk)
        out.square().sum().backward()
        return out.detach(), ctx.grad
    finally:
        text.share_prefix = True


def test_the_clip_tower_takes_the_shared_prefix_path(text: FrozenTextEncoder) -> None:
    assert text.share_prefix


@pytest.mark.numeric
@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_shared_prefix_equals_full_forward(text: FrozenTextEncoder, position: str) -> None:
    """Per-instance contexts (B, n, W) in one pass and in checkpointed passes that split instances, and one
    shared context (n, W): embeddings and context gradients as the full forward's."""
    g = torch.Generator().manual_seed(5)
    for ctx, chunk in ((torch.randn(B, 6, W, generator=g), None), (torch.randn(B, 6, W, generator=g), 4)):
        for c in (ctx * 0.5, ctx[0] * 0.5):
            full, full_grad = _encode(text, False, c, position, chunk)
            fast, fast_grad = _encode(text, True, c, position, chunk)
            assert fast.shape == full.shape == (c.shape[:-2] + (len(NAMES), D))
            assert_close_scaled(fast, full, k=64, what=f"embeddings ({position}, chunk {chunk})")
            assert_close_scaled(fast_grad, full_grad, k=256, what=f"context gradient ({position}, chunk {chunk})")


@pytest.mark.numeric
@pytest.mark.parametrize("method", ["coop", "cocoop", "a5"])
def test_training_steps_equal_the_full_forward(text: FrozenTextEncoder, method: str) -> None:
    """Three AdamW steps from the same start: the logits of every step and after the last agree to float rounding.

    (Parameters are not compared one by one: a key bias has a true gradient of zero, and Adam turns its rounding
    noise into steps of the size of the learning rate, which change no logit.)"""
    g = torch.Generator().manual_seed(0)
    batch = FeatureBatch(cls=torch.randn(B, T, D, generator=g), cond=torch.randn(B, T, 2, D, generator=g))
    classes = ClassText(emb=text.encode(NAMES), names=list(NAMES))
    labels = torch.tensor([0, 3, 4])
    build = {"coop": lambda: CoOp(text, D), "cocoop": lambda: CoCoOp(text, D), "a5": lambda: A5(text, D, T)}[method]
    runs = []
    for share in (False, True):
        torch.manual_seed(0)
        model = build()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        text.share_prefix = share
        try:
            logits = []
            for _ in range(3):
                out = model(batch, classes)
                opt.zero_grad()
                torch.nn.functional.cross_entropy(out, labels).backward()
                opt.step()
                logits.append(out.detach())
            with torch.no_grad():
                logits.append(model(batch, classes))
        finally:
            text.share_prefix = True
        runs.append(torch.stack(logits))
    assert_close_scaled(runs[1], runs[0], k=256, what=f"{method} logits")
