"""The baselines' two forms (the authors' trainers, the original papers) against slow references written from the
formulas, their options through config / CLI / run folder / table header, the Dassl schedule, one-string prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_clips import tiny_clip_with_text_width

from xmic.adapt.base import ClassText, FeatureBatch
from xmic.adapt.baseline_options import PAPER_FORMS, AdapterStarOptions, form_defaults, resolve_options
from xmic.adapt.baselines import CLIPAdapter, CLIPAdapterStar, build_baseline
from xmic.adapt.config import FLAGS_VERSION, StaleRunError, TrainConfig
from xmic.adapt.factory import build_model
from xmic.adapt.prompt_learning import A5, CoCoOp, CoOp
from xmic.adapt.text_encoder import FrozenTextEncoder
from xmic.adapt.trainer import epoch_lr, steps_per_epoch

D, W, T, B = 64, 48, 4, 3
NAMES = ["cut onion", "knife", "chopping board", "pan"]
WORDS = ["a", "photo", "of", "cut", "onion", "knife", "chopping", "board", "pan"]
EPS = torch.finfo(torch.float32).eps


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
    return FeatureBatch(cls=3.0 * torch.randn(B, T, D, generator=g), cond=torch.zeros(B, T, 1, D))


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm()


def frame_mean(frames: torch.Tensor, pool: str) -> torch.Tensor:
    """(T, D) -> (D,): the sum of the (raw or unit) frames over T, by a loop."""
    total = torch.zeros(frames.shape[-1])
    for f in frames:
        total = total + (f if pool == "mean" else unit(f))
    mean = total / frames.shape[0]
    return mean if pool == "mean" else unit(mean)


def close(got: torch.Tensor, want: torch.Tensor, scale: float, k: float = 256) -> None:
    """Equal within ``k`` float32 epsilons of ``scale`` (the logits' bound exp(s)); torch's numbers on failure."""
    torch.testing.assert_close(got, want, rtol=0, atol=k * EPS * scale)


def block_reference(block, x: torch.Tensor) -> torch.Tensor:
    """One pre-LN block on one clip's tokens (T, D), head by head, from the block's own weights."""
    attn = block.attn
    heads, d = attn.num_heads, x.shape[-1]
    dh = d // heads
    h = torch.nn.functional.layer_norm(x, (d,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
    q, k, v = (h @ w.t() + b for w, b in zip(attn.in_proj_weight.chunk(3), attn.in_proj_bias.chunk(3), strict=True))
    mixed = [
        torch.softmax(q[:, s] @ k[:, s].t() / dh**0.5, -1) @ v[:, s]
        for s in (slice(i * dh, (i + 1) * dh) for i in range(heads))
    ]
    x = x + torch.cat(mixed, dim=-1) @ attn.out_proj.weight.t() + attn.out_proj.bias
    h = torch.nn.functional.layer_norm(x, (d,), block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
    fc1, fc2 = block.mlp[0], block.mlp[2]
    u = h @ fc1.weight.t() + fc1.bias
    return x + (u * torch.sigmoid(1.702 * u)) @ fc2.weight.t() + fc2.bias


def temporal_reference(temporal, frames: torch.Tensor) -> torch.Tensor:
    """(T, D) -> (D,): time embedding, every block, the mean over T."""
    x = frames + temporal.time_embed[: frames.shape[0]]
    for block in temporal.blocks:
        x = block_reference(block, x)
    return sum(x[t] for t in range(x.shape[0])) / x.shape[0]


def adapter_reference(adapter, f: torch.Tensor) -> torch.Tensor:
    return torch.relu(adapter[2].weight @ torch.relu(adapter[0].weight @ f))


def perturb(module: torch.nn.Module) -> None:
    """Move the weights away from their near-identity initialisation, so that every path shows."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad and p.dim() > 0:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def scores(model, v: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """exp(s) * cos(v, t_k) for every k, by a loop; ``texts`` (K, D)."""
    s = model.logit_scale.detach().exp().item()
    return torch.stack([s * (unit(v) @ unit(t)) for t in texts])


@pytest.mark.parametrize("form", ["authors", "paper"])
@pytest.mark.numeric
def test_coop_matches_the_formula(text, classes, batch, form) -> None:
    """The context initialised from words is those words: the prompts are the whole strings, tokenised plainly."""
    options = resolve_options("coop", form, {"ctx_init": "a photo of a"})
    model = CoOp(text, D, **vars(options)).eval()
    template = "a photo of a {}" + ("." if form == "paper" else "")
    with torch.no_grad():
        logits = model(batch, classes)
        texts = text.encode(NAMES, template)
        want = torch.stack([scores(model, frame_mean(batch.cls[b], options.pool), texts) for b in range(B)])
    close(logits, want, model.logit_scale.detach().exp().item())


@pytest.mark.parametrize("form", ["authors", "paper"])
@pytest.mark.numeric
def test_cocoop_matches_the_formula(text, classes, batch, form) -> None:
    """Per video: p = pooled frames, ctx + meta(p) through the tower alone, scored against l2norm(p)."""
    torch.manual_seed(0)
    options = resolve_options("cocoop", form)
    model = CoCoOp(text, D, **vars(options)).eval()
    assert model.ctx.shape == ((16, W) if form == "authors" else (4, W))
    perturb(model.meta_net)
    net = model.meta_net
    with torch.no_grad():
        logits = model(batch, classes)
        rows = []
        for b in range(B):
            p = frame_mean(batch.cls[b], options.pool)
            shift = net[2].weight @ torch.relu(net[0].weight @ p + net[0].bias) + net[2].bias
            texts = text.encode_with_context(NAMES, model.ctx + shift, period=options.period)
            rows.append(scores(model, p, texts))
    close(logits, torch.stack(rows), model.logit_scale.detach().exp().item())


@pytest.mark.parametrize("form", ["authors", "paper"])
@pytest.mark.numeric
def test_a5_matches_the_formula(text, classes, batch, form) -> None:
    """Temporal(raw or unit frames), head by head; the authors' class at the end, Ju et al.'s in the middle."""
    torch.manual_seed(0)
    options = resolve_options("a5", form, {"ctx_init": "a photo of a"})
    model = A5(text, D, T, **vars(options)).eval()
    blocks = model.temporal.blocks
    assert blocks[0].attn.num_heads == 8 and blocks[0].mlp[0].out_features == D // 4
    perturb(model.temporal)
    template = {"authors": "a photo of a {}", "paper": "a photo {} of a."}[form]
    with torch.no_grad():
        logits = model(batch, classes)
        texts = text.encode(NAMES, template)
        rows = []
        for b in range(B):
            frames = batch.cls[b] if options.pool == "mean" else torch.stack([unit(f) for f in batch.cls[b]])
            rows.append(scores(model, temporal_reference(model.temporal, frames), texts))
    close(logits, torch.stack(rows), model.logit_scale.detach().exp().item())


@pytest.mark.parametrize("form", ["authors", "paper"])
@pytest.mark.numeric
def test_clip_adapter_matches_the_formula(classes, batch, form) -> None:
    """The authors': 0.2 frozen + 0.8 adapter on the raw frame mean; Gao et al.'s: 0.8 + 0.2 on the unit feature."""
    torch.manual_seed(0)
    options = resolve_options("clip-adapter", form)
    model = CLIPAdapter(D, **vars(options))
    assert model.logit_scale.requires_grad == (form == "authors")
    with torch.no_grad():
        logits = model(batch, classes)
        frozen = 0.2 if form == "authors" else 0.8
        rows = []
        for b in range(B):
            f = frame_mean(batch.cls[b], options.pool)
            rows.append(scores(model, frozen * f + (1 - frozen) * adapter_reference(model.adapter, f), classes.emb))
    close(logits, torch.stack(rows), model.logit_scale.detach().exp().item())


@pytest.mark.parametrize("form", ["authors", "paper"])
@pytest.mark.numeric
def test_clip_adapter_star_matches_the_formula(classes, batch, form) -> None:
    """The authors': l2norm(0.2 mean_T(x) + 0.8 A(Temporal(x))) on raw frames, width 4D; the residual form:
    f = l2norm(Temporal(unit frames)), l2norm(0.8 f + 0.2 A(f))."""
    torch.manual_seed(0)
    options = resolve_options("clip-adapter-star", form)
    model = CLIPAdapterStar(D, T, **vars(options))
    blocks = model.temporal.blocks
    assert blocks[0].attn.num_heads == 8
    assert blocks[0].mlp[0].out_features == (4 * D if form == "authors" else D // 4)
    perturb(model.temporal)
    with torch.no_grad():
        logits = model(batch, classes)
        rows = []
        for b in range(B):
            if form == "authors":
                h = temporal_reference(model.temporal, batch.cls[b])
                x = 0.2 * frame_mean(batch.cls[b], "mean") + 0.8 * adapter_reference(model.adapter, h)
            else:
                f = unit(temporal_reference(model.temporal, torch.stack([unit(v) for v in batch.cls[b]])))
                x = 0.8 * f + 0.2 * adapter_reference(model.adapter, f)
            rows.append(scores(model, x, classes.emb))
    close(logits, torch.stack(rows), model.logit_scale.detach().exp().item())


@pytest.mark.numeric
def test_star_variants_are_named_options(classes, batch) -> None:
    """frozen_branch "temporal" with the authors' raw frames is f = l2norm(Temporal(x)) in the residual form."""
    torch.manual_seed(0)
    model = CLIPAdapterStar(D, T, frozen_branch="temporal", ratio=0.5, heads=4, bottle_neck=2.0)
    assert model.temporal.blocks[0].attn.num_heads == 4 and model.temporal.blocks[0].mlp[0].out_features == D // 2
    perturb(model.temporal)
    with torch.no_grad():
        logits = model(batch, classes)
        rows = []
        for b in range(B):
            f = unit(temporal_reference(model.temporal, batch.cls[b]))
            rows.append(scores(model, 0.5 * f + 0.5 * adapter_reference(model.adapter, f), classes.emb))
    close(logits, torch.stack(rows), model.logit_scale.detach().exp().item())
    with pytest.raises(ValueError, match="frozen_branch must be one of mean, temporal, got 'sum'"):
        AdapterStarOptions(frozen_branch="sum")


def test_forms_and_presets_resolve() -> None:
    assert TrainConfig.from_preset("authors-code", method="coop").baseline_options() == resolve_options(
        "coop", "authors"
    )
    paper = TrainConfig.from_preset("paper", method="clip-adapter").baseline_options()
    assert (paper.ratio, paper.pool, paper.learn_scale) == (0.2, "norm-mean", False)
    mixed = TrainConfig.from_preset("authors-code", method="a5", form="paper", options={"heads": 4})
    assert mixed.baseline_options() == resolve_options("a5", "paper", {"heads": 4})
    for method, changes in PAPER_FORMS.items():
        assert {
            k: v for k, v in form_defaults(method, "paper").items() if form_defaults(method, "authors")[k] != v
        } == changes
    assert TrainConfig.from_preset("authors-code", method="zero-shot").baseline_options() is None
    with pytest.raises(ValueError, match="coop has no option heads; its options are class_position, ctx_init"):
        TrainConfig.from_preset("authors-code", method="coop", options={"heads": 4})
    with pytest.raises(ValueError, match="zero-shot has no options; remove ratio"):
        TrainConfig.from_preset("authors-code", method="zero-shot", options={"ratio": 1})
    model = build_model(TrainConfig.from_preset("paper", method="clip-adapter-star", frames=T), dim=D, cond_dim=D)
    assert (model.ratio, model.pool, model.frozen_branch) == (0.2, "norm-mean", "temporal")
    assert build_baseline("clip-adapter", dim=D, num_frames=T).ratio == 0.8  # the authors' form by default


def test_dassl_warmup_and_drop_last() -> None:
    """Dassl's LinearWarmupScheduler (W 5, min 1e-7) and its train loader's drop_last rule."""
    lrs = [epoch_lr(e, 5e-4, 5, 1e-7) for e in range(8)]
    assert lrs == pytest.approx([1e-7, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 5e-4, 5e-4], rel=1e-12)
    assert [epoch_lr(e, 1e-6, 0, 0.0) for e in range(3)] == [1e-6] * 3
    assert (steps_per_epoch(200, 16, True), steps_per_epoch(200, 16, False)) == (12, 13)
    assert steps_per_epoch(10, 16, True) == 1  # fewer clips than a batch: Dassl keeps the one partial batch
    assert TrainConfig.from_preset("paper").drop_last is False


def test_prompts_are_tokenised_as_one_string(tmp_path: Path) -> None:
    """A name ending in punctuation merges with the period (")." one token), as the whole string tokenises."""
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

    from xmic.demo.tiny_models import BOS, EOS, _write_clip_tokenizer, build_clip_vocab

    vocab, merges = build_clip_vocab(WORDS)
    tokens = [t for t in vocab if t not in (BOS, EOS)] + [").</w>", BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    _write_clip_tokenizer(tmp_path, vocab, [*merges, ") .</w>"], 77)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    cfg = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=W, intermediate_size=2 * W, num_hidden_layers=1, num_attention_heads=2,
        projection_dim=D, bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], pad_token_id=vocab[EOS],
    )  # fmt: skip
    encoder = FrozenTextEncoder.from_model(CLIPTextModelWithProjection(cfg).eval(), tok)
    names = ["pan (hot)", "knife"]
    for n_before, n_after, period in [(2, 0, True), (1, 1, True), (2, 0, False)]:
        p = encoder.prompts(names, n_before, n_after, period)
        for k, name in enumerate(names):
            words = ["X"] * n_before + [name] + ["X"] * n_after
            want = tok(" ".join(words) + ("." if period else ""))["input_ids"]
            assert p.ids[k, : len(want)].tolist() == want and int(p.mask[k].sum()) == len(want)
            assert all(p.ids[k, i] == vocab["x</w>"] for i in p.ctx_pos[k].tolist())
    merged = encoder.prompts(names, 2, 0, True).ids[0].tolist()
    assert vocab[").</w>"] in merged  # one token, not ")" and "."


def old_config(folder: Path, method: str, version: int) -> Path:
    folder.mkdir(parents=True)
    d = TrainConfig(method=method, dataset="epic", target="noun").to_dict()
    for key in ("form", "options", "warmup_min_lr", "drop_last"):
        del d[key]
    (folder / "config.json").write_text(json.dumps({**d, "flags_version": version}))
    return folder / "config.json"


@pytest.mark.parametrize("method", ["coop", "cocoop", "a5", "clip-adapter", "clip-adapter-star", "vita-clip"])
def test_runs_before_the_forms_are_refused_in_one_line(tmp_path: Path, method: str) -> None:
    path = old_config(tmp_path / method, method, FLAGS_VERSION - 1)
    with pytest.raises(StaleRunError) as err:
        TrainConfig.load(path)
    msg = str(err.value)
    assert "\n" not in msg and "flags_version 2, current 3" in msg and f"--method {method}" in msg
    assert "the baselines now take the forms of the authors' trainers" in msg


@pytest.mark.parametrize("method", ["xmic", "zero-shot"])
def test_xmic_and_zero_shot_runs_of_version_2_still_load(tmp_path: Path, method: str) -> None:
    cfg = TrainConfig.load(old_config(tmp_path / method, method, 2))
    assert cfg.method == method and cfg.flags_version == 2 and cfg.drop_last is False


def test_cli_options_reach_the_model_the_run_and_the_header(tmp_path: Path) -> None:
    from xmic.adapt.run_io import load_run
    from xmic.cache.synthetic import write_random_store
    from xmic.cli import main
    from xmic.evaluate.reproduce import ReproduceSettings, extra_header

    store = write_random_store(tmp_path / "s.zarr", dataset="alpha", n=32, num_frames=16, encoders={"clip-vit-b16": 32})
    out = tmp_path / "run"
    args = [
        "train",
        "--cache",
        str(store),
        "--method",
        "clip-adapter",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--quiet",
    ]
    res = CliRunner().invoke(main, [*args, "--form", "paper", "--option", "ratio=0.5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "config.json").read_text())
    assert (saved["form"], saved["options"], saved["flags_version"]) == ("paper", {"ratio": 0.5}, FLAGS_VERSION)
    meta = json.loads((out / "run.json").read_text())
    assert meta["baseline_form"] == "paper" and meta["baseline_options"]["ratio"] == 0.5
    assert meta["baseline_options"]["pool"] == "norm-mean" and meta["baseline_options"]["learn_scale"] is False
    model, _, _ = load_run(out)
    assert (model.ratio, model.pool, model.logit_scale.requires_grad) == (0.5, "norm-mean", False)
    res = CliRunner().invoke(main, [*args, "--option", "heads=4", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "clip-adapter has no option heads" in res.output
    settings = ReproduceSettings(cache=store, form="paper", baseline_options={"a5": {"heads": 4}})
    header = "\n".join(extra_header(settings, 1))
    assert "Baseline form changed to 'paper' (preset authors-code: 'authors')" in header
    assert "a5 options changed from the 'paper' form: heads=4." in header
    assert "X-MIC's optimiser settings" in "\n".join(extra_header(ReproduceSettings(cache=store), 1))
