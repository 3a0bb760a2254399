"""Checks made before any decoding: the store can be written, and no other live process extracts the same rank.

The lock is a small JSON file next to the store (``.<store name>.<dataset>.rank<r>.lock``), created atomically with
``O_EXCL`` and holding host, pid and start time. A second run of the same rank on the same store refuses while the
first is alive; a lock left by a killed process on this host (its pid is gone) is taken over, so resuming after a
crash needs nothing. A lock from another host cannot be checked from here: the run refuses and says how to go on.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


class StoreLockedError(RuntimeError):
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
    cache = Path(cache)
    return cache.parent / f".{cache.name}.{dataset}.rank{rank}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def store_lock(cache: Path, dataset: str, rank: int, *, ignore: bool = False) -> Iterator[Path]:
    """Hold the lock of ``rank`` on ``cache``/``dataset`` for the body; StoreLockedError when a live process has it."""
    path = lock_path(cache, dataset, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                held = {}
            same_host = held.get("host") == me["host"]
            if ignore or (same_host and not _alive(int(held.get("pid", -1)))):
                path.unlink(missing_ok=True)  # stale: its process is gone (or the user said so)
                continue
            where = "this host" if same_host else f"host {held.get('host')}"
            raise StoreLockedError(
                f"{cache}: rank {rank} of dataset {dataset!r} is being extracted by pid {held.get('pid')} on {where} "
                f"(since {held.get('started')}; lock {path}). Wait for it, or if that process is gone, pass "
                "--ignore-lock"
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise StoreLockedError(f"{cache}: could not take the lock {path}")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if json.loads(path.read_text()).get("pid") == me["pid"]:
                path.unlink()
