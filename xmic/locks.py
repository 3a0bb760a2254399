"""Lock files: one live process at a time per store rank or run folder, and nothing stale blocks a run.

A lock is a small JSON file (``host``, ``pid``, ``pid_start``, ``started``) created complete in one step (written
under a temporary name, then hard-linked to its name, which fails when the name exists), so a lock that xmic
writes is never seen empty. Who holds an existing lock:

- a live process on this host (the same pid, started at the same time): the lock is held, :class:`LockHeldError`;
- a process of this host that is gone (or whose pid now belongs to a later process): stale, taken over;
- a file that names no process (empty, not a JSON object, no host, a pid that is not an integer in 1..2^31-1):
  no process can hold it, so it is stale too and taken over;
- a process on another host: it cannot be checked from here, so the lock is held; ``ignore=True``
  (``--ignore-lock``) takes it over.

Locks are re-entrant within one process: a function that holds a lock can call another that takes the same one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Longest file name (bytes) a lock or a temporary sibling gets before its variable part is hashed; names longer
#: than 255 bytes fail on every common file system, and suffixes such as ``.partial-<pid>`` need room.
MAX_NAME_BYTES = 200
#: pid_t is a signed 32-bit integer on Linux and macOS.
MAX_PID = 2**31 - 1

_HELD: dict[str, int] = {}  # lock path -> depth, for this process


class LockHeldError(RuntimeError):
    """Another live process (or one on another host) holds the lock."""


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the process that wrote it."""

    host: str
    pid: int
    started: str = "?"
    pid_start: str | None = None  # the process's start time in clock ticks (Linux), to tell a reused pid apart


def short_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name``, or when longer than ``limit`` bytes its first characters and a hash of the whole name."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    head = name.encode()[: limit - len(digest) - 1].decode(errors="ignore")
    return f"{head}~{digest}"


def _process_start(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks); None where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def read_holder(path: Path) -> Holder | None:
    """The process a lock file names, or None when it names none (missing, empty, malformed)."""
    try:
        held = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(held, dict):
        return None
    pid, host = held.get("pid"), held.get("host")
    if type(pid) is not int or not 1 <= pid <= MAX_PID or not isinstance(host, str) or not host:
        return None
    start = held.get("pid_start")
    return Holder(host, pid, str(held.get("started", "?")), start if isinstance(start, str) else None)


def is_alive(holder: Holder) -> bool:
    """Whether the process a lock names still runs (only answerable for this host: others count as alive)."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return holder.pid_start is None or _process_start(holder.pid) in (None, holder.pid_start)


def _me() -> dict[str, object]:
    me: dict[str, object] = {"host": socket.gethostname(), "pid": os.getpid()}
    if (start := _process_start(os.getpid())) is not None:
        me["pid_start"] = start
    me["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return me


def _create(path: Path, content: bytes) -> bool:
    """Create ``path`` holding ``content`` unless it exists; False when it does."""
    tmp = path.with_name(f"{path.name}.new-{os.getpid()}")
    tmp.write_bytes(content)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create, then write
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _remove_stale(path: Path, seen: bytes) -> None:
    """Remove ``path`` if it still holds ``seen`` (another process may have replaced the stale lock meanwhile)."""
    grave = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return
    try:
        if grave.read_bytes() != seen:  # a new holder's lock: give it back
            with contextlib.suppress(FileExistsError):
                os.link(grave, path)
    finally:
        grave.unlink(missing_ok=True)


@contextlib.contextmanager
def hold_lock(
    path: str | os.PathLike,
    *,
    busy: str,
    hint: str,
    ignore: bool = False,
    error: type[LockHeldError] = LockHeldError,
) -> Iterator[Path]:
    """Hold the lock file ``path`` for the body; ``error`` when a live process (or another host) holds it.

    Args:
        path: the lock file (its folder is created).
        busy: what the holder does, for the message: ``"<store>: rank 0 of dataset 'epic' is being extracted"``.
        hint: how to go on, ending the message (``"Wait for it, or ... pass --ignore-lock"``).
        ignore: take the lock over whoever holds it (the user said that process is gone).
        error: the exception class raised (a subclass of :class:`LockHeldError`).
    """
    path = Path(path)
    key = str(path.absolute())
    if key in _HELD:  # this process holds it already
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    me = _me()
    content = json.dumps(me).encode()
    for _ in range(4):
        if _create(path, content):
            break
        try:
            seen = path.read_bytes()
        except FileNotFoundError:
            continue
        holder = read_holder(path)
        if ignore or holder is None or not is_alive(holder):
            _remove_stale(path, seen)
            continue
        where = "this host" if holder.host == me["host"] else f"host {holder.host}"
        raise error(f"{busy} by pid {holder.pid} on {where} (since {holder.started}; lock {path}). {hint}")
    else:
        raise error(f"{busy}: could not take the lock {path} (other processes keep taking it). {hint}")
    _HELD[key] = 1
    try:
        yield path
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            if path.read_bytes() == content:  # still ours (not taken over with --ignore-lock meanwhile)
                path.unlink()
