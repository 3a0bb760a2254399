"""``make_hand_provider(name, **options)``: the ``--hands`` choice and its flags, in one table.

Option names are the command-line flags without the dashes (``hoa_dir`` is ``--hoa-dir``), so a click
command can pass its parsed flags straight through (:func:`hand_options` adds them to a command, with
None defaults; a None option means "not given" and takes the provider's default). Giving an option
that the chosen provider does not use is an error, so a typo or a forgotten ``--hands`` does not pass
silently.

There is no silent default of "no hands" (DESIGN.md: every dataset gets hand boxes). :func:`choose_hands` picks the
provider when ``--hands`` is not given: ``hoa`` with ``--hoa-dir``, ``yolo`` with ``--yolo-weights``, ``given``
with ``--hand-boxes``, ``mediapipe`` with ``--hand-model`` or with a hand model found by :func:`find_hand_model`
(``$XMIC_HAND_MODEL``, then ``hand_landmarker.task`` in the ``--model-dir`` folder, or in ``$XMIC_MODEL_DIR``
when no ``--model-dir`` is given); with none of them it stops saying how to choose. ``--hands none`` is an
explicit choice and is recorded in the store's spec like any other. The model file is never downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from xmic.extract.hands.base import HandBoxProvider, NoHandBoxes

HAND_PROVIDERS = ("hoa", "epic-hoa", "mediapipe", "yolo", "given", "none")
_HOA = ("hoa", "epic-hoa")
_INJECTED = {"yolo_model": "yolo"}  # Python-only options (a ready model object), never flags

#: MediaPipe's hand landmarker model: its file name, where to get it once, and the variable that points at it.
HAND_MODEL_FILE = "hand_landmarker.task"
HAND_MODEL_ENV = "XMIC_HAND_MODEL"
HAND_MODEL_PAGE = "https://ai.google.dev/edge/mediapipe/solutions/vision/hand_landmarker"
HAND_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/1/hand_landmarker.task"
)
#: The flag whose presence alone selects a provider when ``--hands`` is not given.
_SELECTING_FLAGS = (
    ("hoa_dir", "hoa"),
    ("yolo_weights", "yolo"),
    ("hand_boxes", "given"),
    ("hand_model", "mediapipe"),
)
NO_HAND_CHOICE = (
    "no hand-box source chosen: give --hands mediapipe --hand-model hand_landmarker.task (or set "
    f"{HAND_MODEL_ENV}), --hands hoa --hoa-dir DIR (100DOH hand-object pickles), --hands yolo --yolo-weights FILE, "
    "--hands given --hand-boxes DIR, or --hands none (the full frame as the hand view, recorded in the store)"
)


class NoHandChoiceError(ValueError):
    """``xmic extract`` was given no hand-box source and found no hand model (the message says how to choose)."""


@dataclass(frozen=True)
class HandOption:
    """One ``--hands`` flag: its name (``hoa_dir`` -> ``--hoa-dir``), click type, default and users."""

    name: str
    type: Any
    default: Any
    help: str
    providers: tuple[str, ...]
    required: bool = False
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_PATH = click.Path(path_type=str)
HAND_OPTIONS: tuple[HandOption, ...] = (
    HandOption(
        "hoa_dir",
        _PATH,
        None,
        "100DOH hand-object detection pickles, one per video (EPIC: <dir>/PXX/PXX_YY.pkl; Ego4D: "
        "<dir>/<clip_uid>.pkl; EGTEA: <dir>/<session>/<clip>.pkl or <dir>/<clip>.pkl)",
        _HOA,
        True,
        "DIR",
    ),
    HandOption(
        "hoa_dataset",
        click.Choice(["epic", "ego4d", "egtea"]),
        None,
        "whose videos the pickles describe: file layout and frame numbering (xmic extract: its --dataset; "
        "epic-hoa: epic)",
        _HOA,
    ),
    HandOption("hoa_hand_threshold", float, 0.8, "minimum hand score (paper: 0.8)", _HOA),
    HandOption("hoa_object_threshold", float, 0.01, "minimum object score (paper: 0.01)", _HOA),
    HandOption(
        "hoa_first_frame",
        int,
        None,
        "frame index of a video's first frame (default from --hoa-dataset: 1 for EPIC frame numbers, 0 for "
        "Ego4D/EGTEA 0-based frames)",
        _HOA,
    ),
    HandOption("hand_boxes", _PATH, None, "folder of <video_id>.json/.npz boxes", ("given",), True, "DIR"),
    HandOption(
        "hand_missing",
        click.Choice(["error", "skip"]),
        "error",
        "a video without boxes: stop, or use full frames and list it",
        (*_HOA, "given"),
    ),
    HandOption("hand_model", _PATH, None, "MediaPipe hand_landmarker.task", ("mediapipe",), True, "PATH"),
    HandOption("hand_margin", float, 0.2, "grow each hand box by this fraction per side", ("mediapipe",)),
    HandOption(
        "hand_min_conf", float, 0.3, "minimum hand detection/presence confidence (measured, README)", ("mediapipe",)
    ),
    HandOption(
        "hand_mode",
        click.Choice(["video", "image"]),
        "video",
        "MediaPipe running mode (video: one tracker over each segment's frames; image: every frame alone)",
        ("mediapipe",),
    ),
    HandOption("hand_gap", int, 3, "interpolate a hand lost for at most this many frames (0: never)", ("mediapipe",)),
    HandOption("yolo_weights", _PATH, None, "YOLO weights file (ultralytics)", ("yolo",), True, "PATH"),
    HandOption("yolo_classes", str, None, "classes to keep: ids or names, comma-separated (all)", ("yolo",)),
    HandOption("yolo_conf", float, 0.25, "minimum detection confidence", ("yolo",)),
    HandOption("yolo_imgsz", int, 640, "inference image size", ("yolo",)),
    HandOption("yolo_device", str, None, "torch device for YOLO (ultralytics' default)", ("yolo",)),
    HandOption("yolo_batch", int, 32, "frames per YOLO batch", ("yolo",)),
)
_BY_NAME = {o.name: o for o in HAND_OPTIONS}


def _build(name: str, o: dict[str, Any]) -> HandBoxProvider:
    if name == "none":
        return NoHandBoxes()
    if name == "given":
        from xmic.extract.hands.given import GivenBoxProvider

        return GivenBoxProvider(o["hand_boxes"], missing=o["hand_missing"])
    if name in _HOA:
        from xmic.extract.hands.epic_hoa import EpicHoaProvider

        dataset = o["hoa_dataset"] or ("epic" if name == "epic-hoa" else None)
        if dataset is None:
            raise ValueError(
                "--hands hoa needs --hoa-dataset epic|ego4d|egtea (the pickles' file layout and frame numbering; "
                "xmic extract sets it from --dataset)"
            )
        return EpicHoaProvider(
            o["hoa_dir"],
            dataset=dataset,
            name=name,
            hand_threshold=o["hoa_hand_threshold"],
            object_threshold=o["hoa_object_threshold"],
            first_frame=o["hoa_first_frame"],
            missing=o["hand_missing"],
        )
    if name == "mediapipe":
        from xmic.extract.hands.mediapipe_hands import MediaPipeHandProvider

        return MediaPipeHandProvider(
            check_hand_model(o["hand_model"]),
            margin=o["hand_margin"],
            min_detection_confidence=o["hand_min_conf"],
            running_mode=o["hand_mode"],
            max_gap=o["hand_gap"],
        )
    from xmic.extract.hands.yolo import YoloProvider

    return YoloProvider(
        o["yolo_weights"],
        classes=o["yolo_classes"],
        conf=o["yolo_conf"],
        imgsz=o["yolo_imgsz"],
        device=o["yolo_device"],
        batch_size=o["yolo_batch"],
        model=o.get("yolo_model"),
    )


def make_hand_provider(name: str, **options: Any) -> HandBoxProvider:
    """Build the ``--hands`` provider ``name`` from flag-named options (None = not given).

    Args:
        name: One of :data:`HAND_PROVIDERS`.
        **options: Flags of :data:`HAND_OPTIONS` by name (``hoa_dir=...``), plus ``yolo_model`` (a ready
            ultralytics-like model, instead of ``yolo_weights``).

    Raises:
        ValueError: unknown provider (the message lists the choices), unknown option, an option the
            provider does not use, or a required flag missing (the message names it).
    """
    key = str(name).strip().lower()
    if key not in HAND_PROVIDERS:
        raise ValueError(f"unknown --hands {name!r}; choose one of: {', '.join(HAND_PROVIDERS)}")
    given = {k: v for k, v in options.items() if v is not None}
    for opt in given:
        users = (_INJECTED[opt],) if opt in _INJECTED else _BY_NAME[opt].providers if opt in _BY_NAME else None
        if users is None:
            known = ", ".join(o.flag for o in HAND_OPTIONS)
            raise ValueError(f"unknown hand-box option {opt!r}; known: {known}")
        if key not in users:
            flag = _BY_NAME[opt].flag if opt in _BY_NAME else opt
            raise ValueError(f"{flag} is not used by --hands {key} (it applies to --hands {', '.join(users)})")
    resolved = {o.name: given.get(o.name, o.default) for o in HAND_OPTIONS}
    resolved.update({k: v for k, v in given.items() if k in _INJECTED})
    for o in HAND_OPTIONS:
        if o.required and key in o.providers and resolved[o.name] is None:
            if key == "yolo" and resolved.get("yolo_model") is not None:
                continue
            raise ValueError(f"--hands {key} needs {o.flag} {o.metavar or 'VALUE'} ({o.help})")
    return _build(key, resolved)


def hand_options(func: Callable) -> Callable:
    """Click decorator: ``--hands`` plus every flag of :data:`HAND_OPTIONS` (defaults None, see the help)."""
    for o in reversed(HAND_OPTIONS):
        text = f"[--hands {'/'.join(o.providers)}] {o.help}"
        if o.default is not None:
            text += f" (default {o.default})"
        func = click.option(o.flag, o.name, type=o.type, default=None, metavar=o.metavar, help=text)(func)
    return click.option(
        "--hands",
        type=click.Choice(list(HAND_PROVIDERS)),
        default=None,
        help=(
            "hand-box source for the hand view (a frame without a box: the full frame). Default: hoa with "
            "--hoa-dir, yolo with --yolo-weights, given with --hand-boxes, mediapipe with --hand-model or with "
            f"{HAND_MODEL_FILE} found at ${HAND_MODEL_ENV} or in the --model-dir folder (else $XMIC_MODEL_DIR); "
            "otherwise choose one (none: full frames, recorded in the store)"
        ),
    )(func)


def pop_hand_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the :data:`HAND_OPTIONS` flags from a command's ``kwargs`` and return them."""
    return {o.name: kwargs.pop(o.name) for o in HAND_OPTIONS if o.name in kwargs}


def hand_model_candidates(model_dir: str | Path | None = None) -> list[Path]:
    """Where a MediaPipe hand model is looked for when ``--hand-model`` is not given, in order.

    ``$XMIC_HAND_MODEL`` (a file), then ``<model_dir>/hand_landmarker.task``, or, without ``model_dir``,
    ``$XMIC_MODEL_DIR/hand_landmarker.task`` (the folder the encoders are looked for in).
    """
    out = []
    if os.environ.get(HAND_MODEL_ENV):
        out.append(Path(os.environ[HAND_MODEL_ENV]).expanduser())
    folder = model_dir if model_dir is not None else os.environ.get("XMIC_MODEL_DIR") or None
    if folder is not None:
        out.append(Path(folder).expanduser() / HAND_MODEL_FILE)
    return out


def find_hand_model(model_dir: str | Path | None = None) -> Path | None:
    """The first of :func:`hand_model_candidates` that is a file, else None (nothing is downloaded)."""
    return next((p for p in hand_model_candidates(model_dir) if p.is_file()), None)


def missing_hand_model(path: str | Path | None, how: str = "--hand-model PATH", searched: Any = ()) -> str:
    """The message for a hand model that is not on disk: which file, where to get it, how to pass it."""
    if path:
        what = f"--hand-model {path} does not exist"
    else:
        looked = f" (looked for {', '.join(str(p) for p in searched)})" if searched else ""
        what = f"no MediaPipe hand model ({HAND_MODEL_FILE}) given with --hand-model or found{looked}"
    return (
        f"{what}; xmic never downloads it. Get {HAND_MODEL_FILE} once from MediaPipe's hand landmarker model page "
        f"{HAND_MODEL_PAGE} (float16: {HAND_MODEL_URL}) and pass {how}, set {HAND_MODEL_ENV}=PATH, or put it in "
        f"the --model-dir folder"
    )


def check_hand_model(path: str | Path | None, how: str = "--hand-model PATH") -> Path:
    """``path`` as a Path when it is a file; FileNotFoundError with :func:`missing_hand_model` otherwise."""
    if path is None or not Path(path).expanduser().is_file():
        raise FileNotFoundError(missing_hand_model(path, how))
    return Path(path).expanduser()


def choose_hands(
    hands: str | None, options: dict[str, Any], model_dir: str | Path | None = None
) -> tuple[str, dict[str, Any]]:
    """The ``--hands`` provider and its options for ``xmic extract``, when the user may not have named one.

    Args:
        hands: ``--hands`` as given (None: not given).
        options: The given hand flags by name (None values are dropped).
        model_dir: ``--model-dir``, one place a hand model is looked for (:func:`hand_model_candidates`).

    Returns:
        ``(provider, options)``; for ``mediapipe`` without ``--hand-model``, ``hand_model`` is the model found.

    Raises:
        NoHandChoiceError: no ``--hands``, no flag that selects a provider and no hand model found; or flags of
            several providers without ``--hands``.
        FileNotFoundError: ``mediapipe`` chosen but no hand model given or found (the message says where to get it).
    """
    opts = {k: v for k, v in options.items() if v is not None}
    if hands is None:
        selected = sorted({provider for flag, provider in _SELECTING_FLAGS if flag in opts})
        if len(selected) > 1:
            raise NoHandChoiceError(f"flags of several hand-box sources ({', '.join(selected)}); pick one with --hands")
        if selected:
            hands = selected[0]
        elif find_hand_model(model_dir) is not None:
            hands = "mediapipe"
        else:
            raise NoHandChoiceError(NO_HAND_CHOICE)
    hands = str(hands).strip().lower()
    if hands == "mediapipe" and "hand_model" not in opts:
        found = find_hand_model(model_dir)
        if found is None:
            raise FileNotFoundError(missing_hand_model(None, searched=hand_model_candidates(model_dir)))
        opts["hand_model"] = str(found)
    return hands, opts
