"""Chunk-level integrity of a store: read every chunk through the storage library's checksum, un-flag damage."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from xmic.cache import guard
from xmic.cache.backend import Backend, Session


def read_every_chunk(s: Session, problems: list[str], notes: list[str], fmt: str) -> set[tuple[str, int]]:
    """Read every chunk (along the first axis) of every array; a problem per chunk the library cannot read back.

    Returns the ``(array, chunk)`` pairs that failed. Notes how many arrays carry no checksum (old stores).
    """
    failing: set[tuple[str, int]] = set()
    unprotected, total = [], 0
    for key in _walk_arrays(s, "", problems):
        try:
            info = s.info(key)
        except Exception as exc:  # noqa: BLE001 - a damaged metadata object: report it, go on
            problems.append(f"array {key}: metadata unreadable ({type(exc).__name__}: {exc})")
            continue
        if not (fmt == "h5" and info.dtype == "str"):  # HDF5 filters never apply to variable-length strings
            total += 1
            if not info.checksum:
                unprotected.append(key)
        if not info.shape or 0 in info.shape:
            continue
        step = info.chunks[0] if info.chunks else info.shape[0]
        for chunk in range(-(-info.shape[0] // step)):
            try:
                s.read(key, slice(chunk * step, (chunk + 1) * step))
            except Exception as exc:  # noqa: BLE001 - checksum, decompression or truncation: name the chunk
                failing.add((key, chunk))
                why = str(exc).split("\n")[0][:200]
                problems.append(
                    f"array {key} chunk {chunk}: unreadable or checksum mismatch ({type(exc).__name__}: {why})"
                )
    if unprotected:
        notes.append(
            f"{len(unprotected)} of {total} arrays carry no checksum (a store written before xmic added them, e.g. "
            f"{unprotected[0]}): flipped bits there cannot be detected; re-extract into a new store to add them"
        )
    return failing


def missing_everywhere(s: Session, path: str | os.PathLike, problems: list[str]) -> set[tuple[str, int]]:
    """Every chunk that an array must hold (:func:`xmic.cache.guard.expected_chunks`) and that was never stored or
    was deleted: a problem per array naming its chunks and the repair. Returns the ``(array, chunk)`` pairs."""
    lost: set[tuple[str, int]] = set()
    done: dict[str, np.ndarray] = {}
    for key in _walk_arrays(s, "", []):
        try:
            missing = s.missing_chunks(key, guard.expected_chunks(s, key, done))
        except Exception:  # noqa: BLE001 - unreadable metadata or done flags: the full read names them
            continue
        if missing:
            lost.update((key, c) for c in missing)
            shown = ", ".join(map(str, missing[:20])) + (" …" if len(missing) > 20 else "")
            problems.append(
                f"array {key} chunk{'s' if len(missing) > 1 else ''} {shown}: missing from the store (would read as "
                f"fill values); {guard.repair_hint(path, key, unreadable=False)}"
            )
    return lost


def _walk_arrays(s: Session, key: str, problems: list[str]) -> Iterator[str]:
    """``Session.walk_arrays``, but a group whose members cannot be listed (a member's metadata is damaged) is a
    problem naming the group, and the walk goes on with the other groups."""
    try:
        groups, arrays = s.children(key)
    except Exception as exc:  # noqa: BLE001 - a damaged metadata object below this group: report it, go on
        why = str(exc).split("\n")[0][:200]
        problems.append(f"group {key or '/'}: a member's metadata is unreadable ({type(exc).__name__}: {why})")
        return
    for name in arrays:
        yield f"{key}/{name}" if key else name
    for name in groups:
        yield from _walk_arrays(s, f"{key}/{name}" if key else name, problems)


def reset_damaged(path: str | os.PathLike, damaged: dict[str, list[int]], fmt: str | None = None) -> int:
    """Clear the done flag of every chunk in ``damaged`` (``VerifyReport.damaged``); returns how many.

    A re-run of the same ``xmic extract`` command then recomputes exactly those chunks (it resumes).
    """
    count = 0
    with Backend(path, fmt).session("a") as s:
        for ds, chunks in damaged.items():
            for chunk in chunks:
                s.write(f"{ds}/done", slice(chunk, chunk + 1), np.zeros(1, np.uint8))
                count += 1
    return count
