"""The dataset groups a table needs: present and complete in the store, or extracted, or a clear error saying how.

Used by :mod:`xmic.evaluate.reproduce`; a missing group is extracted with :func:`xmic.extract.runner.run_extraction`
when the dataset's root is given, and otherwise the error prints the ``xmic extract`` command that creates it.

Every extracted group gets hand boxes, as in the paper (:func:`hand_plan`): from 100DOH hand-object detection pickles
when ``--hoa-dir`` gives that dataset a folder (``--hoa-dir DIR``: EPIC's; ``--hoa-dir epic=DIR,ego4d=DIR,egtea=DIR``:
one per dataset), else from MediaPipe's hand landmarker (``--hand-model``, else ``$XMIC_HAND_MODEL`` or ``hand_landmarker.task`` in ``--model-dir``), unless
``--hands`` names another provider per dataset. ``none`` needs ``--allow-no-hands``. Every group to extract is
planned (root, hand source, model files) before the first one starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xmic.evaluate.reproduce import ReproduceSettings

Echo = Callable[[str], None]
#: Splits extracted when a table has to create a dataset group (EGTEA: its three test files together).
EXTRACT_SPLITS = {"epic": ("train", "validation"), "ego4d": ("train", "val"), "egtea": ("test",)}
#: Hand-box providers a table rebuild extracts with (``given`` needs box folders per dataset: use ``xmic extract``).
REPRODUCE_HANDS = ("hoa", "epic-hoa", "mediapipe", "yolo", "none")
_MAKE_FLAG = {"hand_model": "HAND_MODEL", "yolo_weights": "YOLO_WEIGHTS", "hoa_dir": "HOA_DIR"}


class ReproduceError(Exception):
    """A table cannot be rebuilt as asked (missing dataset, unknown row, ...); the message says what to do."""


def parse_hoa_dirs(text: str | None, datasets: tuple[str, ...] = tuple(EXTRACT_SPLITS)) -> dict[str, Path]:
    """``--hoa-dir``: ``DIR`` (EPIC's detections) or one folder per dataset, ``"epic=DIR,ego4d=DIR,egtea=DIR"``.

    Raises:
        ValueError: an unknown dataset, or a dataset named twice.
    """
    text = (text or "").strip()
    if not text:
        return {}
    items = [item.strip() for item in text.split(",") if item.strip()]
    if len(items) == 1 and "=" not in items[0]:
        return {"epic": Path(items[0])}
    out: dict[str, Path] = {}
    for item in items:
        name, sep, folder = (p.strip() for p in item.partition("="))
        if not sep or name.lower() not in datasets or not folder:
            raise ValueError(f"--hoa-dir: expected DIR or dataset=DIR items ({', '.join(datasets)}), got {item!r}")
        if name.lower() in out:
            raise ValueError(f"--hoa-dir: {name} is given twice")
        out[name.lower()] = Path(folder)
    return out


def hoa_dirs_of(settings: Any) -> dict[str, Path]:
    """The HOA folder of each dataset in ``settings.hoa_dir`` (a folder is EPIC's, a dict names the dataset)."""
    value = getattr(settings, "hoa_dir", None)
    if value is None:
        return {}
    if isinstance(value, dict):
        return {k: Path(v) for k, v in value.items()}
    return {"epic": Path(value)}


def parse_hands(text: str | None, datasets: tuple[str, ...] = tuple(EXTRACT_SPLITS)) -> dict[str, str]:
    """``--hands``: one provider for every dataset (``"mediapipe"``) or per dataset (``"ego4d=mediapipe,egtea=yolo"``).

    Raises:
        ValueError: an unknown provider or dataset, or an item that is neither form (the message lists the choices).
    """
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, provider = (p.strip().lower() for p in item.partition("="))
        if not sep:
            name, provider = "", name
        if provider not in REPRODUCE_HANDS:
            raise ValueError(
                f"unknown hand-box provider {provider!r} in {item.strip()!r}; choose {', '.join(REPRODUCE_HANDS)}"
            )
        if sep and name not in datasets:
            raise ValueError(f"unknown dataset {name!r} in {item.strip()!r}; the datasets are {', '.join(datasets)}")
        out.update({d: provider for d in datasets} if not sep else {name: provider})
    return out


@dataclass(frozen=True)
class HandPlan:
    """The hand-box provider one dataset group is extracted with and its ``xmic extract`` options by name."""

    hands: str
    options: dict[str, Any] = field(default_factory=dict)

    def flags(self) -> str:
        """The ``xmic extract`` flags: ``--hands mediapipe --hand-model PATH``."""
        extra = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.options.items())
        return f"--hands {self.hands}" + (f" {extra}" if extra else "")


def _needed_file(path: Path | None, option: str, what: str, strict: bool, searched: Any = ()) -> Any:
    """``path`` as a str when it is a file; a placeholder when not strict; ReproduceError otherwise."""
    flag = "--" + option.replace("_", "-")
    if path is not None and Path(path).is_file():
        return str(path)
    if not strict:
        return str(path) if path is not None else f"<{what}>"
    if option == "hand_model":
        from xmic.extract.hands.factory import missing_hand_model

        raise ReproduceError(missing_hand_model(path, f"{flag} PATH (make {_MAKE_FLAG[option]}=PATH)", searched))
    said = f"{flag} {path} does not exist" if path is not None else f"no {flag} given"
    raise ReproduceError(f"{said}: --hands yolo needs a local {what} (make {_MAKE_FLAG[option]}=PATH)")


def hand_plan(settings: ReproduceSettings, logical: str, strict: bool = True) -> HandPlan:
    """How group ``logical`` gets its hand boxes when a table extracts it.

    ``settings.hands[logical]`` when given, else ``epic-hoa`` (EPIC) or ``hoa`` (Ego4D, EGTEA) when ``settings.hoa_dir``
    gives the dataset a folder, and ``mediapipe`` otherwise; MediaPipe's model is ``settings.hand_model`` or the one :func:`find_hand_model` finds, YOLO's
    weights ``settings.yolo_weights``.

    Args:
        strict: Check that the files exist and that ``none`` is allowed, raising ReproduceError saying how to fix
            it; when False, missing files become placeholders (for the command printed in an error).
    """
    from xmic.extract.hands.factory import find_hand_model, hand_model_candidates

    hands = getattr(settings, "hands", None) or {}
    hoa_dir = hoa_dirs_of(settings).get(logical)
    default_hoa = "epic-hoa" if logical == "epic" else "hoa"
    choice = hands.get(logical) or (default_hoa if hoa_dir is not None else "mediapipe")
    if choice in ("hoa", "epic-hoa"):
        if choice == "epic-hoa" and logical != "epic":
            raise ReproduceError(
                f"--hands {logical}=epic-hoa: epic-hoa reads EPIC's pickles; for {logical} use {logical}=hoa with "
                f"--hoa-dir {logical}=DIR (100DOH pickles of its videos, README)"
            )
        if hoa_dir is None:
            if strict:
                flag = "DIR" if logical == "epic" else f"{logical}=DIR"
                raise ReproduceError(
                    f"--hands {logical}={choice} needs --hoa-dir {flag} (make HOA_DIR={flag}; one folder per "
                    "dataset: epic=DIR,ego4d=DIR,egtea=DIR)"
                )
            return HandPlan(choice, {"hoa_dir": "<HOA_DIR>"})
        return HandPlan(choice, {"hoa_dir": str(hoa_dir)})
    if choice == "mediapipe":
        model = getattr(settings, "hand_model", None) or find_hand_model(settings.model_dir)
        searched = hand_model_candidates(settings.model_dir)
        return HandPlan(
            choice, {"hand_model": _needed_file(model, "hand_model", "hand_landmarker.task", strict, searched)}
        )
    if choice == "yolo":
        weights = getattr(settings, "yolo_weights", None)
        return HandPlan(choice, {"yolo_weights": _needed_file(weights, "yolo_weights", "YOLO weights file", strict)})
    if choice == "none" and strict and not getattr(settings, "allow_no_hands", False):
        raise ReproduceError(
            f"--hands {logical}=none extracts {logical} without hand boxes (its hand view would be the full frame), "
            "and X-MIC rows and Table 4 refuse such a group; add --allow-no-hands (make ALLOW_NO_HANDS=1) to go on"
        )
    return HandPlan(choice)


def store_groups(cache: Path) -> list[str]:
    from xmic.cache.reader import list_datasets

    return list_datasets(cache) if Path(cache).exists() else []


def extract_command(settings: ReproduceSettings, logical: str) -> str:
    """The ``xmic extract`` command line that creates dataset group ``logical`` of the store."""
    root = settings.roots.get(logical) or f"<{logical.upper()}_ROOT>"
    parts = [f"xmic extract --dataset {logical} --root {root} --split {','.join(EXTRACT_SPLITS[logical])}"]
    parts.append(f"--cache {settings.cache}")
    parts.append(hand_plan(settings, logical, strict=False).flags())
    if logical == "ego4d":
        parts.append("--center-sec 4")
    if settings.second_encoder:
        parts.append(f"--second-encoder {settings.second_encoder}")
    if settings.model_dir:
        parts.append(f"--model-dir {settings.model_dir}")
    return " ".join(parts)


def plan_extraction(settings: ReproduceSettings, logical: str) -> Any:
    """The :class:`~xmic.extract.runner.ExtractConfig` that creates (or finishes) group ``logical``, or say how to."""
    group = settings.group(logical)
    if group != logical:
        raise ReproduceError(
            f"the store {settings.cache} has no complete dataset group {group!r} (standing in for {logical}); "
            f"extraction names groups after the dataset, so create {group!r} yourself or map {logical} to a group "
            f"that exists (--datasets {logical}=GROUP)"
        )
    if logical not in EXTRACT_SPLITS:
        raise ReproduceError(f"no dataset group {group!r} in {settings.cache} and no extraction recipe for it")
    command = extract_command(settings, logical)
    root = settings.roots.get(logical)
    if root is None:
        raise ReproduceError(
            f"the store {settings.cache} has no complete dataset group {logical!r}; give --{logical}-root DIR to "
            f"extract it here, or run:\n  {command}"
        )
    plan = hand_plan(settings, logical)
    try:
        from xmic.extract.runner import ExtractConfig
    except ImportError as exc:  # pragma: no cover - the runner ships with the package
        raise ReproduceError(f"cannot import the extraction runner ({exc}); run:\n  {command}") from exc
    return ExtractConfig(
        dataset=logical,
        root=Path(root),
        splits=EXTRACT_SPLITS[logical],
        cache=Path(settings.cache),
        second_encoder=settings.second_encoder,
        hands=plan.hands,
        hand_options=dict(plan.options),
        model_dir=settings.model_dir,
        center_sec=4.0 if logical == "ego4d" else None,
        device=settings.device,
        skip_bad=settings.skip_bad,
        progress=settings.progress,
    )


def _run(settings: ReproduceSettings, config: Any, echo: Echo) -> None:
    from xmic.extract.runner import run_extraction

    echo(f"extracting {config.dataset} into {settings.cache}: {extract_command(settings, config.dataset)}")
    run_extraction(config, echo=echo)


def extract_dataset(settings: ReproduceSettings, logical: str, echo: Echo) -> None:
    """Create (or finish) dataset group ``logical`` with the extraction runner, or say how to."""
    _run(settings, plan_extraction(settings, logical), echo)


def ensure_datasets(settings: ReproduceSettings, logical_names: list[str], echo: Echo) -> None:
    """Every needed group present and complete; extract the missing ones (or raise saying how).

    Every missing group is planned first (root, hand source, model files), so that a problem with the last one
    is reported before hours of extracting the first.
    """
    from xmic.cache.reader import StoreReader

    missing = []
    for logical in logical_names:
        group = settings.group(logical)
        if group in store_groups(settings.cache) and StoreReader(settings.cache, group).complete():
            continue
        missing.append(logical)
    configs = [plan_extraction(settings, logical) for logical in missing]
    for config in configs:
        _run(settings, config, echo)
