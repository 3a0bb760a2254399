"""X-MIC against an independent slow reference written with explicit loops, plus its invariants.

The normalisation flags have the paper's Table 6 meanings: n1 = conditioning features, n2 = X-MIC vector a_v,
n3 = class texts t_k; the sum t_k + alpha * a_v is always normalised.
"""

from __future__ import annotations

import math

import pytest
import torch
from tolerance import assert_close_scaled

from xmic.adapt.base import ClassText, FeatureBatch
from xmic.adapt.xmic_model import XMIC, XMICConfig, pool_video


def ref_layernorm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mu = sum(x[i] for i in range(x.numel())) / x.numel()
    var = sum((x[i] - mu) ** 2 for i in range(x.numel())) / x.numel()
    return (x - mu) / math.sqrt(var + ln.eps) * ln.weight + ln.bias


def ref_block(tokens: list[torch.Tensor], blk) -> list[torch.Tensor]:
    """One pre-LN block over a list of (D,) tokens, attention computed head by head, pair by pair."""
    d = tokens[0].numel()
    heads = blk.attn.num_heads
    dh = d // heads
    wq, wk, wv = blk.attn.in_proj_weight.split(d)
    bq, bk, bv = blk.attn.in_proj_bias.split(d)
    h = [ref_layernorm(x, blk.ln_1) for x in tokens]
    q = [wq @ x + bq for x in h]
    k = [wk @ x + bk for x in h]
    v = [wv @ x + bv for x in h]
    out = []
    for i in range(len(tokens)):
        per_head = []
        for m in range(heads):
            sl = slice(m * dh, (m + 1) * dh)
            scores = [float(q[i][sl] @ k[j][sl]) / math.sqrt(dh) for j in range(len(tokens))]
            mx = max(scores)
            weights = [math.exp(s - mx) for s in scores]
            z = sum(weights)
            per_head.append(sum(w / z * v[j][sl] for j, w in enumerate(weights)))
        attn = blk.attn.out_proj.weight @ torch.cat(per_head) + blk.attn.out_proj.bias
        x = tokens[i] + attn
        fc1, fc2 = blk.mlp[0], blk.mlp[2]
        y = fc1.weight @ ref_layernorm(x, blk.ln_2) + fc1.bias
        y = y * (1.0 / (1.0 + torch.exp(-1.702 * y)))
        out.append(x + fc2.weight @ y + fc2.bias)
    return out


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / math.sqrt(float(x @ x))


def ref_video(frames: torch.Tensor, video_pool: str) -> torch.Tensor:
    """One video's classified feature from its (T, D) frames, frame by frame."""
    t = frames.shape[0]
    if video_pool == "mean":
        return unit(sum(frames[f] for f in range(t)) / t)
    assert video_pool == "norm-mean"
    return unit(sum(unit(frames[f]) for f in range(t)) / t)


@torch.no_grad()
def reference_logits(model: XMIC, cls: torch.Tensor, cond: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    cfg = model.config
    b, t, v, _ = cond.shape
    out = torch.zeros(b, text.shape[0], dtype=cls.dtype)
    for i in range(b):
        frames = []
        for f in range(t):
            toks = [unit(cond[i, f, j]) if cfg.n1 else cond[i, f, j] for j in range(v)]
            for blk in model.spatial:
                toks = ref_block(toks, blk)
            frames.append(sum(toks) / v + model.time_embed[f])
        for blk in model.temporal:
            frames = ref_block(frames, blk)
        u = sum(frames) / t
        l1, l2 = model.mlp[0], model.mlp[2]
        a_v = torch.relu(l2.weight @ torch.relu(l1.weight @ u + l1.bias) + l2.bias)
        if cfg.n2:
            a_v = unit(a_v)
        video = ref_video(cls[i], cfg.video_pool)
        for k in range(text.shape[0]):
            tk = unit(text[k]) if cfg.n3 else text[k]
            w = unit(tk + cfg.alpha * a_v)
            out[i, k] = math.exp(float(model.logit_scale)) * sum(float(video[j] * w[j]) for j in range(w.numel()))
    return out


def make_inputs(b=2, t=4, v=2, d=16, dc=32, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    cls = torch.randn(b, t, d, generator=g, dtype=torch.float64)
    cond = torch.randn(b, t, v, dc, generator=g, dtype=torch.float64)
    text = torch.randn(k, d, generator=g, dtype=torch.float64)
    return cls, cond, text


def randomise(model: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial values everywhere (LayerNorm affine and biases included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 0:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)


#: The six rows of the paper's Table 6 as (n1, n2, n3).
TABLE6_ROWS = {
    "n1": (True, False, False),
    "none": (False, False, False),
    "n2+n3": (False, True, True),
    "n1+n2+n3": (True, True, True),
    "n1+n2": (True, True, False),
    "n1+n3": (True, False, True),
}


def test_defaults_are_the_papers_choice():
    cfg = XMICConfig()
    assert (cfg.n1, cfg.n2, cfg.n3, cfg.alpha, cfg.video_pool) == (True, False, False, 2.0, "mean")


@pytest.mark.numeric
@pytest.mark.parametrize("video_pool", ["mean", "norm-mean"])
@pytest.mark.parametrize("row", list(TABLE6_ROWS))
def test_table6_rows_match_slow_reference_and_train(row, video_pool):
    n1, n2, n3 = TABLE6_ROWS[row]
    # a wider bottleneck than Dc/16 = 2 keeps some ReLU units alive for every row
    cfg = XMICConfig(dim=16, cond_dim=32, num_frames=4, n1=n1, n2=n2, n3=n3, video_pool=video_pool, mlp_hidden=8)
    model = XMIC(cfg).double()
    randomise(model)
    cls, cond, text = make_inputs()  # cond rows are far from unit length, so n1 matters
    cls = cls * torch.linspace(0.2, 5.0, 4, dtype=cls.dtype)[None, :, None]  # unequal frame norms: pools differ
    fast = model(FeatureBatch(cls, cond), ClassText(text * 4.0, [str(i) for i in range(5)]))
    slow = reference_logits(model, cls, cond, text * 4.0)
    assert fast.shape == (2, 5)
    assert_close_scaled(fast, slow, k=256)
    fast.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, (row, name)


@pytest.mark.numeric
def test_flags_change_the_logits_as_the_paper_says():
    """Each flag acts on its own tensor: n2 only on a_v, n3 only on t_k (checked by scaling each input)."""
    cls, cond, text = make_inputs()
    names = [str(i) for i in range(5)]

    def logits(n1, n2, n3, text_scale=1.0, cond_scale=1.0):
        torch.manual_seed(0)
        model = XMIC(XMICConfig(dim=16, cond_dim=32, num_frames=4, n1=n1, n2=n2, n3=n3)).double()
        randomise(model)
        with torch.no_grad():
            return model(FeatureBatch(cls, cond * cond_scale), ClassText(text * text_scale, names))

    # n3 normalises t_k: scaling the texts changes nothing with it, something without it
    assert_close_scaled(logits(True, False, True, text_scale=7.0), logits(True, False, True), k=64)
    assert not torch.allclose(logits(True, False, False, text_scale=7.0), logits(True, False, False))
    # n1 normalises the conditioning features: scaling them changes nothing with it
    assert_close_scaled(logits(True, False, False, cond_scale=5.0), logits(True, False, False), k=64)
    # n2 normalises a_v: the rows differ whenever |a_v| != 1
    assert not torch.allclose(logits(True, True, False), logits(True, False, False))


@pytest.mark.numeric
@pytest.mark.parametrize(
    "views,n1,n2,n3,dc",
    [
        ("F+H", False, True, False, 16),
        ("F", True, False, True, 48),
        ("H", True, True, True, 32),
    ],
)
def test_forward_matches_slow_reference(views, n1, n2, n3, dc):
    v = 1 if views in ("F", "H") else 2
    cfg = XMICConfig(dim=16, cond_dim=dc, num_frames=4, views=views, n1=n1, n2=n2, n3=n3)
    model = XMIC(cfg).double()
    randomise(model)
    cls, cond, text = make_inputs(v=v, dc=dc)
    fast = model(FeatureBatch(cls, cond), ClassText(text, [str(i) for i in range(5)]))
    slow = reference_logits(model, cls, cond, text)
    assert fast.shape == (2, 5)
    assert_close_scaled(fast, slow, k=256)


@pytest.mark.numeric
def test_video_pool_variants():
    """ "mean" averages the raw frames, "norm-mean" the unit frames (the zero-shot feature); both unit length."""
    cls = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)  # (B=1, T=2, D=2)
    assert_close_scaled(pool_video(cls, "mean"), torch.tensor([[3.0, 1.0]], dtype=torch.float64) / 10**0.5, k=4)
    assert_close_scaled(pool_video(cls, "norm-mean"), torch.tensor([[1.0, 1.0]], dtype=torch.float64) / 2**0.5, k=4)
    with pytest.raises(ValueError, match="video_pool"):
        XMICConfig(video_pool="max")


def test_parameter_count_at_paper_width():
    n = sum(p.numel() for p in XMIC(XMICConfig(dim=512, cond_dim=512)).parameters())
    assert n == 3_594_657, n  # ≈3.59 M; no flag or pooling option adds parameters
    for n1, n2, n3 in TABLE6_ROWS.values():
        other = XMIC(XMICConfig(dim=512, cond_dim=512, n1=n1, n2=n2, n3=n3, video_pool="norm-mean"))
        assert sum(p.numel() for p in other.parameters()) == n
    # Dc = 768 (DINOv2-B/14): wider blocks, same MLP output width
    wide = XMIC(XMICConfig(dim=512, cond_dim=768))
    assert wide.mlp[-2].out_features == 512 and wide.mlp[0].out_features == 768 // 16


def test_gradients_reach_only_trainable_parameters():
    model = XMIC(XMICConfig(dim=16, cond_dim=32, num_frames=4)).double()
    randomise(model)
    cls, cond, text = make_inputs()
    text.requires_grad_(False)
    model(FeatureBatch(cls, cond), ClassText(text, list("abcde"))).logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert cls.grad is None and cond.grad is None and text.grad is None


@pytest.mark.numeric
@pytest.mark.parametrize("n2,n3", [(False, False), (True, True)])
def test_zero_instance_vector_gives_zero_shot_ranking(n2, n3):
    """With a_v = 0 and the zero-shot pooling ("norm-mean"), X-MIC is the zero-shot classifier."""
    cfg = XMICConfig(dim=16, cond_dim=32, num_frames=4, n2=n2, n3=n3, video_pool="norm-mean")
    model = XMIC(cfg).double()
    randomise(model)
    with torch.no_grad():
        model.mlp[2].weight.zero_()
        model.mlp[2].bias.fill_(-1.0)  # ReLU clips it to a_v = 0
        model.logit_scale.fill_(math.log(100.0))
    cls, cond, text = make_inputs(b=3, k=7)
    logits = model(FeatureBatch(cls, cond), ClassText(text, list("abcdefg")))
    video = torch.nn.functional.normalize(torch.nn.functional.normalize(cls, dim=-1).mean(1), dim=-1)
    zero_shot = 100.0 * video @ torch.nn.functional.normalize(text, dim=-1).T
    assert_close_scaled(logits, zero_shot, k=64)
    assert torch.equal(logits.argsort(dim=1), zero_shot.argsort(dim=1))


@pytest.mark.numeric
def test_permuting_classes_permutes_logits():
    model = XMIC(XMICConfig(dim=16, cond_dim=32, num_frames=4)).double()
    randomise(model)
    cls, cond, text = make_inputs(k=6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    names = list("abcdef")
    a = model(FeatureBatch(cls, cond), ClassText(text, names))
    b = model(FeatureBatch(cls, cond), ClassText(text[perm], [names[i] for i in perm]))
    assert_close_scaled(b, a[:, perm], k=64)


def test_adapter_bottleneck_width_option():
    default = XMIC(XMICConfig(dim=64, cond_dim=64))
    assert default.mlp[0].out_features == 4 and default.mlp[2].in_features == 4  # Dc / 16
    wide = XMIC(XMICConfig(dim=64, cond_dim=64, mlp_hidden=32))
    assert wide.mlp[0].out_features == 32 and wide.mlp[2].in_features == 32
    extra = sum(p.numel() for p in wide.parameters()) - sum(p.numel() for p in default.parameters())
    assert extra == (32 - 4) * (64 + 1) + (32 - 4) * 64  # first layer's weights and biases, second layer's weights
