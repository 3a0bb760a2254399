"""EPIC-KITCHENS-100 annotations: ``EPIC_100_*.csv`` (or the pandas ``.pkl``) and the class CSVs.

Accepted files: the action-recognition splits (``EPIC_100_train.csv``, ``EPIC_100_validation.csv``,
``EPIC_100_test_timestamps.csv``) and the UDA files (``EPIC_100_uda_source_train.csv``,
``..._uda_target_train_timestamps.csv``, ``..._uda_{source,target}_val.csv``,
``..._uda_{source,target}_test_timestamps.csv``), with or without the leading ``uid`` column of older
releases. Needed columns: ``narration_id, video_id, start_frame, stop_frame`` (plus ``start_timestamp,
stop_timestamp`` when present) and, in labelled files, ``verb_class, noun_class``; files without them
(the ``*_timestamps`` files) give label -1. Class files ``EPIC_100_{verb,noun}_classes.csv``
(``id,key,instances,category``) give the vocabularies, ids ``0..C-1``.

Rows are numbered "data row N (line L)": N counts data rows from 1 after the header, L is the
physical line of the CSV (the header is line 1). In a ``.pkl`` the row is the 0-based position in the
DataFrame. Frame rates and the media layout are in :mod:`xmic.extract.datasets.epic_media`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xmic.extract.datasets._common import (
    RowError,
    RowProblems,
    check_label,
    check_plain_name,
    check_span,
    drop_duplicates,
    parse_int,
    parse_timestamp,
    prompt_names,
)
from xmic.extract.datasets.epic_media import (
    MEDIA_PREFERENCES,
    annotation_fps,
    builtin_native_fps,
    find_epic_media,
    read_video_info,
)
from xmic.extract.datasets.records import NO_LABEL, AnnotationError, DatasetAnnotations, SegmentRecord, sort_records

REQUIRED_COLUMNS = ("narration_id", "video_id", "start_frame", "stop_frame")
LABEL_COLUMNS = ("verb_class", "noun_class")

_EXTRA = "\0extra"  # DictReader key of the cells beyond the header

Rows = Iterator[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class _Context:
    split: str
    labelled: bool
    has_times: bool
    fps: float | None
    n_verbs: int
    n_nouns: int
    verb_file: str
    noun_file: str


def read_epic_classes(path: Path) -> list[str]:
    """Class keys in id order from ``EPIC_100_{verb,noun}_classes.csv``; ids must be ``0..C-1``."""
    keys: dict[int, str] = {}
    seen: dict[str, str] = {}  # key -> where it first appeared
    header, rows = _csv_rows(path)
    missing = [c for c in ("id", "key") if c not in header]
    if missing:
        raise AnnotationError(path, f"missing column(s) {missing}; header is {header}", "line 1 (header)")
    for where, row in rows:
        try:
            class_id = parse_int(row.get("id"), "id")
            key = (row.get("key") or "").strip()
            if not key:
                raise RowError("column 'key': missing value")
        except RowError as e:
            raise AnnotationError(path, str(e), where) from None
        if class_id in keys:
            raise AnnotationError(path, f"class id {class_id} appears twice", where)
        if key in seen:
            raise AnnotationError(path, f"class key {key!r} repeats the one at {seen[key]}: two ids, one name", where)
        seen[key] = where
        keys[class_id] = key
    if sorted(keys) != list(range(len(keys))):
        gaps = sorted(set(range(max(keys, default=-1) + 1)) - set(keys))
        raise AnnotationError(path, f"class ids must be 0..{len(keys) - 1} without gaps; missing {gaps[:10]}")
    if not keys:
        raise AnnotationError(path, "no classes")
    return [keys[i] for i in range(len(keys))]


def _csv_rows(path: Path) -> tuple[list[str], Rows]:
    """Header and ``(where, row)`` pairs of a CSV (cells beyond the header go under ``_EXTRA``)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, restkey=_EXTRA)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            rows = [(f"data row {n} (line {reader.line_num})", row) for n, row in enumerate(reader, start=1)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise AnnotationError(path, f"not a readable UTF-8 CSV file: {e}") from None
    return header, iter(rows)


def _pickle_rows(path: Path) -> tuple[list[str], Rows]:
    """Header and rows of an EPIC pandas pickle (``narration_id`` may be the index)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            f"reading {path} needs pandas, which is not installed; `pip install pandas`, "
            f"or use the CSV file of the same name from epic-kitchens-100-annotations"
        ) from None
    try:
        frame = pd.read_pickle(path)
    except Exception as e:  # a pickle can fail in many ways; name the file
        raise AnnotationError(path, f"cannot read the pandas pickle: {type(e).__name__}: {e}") from None
    if "narration_id" not in frame.columns and frame.index.name == "narration_id":
        frame = frame.reset_index()
    header = [str(c) for c in frame.columns]
    records = frame.to_dict("records")

    def rows() -> Rows:
        for n, row in enumerate(records):
            yield f"row {n} (0-based position in the DataFrame)", {str(k): v for k, v in row.items()}

    return header, rows()


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    text = "" if value is None else str(value).strip()
    if not text:
        raise RowError(f"column {column!r}: missing value")
    return text


def split_from_filename(path: Path) -> str:
    """``EPIC_100_validation.csv`` -> ``"validation"``, ``EPIC_100_uda_target_test_timestamps.pkl`` ->
    ``"uda_target_test"``."""
    name = path.stem
    name = name.removeprefix("EPIC_100_")
    return name.removesuffix("_timestamps")


def read_epic(
    annotation_file: Path,
    verb_classes: Path,
    noun_classes: Path,
    *,
    media_root: Path | None = None,
    split: str | None = None,
    video_info: Path | None = None,
    media: str = "auto",
    fps: float | None = None,
    skip_bad: bool = False,
) -> DatasetAnnotations:
    """Read one EPIC-100 annotation file into segment records.

    Args:
        annotation_file: ``EPIC_100_*.csv`` or ``.pkl`` (the pickle needs pandas).
        verb_classes: ``EPIC_100_verb_classes.csv``.
        noun_classes: ``EPIC_100_noun_classes.csv``.
        media_root: Dataset root searched for videos / frame folders; None leaves ``video_path`` unset
            (and reports no missing media).
        split: Split name for the records; default from the file name ("validation", "uda_source_train").
        video_info: ``EPIC_100_video_info.csv`` for native frame rates; the built-in table otherwise.
        media: "auto" | "video" | "frames", see :func:`~xmic.extract.datasets.epic_media.find_epic_media`.
        fps: Annotation frame rate for every video; default 60 for ``PXX_YY`` and 50 for ``PXX_1YY``
            (needed for video ids of another form, e.g. synthetic data).
        skip_bad: Leave bad rows out and list them in ``skipped`` instead of raising.

    Returns:
        The split's :class:`DatasetAnnotations` (dataset "epic").

    Raises:
        AnnotationError: A missing column, or a bad row (non-integer value, unknown class id,
            stop <= start, repeated narration id) when ``skip_bad`` is False; the message names the
            file and the row.
    """
    annotation_file = Path(annotation_file)
    if media not in MEDIA_PREFERENCES:
        raise ValueError(f"media must be one of {MEDIA_PREFERENCES}, got {media!r}")
    verbs = read_epic_classes(Path(verb_classes))
    nouns = read_epic_classes(Path(noun_classes))
    split = split or split_from_filename(annotation_file)
    if annotation_file.suffix == ".pkl":
        header, rows = _pickle_rows(annotation_file)
    else:
        header, rows = _csv_rows(annotation_file)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    labelled = any(c in header for c in LABEL_COLUMNS)
    if labelled:
        missing += [c for c in LABEL_COLUMNS if c not in header]
    if missing:
        raise AnnotationError(annotation_file, f"missing column(s) {missing}; header is {header}", "line 1 (header)")
    has_times = "start_timestamp" in header and "stop_timestamp" in header
    context = _Context(
        split, labelled, has_times, fps, len(verbs), len(nouns), Path(verb_classes).name, Path(noun_classes).name
    )
    problems = RowProblems(skip_bad)
    parsed: list[tuple[str, SegmentRecord]] = []
    for where, row in rows:
        try:
            if _EXTRA in row:
                raise RowError(f"{len(header) + len(row[_EXTRA])} cells but the header has {len(header)}")
            parsed.append((where, _parse_row(row, context)))
        except RowError as e:
            problems.report(annotation_file, where, str(e))
    records = drop_duplicates(parsed, {w: annotation_file for w, _ in parsed}, problems)
    files = [annotation_file, Path(verb_classes), Path(noun_classes)]
    info = read_video_info(Path(video_info)) if video_info is not None else {}
    if video_info is not None:
        files.append(Path(video_info))
    out = DatasetAnnotations(
        dataset="epic",
        split=split,
        records=[],
        vocab={"verb": prompt_names("epic", verbs), "noun": prompt_names("epic", nouns)},
        raw_vocab={"verb": verbs, "noun": nouns},
        annotation_files=files,
        skipped=problems.skipped,
    )
    video_ids = sorted({r.video_id for r in records})
    for vid in video_ids:
        if vid in info:
            out.native_fps[vid] = info[vid]
        elif fps is None:
            out.native_fps[vid] = builtin_native_fps(vid)
    media_of: dict[str, tuple[Path | None, str]] = {}
    if media_root is None:
        out.notes.append("no media root given: video paths were not resolved")
    for vid in video_ids:
        if media_root is None:
            media_of[vid] = (None, "frames" if media == "frames" else "video")
            continue
        path, kind, note = find_epic_media(Path(media_root), vid, media)
        media_of[vid] = (path, kind)
        if path is None:
            out.missing_media.append(vid)
        if note:
            out.notes.append(note)
    out.records = sort_records(
        [replace(r, video_path=media_of[r.video_id][0], media_kind=media_of[r.video_id][1]) for r in records]
    )
    return out


def _parse_row(row: dict[str, Any], ctx: _Context) -> SegmentRecord:
    narration_id = _cell(row, "narration_id")
    video_id = check_plain_name(_cell(row, "video_id"), "video_id")
    start = parse_int(row.get("start_frame"), "start_frame")
    stop = parse_int(row.get("stop_frame"), "stop_frame")
    check_span(start, stop)
    if ctx.fps is None:
        try:
            rate = annotation_fps(video_id)
        except ValueError as e:
            raise RowError(f"{e}; pass fps=... for other video ids") from None
    else:
        rate = float(ctx.fps)
    if ctx.has_times:
        start_sec = parse_timestamp(row.get("start_timestamp"), "start_timestamp")
        stop_sec = parse_timestamp(row.get("stop_timestamp"), "stop_timestamp")
    else:
        start_sec, stop_sec = start / rate, stop / rate
    verb = noun = NO_LABEL
    if ctx.labelled:
        verb = parse_int(row.get("verb_class"), "verb_class")
        noun = parse_int(row.get("noun_class"), "noun_class")
        check_label(verb, ctx.n_verbs, "verb", ctx.verb_file)
        check_label(noun, ctx.n_nouns, "noun", ctx.noun_file)
    return SegmentRecord(
        segment_id=narration_id,
        video_id=video_id,
        video_path=None,
        media_kind="video",
        start_frame=start,
        stop_frame=stop,
        fps=rate,
        verb=verb,
        noun=noun,
        split=ctx.split,
        start_sec=start_sec,
        stop_sec=stop_sec,
    )
