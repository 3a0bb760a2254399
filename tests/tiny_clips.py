"""Tiny random CLIPs for tests whose text tower is wider or narrower than the joint space."""

from __future__ import annotations

from pathlib import Path


def tiny_clip_with_text_width(out: Path, words: list[str], dim: int, width: int, seed: int = 1) -> Path:
    """A tiny CLIP saved at ``out`` (tokenizer knowing ``words``, joint space ``dim``) whose text tokens are
    ``width`` wide, so that a mix-up of the token width and the joint width fails; weights drawn with ``seed``."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from xmic.demo.tiny_models import make_tiny_clip

    out = make_tiny_clip(out, vocab_words=words, dim=dim)
    cfg = CLIPConfig.from_pretrained(out)
    cfg.text_config.hidden_size = width
    cfg.text_config.intermediate_size = 2 * width
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(out)
    return out
