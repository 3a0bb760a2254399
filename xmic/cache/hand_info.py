"""Which hand boxes a dataset group of the store was extracted with, and whether its hand view is usable.

X-MIC conditions on the hand view (the crop around the hand box of every frame). A group extracted with
``--hands none``, or whose provider found no box in any frame, has the full frame as its hand view, and the
conditioning-view ablation (Table 4) collapses. The table rebuild asks :func:`no_hands_reason` for every group an
X-MIC row or Table 4 uses and refuses such a group unless ``allow_no_hands``; :func:`hand_source` and
:func:`hand_boxes_line` name the provider in the table's header.

A "reader" is a :class:`xmic.cache.reader.StoreReader` (anything with its ``spec``, ``dataset``, ``row_status``
and ``hand_box``); boxes are read one store chunk at a time and the scan stops at the first box found.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from xmic.cache.schema import ROW_OK

#: Providers named by a fixed label (nothing in their record worth showing).
_LABELS = {"none": "none", "synthetic": "synthetic (boxes from the generator)"}


def hand_record(reader: Any) -> dict[str, Any]:
    """The store's record of the hand provider: ``spec.config["hand_provider"]``, else ``{"hands": spec.hands}``."""
    spec = reader.spec
    record = (spec.config or {}).get("hand_provider")
    if isinstance(record, dict) and record.get("hands"):
        return dict(record)
    return {"hands": spec.hands or "none"}


def _name(path: Any) -> str:
    return PurePath(str(path)).name if path else "?"


def hand_source(reader: Any) -> str:
    """The recorded hand provider of ``reader``'s group, human-readable.

    Examples: ``"mediapipe (hand_landmarker.task)"``, ``"yolo (hands.pt)"``,
    ``"epic-hoa (hands >= 0.8, objects >= 0.01)"``, ``"given (boxes)"``, ``"none"``.
    """
    record = hand_record(reader)
    name = str(record["hands"])
    if name in _LABELS:
        return _LABELS[name]
    if name == "mediapipe":
        return f"mediapipe ({_name(record.get('model'))})"
    if name == "yolo":
        classes = record.get("class_names") or record.get("classes")
        kept = f", classes {', '.join(str(c) for c in classes)}" if classes else ""
        return f"yolo ({_name(record.get('weights'))}{kept})"
    if name in ("hoa", "epic-hoa"):
        if "hand_threshold" in record:
            data = f"{record['dataset']}, " if name == "hoa" and record.get("dataset") else ""
            return f"{name} ({data}hands >= {record['hand_threshold']}, objects >= {record.get('object_threshold')})"
        return name
    if name == "given":
        return f"given ({_name(record.get('boxes_dir'))})"
    return name


def _ok_box_chunks(reader: Any) -> Iterator[np.ndarray]:
    """The hand boxes of the ok rows, ``(n, T, 4)`` per store chunk (all at once for readers without chunks)."""
    ok = np.asarray(reader.row_status) == ROW_OK
    if not hasattr(reader, "chunk_slice") or not hasattr(reader, "_read"):
        yield np.asarray(reader.hand_box)[ok]
        return
    key = f"{reader.dataset}/hand_box"
    for chunk in range(reader.n_chunks):
        sl = reader.chunk_slice(chunk)
        if ok[sl].any():
            boxes = reader.read_hand_box(sl) if hasattr(reader, "read_hand_box") else reader._read(key, sl)
            yield np.asarray(boxes)[ok[sl]]


def hand_coverage(reader: Any) -> float | None:
    """Fraction of the frames of the group's ok rows that have a hand box (None: no ok rows). Reads every box."""
    found = total = 0
    for boxes in _ok_box_chunks(reader):
        has = np.isfinite(boxes).all(axis=-1)
        found, total = found + int(has.sum()), total + has.size
    return found / total if total else None


def no_hands_reason(reader: Any) -> str | None:
    """Why the group has no usable hand boxes, or None when at least one frame of an ok row has a box.

    Reasons: the group was extracted with ``--hands none``, or its provider found no box in any frame (every
    ``hand_box`` of its ok rows is NaN). Either way its hand view is the full frame.
    """
    group = reader.dataset
    if hand_record(reader)["hands"] == "none":
        return (
            f"dataset group {group!r} was extracted with --hands none: no hand boxes, its hand view is the full frame "
            f"(extract it again with a hand detector, e.g. --hands mediapipe --hand-model hand_landmarker.task)"
        )
    seen = False
    for boxes in _ok_box_chunks(reader):
        seen = seen or boxes.size > 0
        if np.isfinite(boxes).all(axis=-1).any():
            return None
    if not seen:
        return f"dataset group {group!r} has no rows with features, so no hand boxes"
    return (
        f"dataset group {group!r} ({hand_source(reader)}) has no hand box in any frame: its hand view is the full "
        f"frame (check the hand detector's model, thresholds and the videos)"
    )


def hand_boxes_line(readers: Mapping[str, Any]) -> str:
    """``"Hand boxes: epic = epic-hoa (...), ego4d = mediapipe (hand_landmarker.task)"`` for the table header.

    Args:
        readers: Logical dataset name (as in the table) -> the reader of its group.
    """
    return "Hand boxes: " + ", ".join(f"{name} = {hand_source(r)}" for name, r in readers.items())
