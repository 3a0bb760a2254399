"""Checks made before any decoding: the store can be written, and no other live process extracts the same rank.

The lock is a small JSON file next to the store (``.<store name>.<dataset>.rank<r>.lock``), created complete in one
step and holding host, pid and start time (:mod:`xmic.locks`). A second run of the same rank on the same store
refuses while the first is alive; a lock left by a killed process on this host (its pid is gone), or one that names
no process (empty, malformed), is taken over, so resuming after a crash needs nothing. A lock from another host
cannot be checked from here: the run refuses and says how to go on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from xmic.locks import LockHeldError, hold_lock, short_name


class StoreLockedError(LockHeldError):
    """Another live process extracts the same rank into the same store."""


def check_writable(cache: Path) -> None:
    """OSError naming the path when the store (or the folder it would be created in) cannot be written.

    A probe file is created and removed, so read-only mounts are caught as well as permissions.
    """
    cache = Path(cache)
    probe_dir = cache if cache.is_dir() else cache.parent
    if cache.exists() and not cache.is_dir() and not os.access(cache, os.W_OK):  # an HDF5 store's file
        raise PermissionError(f"--cache {cache}: the store file is read-only; make it writable or use another --cache")
    parent = probe_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"--cache {cache}: {parent} is a file, so the store cannot be created under it")
    probe = parent / f".xmic-write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        what = "the store" if parent == cache else f"the folder {parent}"
        raise PermissionError(
            f"--cache {cache}: {what} is not writable ({exc.strerror}); make it writable or use another --cache"
        ) from None


def lock_path(cache: Path, dataset: str, rank: int) -> Path:
    """``.<store name>.<dataset>.rank<r>.lock`` beside the store; a name too long for the file system is hashed."""
    cache = Path(cache)
    return cache.parent / (short_name(f".{cache.name}.{dataset}.rank{rank}") + ".lock")


@contextlib.contextmanager
def store_lock(cache: Path, dataset: str, rank: int, *, ignore: bool = False) -> Iterator[Path]:
    """Hold the lock of ``rank`` on ``cache``/``dataset`` for the body; StoreLockedError when a live process has it.

    A lock naming no process (empty or malformed) or a process that is gone is stale and taken over
    (:mod:`xmic.locks`).
    """
    with hold_lock(
        lock_path(cache, dataset, rank),
        busy=f"{cache}: rank {rank} of dataset {dataset!r} is being extracted",
        hint="Wait for it, or if that process is gone, pass --ignore-lock",
        ignore=ignore,
        error=StoreLockedError,
    ) as path:
        yield path
