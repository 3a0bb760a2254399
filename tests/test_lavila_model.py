"""LaViLa dual encoder: outputs against a slow per-token reference, checkpoint loading and refusals, temporal
inflation, the CLIP BPE tokenizer, and the real-size parameter layout (on the meta device)."""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import regex
import torch
from tolerance import assert_close_scaled

from xmic.demo.tiny_models import build_clip_vocab
from xmic.lavila import (
    LAVILA_CONFIGS,
    LavilaCheckpointError,
    LavilaConfig,
    LavilaDualEncoder,
    config_from_state_dict,
    find_bpe_vocab,
    load_lavila,
    load_lavila_tokenizer,
    read_lavila_state_dict,
    save_lavila_checkpoint,
)
from xmic.lavila.tokenizer import BPE_GZ_NAME, bytes_to_unicode

TINY = LavilaConfig(
    image_size=32,
    patch_size=8,
    vision_width=128,
    vision_layers=2,
    vision_heads=2,
    num_frames=4,
    embed_dim=24,
    context_length=12,
    vocab_size=64,
    text_width=128,
    text_heads=2,
    text_layers=2,
    ln_pre=True,
)
BLOCK_EPS, CLIP_EPS = 1e-6, 1e-5


def _tiny_model(config: LavilaConfig = TINY, seed: int = 0) -> LavilaDualEncoder:
    """A tiny dual encoder whose every parameter (norm gains and biases too) is random."""
    torch.manual_seed(seed)
    model = LavilaDualEncoder(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            base = 1.0 if name.endswith("weight") and ("norm" in name or "ln_" in name) else 0.0
            param.copy_(base + 0.3 * torch.randn_like(param) / math.sqrt(param.shape[-1] if param.ndim > 1 else 8))
    return model


def _tokens(config: LavilaConfig, lengths: list[int], seed: int = 1) -> torch.Tensor:
    """(C, context_length) ids: start id, random ids, the highest id as end token, zero padding."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.zeros(len(lengths), config.context_length, dtype=torch.int64)
    for i, length in enumerate(lengths):
        rows[i, :length] = torch.randint(1, config.vocab_size - 2, (length,), generator=gen)
        rows[i, 0], rows[i, length - 1] = config.vocab_size - 2, config.vocab_size - 1
    return rows


# --- slow reference, written from LaViLa's description, working on plain state-dict tensors in float64 ---------------


def _ln(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str, eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * sd[name + ".weight"] + sd[name + ".bias"]


def _linear(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def _qgelu(x: torch.Tensor) -> torch.Tensor:
    return x / (1 + torch.exp(-1.702 * x))


def _attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """One head, one query: softmax(q . k_j / sqrt(d)) weighted sum of v_j, q (d,), keys/values (n, d)."""
    scores = torch.stack([torch.dot(q, k) for k in keys]) / math.sqrt(q.shape[0])
    weights = torch.exp(scores - scores.max())
    weights = weights / weights.sum()
    return sum(w * v for w, v in zip(weights, values, strict=True))


def _divided_attention(
    x: torch.Tensor, sd: dict[str, torch.Tensor], name: str, heads: int, frames: int, axis: str
) -> torch.Tensor:
    """x (1 + F * P, W) tokens [CLS, frame-major patches]; CLS sees all, patch (f, n) sees CLS + its time/space group."""
    tokens, width = x.shape
    per_frame = (tokens - 1) // frames
    d = width // heads
    q, k, v = _linear(x, sd, name + ".qkv").split(width, dim=-1)
    out = torch.zeros_like(x)
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        out[0, cols] = _attend(q[0, cols], k[:, cols], v[:, cols])
        for f in range(frames):
            for n in range(per_frame):
                if axis == "time":
                    group = [0] + [1 + g * per_frame + n for g in range(frames)]
                else:
                    group = [0] + [1 + f * per_frame + m for m in range(per_frame)]
                i = 1 + f * per_frame + n
                out[i, cols] = _attend(q[i, cols], k[group, cols], v[group, cols])
    return _linear(out, sd, name + ".proj")


def _reference_video(clip: torch.Tensor, sd: dict[str, torch.Tensor], cfg: LavilaConfig) -> torch.Tensor:
    """(3, F, H, W) -> (embed_dim,)."""
    frames, p, grid = clip.shape[1], cfg.patch_size, cfg.grid_size
    conv = sd["visual.patch_embed.proj.weight"].reshape(cfg.vision_width, -1)
    conv_bias = sd.get("visual.patch_embed.proj.bias")
    tokens = [sd["visual.cls_token"][0, 0] + sd["visual.pos_embed"][0, 0]]
    for f in range(frames):
        for gy in range(grid):
            for gx in range(grid):
                patch = clip[:, f, gy * p : (gy + 1) * p, gx * p : (gx + 1) * p].reshape(-1)
                emb = conv @ patch + (conv_bias if conv_bias is not None else 0)
                tokens.append(emb + sd["visual.pos_embed"][0, 1 + gy * grid + gx] + sd["visual.temporal_embed"][0, f])
    x = torch.stack(tokens)
    if cfg.ln_pre:
        x = _ln(x, sd, "visual.ln_pre", CLIP_EPS)
    for layer in range(cfg.vision_layers):
        b = f"visual.blocks.{layer}"
        heads = cfg.vision_heads
        after_time = x + _divided_attention(
            _ln(x, sd, b + ".norm3", BLOCK_EPS), sd, b + ".timeattn", heads, frames, "time"
        )
        x = x + _divided_attention(
            _ln(after_time, sd, b + ".norm1", BLOCK_EPS), sd, b + ".attn", heads, frames, "space"
        )
        hidden = _qgelu(_linear(_ln(x, sd, b + ".norm2", BLOCK_EPS), sd, b + ".mlp.fc1"))
        x = x + _linear(hidden, sd, b + ".mlp.fc2")
    return _ln(x[0], sd, "visual.norm", BLOCK_EPS) @ sd["image_projection"]


def _reference_text(ids: torch.Tensor, sd: dict[str, torch.Tensor], cfg: LavilaConfig) -> torch.Tensor:
    """(L,) ids -> (embed_dim,); causal CLIP text transformer, feature at the highest id."""
    width, heads = cfg.text_width, cfg.text_heads
    d = width // heads
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][: len(ids)]
    for layer in range(cfg.text_layers):
        b = f"transformer.resblocks.{layer}"
        y = _ln(x, sd, b + ".ln_1", CLIP_EPS)
        q, k, v = (y @ sd[b + ".attn.in_proj_weight"].T + sd[b + ".attn.in_proj_bias"]).split(width, dim=-1)
        out = torch.zeros_like(x)
        for h in range(heads):
            cols = slice(h * d, (h + 1) * d)
            for i in range(len(ids)):
                out[i, cols] = _attend(q[i, cols], k[: i + 1, cols], v[: i + 1, cols])
        x = x + _linear(out, sd, b + ".attn.out_proj")
        x = x + _linear(_qgelu(_linear(_ln(x, sd, b + ".ln_2", CLIP_EPS), sd, b + ".mlp.c_fc")), sd, b + ".mlp.c_proj")
    x = _ln(x, sd, "ln_final", CLIP_EPS)
    return x[int(ids.argmax())] @ sd["text_projection"]


def _file_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The saved tensors read back with plain torch.load, as float64 (our own trusted file)."""
    raw = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k.removeprefix("module."): v.double() for k, v in raw.items()}


# --- 1. outputs equal the slow reference ------------------------------------------------------------------------------


@pytest.mark.numeric
@pytest.mark.parametrize("ln_pre", [True, False])
def test_outputs_match_slow_reference(tmp_path: Path, ln_pre: bool) -> None:
    cfg = dataclasses.replace(TINY, ln_pre=ln_pre)
    path = tmp_path / "tiny.pth"
    save_lavila_checkpoint(_tiny_model(cfg), path)
    model, loaded_cfg = load_lavila(path, num_frames=4)
    assert loaded_cfg == cfg
    assert ("visual.patch_embed.proj.bias" in model.state_dict()) is (not ln_pre)
    assert not model.training and model.logit_scale.dtype == torch.float32
    assert not any(p.requires_grad for p in model.parameters())

    sd = _file_state_dict(path)
    video = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    tokens = _tokens(cfg, [3, 7, 12])
    ref_video = torch.stack([_reference_video(clip, sd, cfg) for clip in video.double()])
    ref_text = torch.stack([_reference_text(row, sd, cfg) for row in tokens])
    assert ref_video.abs().max() > 0.1 and ref_text.abs().max() > 0.1

    with torch.no_grad():
        assert_close_scaled(model.double().encode_video(video.double()), ref_video, k=128, what="video, float64")
        assert_close_scaled(model.encode_text(tokens), ref_text, k=128, what="text, float64")
        model.float()
        got_video, got_text = model.encode_video(video), model.encode_text(tokens)
    assert got_video.shape == (2, cfg.embed_dim) and got_text.shape == (3, cfg.embed_dim)
    assert got_video.dtype == torch.float32
    assert_close_scaled(got_video.double(), ref_video, k=64, dtype=torch.float32, what="video, float32")
    assert_close_scaled(got_text.double(), ref_text, k=64, dtype=torch.float32, what="text, float32")


@pytest.mark.numeric
def test_fewer_frames_than_built_for_and_too_many(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    save_lavila_checkpoint(_tiny_model(), path)
    model, _ = load_lavila(path, num_frames=4)
    sd = _file_state_dict(path)
    clip = torch.randn(1, 3, 2, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = model.double().encode_video(clip.double())[0]
        with pytest.raises(ValueError, match="F<=4"):
            model.encode_video(torch.zeros(1, 3, 5, 32, 32, dtype=torch.float64))
    assert_close_scaled(got, _reference_video(clip[0].double(), sd, TINY), k=128)


# --- 2. temporal embedding inflation ----------------------------------------------------------------------------------


def _linear_upsample(embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(F, W) -> (num_frames, W), linear between frame centres (half-pixel convention), edges clamped."""
    loaded = embed.shape[0]
    rows = []
    for i in range(num_frames):
        src = max((i + 0.5) * loaded / num_frames - 0.5, 0.0)
        lo = int(math.floor(src))
        hi = min(lo + 1, loaded - 1)
        frac = src - lo
        rows.append((1 - frac) * embed[lo] + frac * embed[hi])
    return torch.stack(rows)


def test_temporal_embed_inflation(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    save_lavila_checkpoint(_tiny_model(), path)
    saved = read_lavila_state_dict(path)["visual.temporal_embed"]
    assert saved.shape == (1, 4, TINY.vision_width)

    one, cfg_one = load_lavila(path, num_frames=1)
    assert cfg_one.num_frames == 1 and one.visual.temporal_embed.shape == (1, 1, TINY.vision_width)
    assert torch.equal(one.visual.temporal_embed, saved[:, :1])
    with torch.no_grad():
        assert one.encode_video(torch.zeros(3, 3, 1, 32, 32)).shape == (3, TINY.embed_dim)

    eight, cfg_eight = load_lavila(path, num_frames=8)
    assert cfg_eight.num_frames == 8 and eight.visual.temporal_embed.shape == (1, 8, TINY.vision_width)
    expected = _linear_upsample(saved[0].double(), 8)
    assert_close_scaled(eight.visual.temporal_embed[0].double(), expected, k=4, dtype=torch.float32)
    assert_close_scaled(eight.visual.temporal_embed[0, 0], saved[0, 0], k=4)
    assert_close_scaled(eight.visual.temporal_embed[0, 1], 0.75 * saved[0, 0] + 0.25 * saved[0, 1], k=4)
    with torch.no_grad():
        assert eight.encode_video(torch.zeros(1, 3, 8, 32, 32)).shape == (1, TINY.embed_dim)


# --- 3./4. checkpoint reading and refusals ----------------------------------------------------------------------------


def _save_raw(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "args": argparse.Namespace()}, path)
    return path


def test_renamed_key_is_refused(tmp_path: Path) -> None:
    state = _tiny_model().state_dict()
    state["visual.norm.gamma"] = state.pop("visual.norm.weight")
    path = _save_raw(tmp_path / "renamed.pth", state)
    with pytest.raises(LavilaCheckpointError) as err:
        load_lavila(path)
    message = str(err.value)
    assert str(path) in message
    assert f"visual.norm.weight ({TINY.vision_width},)" in message
    assert f"visual.norm.gamma ({TINY.vision_width},)" in message


def test_wrong_shape_is_refused(tmp_path: Path) -> None:
    state = _tiny_model().state_dict()
    state["visual.blocks.1.mlp.fc1.weight"] = torch.zeros(500, TINY.vision_width)
    path = _save_raw(tmp_path / "reshaped.pth", state)
    with pytest.raises(LavilaCheckpointError) as err:
        load_lavila(path)
    message = str(err.value)
    assert str(path) in message and "visual.blocks.1.mlp.fc1.weight" in message
    assert "(500, 128)" in message and "(512, 128)" in message


def test_expected_config_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    save_lavila_checkpoint(_tiny_model(), path)
    with pytest.raises(LavilaCheckpointError) as err:
        load_lavila(path, expected=LAVILA_CONFIGS["tsf-b16"])
    message = str(err.value)
    assert str(path) in message and "visual.cls_token checkpoint (1, 1, 128) vs model (1, 1, 768)" in message
    model, cfg = load_lavila(path, num_frames=2, expected=dataclasses.replace(TINY, num_frames=7))
    assert cfg == dataclasses.replace(TINY, num_frames=2)


def test_prefixed_bare_and_wrapped_state_dicts_load(tmp_path: Path) -> None:
    model = _tiny_model()
    prefixed, plain, bare = tmp_path / "prefixed.pth", tmp_path / "plain.pth", tmp_path / "bare.pth"
    save_lavila_checkpoint(model, prefixed)
    save_lavila_checkpoint(model, plain, module_prefix=False)
    torch.save(model.state_dict(), bare)
    assert all(k.startswith("module.") for k in torch.load(prefixed, weights_only=False)["state_dict"])
    args = torch.load(prefixed, weights_only=False)["args"]
    assert args.model == "XMIC_LAVILA_CUSTOM" and args.project_embed_dim == TINY.embed_dim

    clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    outputs = []
    for path in (prefixed, plain, bare):
        loaded, _ = load_lavila(path)
        with torch.no_grad():
            outputs.append(loaded.encode_video(clip))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])

    full = tmp_path / "released_like.pth"
    torch.save(
        {
            "state_dict": {"module." + k: v for k, v in model.state_dict().items()},
            "args": argparse.Namespace(model="CLIP_OPENAI_TIMESFORMER_BASE", betas=(0.9, 0.999), metadata_aux=None),
            "epoch": 5,
            "best_acc1": np.float64(0.25),
            "scaler": {"scale": 1024.0, "_growth_tracker": 3},
            "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-5, "params": [0]}]},
        },
        full,
    )
    assert set(read_lavila_state_dict(full)) == set(model.state_dict())


def test_non_checkpoint_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(LavilaCheckpointError, match=str(text)):
        read_lavila_state_dict(text)
    with pytest.raises(LavilaCheckpointError, match=str(text)):
        load_lavila(text)
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(LavilaCheckpointError, match=str(listing)):
        read_lavila_state_dict(listing)
    other = tmp_path / "other_model.pth"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(LavilaCheckpointError, match="visual.cls_token"):
        load_lavila(other)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_lavila_state_dict(tmp_path / "missing.pth")


# --- 5. tokenizer -----------------------------------------------------------------------------------------------------

WORDS = ["cut", "the", "onion", "knife", "take"]
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
PRETOKEN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
)


def _reference_bpe_ids(text: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> list[int]:
    """OpenAI CLIP's BPE, written out: byte-map each pre-token, then merge the best-ranked adjacent pair until none."""
    ranks = {pair: i for i, pair in enumerate(merges)}
    byte_map = bytes_to_unicode()
    ids = []
    for piece in PRETOKEN.findall(" ".join(text.split()).lower()):
        chars = [byte_map[b] for b in piece.encode("utf-8")]
        word = chars[:-1] + [chars[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(ranks.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(word[:-1], word[1:], strict=True))]
            best_rank, _ = min(pairs)
            if best_rank == math.inf:
                break
            first, second = merges[int(best_rank)]
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids += [vocab[token] for token in word]
    return ids


def _write_hf_tokenizer(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab, merges = build_clip_vocab(WORDS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    return vocab, [tuple(m.split()) for m in merges]


def test_tokenizer_layout_and_truncation(tmp_path: Path) -> None:
    vocab, merges = _write_hf_tokenizer(tmp_path / "hf")
    tok = load_lavila_tokenizer(tmp_path / "hf", context_length=10)
    texts = ["Cut the  ONION", "take knife", "the onion the onion the onion the onion"]
    rows = tok(texts)
    assert rows.shape == (3, 10) and rows.dtype == torch.int64
    for text, row in zip(texts, rows, strict=True):
        body = _reference_bpe_ids(text, vocab, merges)[:8]
        expected = [vocab[SOT], *body, vocab[EOT]]
        assert row[: len(expected)].tolist() == expected
        assert (row[len(expected) :] == 0).all()
        assert int(row.argmax()) == len(expected) - 1
    assert rows[0, :5].tolist() == [vocab[SOT], vocab["cut</w>"], vocab["the</w>"], vocab["onion</w>"], vocab[EOT]]
    assert rows[2, -1] == vocab[EOT] and (rows[2] != 0).all()
    assert tok(["x" * 40])[0, -1] == vocab[EOT]


def test_tokenizer_from_bpe_gz_matches_hf_files(tmp_path: Path) -> None:
    _, merges = _write_hf_tokenizer(tmp_path / "hf")
    gz_dir = tmp_path / "gz"
    gz_dir.mkdir()
    lines = ["bpe_simple_vocab_16e6.txt#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (gz_dir / BPE_GZ_NAME).write_bytes(gzip.compress("\n".join(lines).encode("utf-8")))
    texts = ["cut the onion", "take the knife!", "Unknown words, 42 too"]
    from_gz, from_hf = load_lavila_tokenizer(gz_dir)(texts), load_lavila_tokenizer(tmp_path / "hf")(texts)
    assert from_gz.shape == (3, 77) and torch.equal(from_gz, from_hf)


def test_tokenizer_missing_vocab_says_what_to_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("xmic.lavila.tokenizer.PACKAGED_BPE", ())
    assert find_bpe_vocab([tmp_path]) is None
    with pytest.raises(FileNotFoundError, match="vocab.json and merges.txt") as err:
        load_lavila_tokenizer(tmp_path)
    assert BPE_GZ_NAME in str(err.value) and str(tmp_path) in str(err.value)


def test_find_bpe_vocab_in_dirs_then_in_a_package_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
    (second / BPE_GZ_NAME).write_bytes(b"")
    assert find_bpe_vocab([first, second]) == second / BPE_GZ_NAME

    package = tmp_path / "site" / "open_clip"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('open_clip must not be imported')\n")
    (package / BPE_GZ_NAME).write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert find_bpe_vocab([first]) == package / BPE_GZ_NAME


def _real_bpe_gz() -> Path:
    extra = os.environ.get("XMIC_LAVILA_BPE_DIR")
    found = find_bpe_vocab([Path(extra)] if extra else [])
    if found is None or found.stat().st_size == 0:
        pytest.skip(
            f"no real {BPE_GZ_NAME} (set XMIC_LAVILA_BPE_DIR to a folder holding it, or install open_clip) "
            "to compare the tokenizer with CLIP's own BPE on the full vocabulary"
        )
    return found


def test_tokenizer_matches_reference_bpe_on_real_vocabulary() -> None:
    gz = _real_bpe_gz()
    tok = load_lavila_tokenizer(gz.parent)
    lines = gzip.decompress(gz.read_bytes()).decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(line.split()) for line in lines]
    alphabet = list(bytes_to_unicode().values())
    names = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges] + [SOT, EOT]
    vocab = {t: i for i, t in enumerate(names)}
    assert tok.vocab_size == 49408 and tok.sot_id == 49406 and tok.eot_id == 49407
    texts = [
        "#C C cuts the onion with a knife",
        "person opens the fridge door, takes milk & pours it",
        "It's O'Neil's 3.14 café — naïve déjà vu!!",
        "wash   hands\twith SOAP",
    ]
    rows = tok(texts)
    for text, row in zip(texts, rows, strict=True):
        expected = [vocab[SOT], *_reference_bpe_ids(text, vocab, merges), vocab[EOT]]
        assert row[: len(expected)].tolist() == expected and (row[len(expected) :] == 0).all()


# --- 6. real-size configurations --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shapes"),
    [
        (
            "tsf-l14",
            {
                "visual.pos_embed": (1, 257, 1024),
                "visual.temporal_embed": (1, 4, 1024),
                "visual.patch_embed.proj.weight": (1024, 3, 14, 14),
                "visual.blocks.23.timeattn.qkv.weight": (3072, 1024),
                "visual.blocks.23.norm3.weight": (1024,),
                "visual.ln_pre.weight": (1024,),
                "image_projection": (1024, 256),
                "text_projection": (768, 256),
                "token_embedding.weight": (49408, 768),
                "positional_embedding": (77, 768),
                "transformer.resblocks.11.attn.in_proj_weight": (2304, 768),
                "logit_scale": (),
            },
        ),
        (
            "tsf-b16",
            {
                "visual.pos_embed": (1, 197, 768),
                "visual.temporal_embed": (1, 4, 768),
                "visual.blocks.11.mlp.fc1.weight": (3072, 768),
                "image_projection": (768, 256),
                "text_projection": (512, 256),
                "token_embedding.weight": (49408, 512),
            },
        ),
    ],
)
def test_real_size_layout_on_meta_device(name: str, shapes: dict[str, tuple[int, ...]]) -> None:
    cfg = LAVILA_CONFIGS[name]
    with torch.device("meta"):
        model = LavilaDualEncoder(cfg)
    state = model.state_dict()
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "visual.patch_embed.proj.bias" not in state and "visual.ln_pre.bias" in state
    assert not any(k.startswith("module.") or "alpha_timeattn" in k for k in state)
    assert config_from_state_dict(state, num_frames=4) == cfg
    assert config_from_state_dict(state, num_frames=1) == dataclasses.replace(cfg, num_frames=1)
