"""Tiny random-weight CLIP and DINOv2 checkpoints in Hugging Face layout, built offline in well under a second.

They load exactly like the real ones (``CLIPModel.from_pretrained(dir)``, ``AutoTokenizer.from_pretrained(dir)``,
``AutoImageProcessor.from_pretrained(dir)``), so tests and the demo exercise the real loading and preprocessing
code without any download. Their preprocessing mirrors the real checkpoints' (CLIP: shortest side to the crop size,
bicubic, centre crop, OpenAI mean/std; DINOv2: shortest side 256/224 of the crop size, bicubic, centre crop,
ImageNet mean/std), and their patch grids keep real ratios (CLIP 32 px / 8 px patches = 4x4 tokens like a small
ViT; DINOv2 position embeddings trained for a larger grid and interpolated at use, like the 518 px checkpoints
run at 224 px).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xmic.registry import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
#: PIL's code for bicubic resampling, as image processor configs store it.
PIL_BICUBIC = 3
#: Real DINOv2 checkpoints: position embeddings for 518 px / 14 px = 37 patches per side, used at 224 px (16).
DINOV2_POS_GRID_RATIO = 37 / 16


def build_clip_vocab(words: list[str] | None = None) -> tuple[dict[str, int], list[str]]:
    """A small CLIP-style byte-level BPE vocabulary: every byte character, alone and word-final, plus merges.

    Args:
        words: Optional words to make single tokens of (lower-cased, ASCII letters only are merged). Each adds its
            left-to-right merges ("c u", "cu t</w>"), so "cut" becomes one token while any other text still falls
            back to characters.

    Returns:
        ``(vocab, merges)``: token -> id (the two special tokens last, as in OpenAI's vocabulary, so "end of text"
        has the highest id) and the merge rules in priority order.
    """
    from xmic.lavila.tokenizer import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    seen = set(tokens)
    for word in sorted({w.lower() for w in (words or [])}):
        letters = [c for c in word if c.isascii() and c.isalpha()]
        if len(letters) < 2 or len(letters) != len(word):
            continue
        symbols = letters[:-1] + [letters[-1] + "</w>"]
        left = symbols[0]
        for right in symbols[1:]:
            merged = left + right
            if merged not in seen:
                merges.append(f"{left} {right}")
                tokens.append(merged)
                seen.add(merged)
            left = merged
    tokens += [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def _write_clip_tokenizer(out_dir: Path, vocab: dict[str, int], merges: list[str], max_length: int) -> None:
    """Write vocab.json and merges.txt and let the installed transformers add its own tokenizer files."""
    from transformers import CLIPTokenizer

    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    try:  # transformers >= 5: tokenizers-backed class built from the vocabulary itself
        tok = CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=max_length)
    except TypeError:  # transformers 4.x: the slow class reads the two files
        tok = CLIPTokenizer(str(out_dir / "vocab.json"), str(out_dir / "merges.txt"), model_max_length=max_length)
    tok.save_pretrained(out_dir)


def _image_processor_class(name: str):
    """transformers' PIL-backed image processor ``name + "Pil"`` where this version has one, else ``name``.

    transformers >= 5 makes the torchvision-backed class the default and warns on every construction when
    torchvision is missing (it is: no wheel matches the CPU torch here); the PIL class is the same preprocessing
    without the warning, and its saved config loads back as itself.
    """
    import importlib.util

    import transformers

    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, name + "Pil"):
        return getattr(transformers, name + "Pil")
    return getattr(transformers, name)


def make_tiny_clip(
    out_dir: str | Path,
    *,
    vocab_words: list[str] | None = None,
    dim: int = 32,
    image_size: int = 32,
    patch: int = 8,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    projection: int | None = None,
    text: tuple[int, int, int] | None = None,
) -> Path:
    """Build and save a random-weight CLIP (text + vision towers, projection width ``dim``) with its tokenizer.

    Args:
        out_dir: Folder to write (created): config.json, model.safetensors, tokenizer files, preprocessor_config.json.
        vocab_words: Words that become single tokens (see :func:`build_clip_vocab`); any text is tokenisable anyway.
        dim: Hidden width of both towers and the projection width (the embedding dimension D).
        image_size: Input resolution; the processor resizes the shortest side to it and centre-crops it.
        patch: Patch size; ``image_size`` must be a multiple.
        layers: Transformer layers per tower.
        heads: Attention heads; must divide ``dim``.
        seed: Torch seed for the random weights.
        projection: Projection (embedding) width D when it differs from ``dim`` (real ViT-B/16: 768 wide, D 512).
        text: ``(width, layers, heads)`` of the text tower when it differs from the vision tower's.

    Returns:
        ``out_dir`` as a Path.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    if image_size % patch or dim % heads:
        raise ValueError(f"image_size {image_size} must be a multiple of patch {patch}, dim {dim} of heads {heads}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_clip_vocab(vocab_words)
    max_length = 77
    proj = projection or dim
    text_dim, text_layers, text_heads = text or (dim, layers, heads)
    text_config = dict(
        vocab_size=len(vocab),
        hidden_size=text_dim,
        intermediate_size=4 * text_dim,
        num_hidden_layers=text_layers,
        num_attention_heads=text_heads,
        max_position_embeddings=max_length,
        projection_dim=proj,
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )
    vision = dict(
        hidden_size=dim,
        intermediate_size=4 * dim,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch,
        projection_dim=proj,
    )
    config = CLIPConfig(text_config=text_config, vision_config=vision, projection_dim=proj)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    _write_clip_tokenizer(out, vocab, merges, max_length)
    _save_image_processor(out, "CLIPImageProcessor", image_size, image_size, CLIP_MEAN, CLIP_STD)
    return out


def _save_image_processor(
    out: Path, cls_name: str, resize: int, crop: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> None:
    """``preprocessor_config.json`` of a real checkpoint's kind: shorter side to ``resize`` (bicubic), centre crop
    ``crop``, rescale to [0, 1], normalise with ``mean`` / ``std``."""
    processor = _image_processor_class(cls_name)(
        do_resize=True,
        size={"shortest_edge": resize},
        resample=PIL_BICUBIC,
        do_center_crop=True,
        crop_size={"height": crop, "width": crop},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(mean),
        image_std=list(std),
        do_convert_rgb=True,
    )
    processor.save_pretrained(out)


def make_tiny_dinov2(
    out_dir: str | Path,
    dim: int = 32,
    *,
    image_size: int = 28,
    patch: int = 7,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
) -> Path:
    """Build and save a random-weight DINOv2 backbone with a DINOv2-style image processor.

    The processor resizes the shortest side to ``round(image_size * 256 / 224)`` (32 for the default 28) and
    centre-crops ``image_size``, like ``facebook/dinov2-*`` (256 -> 224). Position embeddings cover a grid
    37/16 times larger than the one used at ``image_size``, so the model interpolates them at every call, as the
    real 518 px checkpoints do at 224 px.

    Args:
        out_dir: Folder to write (created): config.json, model.safetensors, preprocessor_config.json.
        dim: Hidden width (the CLS embedding dimension D).
        image_size: Crop size fed to the model; a multiple of ``patch``.
        patch: Patch size.
        layers: Transformer layers.
        heads: Attention heads; must divide ``dim``.
        seed: Torch seed for the random weights.

    Returns:
        ``out_dir`` as a Path.
    """
    import torch
    from transformers import Dinov2Config, Dinov2Model

    if image_size % patch or dim % heads:
        raise ValueError(f"image_size {image_size} must be a multiple of patch {patch}, dim {dim} of heads {heads}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = max(image_size // patch + 1, round(image_size // patch * DINOV2_POS_GRID_RATIO))
    config = Dinov2Config(
        hidden_size=dim,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        mlp_ratio=4,
        image_size=grid * patch,
        patch_size=patch,
        layerscale_value=1.0,
    )
    torch.manual_seed(seed)
    model = Dinov2Model(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    _save_image_processor(
        out, "BitImageProcessor", round(image_size * 256 / 224), image_size, IMAGENET_MEAN, IMAGENET_STD
    )
    return out


def clip_to_lavila_state(clip_dir: str | Path) -> tuple[dict[str, Any], Any]:
    """A Hugging Face CLIP folder's weights in LaViLa's dual-encoder layout, as a 1-frame-trained video model.

    Space attention, MLPs, norms, embeddings, the text tower and both projections are the CLIP's; each block's time
    attention starts as a copy of its space attention with a zero output projection and the temporal embedding
    is zero (LaViLa's ``time_init='zeros'``), so the video tower begins as the image model applied over a clip.

    Returns:
        ``(state_dict, LavilaConfig)`` with ``num_frames`` 4.
    """
    import torch
    from transformers import CLIPModel

    from xmic.lavila.model import LavilaConfig

    clip = CLIPModel.from_pretrained(clip_dir, local_files_only=True)
    sd = {k: v.detach().clone() for k, v in clip.state_dict().items()}
    vc, tc = clip.config.vision_config, clip.config.text_config
    config = LavilaConfig(
        image_size=vc.image_size,
        patch_size=vc.patch_size,
        vision_width=vc.hidden_size,
        vision_layers=vc.num_hidden_layers,
        vision_heads=vc.num_attention_heads,
        num_frames=4,
        embed_dim=clip.config.projection_dim,
        context_length=tc.max_position_embeddings,
        vocab_size=tc.vocab_size,
        text_width=tc.hidden_size,
        text_heads=tc.num_attention_heads,
        text_layers=tc.num_hidden_layers,
        ln_pre=True,
    )
    v, t = "vision_model.", "text_model."
    out: dict[str, Any] = {
        "visual.cls_token": sd[v + "embeddings.class_embedding"].view(1, 1, -1),
        "visual.pos_embed": sd[v + "embeddings.position_embedding.weight"].unsqueeze(0),
        "visual.temporal_embed": torch.zeros(1, config.num_frames, config.vision_width),
        "visual.patch_embed.proj.weight": sd[v + "embeddings.patch_embedding.weight"],
        "image_projection": sd["visual_projection.weight"].T.contiguous(),
        "token_embedding.weight": sd[t + "embeddings.token_embedding.weight"],
        "positional_embedding": sd[t + "embeddings.position_embedding.weight"],
        "text_projection": sd["text_projection.weight"].T.contiguous(),
        "logit_scale": sd["logit_scale"].reshape(()),
    }
    for ours, theirs in (("ln_pre", "pre_layrnorm"), ("norm", "post_layernorm")):
        for p in ("weight", "bias"):
            out[f"visual.{ours}.{p}"] = sd[f"{v}{theirs}.{p}"]
    for p in ("weight", "bias"):
        out[f"ln_final.{p}"] = sd[f"{t}final_layer_norm.{p}"]
    for i in range(config.vision_layers):
        hf, lv = f"{v}encoder.layers.{i}.", f"visual.blocks.{i}."
        for p in ("weight", "bias"):
            qkv = torch.cat([sd[f"{hf}self_attn.{n}_proj.{p}"] for n in "qkv"])
            out[f"{lv}attn.qkv.{p}"] = qkv
            out[f"{lv}timeattn.qkv.{p}"] = qkv.clone()
            out[f"{lv}attn.proj.{p}"] = sd[f"{hf}self_attn.out_proj.{p}"]
            out[f"{lv}timeattn.proj.{p}"] = torch.zeros_like(sd[f"{hf}self_attn.out_proj.{p}"])
            out[f"{lv}norm1.{p}"] = sd[f"{hf}layer_norm1.{p}"]
            out[f"{lv}norm2.{p}"] = sd[f"{hf}layer_norm2.{p}"]
            out[f"{lv}norm3.{p}"] = sd[f"{hf}layer_norm1.{p}"].clone()
            out[f"{lv}mlp.fc1.{p}"] = sd[f"{hf}mlp.fc1.{p}"]
            out[f"{lv}mlp.fc2.{p}"] = sd[f"{hf}mlp.fc2.{p}"]
    for i in range(config.text_layers):
        hf, lv = f"{t}encoder.layers.{i}.", f"transformer.resblocks.{i}."
        out[f"{lv}attn.in_proj_weight"] = torch.cat([sd[f"{hf}self_attn.{n}_proj.weight"] for n in "qkv"])
        out[f"{lv}attn.in_proj_bias"] = torch.cat([sd[f"{hf}self_attn.{n}_proj.bias"] for n in "qkv"])
        for p in ("weight", "bias"):
            out[f"{lv}attn.out_proj.{p}"] = sd[f"{hf}self_attn.out_proj.{p}"]
            out[f"{lv}ln_1.{p}"] = sd[f"{hf}layer_norm1.{p}"]
            out[f"{lv}ln_2.{p}"] = sd[f"{hf}layer_norm2.{p}"]
            out[f"{lv}mlp.c_fc.{p}"] = sd[f"{hf}mlp.fc1.{p}"]
            out[f"{lv}mlp.c_proj.{p}"] = sd[f"{hf}mlp.fc2.{p}"]
    return out, config


def make_tiny_lavila(out_path: str | Path, clip_dir: str | Path) -> Path:
    """Write a LaViLa-layout checkpoint (``.pth``, :func:`xmic.lavila.checkpoint.save_lavila_checkpoint`) made from
    the tiny CLIP in ``clip_dir`` (:func:`clip_to_lavila_state`), with that CLIP's ``vocab.json`` and
    ``merges.txt`` beside it for the text tower; returns ``out_path``."""
    import shutil

    from xmic.lavila.checkpoint import save_lavila_checkpoint
    from xmic.lavila.model import LavilaDualEncoder

    state, config = clip_to_lavila_state(clip_dir)
    model = LavilaDualEncoder(config)
    model.load_state_dict(state, strict=True)
    out = Path(out_path)
    save_lavila_checkpoint(model, out)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(Path(clip_dir) / name, out.parent / name)
    return out
