"""Claims on run folders, so that processes on several hosts sharing a filesystem never train the same run twice.

A claim is a small JSON file beside the run folder (``<runs>/.<run name>.claim``) created atomically with
``O_CREAT | O_EXCL`` and holding host, pid, start time and a random token. While it is held a thread touches the
file every :data:`HEARTBEAT` seconds. A claim is dead, and is taken over, when its holder ran on this host and its
pid is gone, or when the file has not been touched for ``stale_after`` seconds (a holder on another host that died
or lost its node). A take-over happens under a short-lived guard file, so two processes that find the same dead
claim never remove each other's new one.

API: :func:`try_claim` returns a held :class:`RunClaim` (a context manager; :meth:`RunClaim.release`) or ``None``
when a live process holds the run; :func:`claim_holder` says who holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Seconds between two touches of a held claim.
HEARTBEAT = 30.0
#: A claim untouched for this long is dead whatever its host (ten missed heartbeats).
STALE_AFTER = 300.0
#: A claim file that cannot be parsed (its creator died before writing it) is dead after this many seconds.
UNREADABLE_GRACE = 60.0
#: A take-over guard older than this was left by a process that died while taking over; it is removed.
GUARD_STALE = 30.0


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: host name, pid, start time (ISO, UTC) and the claim's random token."""

    host: str
    pid: int
    started: str
    token: str

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder written in a claim file, or ``None`` when the text is empty, partial or not a claim."""
        try:
            d = json.loads(text)
            return cls(host=str(d["host"]), pid=int(d["pid"]), started=str(d["started"]), token=str(d["token"]))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started}"


def claim_path(run_dir: Path) -> Path:
    """The claim file of ``run_dir``: a hidden file beside it, so that training may clear the folder."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.claim"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _read(path: Path) -> tuple[Holder | None, float] | None:
    """(holder, seconds since the file was last touched), or ``None`` when there is no claim file."""
    try:
        text = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    return Holder.parse(text), age


def _dead(holder: Holder | None, age: float, stale_after: float) -> bool:
    if holder is None:
        return age > UNREADABLE_GRACE
    if age > stale_after:
        return True
    return holder.host == socket.gethostname() and not _pid_alive(holder.pid)


def claim_holder(run_dir: Path, stale_after: float = STALE_AFTER) -> Holder | None:
    """The live holder of ``run_dir``'s claim, or ``None`` when it is free (no claim, or a dead one)."""
    found = _read(claim_path(run_dir))
    if found is None or _dead(*found, stale_after):
        return None
    return found[0] or Holder(host="?", pid=-1, started="?", token="")


def _take_over(path: Path, stale_after: float) -> None:
    """Remove the dead claim at ``path``, re-checked under a guard so that a fresh claim is never removed."""
    guard = path.with_name(path.name + ".takeover")
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > GUARD_STALE:
                guard.unlink()
        return
    try:
        found = _read(path)
        if found is not None and _dead(*found, stale_after):
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


class RunClaim:
    """A held claim on a run folder; touched by a daemon thread until :meth:`release` (or the ``with`` block ends)."""

    def __init__(self, path: Path, holder: Holder, heartbeat: float) -> None:
        self.path, self.holder = path, holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat,), daemon=True)
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    @property
    def held(self) -> bool:
        """Whether the claim file is still this one (not removed or taken over by another process)."""
        found = _read(self.path)
        return found is not None and found[0] == self.holder

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours."""
        self._stop.set()
        self._thread.join()
        if self.held:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunClaim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def try_claim(run_dir: Path, *, stale_after: float = STALE_AFTER, heartbeat: float = HEARTBEAT) -> RunClaim | None:
    """Claim ``run_dir`` for this process: a :class:`RunClaim`, or ``None`` when a live process holds it.

    A dead holder's claim (same host and its pid gone, or untouched for ``stale_after`` seconds) is taken over.
    The caller checks whether the run is already complete after claiming it (another process may have finished it
    between that check and the claim).
    """
    path = claim_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = Holder(
        host=socket.gethostname(),
        pid=os.getpid(),
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        token=secrets.token_hex(8),
    )
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            found = _read(path)
            if found is not None and not _dead(*found, stale_after):
                return None
            _take_over(path, stale_after)
            continue
        try:
            os.write(fd, json.dumps(asdict(me)).encode())
        finally:
            os.close(fd)
        return RunClaim(path, me, heartbeat)
    return None


def wait_claim(target: Path, echo: Callable[[str], None], what: str | None = None, poll: float = 2.0) -> RunClaim:
    """Claim ``target`` (any path: the claim file goes beside it), waiting while a live process holds it;
    ``what`` names the work in the line said while waiting (default: the target's name)."""
    said = False
    while (claim := try_claim(target)) is None:
        if not said:
            holder = claim_holder(target)
            echo(f"wait for {what or target.name}: held by {holder.describe() if holder else 'another process'}")
            said = True
        time.sleep(poll)
    return claim
