"""The dataset groups a table needs: present and complete in the store, or extracted, or a clear error saying how.

Used by :mod:`xmic.evaluate.reproduce`; a missing group is extracted with :func:`xmic.extract.runner.run_extraction`
when the dataset's root is given, and otherwise the error prints the ``xmic extract`` command that creates it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xmic.evaluate.reproduce import ReproduceSettings

Echo = Callable[[str], None]
#: Splits extracted when a table has to create a dataset group (EGTEA: its three test files together).
EXTRACT_SPLITS = {"epic": ("train", "validation"), "ego4d": ("train", "val"), "egtea": ("test",)}


class ReproduceError(Exception):
    """A table cannot be rebuilt as asked (missing dataset, unknown row, ...); the message says what to do."""


def store_groups(cache: Path) -> list[str]:
    from xmic.cache.reader import list_datasets

    return list_datasets(cache) if Path(cache).exists() else []


def extract_command(settings: ReproduceSettings, logical: str) -> str:
    """The ``xmic extract`` command line that creates dataset group ``logical`` of the store."""
    root = settings.roots.get(logical) or f"<{logical.upper()}_ROOT>"
    parts = [f"xmic extract --dataset {logical} --root {root} --split {','.join(EXTRACT_SPLITS[logical])}"]
    parts.append(f"--cache {settings.cache}")
    if logical == "epic" and settings.hoa_dir:
        parts.append(f"--hands epic-hoa --hoa-dir {settings.hoa_dir}")
    if logical == "ego4d":
        parts.append("--center-sec 4")
    if settings.second_encoder:
        parts.append(f"--second-encoder {settings.second_encoder}")
    if settings.model_dir:
        parts.append(f"--model-dir {settings.model_dir}")
    return " ".join(parts)


def extract_dataset(settings: ReproduceSettings, logical: str, echo: Echo) -> None:
    """Create (or finish) dataset group ``logical`` with the extraction runner, or say how to."""
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
    try:
        from xmic.extract.runner import ExtractConfig, run_extraction
    except ImportError as exc:  # pragma: no cover - the runner ships with the package
        raise ReproduceError(f"cannot import the extraction runner ({exc}); run:\n  {command}") from exc
    hands, hand_options = "none", {}
    if logical == "epic" and settings.hoa_dir is not None:
        hands, hand_options = "epic-hoa", {"hoa_dir": settings.hoa_dir}
    config = ExtractConfig(
        dataset=logical,
        root=Path(root),
        splits=EXTRACT_SPLITS[logical],
        cache=Path(settings.cache),
        second_encoder=settings.second_encoder,
        hands=hands,
        hand_options=hand_options,
        model_dir=settings.model_dir,
        center_sec=4.0 if logical == "ego4d" else None,
        device=settings.device,
        skip_bad=settings.skip_bad,
        progress=settings.progress,
    )
    echo(f"extracting {logical} into {settings.cache}: {command}")
    run_extraction(config, echo=echo)


def ensure_datasets(settings: ReproduceSettings, logical_names: list[str], echo: Echo) -> None:
    """Every needed group present and complete; extract the missing ones (or raise saying how)."""
    from xmic.cache.reader import StoreReader

    for logical in logical_names:
        group = settings.group(logical)
        if group in store_groups(settings.cache) and StoreReader(settings.cache, group).complete():
            continue
        extract_dataset(settings, logical, echo)
