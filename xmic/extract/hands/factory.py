"""``make_hand_provider(name, **options)``: the ``--hands`` choice and its flags, in one table.

Option names are the command-line flags without the dashes (``hoa_dir`` is ``--hoa-dir``), so a click
command can pass its parsed flags straight through (:func:`hand_options` adds them to a command, with
None defaults; a None option means "not given" and takes the provider's default). Giving an option
that the chosen provider does not use is an error, so a typo or a forgotten ``--hands`` does not pass
silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from xmic.extract.hands.base import HandBoxProvider, NoHandBoxes

HAND_PROVIDERS = ("epic-hoa", "mediapipe", "yolo", "given", "none")
_INJECTED = {"yolo_model": "yolo"}  # Python-only options (a ready model object), never flags


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
        "hoa_dir", _PATH, None, "EPIC-100 hand-object detections (<dir>/PXX/PXX_YY.pkl)", ("epic-hoa",), True, "DIR"
    ),
    HandOption("hoa_hand_threshold", float, 0.8, "minimum hand score (paper: 0.8)", ("epic-hoa",)),
    HandOption("hoa_object_threshold", float, 0.01, "minimum object score (paper: 0.01)", ("epic-hoa",)),
    HandOption(
        "hoa_first_frame",
        int,
        1,
        "frame index of a video's first RGB frame (1: EPIC frame numbers, as the pipeline passes; 0: 0-based)",
        ("epic-hoa",),
    ),
    HandOption("hand_boxes", _PATH, None, "folder of <video_id>.json/.npz boxes", ("given",), True, "DIR"),
    HandOption(
        "hand_missing",
        click.Choice(["error", "skip"]),
        "error",
        "a video without boxes: stop, or use full frames and list it",
        ("epic-hoa", "given"),
    ),
    HandOption("hand_model", _PATH, None, "MediaPipe hand_landmarker.task", ("mediapipe",), True, "PATH"),
    HandOption("hand_margin", float, 0.2, "grow each hand box by this fraction per side", ("mediapipe",)),
    HandOption("hand_min_conf", float, 0.5, "minimum hand detection confidence", ("mediapipe",)),
    HandOption("hand_mode", click.Choice(["image", "video"]), "image", "MediaPipe running mode", ("mediapipe",)),
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
    if name == "epic-hoa":
        from xmic.extract.hands.epic_hoa import EpicHoaProvider

        return EpicHoaProvider(
            o["hoa_dir"],
            hand_threshold=o["hoa_hand_threshold"],
            object_threshold=o["hoa_object_threshold"],
            first_frame=o["hoa_first_frame"],
            missing=o["hand_missing"],
        )
    if name == "mediapipe":
        from xmic.extract.hands.mediapipe_hands import MediaPipeHandProvider

        return MediaPipeHandProvider(
            o["hand_model"],
            margin=o["hand_margin"],
            min_detection_confidence=o["hand_min_conf"],
            running_mode=o["hand_mode"],
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
        default="none",
        show_default=True,
        help="hand-box source for the hand view (no box = full frame)",
    )(func)


def pop_hand_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the :data:`HAND_OPTIONS` flags from a command's ``kwargs`` and return them."""
    return {o.name: kwargs.pop(o.name) for o in HAND_OPTIONS if o.name in kwargs}
