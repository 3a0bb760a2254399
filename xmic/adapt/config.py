"""Typed training configuration and the two optimiser presets (DESIGN.md: "paper" and "authors-code")."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xmic.adapt.baseline_options import FORMS, PRESET_FORMS, resolve_options

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's text: AdamW (0.9, 0.999), weight decay 0.01, 15 epochs, fixed lr 1e-6 (no warm-up stated);
    # every training clip is used each epoch. The baselines take their original papers' forms.
    "paper": {
        "lr": 1e-6,
        "betas": (0.9, 0.999),
        "weight_decay": 0.01,
        "epochs": 15,
        "warmup_epochs": 0,
        "warmup_min_lr": 0.0,
        "drop_last": False,
        "batch_size": 128,
    },
    # The authors' released configuration: AdamW (0.9, 0.98), wd 0.01, lr 5e-4 after Dassl's 5-epoch linear warm-up
    # from WARMUP_MIN_LR 1e-7 (then constant: their single_step scheduler steps at MAX_EPOCH), and Dassl's train
    # loader, which drops the last partial batch. The baselines take the forms of the authors' trainers.
    "authors-code": {
        "lr": 5e-4,
        "betas": (0.9, 0.98),
        "weight_decay": 0.01,
        "epochs": 15,
        "warmup_epochs": 5,
        "warmup_min_lr": 1e-7,
        "drop_last": True,
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

#: Version of the meanings of the options a run's config.json records. 1 (or no field): n2 normalised
#: the class texts, n3 the summed classifier, frames were normalised before the video mean. 2: the paper's
#: Table 6 meanings (n2 = the X-MIC vector, n3 = the class texts, the sum always normalised) and ``video_pool``.
#: 3: the baselines' forms and options (``form``, ``options``: :mod:`xmic.adapt.baseline_options`).
FLAGS_VERSION = 3

_BASELINES_V3 = (
    "the baselines now take the forms of the authors' trainers or of their papers, with options recorded in the "
    "run (prompts without the final period, raw frame means, the CLIP-Adapter ratio, 8 heads, trained logit scales)"
)
#: flags_version -> the methods whose meaning changed in it, and what changed. A run written before a version
#: that lists its method is refused.
STALE_BEFORE: dict[int, dict[str, str]] = {
    2: {
        "xmic": "the meanings of n2/n3 changed to the paper's (n2 now normalises the X-MIC vector, n3 the class "
        "texts, the sum is always normalised) and the video feature now averages raw frames",
        "clip-adapter-star": "CLIP-Adapter* now applies its adapter to the temporal block's output (the frame mean "
        "is no longer added twice)",
    },
    3: {m: _BASELINES_V3 for m in ("coop", "cocoop", "a5", "clip-adapter", "clip-adapter-star", "vita-clip")},
}
STALE_BEFORE_V2 = STALE_BEFORE[2]


def stale_reason(method: str, version: int) -> str | None:
    """Why a ``method`` run written with ``flags_version`` ``version`` cannot be reused (None when it can)."""
    reasons = [STALE_BEFORE[v][method] for v in sorted(STALE_BEFORE) if v > version and method in STALE_BEFORE[v]]
    return "; ".join(reasons) if reasons else None


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
    warmup_min_lr: float = 0.0  # lr of epoch 0 of a warm-up (Dassl's WARMUP_MIN_LR); epoch e < W trains at lr * e / W
    drop_last: bool = False  # drop the last partial training batch of each epoch (Dassl's train loader)
    batch_size: int = 128
    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs with native bf16 matmul (AVX512-BF16/AMX)
    text_model_dir: str | None = None  # local CLIP weights for the prompt-learning baselines
    form: str | None = None  # baselines: "authors" or "paper" (baseline_options.FORMS); None = the preset's
    options: dict[str, Any] = field(default_factory=dict)  # baselines: options that differ from the form's
    extra: dict[str, Any] = field(default_factory=dict)
    flags_version: int = FLAGS_VERSION  # meanings of the options this config was written with

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
        if self.form is not None and self.form not in FORMS:
            raise ValueError(f"--form must be one of {', '.join(FORMS)}, got {self.form!r}")
        self.baseline_options()  # unknown or bad options fail here, before training

    @property
    def baseline_form(self) -> str:
        """The baselines' form: ``form`` when set, else the preset's (authors-code: "authors", paper: "paper")."""
        return self.form or PRESET_FORMS.get(self.preset, "authors")

    def baseline_options(self) -> Any:
        """The resolved options dataclass of a baseline run (None for X-MIC and zero-shot)."""
        if self.method == "xmic":
            if self.options:
                raise ValueError(f"--option is for the baselines; X-MIC's options are fields ({sorted(self.options)})")
            return None
        return resolve_options(self.method, self.baseline_form, self.options)

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
            StaleRunError: a run written before a flags_version that changed its method's meaning
                (``STALE_BEFORE``: X-MIC and CLIP-Adapter* before 2, the trained baselines before 3). Zero-shot
                runs load whatever their version.
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
        reason = stale_reason(method, version)
        if reason is not None:
            raise StaleRunError(
                f"{path.parent}: stale {method} run ({path.name} has "
                f"{f'flags_version {version}' if recorded else 'no flags_version'}, current {FLAGS_VERSION}): "
                f"{reason}, so its weights cannot be reused; retrain it with `xmic train --cache "
                f"STORE --dataset {d.get('dataset')} --target {d.get('target')} --method {method} --out {path.parent} ...`"
            )
        return cls(**d)
