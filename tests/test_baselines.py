"""Baselines trained from the cache, on a tiny random-weight CLIP built offline (xmic.demo.tiny_models)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_clips import tiny_clip_with_text_width
from tolerance import assert_close_scaled

from xmic.adapt.base import ClassText, FeatureBatch, l2norm
from xmic.adapt.baselines import (
    BASELINE_NAMES,
    VITA_CLIP_MESSAGE,
    CLIPAdapter,
    CLIPAdapterStar,
    VitaClipMethod,
    ZeroShot,
    build_baseline,
)
from xmic.adapt.prompt_learning import A5, CoCoOp, CoOp
from xmic.adapt.text_encoder import FrozenTextEncoder

D = 64  # joint space (projection) width; D // 16 = 4 hidden units in the Co-CoOp meta-net
W = 48  # text token width, different from D so that a mix-up of the two fails
T = 4
B = 3
NAMES = ["cut onion", "knife", "chopping board", "x ray", "pan"]
WORDS = ["a", "photo", "video", "of", "the", "cut", "onion", "knife", "chopping", "board", "ray", "pan"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_clip_with_text_width(tmp_path_factory.mktemp("clip") / "tiny", WORDS, dim=D, width=W)


@pytest.fixture(scope="module")
def text(clip_dir: Path) -> FrozenTextEncoder:
    return FrozenTextEncoder(clip_dir)


@pytest.fixture
def classes(text: FrozenTextEncoder) -> ClassText:
    return ClassText(emb=text.encode(NAMES), names=list(NAMES))


@pytest.fixture
def batch() -> FeatureBatch:
    g = torch.Generator().manual_seed(0)
    return FeatureBatch(cls=torch.randn(B, T, D, generator=g), cond=torch.randn(B, T, 2, D, generator=g))


def all_methods(text: FrozenTextEncoder) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "zero-shot": ZeroShot(),
        "clip-adapter": CLIPAdapter(D),
        "clip-adapter-star": CLIPAdapterStar(D, T),
        "coop": CoOp(text, D),
        "cocoop": CoCoOp(text, D),
        "a5": A5(text, D, T),
    }


def test_shapes_and_trainable_flags(text: FrozenTextEncoder, batch: FeatureBatch, classes: ClassText) -> None:
    for name, model in all_methods(text).items():
        logits = model(batch, classes)
        assert logits.shape == (B, len(NAMES)), name
        assert logits.dtype == torch.float32 and torch.isfinite(logits).all(), name
        n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert model.trainable == (name != "zero-shot") and (n_trainable > 0) == model.trainable, name
    assert ZeroShot().state_dict() == {} and list(ZeroShot().parameters()) == []
    assert CoOp(text, D).ctx.shape == (16, W)
    assert A5(text, D, T).ctx.shape == (16, W)
    assert CoCoOp(text, D).ctx.shape == (16, W)  # the authors' N_CTX default, random
    assert CoCoOp(text, D, n_ctx=4, ctx_init="a photo of a").ctx.shape == (4, W)  # one token per tiny-vocab word


@pytest.mark.numeric
def test_zero_shot_equals_loop(batch: FeatureBatch, classes: ClassText) -> None:
    logits = ZeroShot()(batch, classes)
    ref = torch.empty_like(logits)
    for b in range(B):
        frames = [f / f.norm() for f in batch.cls[b]]
        v = sum(frames) / len(frames)
        v = v / v.norm()
        for k in range(len(NAMES)):
            t = classes.emb[k] / classes.emb[k].norm()
            ref[b, k] = 100.0 * (v @ t)
    assert_close_scaled(logits, ref, k=64)


@pytest.mark.numeric
def test_adapter_ratio_zero_is_zero_shot(batch: FeatureBatch, classes: ClassText) -> None:
    zs = ZeroShot()(batch, classes)
    ad = CLIPAdapter(D, ratio=0.0, pool="norm-mean")(batch, classes)
    assert_close_scaled(ad, zs, k=16)
    assert torch.equal(ad.argsort(dim=1), zs.argsort(dim=1))
    assert not torch.allclose(CLIPAdapter(D, ratio=0.2, pool="norm-mean")(batch, classes), zs)


@pytest.mark.numeric
@pytest.mark.parametrize(
    ("position", "template"),
    [("end", "a photo of a {}."), ("middle", "a photo {} of a."), ("front", "{} a photo of a.")],
)
def test_context_hook_matches_plain_tokenisation(text: FrozenTextEncoder, position: str, template: str) -> None:
    ctx = text.word_embeddings("a photo of a")
    assert ctx.shape == (4, W)
    hooked = text.encode_with_context(NAMES, ctx, position)
    plain = text.encode(NAMES, template)
    assert hooked.shape == (len(NAMES), D)
    assert_close_scaled(hooked, plain, k=128)
    assert_close_scaled(text.encode(NAMES, template), plain, k=16)  # the hook is gone after the call


@pytest.mark.numeric
def test_per_instance_context_matches_plain(text: FrozenTextEncoder) -> None:
    ctx = torch.stack([text.word_embeddings("a photo of a"), text.word_embeddings("the video of the")])
    out = text.encode_with_context(NAMES, ctx)
    assert out.shape == (2, len(NAMES), D)
    assert_close_scaled(out[0], text.encode(NAMES, "a photo of a {}."), k=128)
    assert_close_scaled(out[1], text.encode(NAMES, "the video of the {}."), k=128)
    with torch.no_grad():
        assert_close_scaled(text.encode_with_context(NAMES, ctx, chunk=len(NAMES)), out.detach(), k=64)


def test_gradients_reach_context_and_meta_net_not_the_tower(
    text: FrozenTextEncoder, batch: FeatureBatch, classes: ClassText
) -> None:
    for model in (CoOp(text, D), CoCoOp(text, D), A5(text, D, T)):
        model(batch, classes).logsumexp(dim=1).sum().backward()
        assert model.ctx.grad is not None and model.ctx.grad.abs().sum() > 0
        assert model.logit_scale.grad is not None
        if isinstance(model, CoCoOp):
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.meta_net.parameters())
        if isinstance(model, A5):
            assert model.temporal.time_embed.grad is not None
    assert all(not p.requires_grad and p.grad is None for p in text.model.parameters())
    keys = set(CoOp(text, D).state_dict())
    assert keys == {"ctx", "logit_scale"}  # the frozen tower is not part of a checkpoint


@pytest.mark.numeric
def test_permuting_classes_permutes_logits(text: FrozenTextEncoder, batch: FeatureBatch, classes: ClassText) -> None:
    perm = torch.tensor([3, 0, 4, 1, 2])
    shuffled = ClassText(emb=classes.emb[perm], names=[NAMES[i] for i in perm])
    with torch.no_grad():
        for name, model in all_methods(text).items():
            model.eval()
            assert_close_scaled(model(batch, shuffled), model(batch, classes)[:, perm], k=64, what=name)


@pytest.mark.parametrize("name", ["clip-adapter", "clip-adapter-star", "coop", "cocoop", "a5"])
def test_few_steps_reduce_the_loss(text: FrozenTextEncoder, classes: ClassText, name: str) -> None:
    torch.manual_seed(0)
    model = all_methods(text)[name]
    g = torch.Generator().manual_seed(1)
    toy = FeatureBatch(cls=torch.randn(6, T, D, generator=g), cond=torch.zeros(6, T, 1, D))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(toy, classes), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.numeric
def test_eval_cache_follows_the_context(text: FrozenTextEncoder, batch: FeatureBatch, classes: ClassText) -> None:
    model = CoOp(text, D).eval()
    with torch.no_grad():
        first = model(batch, classes)
        assert_close_scaled(model(batch, classes), first, k=16)
    opt = torch.optim.AdamW([model.ctx], lr=0.1)
    model(batch, classes).sum().backward()
    opt.step()
    with torch.no_grad():
        after = model(batch, classes)
    assert_close_scaled(after, model.logit_scale.exp() * _coop_reference(model, batch, classes), k=64)
    assert not torch.allclose(after, first)


def _coop_reference(model: CoOp, batch: FeatureBatch, classes: ClassText) -> torch.Tensor:
    v = l2norm(batch.cls.mean(dim=1))  # the authors' form: raw frame mean, prompts without the final period
    return v @ l2norm(model.text.encode_with_context(classes.names, model.ctx.detach(), period=False)).t()


@pytest.mark.numeric
def test_cocoop_chunked_eval_equals_full(text: FrozenTextEncoder, batch: FeatureBatch, classes: ClassText) -> None:
    model = CoCoOp(text, D, chunk=len(NAMES)).eval()
    with torch.no_grad():
        chunked = model(batch, classes)
        model.chunk = None
        assert_close_scaled(model(batch, classes), chunked, k=64)


def _saved_bytes(fn) -> tuple[torch.Tensor, int]:
    """``fn()`` and the bytes autograd keeps for its backward pass (outside checkpointed regions)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total


@pytest.mark.numeric
@pytest.mark.parametrize("chunk", [1, 4, 7, 15])
def test_chunked_context_encoding_equals_unchunked_with_gradients(text: FrozenTextEncoder, chunk: int) -> None:
    """B x K = 15 prompts in passes of ``chunk``: same embeddings and same context gradients as one pass."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(B, 4, W, generator=g) * 0.1 + text.word_embeddings("a photo of a")
    weight = torch.randn(B, len(NAMES), D, generator=g)
    results = []
    for c in (None, chunk):
        ctx = base.clone().requires_grad_(True)
        out, saved = _saved_bytes(lambda ctx=ctx, c=c: text.encode_with_context(NAMES, ctx, "middle", chunk=c))
        (out * weight).sum().backward()
        results.append((out.detach(), ctx.grad, saved))
    (full, full_grad, full_saved), (part, part_grad, part_saved) = results
    assert part.shape == (B, len(NAMES), D)
    assert_close_scaled(part, full, k=64, what="embeddings")
    assert_close_scaled(part_grad, full_grad, k=64, what="context gradient")
    if chunk < B * len(NAMES):  # checkpointed passes keep only their inputs and outputs for the backward pass
        assert part_saved < full_saved / 4, (part_saved, full_saved)
    shared = text.word_embeddings("the video of the")
    assert_close_scaled(
        text.encode_with_context(NAMES, shared, chunk=chunk), text.encode_with_context(NAMES, shared), k=64
    )


@pytest.mark.numeric
def test_cocoop_chunked_training_step_equals_unchunked(
    text: FrozenTextEncoder, batch: FeatureBatch, classes: ClassText
) -> None:
    torch.manual_seed(0)
    model = CoCoOp(text, D, chunk=None)
    labels = torch.tensor([0, 3, 4])
    grads = []
    for chunk in (None, 2, 6):
        model.chunk = chunk
        model.zero_grad(set_to_none=True)
        logits = model(batch, classes)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        grads.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    (ref_logits, ref_grads), *others = grads
    assert set(ref_grads) == {
        "ctx",
        "logit_scale",
        "meta_net.0.weight",
        "meta_net.0.bias",
        "meta_net.2.weight",
        "meta_net.2.bias",
    }
    for logits, g in others:
        assert_close_scaled(logits, ref_logits, k=64, what="logits")
        for name, ref in ref_grads.items():  # sums over batch x classes x tokens, in chunks: more roundings
            assert_close_scaled(g[name], ref, k=256, what=f"gradient of {name}")
    with pytest.raises(ValueError, match="chunk must be a positive number of prompts"):
        text.encode_with_context(NAMES, torch.zeros(B, 4, W), chunk=0)


def test_factory_builds_every_baseline(clip_dir: Path) -> None:
    expected = {
        "zero-shot": ZeroShot,
        "clip-adapter": CLIPAdapter,
        "clip-adapter-star": CLIPAdapterStar,
        "coop": CoOp,
        "cocoop": CoCoOp,
        "a5": A5,
        "vita-clip": VitaClipMethod,
    }
    assert set(BASELINE_NAMES) == set(expected)
    for name, cls in expected.items():
        model = build_baseline(name, dim=D, num_frames=T, text_model_dir=clip_dir)
        assert type(model) is cls, name
    assert build_baseline("clip-adapter", dim=D, num_frames=T, ratio=0.5).ratio == 0.5


def test_factory_errors(clip_dir: Path, tmp_path: Path) -> None:
    assert "--frames-cache" in VITA_CLIP_MESSAGE
    with pytest.raises(ValueError, match="unknown baseline 'clip'.*zero-shot.*cocoop"):
        build_baseline("clip", dim=D, num_frames=T)
    for name in ("coop", "cocoop", "a5", "vita-clip"):
        with pytest.raises(ValueError, match=f"'{name}'.*text_model_dir.*same CLIP weights"):
            build_baseline(name, dim=D, num_frames=T)
    with pytest.raises(ValueError, match="projects to 64 but the cached features are 32-wide"):
        build_baseline("coop", dim=32, num_frames=T, text_model_dir=clip_dir)
    with pytest.raises(FileNotFoundError, match="no CLIP weights at .*missing"):
        FrozenTextEncoder(tmp_path / "absent")


def test_bad_inputs_give_clear_errors(text: FrozenTextEncoder, classes: ClassText) -> None:
    with pytest.raises(ValueError, match="16 frames but the temporal embedding covers 4"):
        A5(text, D, T)(FeatureBatch(cls=torch.randn(1, 16, D), cond=torch.zeros(1, 16, 1, D)), classes)
    with pytest.raises(ValueError, match="16 frames but the temporal embedding covers 4"):
        CLIPAdapterStar(D, T)(FeatureBatch(cls=torch.randn(1, 16, D), cond=torch.zeros(1, 16, 1, D)), classes)
    with pytest.raises(
        ValueError,
        match="class 1 'knife knife.*': the prompt with 16 context tokens is 99 tokens, longer than the text encoder's 77",
    ):
        text.encode_with_context(["pan", "knife " * 80], torch.zeros(16, W))
    with pytest.raises(ValueError, match=r"ctx must be \(n_ctx, 48\)"):
        text.encode_with_context(NAMES, torch.zeros(4, D))
    with pytest.raises(ValueError, match="class_position must be one of end, middle, front"):
        CoOp(text, D, class_position="left")
