"""Helpers shared by the dataset readers: value parsing, bad-row policy, file search, prompt names."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from xmic.extract.datasets.records import AnnotationError, SegmentRecord, SkippedRow


class RowError(ValueError):
    """A problem with one row; the reader adds the file and the row and raises or skips it."""


class RowProblems:
    """Raise on a bad row, or (``skip_bad=True``) record it and go on."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[SkippedRow] = []

    def report(self, file: Path, where: str, reason: str) -> None:
        if not self.skip_bad:
            raise AnnotationError(file, reason, where)
        self.skipped.append(SkippedRow(Path(file), where, reason))


def parse_int(value: object, column: str) -> int:
    """An integer from a cell (``"12"``, ``12``, ``12.0``); :class:`RowError` naming ``column`` otherwise."""
    if isinstance(value, bool):
        raise RowError(f"column {column!r}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise RowError(f"column {column!r}: expected an integer, got {value!r}")
    text = str(value).strip() if value is not None else ""
    if not text:
        raise RowError(f"column {column!r}: missing value")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise RowError(f"column {column!r}: expected an integer, got {text!r}") from None
    if math.isfinite(number) and number.is_integer():
        return int(number)
    raise RowError(f"column {column!r}: expected an integer, got {text!r}")


def parse_float(value: object, column: str) -> float:
    """A finite float from a cell; :class:`RowError` naming ``column`` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError(f"column {column!r}: missing value")
    if isinstance(value, bool):
        raise RowError(f"column {column!r}: expected a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RowError(f"column {column!r}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise RowError(f"column {column!r}: expected a finite number, got {value!r}")
    return number


def parse_timestamp(value: object, column: str) -> float:
    """Seconds from ``"HH:MM:SS.ss"`` (EPIC timestamps), ``"MM:SS.ss"`` or plain seconds."""
    text = str(value).strip() if value is not None else ""
    if not text:
        raise RowError(f"column {column!r}: missing value")
    parts = text.split(":")
    try:
        if len(parts) > 3:
            raise ValueError
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60.0 + float(part)
    except ValueError:
        raise RowError(f"column {column!r}: expected a timestamp HH:MM:SS.ss, got {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise RowError(f"column {column!r}: expected a non-negative timestamp, got {text!r}")
    return seconds


#: Largest frame index a row may name: 2^31 - 1 frames is over 400 days of 60 fps video, so anything larger is a
#: typo or a corrupt file; it would also overflow the decoder's 64-bit timestamps once scaled to its time base.
MAX_FRAME = 2**31 - 1


def check_span(start: int, stop: int) -> None:
    """:class:`RowError` unless ``0 <= start < stop <= MAX_FRAME``."""
    if start < 0:
        raise RowError(f"start frame {start} is negative")
    if stop <= start:
        raise RowError(f"stop frame {stop} <= start frame {start}")
    if stop > MAX_FRAME:
        raise RowError(f"frame {stop} is beyond any video (frame indices stop at {MAX_FRAME})")


def check_plain_name(value: str, column: str) -> str:
    """``value`` when it can name a file inside the dataset's root; :class:`RowError` when a media path made
    from it would leave ``--root`` (a path separator, ``..``, ``.``)."""
    if "/" in value or "\\" in value or value in (".", "..") or "\0" in value:
        raise RowError(f"column {column!r}: {value!r} is not a plain name; its media path would leave --root")
    return value


def check_label(label: int, vocab_size: int, kind: str, source: str) -> None:
    """:class:`RowError` unless ``0 <= label < vocab_size`` (``source`` names the class file)."""
    if not 0 <= label < vocab_size:
        raise RowError(f"unknown {kind} class {label} (the {kind} classes in {source} are 0..{vocab_size - 1})")


def drop_duplicates(
    items: Iterable[tuple[str, SegmentRecord]], file_of: dict[str, Path], problems: RowProblems
) -> list[SegmentRecord]:
    """Records whose ``segment_id`` is unique; a repeat is a bad row naming both places.

    Args:
        items: ``(where, record)`` in reading order.
        file_of: ``where -> file`` for the error message.
        problems: Raises or records the repeats.
    """
    seen: dict[str, str] = {}
    out: list[SegmentRecord] = []
    for where, record in items:
        first = seen.get(record.segment_id)
        if first is not None:
            problems.report(
                file_of[where], where, f"segment id {record.segment_id!r} repeats {first} of {file_of[first]}"
            )
            continue
        seen[record.segment_id] = where
        out.append(record)
    return out


def find_file(names: Sequence[str], dirs: Sequence[Path], what: str) -> Path:
    """First existing ``dir/name`` (dirs outer, names inner); an error listing every place searched."""
    searched: list[str] = []
    for d in dirs:
        for name in names:
            path = d / name
            if path.is_file():
                return path
            searched.append(str(path))
    listing = "\n  ".join(dict.fromkeys(searched))
    raise FileNotFoundError(f"{what} not found; searched:\n  {listing}")


def unique_dirs(dirs: Iterable[Path | None]) -> list[Path]:
    """Existing directories in order, without repeats."""
    out: list[Path] = []
    for d in dirs:
        if d is not None and d.is_dir() and d not in out:
            out.append(d)
    return out


def prompt_names(dataset: str, raw: Sequence[str]) -> list[str]:
    """Prompt names of ``raw`` class names (label order) via :mod:`xmic.classnames`.

    Uses ``epic_prompt_name`` / ``ego4d_prompt_names`` / ``egtea_prompt_name`` when that module has them,
    else its ``epic_names`` / ``ego4d_names`` / ``egtea_names`` (``(raw, prompt)`` pairs).
    """
    from xmic import classnames as names

    raw = list(raw)
    if dataset == "epic" and hasattr(names, "epic_prompt_name"):
        return [names.epic_prompt_name(k) for k in raw]
    if dataset == "ego4d" and hasattr(names, "ego4d_prompt_names"):
        return list(names.ego4d_prompt_names(raw))
    if dataset == "egtea" and hasattr(names, "egtea_prompt_name"):
        return [names.egtea_prompt_name(k) for k in raw]
    pairs_fn = getattr(names, f"{dataset}_names", None)
    if pairs_fn is None:
        raise ImportError(f"xmic.classnames has no prompt-name function for dataset {dataset!r}")
    return [prompt for _, prompt in pairs_fn(raw)]
