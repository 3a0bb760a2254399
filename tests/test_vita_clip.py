"""Vita-CLIP on a tiny random CLIP: the prompted vision tower against a slow hand-written reference, the identity
configuration against plain CLIP, one training step (only prompts move), shapes and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tolerance import assert_close_scaled

from xmic.adapt.base import ClassText
from xmic.adapt.vita_clip import VitaClip, VitaClipVision

FRAMES = 4
WORDS = ["cut", "open", "take", "wash", "onion"]
CLASSES = ClassText(emb=torch.zeros(3, 32), names=["cut onion", "open", "take wash"])


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xmic.demo.tiny_models import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("vita") / "clip", vocab_words=WORDS)


@pytest.fixture(scope="module")
def clip(clip_dir: Path):
    from transformers import CLIPModel

    return CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()


def _pixels(b: int = 2, t: int = FRAMES, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _perturb(module: torch.nn.Module, seed: int = 3) -> None:
    """Move every Vita-CLIP tensor (trainable or not) off its init, so no term of the reference is trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))


# --- slow reference: one frame, one layer, one head at a time, in float64, with the authors' token order ---------


def _ln(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()


def _lin(x: torch.Tensor, lin: torch.nn.Linear) -> torch.Tensor:
    out = x @ lin.weight.double().t()
    return out if lin.bias is None else out + lin.bias.double()


def _mha(q_in: torch.Tensor, kv_in: torch.Tensor, mod, heads: int) -> torch.Tensor:
    """Multi-head attention of rows ``q_in`` (Lq, W) over ``kv_in`` (Lk, W) with q/k/v/out_proj of ``mod``."""
    q, k, v = _lin(q_in, mod.q_proj), _lin(kv_in, mod.k_proj), _lin(kv_in, mod.v_proj)
    w = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        sl = slice(h * w, (h + 1) * w)
        scores = q[:, sl] @ k[:, sl].t() / math.sqrt(w)
        weights = torch.exp(scores - scores.max(-1, keepdim=True).values)
        outs.append((weights / weights.sum(-1, keepdim=True)) @ v[:, sl])
    return _lin(torch.cat(outs, dim=-1), mod.out_proj)


def _reference_video(clip, vision: VitaClipVision, video: torch.Tensor) -> torch.Tensor:
    """Vita-CLIP's video embedding of one clip ``video`` (T, 3, S, S) -> (D,), written from the paper/code's design."""
    vm = clip.vision_model
    emb, heads = vm.embeddings, clip.config.vision_config.num_attention_heads
    t_count = video.shape[0]
    frames = []
    for t in range(t_count):  # CLS + patches + positions (+ time embedding), then pre-LN
        patches = F.conv2d(video[t : t + 1].double(), emb.patch_embedding.weight.double(), stride=emb.patch_size)
        tokens = torch.cat([emb.class_embedding.double()[None], patches.flatten(2)[0].t()], dim=0)
        tokens = tokens + emb.position_embedding.weight.double()
        if vision.time_embed is not None:
            tokens = tokens + vision.time_embed[t].double()
        frames.append(_ln(tokens, vm.pre_layrnorm))
    for i, layer in enumerate(vm.encoder.layers):
        cls = torch.stack([f[0] for f in frames])  # (T, W), this layer's input CLS of every frame
        c = _lin(cls, vision.cls_proj[i]) if vision.cls_proj is not None else None
        local = vision.local_prompts[i].double() + c if vision.local_prompts is not None else None
        summary = None
        if vision.summary is not None:
            s_mod = vision.summary[i]
            h = _ln(c, s_mod.norm)
            summary = c + _mha(h, h, s_mod, heads)
        n_global = 0 if vision.global_prompts is None else vision.global_prompts.shape[1]
        new_frames = []
        for t in range(t_count):
            f = frames[t]
            parts = [f[:1]]
            if local is not None:
                parts.append(local)
            if n_global:
                parts.append(vision.global_prompts[i].double())
            parts.append(f[1:])
            if summary is not None:
                parts.append(summary[t : t + 1])
            seq = torch.cat(parts)  # [CLS, local (T), global (Ng), patches, summary]
            h = _ln(seq, layer.layer_norm1)
            seq = seq + _mha(h, h, layer.self_attn, heads)
            n_local = 0 if local is None else t_count
            seq = torch.cat([seq[:1], seq[1 + n_local :]])  # drop the local prompts
            if summary is not None:
                seq = seq[:-1]  # drop the summary token
            hidden = _lin(_ln(seq, layer.layer_norm2), layer.mlp.fc1)
            seq = seq + _lin(hidden * torch.sigmoid(1.702 * hidden), layer.mlp.fc2)  # quick_gelu MLP
            new_frames.append(torch.cat([seq[:1], seq[1 + n_global :]]))  # drop the global prompts
        frames = new_frames
    cls = torch.stack([_ln(f[0], vm.post_layernorm) for f in frames])
    return _lin(cls, clip.visual_projection).mean(0)


def _vision(clip, **kw) -> VitaClipVision:
    torch.manual_seed(0)
    return VitaClipVision(clip.vision_model, clip.visual_projection, FRAMES, **kw)


@pytest.mark.numeric
def test_prompted_vision_matches_slow_reference(clip):
    vision = _vision(clip, num_global_prompts=3)
    _perturb(vision)
    pixels = _pixels()
    with torch.no_grad():
        fast = vision(pixels)
        slow = torch.stack([_reference_video(clip, vision, v) for v in pixels])
    assert fast.shape == (2, clip.config.projection_dim) and fast.dtype == torch.float32
    assert_close_scaled(fast.double(), slow, k=64, dtype=torch.float32)
    # gradient checkpointing changes nothing in the forward
    vision.checkpoint_layers = True
    assert torch.equal(vision(pixels), fast)


@pytest.mark.numeric
@pytest.mark.parametrize("parts", [dict(num_global_prompts=0), dict(local_prompts=False), dict(summary_token=False)])
def test_each_prompt_kind_alone_matches_reference(clip, parts):
    vision = _vision(clip, **parts)
    _perturb(vision)
    pixels = _pixels(b=1)
    with torch.no_grad():
        assert_close_scaled(vision(pixels).double()[0], _reference_video(clip, vision, pixels[0]), k=64,
                            dtype=torch.float32)  # fmt: skip


@pytest.mark.numeric
def test_identity_configuration_is_plain_clip(clip):
    vision = _vision(clip, num_global_prompts=0, local_prompts=False, summary_token=False, time_embedding=False)
    assert vision.trainable_parameters() == []
    pixels = _pixels()
    with torch.no_grad():
        out = clip.get_image_features(pixel_values=pixels.flatten(0, 1))
        per_frame = out if isinstance(out, torch.Tensor) else out.pooler_output
        expected = per_frame.view(2, FRAMES, -1).mean(1)
        assert_close_scaled(vision(pixels), expected, k=64)
        # a zero time embedding is the same identity
        with_time = _vision(clip, num_global_prompts=0, local_prompts=False, summary_token=False)
        with_time.time_embed.zero_()
        assert_close_scaled(with_time(pixels), expected, k=64, what="zero time embedding")


def _frozen_state(model: VitaClip) -> dict[str, torch.Tensor]:
    state = {}
    for m, module in enumerate(model.frozen_modules()):
        state.update({f"{m}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    state.update({f"cls_proj.{k}": v.detach().clone() for k, v in model.vision.cls_proj.state_dict().items()})
    return state


def test_one_step_moves_only_the_prompts(clip_dir):
    torch.manual_seed(0)
    model = VitaClip(clip_dir, FRAMES, n_ctx=4, num_global_prompts=2)
    model.train()
    trainable = model.trainable_parameters()
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {
        "ctx",
        "logit_scale",  # trained, as in the authors' code
        "vision.time_embed",
        "vision.global_prompts",
        "vision.local_prompts",
        *(f"vision.summary.{i}.{n}" for i in range(2) for n, _ in model.vision.summary[i].named_parameters()),
    }
    # the state holds Vita-CLIP's tensors only, never a CLIP weight
    assert all(k.startswith(("ctx", "logit_scale", "vision.")) for k in model.state_dict())
    assert not any("encoder" in k or "embeddings" in k for k in model.state_dict())
    before_frozen = _frozen_state(model)
    before_prompts = [p.detach().clone() for p in trainable]
    opt = torch.optim.AdamW(trainable, lr=1e-2)

    logits = model(_pixels(), CLASSES)
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n
    for module in model.frozen_modules():
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
        assert not module.training
    opt.step()

    after_frozen = _frozen_state(model)
    assert after_frozen.keys() == before_frozen.keys()
    assert all(torch.equal(before_frozen[k], after_frozen[k]) for k in before_frozen)
    assert all(not torch.equal(b, p) for b, p in zip(before_prompts, trainable, strict=True))


def test_shapes_scale_and_refusals(clip_dir, clip):
    model = VitaClip(clip_dir, FRAMES, n_ctx=4)
    assert model.logit_scale.exp().item() == pytest.approx(1 / 0.07) and model.logit_scale.requires_grad  # theirs
    clips_own = VitaClip(clip_dir, FRAMES, n_ctx=4, logit_scale=None, learn_scale=False).logit_scale
    assert clips_own.item() == pytest.approx(clip.logit_scale.item()) and not clips_own.requires_grad
    with torch.no_grad():
        logits = model.eval()(_pixels(b=3), CLASSES)
        assert logits.shape == (3, 3) and torch.isfinite(logits).all()
        assert logits.abs().max() <= model.logit_scale.exp() + 1e-4  # a scaled cosine
        assert torch.equal(model(_pixels(b=3), CLASSES.names), logits)  # names alone do too
    with pytest.raises(ValueError, match="5 frames but Vita-CLIP was built for 4"):
        model(_pixels(t=FRAMES + 1), CLASSES)
    with pytest.raises(ValueError, match=r"pixels must be \(B, T, 3, 32, 32\)"):
        model(torch.zeros(2, 3, 32, 32), CLASSES)
    with pytest.raises(FileNotFoundError, match="no CLIP weights"):
        VitaClip(clip_dir / "missing", FRAMES)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_step(clip_dir):
    model = VitaClip(clip_dir, FRAMES, n_ctx=4, checkpoint_layers=True).cuda()
    logits = model(_pixels().cuda(), CLASSES)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.trainable_parameters())
