"""The options of every trained baseline, one dataclass per method, and the two forms the presets select.

``authors`` is the form the X-MIC authors' released trainers compute (``trainers/temporal_coop.py``,
``temporal_cocoop.py`` and the CLIP-Adapter switch of ``xmic.py``); ``paper`` is the form of each method's own
paper as this project first built it. A run records its resolved options (``run.json``: ``baseline_options``),
and a table header names those that differ from its preset's form.

Shared fields:
    pool: the video feature from the frames (B, T, D): "mean" = the raw frames (the authors'), "norm-mean" = each
        frame l2-normalised first (zero-shot CLIP's feature).
    learn_scale: whether exp(s) is trained.
    period: whether prompts end in "." (CoOp's paper) or not (the authors' code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

POOLS = ("mean", "norm-mean")
#: CLIP-Adapter*'s frozen branch: "mean" = the pooled frames (the authors'), "temporal" = the temporal feature itself.
FROZEN_BRANCHES = ("mean", "temporal")
FORMS = ("authors", "paper")
#: The baseline form each optimiser preset selects.
PRESET_FORMS = {"authors-code": "authors", "paper": "paper"}
#: Vita-CLIP's authors start exp(s) at 1 / 0.07 (``np.log(1 / 0.07)`` in ``VitaCLIP_model.py``) and train it.
VITA_LOGIT_SCALE = 1 / 0.07


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """ValueError naming ``name``, its choices and ``value`` when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


@dataclass(frozen=True)
class CoOpOptions:
    """CoOp: ``n_ctx`` shared context vectors (``ctx_init`` words, or N(0, 0.02) when None) before the name."""

    n_ctx: int = 16
    ctx_init: str | None = None
    class_position: str = "end"
    period: bool = False
    pool: str = "mean"
    learn_scale: bool = True

    def __post_init__(self) -> None:
        check_choice("pool", self.pool, POOLS)


@dataclass(frozen=True)
class CoCoOpOptions(CoOpOptions):
    """Co-CoOp: CoOp's context shifted per video by the meta-net on the pooled frames; ``chunk`` prompts per pass."""

    chunk: int | None = 1024


@dataclass(frozen=True)
class A5Options(CoOpOptions):
    """A5: CoOp's context and a temporal transformer on the frames (``pool`` says whether they are normalised
    first). ``bottle_neck``: the blocks' MLP width is D / bottle_neck (the authors' ``TFM_BOTTLE_NECK``)."""

    heads: int = 8
    temporal_layers: int = 2
    bottle_neck: float = 4.0


@dataclass(frozen=True)
class AdapterOptions:
    """CLIP-Adapter: ``x = (1 - ratio) * f + ratio * A(f)``; ``ratio`` weighs the adapter's output."""

    ratio: float = 0.8
    reduction: int = 4
    pool: str = "mean"
    learn_scale: bool = True

    def __post_init__(self) -> None:
        check_choice("pool", self.pool, POOLS)


@dataclass(frozen=True)
class AdapterStarOptions(AdapterOptions):
    """CLIP-Adapter*: ``x = (1 - ratio) * g + ratio * A(h)`` with ``h`` the temporal feature of the frames and ``g``
    the frame mean (``frozen_branch`` "mean", the authors') or ``h`` itself ("temporal")."""

    frozen_branch: str = "mean"
    heads: int = 8
    temporal_layers: int = 2
    bottle_neck: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("frozen_branch", self.frozen_branch, FROZEN_BRANCHES)


@dataclass(frozen=True)
class VitaOptions:
    """Vita-CLIP's logit scale: its authors' 1 / 0.07, trained (``logit_scale`` None = CLIP's own)."""

    logit_scale: float | None = VITA_LOGIT_SCALE
    learn_scale: bool = True


OPTIONS: dict[str, type] = {
    "coop": CoOpOptions,
    "cocoop": CoCoOpOptions,
    "a5": A5Options,
    "clip-adapter": AdapterOptions,
    "clip-adapter-star": AdapterStarOptions,
    "vita-clip": VitaOptions,
}

#: The original papers' forms, as changes from the authors' (the dataclass defaults).
PAPER_FORMS: dict[str, dict[str, Any]] = {
    "coop": {"period": True, "pool": "norm-mean"},
    "cocoop": {"period": True, "pool": "norm-mean", "n_ctx": 4, "ctx_init": "a photo of a"},
    "a5": {"period": True, "pool": "norm-mean", "class_position": "middle"},
    "clip-adapter": {"ratio": 0.2, "pool": "norm-mean", "learn_scale": False},
    "clip-adapter-star": {
        "ratio": 0.2,
        "pool": "norm-mean",
        "learn_scale": False,
        "frozen_branch": "temporal",
        "bottle_neck": 4.0,
    },
    "vita-clip": {},
}


def form_defaults(method: str, form: str) -> dict[str, Any]:
    """The options of ``method`` in ``form`` ("authors" or "paper") as a dict; {} for a method without options."""
    check_choice("form", form, FORMS)
    if method not in OPTIONS:
        return {}
    values = dataclasses.asdict(OPTIONS[method]())
    if form == "paper":
        values.update(PAPER_FORMS[method])
    return values


def resolve_options(method: str, form: str, overrides: dict[str, Any] | None = None) -> Any:
    """The options dataclass of ``method``: ``form``'s values, then ``overrides``; None for a method without options.

    Raises:
        ValueError: an override names no option of the method, or a value is not allowed.
    """
    overrides = dict(overrides or {})
    if method not in OPTIONS:
        if overrides:
            raise ValueError(f"{method} has no options; remove {', '.join(sorted(overrides))}")
        return None
    cls = OPTIONS[method]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{method} has no option {', '.join(unknown)}; its options are {', '.join(sorted(known))}")
    return cls(**{**form_defaults(method, form), **overrides})


def parse_option(text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> (key, value) with VALUE read as JSON when it parses (numbers, true/false, null), else text."""
    import json

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def differences(method: str, form: str, options: Any) -> dict[str, Any]:
    """The fields of ``options`` whose values differ from ``form``'s for ``method``."""
    if options is None:
        return {}
    base = form_defaults(method, form)
    return {k: v for k, v in dataclasses.asdict(options).items() if base.get(k) != v}
