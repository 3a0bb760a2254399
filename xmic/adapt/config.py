"""Typed training configuration and the two optimiser presets (DESIGN.md: "paper" and "authors-code")."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's text: AdamW (0.9, 0.999), weight decay 0.01, 15 epochs, fixed lr 1e-6.
    "paper": {
        "lr": 1e-6,
        "betas": (0.9, 0.999),
        "weight_decay": 0.01,
        "epochs": 15,
        "warmup_epochs": 0,
        "batch_size": 128,
    },
    # The authors' released configuration: AdamW (0.9, 0.98), wd 0.01, lr 5e-4 after a 5-epoch linear warm-up.
    "authors-code": {
        "lr": 5e-4,
        "betas": (0.9, 0.98),
        "weight_decay": 0.01,
        "epochs": 15,
        "warmup_epochs": 5,
        "batch_size": 128,
    },
}


def amp_supported(device: torch.device) -> bool:
    """bf16 autocast pays off on CUDA and on CPUs whose oneDNN has native bf16 kernels."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


METHODS = ("xmic", "zero-shot", "clip-adapter", "clip-adapter-star", "coop", "cocoop", "a5", "vita-clip")
VIEW_CHOICES = ("F+H", "F", "H")
#: How X-MIC pools the classified view's frames (B, T, D) into the video feature (B, D): "mean" =
#: l2norm(mean of the raw frames), the authors'; "norm-mean" = frames l2-normalised first, as zero-shot CLIP.
VIDEO_POOLS = ("mean", "norm-mean")

#: Version of the meanings of the X-MIC options a run's config.json records. 1 (or no field): n2 normalised
#: the class texts, n3 the summed classifier, frames were normalised before the video mean. 2: the paper's
#: Table 6 meanings (n2 = the X-MIC vector, n3 = the class texts, the sum always normalised) and ``video_pool``.
FLAGS_VERSION = 2


#: Methods whose meaning changed in flags_version 2, and what changed.
STALE_BEFORE_V2 = {
    "xmic": "the meanings of n2/n3 changed to the paper's (n2 now normalises the X-MIC vector, n3 the class texts, "
    "the sum is always normalised) and the video feature now averages raw frames",
    "clip-adapter-star": "CLIP-Adapter* now applies its adapter to the temporal block's output (the frame mean is "
    "no longer added twice)",
}


class StaleRunError(ValueError):
    """An X-MIC or CLIP-Adapter* run saved with older meanings (``flags_version``); it must be retrained."""


@dataclass
class TrainConfig:
    """Everything that defines one training run; saved as ``config.json`` in the run folder."""

    dataset: str = "epic"
    target: str = "noun"
    method: str = "xmic"
    preset: str = "authors-code"
    seed: int = 0
    encoder: str | None = None  # CLIP encoder of the classified view and text; None = the store's CLIP entry
    second_encoder: str | None = None  # conditioning encoder; None = the same as ``encoder``
    views: str = "F+H"
    classified_view: str | None = None  # None: "hand" for X-MIC (the authors' configuration), "full" otherwise
    n1: bool = True  # X-MIC, Table 6: l2-normalise the conditioning features before the adapter
    n2: bool = False  # X-MIC, Table 6: l2-normalise the X-MIC vector a_v before the sum with the text
    n3: bool = False  # X-MIC, Table 6: l2-normalise the class-text embeddings before the sum (always normalised)
    video_pool: str = "mean"  # X-MIC's classified video feature, one of VIDEO_POOLS
    template: str = "{}"
    frames: int = 16  # frames sampled per clip (one per bin)
    train_split: str = "train"
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.01
    epochs: int = 15
    warmup_epochs: int = 0
    batch_size: int = 128
    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs with native bf16 matmul (AVX512-BF16/AMX)
    text_model_dir: str | None = None  # local CLIP weights for the prompt-learning baselines
    extra: dict[str, Any] = field(default_factory=dict)
    flags_version: int = FLAGS_VERSION  # meanings of n1/n2/n3/video_pool this config was written with

    @classmethod
    def from_preset(cls, preset: str = "authors-code", **overrides: Any) -> TrainConfig:
        """The preset's optimiser values, then every override that is not None."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values = dict(PRESETS[preset], preset=preset)
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.classified_view is None:
            self.classified_view = "hand" if self.method == "xmic" else "full"
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.views not in VIEW_CHOICES:
            raise ValueError(f"--views must be one of {', '.join(VIEW_CHOICES)}, got {self.views!r}")
        if self.classified_view not in ("full", "hand"):
            raise ValueError(f"classified view must be 'full' or 'hand', got {self.classified_view!r}")
        if self.video_pool not in VIDEO_POOLS:
            raise ValueError(f"--video-pool must be one of {', '.join(VIDEO_POOLS)}, got {self.video_pool!r}")
        if self.target not in ("verb", "noun"):
            raise ValueError(f"target must be 'verb' or 'noun', got {self.target!r}")

    def autocast_enabled(self, device: torch.device) -> bool:
        """Whether training runs under bf16 autocast on ``device`` (evaluation always runs in fp32)."""
        return amp_supported(device) if self.amp else False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """Read a run's ``config.json``.

        Raises:
            StaleRunError: an X-MIC run written before ``FLAGS_VERSION`` (its flags meant other things).
                Runs of the other methods load whatever their version: they do not read these options.
        """
        path = Path(path)
        d = json.loads(path.read_text())
        d["betas"] = tuple(d["betas"])
        recorded = "flags_version" in d
        version = d.setdefault("flags_version", 1)
        if version > FLAGS_VERSION:
            raise ValueError(
                f"{path} has flags_version {version}, newer than this xmic ({FLAGS_VERSION}): upgrade xmic to load it"
            )
        method = d.get("method", "xmic")
        if version < FLAGS_VERSION and method in STALE_BEFORE_V2:
            raise StaleRunError(
                f"{path.parent}: stale {method} run ({path.name} has "
                f"{f'flags_version {version}' if recorded else 'no flags_version'}, current {FLAGS_VERSION}): "
                f"{STALE_BEFORE_V2[method]}, so its weights cannot be reused; retrain it with `xmic train --cache "
                f"STORE --dataset {d.get('dataset')} --target {d.get('target')} --method {method} --out {path.parent} ...`"
            )
        return cls(**d)
