"""Claims on run folders: one holder at a time across processes, dead holders taken over, only one's own released."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from xmic.evaluate.run_claim import Holder, claim_holder, claim_path, try_claim

REPO = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def write_claim(run_dir: Path, host: str, pid: int, age: float = 0.0) -> Path:
    path = claim_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "started": "2026-01-01T00:00:00Z", "token": "t"}))
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_one_holder_at_a_time_and_release_frees(tmp_path):
    run = tmp_path / "runs" / "xmic-a"
    first = try_claim(run)
    assert first is not None and claim_path(run).is_file()
    assert try_claim(run) is None  # this process is alive: its own claim is not dead
    holder = claim_holder(run)
    assert holder == first.holder and holder.pid == os.getpid() and holder.host == socket.gethostname()
    first.release()
    assert not claim_path(run).exists() and claim_holder(run) is None
    with try_claim(run) as again:
        assert again.held
    assert not claim_path(run).exists()


def test_dead_holders_are_taken_over_live_ones_are_not(tmp_path):
    here = socket.gethostname()
    run = tmp_path / "r1"
    write_claim(run, here, dead_pid())  # killed on this host
    claim = try_claim(run)
    assert claim is not None and claim.holder.pid == os.getpid()
    claim.release()

    write_claim(run, "other-host", 1)  # another host, touched just now: alive as far as we can tell
    assert try_claim(run) is None and claim_holder(run).host == "other-host"
    write_claim(run, "other-host", 1, age=301)  # ... but silent past STALE_AFTER: dead
    assert claim_holder(run) is None
    claim = try_claim(run)
    assert claim is not None
    claim.release()

    path = claim_path(run)
    path.write_text('{"host": "vm", "pi')  # a creator that died while writing
    assert try_claim(run) is None  # within the grace period it may still be being written
    os.utime(path, (time.time() - 61, time.time() - 61))
    assert Holder.parse(path.read_text()) is None
    claim = try_claim(run)
    assert claim is not None
    claim.release()


def test_release_leaves_a_claim_that_is_no_longer_ours(tmp_path):
    run = tmp_path / "r2"
    claim = try_claim(run)
    write_claim(run, "other-host", 1)  # taken over after our heartbeat stopped
    assert not claim.held
    claim.release()
    assert json.loads(claim_path(run).read_text())["host"] == "other-host"


def test_heartbeat_touches_the_claim(tmp_path):
    run = tmp_path / "r3"
    claim = try_claim(run, heartbeat=0.05)
    path = claim_path(run)
    os.utime(path, (1, 1))
    deadline = time.time() + 10
    while path.stat().st_mtime < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert path.stat().st_mtime > 2
    claim.release()


RACER = """
import sys, time
from pathlib import Path
from xmic.evaluate.run_claim import try_claim
start = float(sys.argv[2])
while time.time() < start:
    pass
claim = try_claim(Path(sys.argv[1]))
print("won" if claim else "lost", flush=True)
time.sleep(1.0)
if claim:
    claim.release()
"""


def test_processes_racing_for_a_claim_one_wins(tmp_path):
    run = tmp_path / "runs" / "race"
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(run), str(start)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(4)
    ]
    results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert results == ["lost", "lost", "lost", "won"], results
    assert not claim_path(run).exists()
