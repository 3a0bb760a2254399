"""The demo's frozen encoders: a tiny CLIP (pretrained for a minute on third-person pairs) and a tiny DINOv2.

Both are saved in Hugging Face layout under one parent folder, named after their registry entries, so that one
``--model-dir`` serves extraction (both encoders), the prompt-learning baselines (CLIP text tower) and
``xmic predict``::

    models/demo-clip/      registry entry demo-clip: a CLIP of our own (D = 64, 64 px, 16 px patches)
    models/demo-dinov2/    registry entry demo-dinov2: a random-weight DINOv2 (D = 32; only with --dino)
    models/demo-lavila/    registry entry demo-lavila: the pretrained tiny CLIP inflated into LaViLa's checkpoint
                           layout (demo-lavila.pth, 4-frame clips) + the CLIP's vocab.json / merges.txt

They have registry entries of their own (model ids ``xmic-demo/...``, not on any hub), so stores, runs, tables
and reports name them for what they are and never as a real checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmic.demo.pretrain import PretrainConfig, PretrainReport, pretrain_clip
from xmic.demo.webdata import caption_words
from xmic.registry import DEMO_CLIP, DEMO_DINO, DEMO_LAVILA

Echo = Callable[[str], None]
DEFAULT_PRETRAIN = PretrainConfig()
CLIP_NAME = DEMO_CLIP
DINO_NAME = DEMO_DINO
LAVILA_NAME = DEMO_LAVILA
#: Tiny CLIP shape: width, input size, patch, layers, heads.
CLIP_SHAPE = {"dim": 64, "image_size": 64, "patch": 16, "layers": 2, "heads": 4}


@dataclass
class ModelsReport:
    """Where the demo's encoders are and how the CLIP was pretrained (None when pretraining was skipped)."""

    model_dir: Path
    encoders: dict[str, Path] = field(default_factory=dict)
    pretrain: PretrainReport | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir),
            "encoders": {k: str(v) for k, v in self.encoders.items()},
            "pretrain": None if self.pretrain is None else self.pretrain.to_dict(),
            "seconds": self.seconds,
        }


def demo_vocabulary(manifest: dict[str, Any]) -> list[str]:
    """Every word of the demo's class names and prompt templates (single tokens of the tiny tokenizer)."""
    words = set(caption_words())
    for info in manifest.get("datasets", {}).values():
        for name in info.get("verbs", []) + info.get("nouns", []):
            words.update(name.lower().split())
    return sorted(words)


def make_demo_encoders(
    model_dir: str | Path,
    manifest: dict[str, Any],
    *,
    seed: int = 0,
    pretrain: PretrainConfig | None = DEFAULT_PRETRAIN,
    dino: bool = False,
    progress: bool = True,
    echo: Echo = print,
) -> ModelsReport:
    """Write the tiny CLIP (and DINOv2) under ``model_dir`` and pretrain the CLIP.

    Args:
        model_dir: Parent folder (created); the encoders go to ``model_dir/<registry name>``.
        manifest: The synthetic benchmark's manifest (its class names join the tokenizer's vocabulary).
        seed: Seed of the random initialisation and of the pretraining.
        pretrain: Pretraining settings; None keeps the random weights (zero-shot at chance).
        dino: Also write a tiny random-weight DINOv2 (``demo-dinov2``) for X-MIC+DINO.
        progress: Progress bars.
        echo: Log lines.

    Returns:
        A :class:`ModelsReport`.
    """
    from xmic.demo.tiny_models import make_tiny_clip

    t0 = time.perf_counter()
    root = Path(model_dir)
    report = ModelsReport(root)
    clip_dir = make_tiny_clip(root / CLIP_NAME, vocab_words=demo_vocabulary(manifest), seed=seed, **CLIP_SHAPE)
    report.encoders[CLIP_NAME] = clip_dir
    if pretrain is not None:
        config = PretrainConfig(**{**pretrain.__dict__, "seed": seed})
        report.pretrain = pretrain_clip(clip_dir, config, progress=progress, echo=echo)
    else:
        echo("tiny CLIP left at random weights (no pretraining): zero-shot numbers are chance")
    report.encoders[LAVILA_NAME] = write_demo_lavila(root, echo=echo)
    if dino:
        report.encoders[DINO_NAME] = write_demo_dino(root, seed=seed, echo=echo)
    report.seconds = time.perf_counter() - t0
    return report


def write_demo_dino(model_dir: str | Path, *, seed: int = 0, echo: Echo = print) -> Path:
    """Write the demo's tiny random-weight DINOv2 to ``model_dir/demo-dinov2`` (width 32); returns that folder."""
    from xmic.demo.tiny_models import make_tiny_dinov2

    path = make_tiny_dinov2(Path(model_dir) / DINO_NAME, dim=32, seed=seed + 1)
    echo("tiny DINOv2 written with random weights (X-MIC+DINO shows the mechanics, not DINOv2's features)")
    return path


def write_demo_lavila(model_dir: str | Path, *, echo: Echo = print) -> Path:
    """Write ``model_dir/demo-lavila/demo-lavila.pth``: the tiny CLIP of ``model_dir/demo-clip`` in LaViLa's
    checkpoint layout (:func:`xmic.demo.tiny_models.make_tiny_lavila`), for Table 5's LaViLa rows on the demo."""
    from xmic.demo.tiny_models import make_tiny_lavila

    root = Path(model_dir)
    path = make_tiny_lavila(root / LAVILA_NAME / f"{LAVILA_NAME}.pth", root / CLIP_NAME)
    echo("tiny LaViLa written: the tiny CLIP inflated to 4-frame clips (LaViLa's layout; Table 5's LaViLa rows)")
    return path
