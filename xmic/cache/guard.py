"""Refusing damage wherever the store is read for use (stage two, ``xmic cache export``): a chunk that was never
stored, or one the storage library cannot read back.

Zarr reads a chunk whose object is gone as the array's fill value, and HDF5 an unallocated chunk likewise, without a
word: zeros for class texts and black frames for the frame cache. So before an array is used, every chunk it must
hold is looked for (:func:`expected_chunks`): every chunk of an array written whole when its group was made (segment
table, vocabulary, class texts, failure records), and the chunks flagged done of an array written chunk by chunk
(features, frame cache, hand boxes, row states). A read the library refuses (checksum, decompression) becomes one
line naming the array, the chunk and the command that repairs it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from xmic.cache.backend import Session
from xmic.cache.errors import StoreError

#: Arrays of a dataset group written chunk by chunk with the group's rows (one storage chunk per store chunk).
ROW_ARRAYS = ("frame_index", "hand_box", "hand_source", "row_status")
ROW_PREFIXES = ("features/", "frames/")


class StoreDamageError(StoreError):
    """A chunk of an array is missing or cannot be read back; the message names both and the repair."""


def is_row_chunked(key: str) -> bool:
    """Whether ``key`` is written chunk by chunk with its dataset group's rows (so only done chunks must exist)."""
    group, _, rest = key.partition("/")
    return group != "text" and (rest in ROW_ARRAYS or rest.startswith(ROW_PREFIXES))


def is_done_flags(key: str) -> bool:
    group, _, rest = key.partition("/")
    return group != "text" and rest == "done"


def expected_chunks(s: Session, key: str, done: dict[str, np.ndarray] | None = None) -> list[int]:
    """Chunk indices along axis 0 that array ``key`` must hold.

    ``done``: done flags by dataset group, filled in as they are read. A lost done flag is not damage (it reads
    "not done", and the next ``xmic extract`` recomputes that chunk), so ``done`` itself expects nothing.
    """
    info = s.info(key)
    if not info.shape or 0 in info.shape or is_done_flags(key):
        return []
    if is_row_chunked(key):
        group = key.partition("/")[0]
        flags = done.get(group) if done is not None else None
        if flags is None:
            flags = s.read(f"{group}/done") if s.has(f"{group}/done") else np.zeros(0, np.uint8)
            if done is not None:
                done[group] = flags
        return [int(c) for c in np.flatnonzero(flags == 1)]
    step = info.chunks[0] if info.chunks else info.shape[0]
    return list(range(-(-info.shape[0] // step)))


def repair_hint(path: str | os.PathLike, key: str, *, unreadable: bool) -> str:
    """The command that repairs damage in ``key``: a missing chunk, or an array written whole (its group's segment
    table, vocabulary, class texts), is rewritten by the same ``xmic extract``; a done chunk that fails its checksum
    must first be marked not done."""
    if unreadable and is_row_chunked(key):
        return f"run `xmic cache verify {path} --reset-damaged`, then re-run the same `xmic extract` command"
    return "re-run the same `xmic extract` command on this store: it rewrites what is missing or damaged"


def check_present(s: Session, path: str | os.PathLike, key: str, done: dict[str, np.ndarray] | None = None) -> None:
    """Raise :class:`StoreDamageError` when a chunk ``key`` must hold was never stored (or was deleted)."""
    lost = s.missing_chunks(key, expected_chunks(s, key, done))
    if lost:
        more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
        raise StoreDamageError(
            f"{path}: array {key} chunk {lost[0]}{more} is missing from the store (it would read as fill values); "
            + repair_hint(path, key, unreadable=False)
        )


def read_checked(s: Session, path: str | os.PathLike, key: str, sel: Any = ...) -> np.ndarray:
    """``s.read(key, sel)``; a read the library refuses (checksum mismatch, undecodable chunk) becomes one
    :class:`StoreDamageError` naming the first chunk of ``sel`` that fails."""
    try:
        return s.read(key, sel)
    except (IndexError, KeyError, TypeError, StoreError):
        raise
    except Exception as exc:  # noqa: BLE001 - the library's own checksum/codec errors have no common type
        chunk = _failing_chunk(s, key, sel)
        where = f"chunk {chunk}" if chunk is not None else "a chunk"
        why = str(exc).split("\n")[0][:160]
        raise StoreDamageError(
            f"{path}: array {key} {where} fails its checksum or cannot be decoded ({type(exc).__name__}: {why}); "
            + repair_hint(path, key, unreadable=True)
        ) from None


def read_intact(
    s: Session, path: str | os.PathLike, key: str, sel: Any = ..., done: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """:func:`check_present`, then :func:`read_checked`."""
    check_present(s, path, key, done)
    return read_checked(s, path, key, sel)


def _failing_chunk(s: Session, key: str, sel: Any) -> int | None:
    """The first chunk along axis 0 within ``sel`` (a slice, or everything) that cannot be read alone."""
    info = s.info(key)
    if not info.shape:
        return None
    step = info.chunks[0] if info.chunks else info.shape[0]
    lo, hi = 0, info.shape[0]
    if isinstance(sel, slice):
        lo, hi, _ = sel.indices(info.shape[0])
    elif isinstance(sel, tuple) and sel and isinstance(sel[0], slice):
        lo, hi, _ = sel[0].indices(info.shape[0])
    for chunk in range(lo // step, -(-hi // step)):
        try:
            s.read(key, slice(chunk * step, (chunk + 1) * step))
        except Exception:  # noqa: BLE001 - the one that fails is the answer
            return chunk
    return None


def chunk_unreadable(s: Session, key: str, chunk: int, rows: int) -> bool:
    """Whether chunk ``chunk`` (``rows`` rows along axis 0) of ``key`` cannot be read alone."""
    try:
        s.read(key, slice(chunk * rows, (chunk + 1) * rows))
    except Exception:  # noqa: BLE001 - any failure is the answer
        return True
    return False
