"""Checking and normalising the segment table and the vocabularies a dataset group is created with."""

from __future__ import annotations

from typing import Any

import numpy as np

from xmic.cache.backend import to_str_array
from xmic.cache.schema import SEGMENT_COLUMNS, TARGETS

#: Label of a segment without a class (an unlabelled test set).
NO_LABEL = -1


def _string_column(name: str, values: Any, where: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        bad = [i for i, v in enumerate(arr.ravel()) if not isinstance(v, str)]
        if bad:
            raise ValueError(f"{where}: column {name!r} row {bad[0]} is {arr.ravel()[bad[0]]!r}, not a string")
    elif arr.dtype.kind not in "UT":
        raise ValueError(f"{where}: column {name!r} must hold strings, got {arr.dtype}")
    return to_str_array(arr)


def normalise_segments(segments: dict[str, Any], where: str) -> dict[str, np.ndarray]:
    """The segment table as (N,) numpy arrays with the dtypes of ``SEGMENT_COLUMNS`` (strings as ``<U``).

    Args:
        segments: column -> sequence; all of ``SEGMENT_COLUMNS`` are required, extra columns are kept.
        where: what to name in error messages.

    Raises:
        ValueError: a missing column, unequal lengths, no rows, a wrong dtype or a duplicated segment_id,
            naming the column and row.
    """
    missing = [c for c in SEGMENT_COLUMNS if c not in segments]
    if missing:
        raise ValueError(f"{where}: missing segment columns {missing}; required: {list(SEGMENT_COLUMNS)}")
    out: dict[str, np.ndarray] = {}
    for name, values in segments.items():
        kind = SEGMENT_COLUMNS.get(name)
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"{where}: column {name!r} must be 1-D, got shape {arr.shape}")
        if kind == "str" or (kind is None and arr.dtype.kind in "OUT"):
            out[name] = _string_column(name, arr, where)
        elif kind is None:
            out[name] = arr
        else:
            allowed = "iub" if kind.startswith("int") else "iubf"
            if arr.dtype.kind not in allowed:
                raise ValueError(f"{where}: column {name!r} must be {kind}, got {arr.dtype}")
            out[name] = arr.astype(kind)
            if kind.startswith("int") and arr.size and not np.array_equal(out[name], arr):
                raise ValueError(f"{where}: column {name!r} has values that do not fit {kind}")
    lengths = {name: len(arr) for name, arr in out.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{where}: segment columns differ in length: {lengths}")
    ids = out["segment_id"]
    if len(ids) == 0:
        raise ValueError(f"{where}: no segments")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        rows = np.flatnonzero(ids == dup).tolist()
        raise ValueError(f"{where}: segment_id {dup!r} appears in rows {rows}; segment ids must be unique")
    return out


def normalise_vocab(vocab: dict[str, Any], segments: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """``{"verb": names, "noun": names}`` as ``<U`` arrays, checking every label lies in ``[-1, C)``."""
    missing = [t for t in TARGETS if t not in vocab]
    if missing:
        raise ValueError(f"vocab lacks {missing}; need class names for {list(TARGETS)}")
    out = {}
    for target in TARGETS:
        names = _string_column(f"vocab[{target!r}]", np.asarray(list(vocab[target]), dtype=object), "vocab")
        labels = segments[target]
        bad = np.flatnonzero((labels < NO_LABEL) | (labels >= len(names)))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"{where}: row {row} (segment {segments['segment_id'][row]}) has {target} {int(labels[row])} but "
                f"the {target} vocabulary has {len(names)} classes (-1 = unlabelled)"
            )
        out[target] = names
    return out


def segments_difference(
    old: dict[str, np.ndarray],
    new: dict[str, np.ndarray],
    old_vocab: dict[str, np.ndarray],
    new_vocab: dict[str, np.ndarray],
) -> list[str]:
    """Lines describing how two segment tables / vocabularies differ (empty when equal)."""
    lines = []
    if sorted(old) != sorted(new):
        lines.append(f"segment columns: store has {sorted(old)}; the new table has {sorted(new)}")
    elif len(old["segment_id"]) != len(new["segment_id"]):
        lines.append(f"segments: store has {len(old['segment_id'])} rows; the new table has {len(new['segment_id'])}")
    else:
        for col in sorted(old):
            a, b = old[col], new[col]
            same = (a == b) | ((a != a) & (b != b)) if a.dtype.kind == "f" else a == b
            if not np.all(same):
                row = int(np.flatnonzero(~same)[0])
                lines.append(f"segments/{col}: row {row} is {a[row]!r} in the store, {b[row]!r} in the new table")
    for target in TARGETS:
        a, b = old_vocab[target], new_vocab[target]
        if len(a) != len(b) or not np.all(a == b):
            lines.append(f"vocab/{target}: store has {len(a)} names; the new vocabulary has {len(b)} (or other names)")
    return lines
