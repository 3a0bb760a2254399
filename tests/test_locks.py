"""Lock files: a malformed or stale lock never blocks a run, a live one always does, long names fit."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from xmic.extract.storelock import StoreLockedError, lock_path, store_lock
from xmic.locks import LockHeldError, hold_lock, read_holder, short_name

MALFORMED = {
    "empty": "",
    "pid null": json.dumps({"host": socket.gethostname(), "pid": None, "started": "then"}),
    "a list": json.dumps([socket.gethostname(), os.getpid()]),
    "pid above int64": json.dumps({"host": socket.gethostname(), "pid": 2**64 + 1, "started": "then"}),
    "pid zero": json.dumps({"host": socket.gethostname(), "pid": 0}),
    "pid a string": json.dumps({"host": socket.gethostname(), "pid": str(os.getpid())}),
    "not json": "{host",
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_lock_naming_no_process_is_stale(tmp_path: Path, content: str) -> None:
    path = lock_path(tmp_path / "s.zarr", "ego4d", 0)
    path.write_text(content)
    assert read_holder(path) is None
    with store_lock(tmp_path / "s.zarr", "ego4d", 0) as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_a_live_lock_is_held_and_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with hold_lock(path, busy="x is busy", hint="wait") as held:
        with hold_lock(path, busy="x is busy", hint="wait"):  # re-entrant in one process
            assert held.exists()
        assert held.exists()
    assert not path.exists()
    # another live process of this host (pid 1 always runs) holds it
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": 1, "started": "then"}))
    want = r"^x is busy by pid 1 on this host \(since then; lock .*x\.lock\)\. wait$"
    with pytest.raises(LockHeldError, match=want), hold_lock(path, busy="x is busy", hint="wait"):
        pass
    assert json.loads(path.read_text())["pid"] == 1  # left alone


def test_a_reused_pid_does_not_keep_a_lock(tmp_path: Path) -> None:
    """pid 1 is alive but started at another time than the lock says: the lock's process is gone."""
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": 1, "pid_start": "-1", "started": "then"}))
    if not Path("/proc/1/stat").exists():
        pytest.skip("no /proc: process start times cannot be read here")
    with hold_lock(path, busy="x", hint="h"):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_store_name_of_250_characters_gets_a_lock(tmp_path: Path) -> None:
    cache = tmp_path / ("s" * 250)
    path = lock_path(cache, "ego4d", 0)
    assert len(path.name.encode()) <= 255 and path.parent == tmp_path
    assert lock_path(tmp_path / ("s" * 249 + "t"), "ego4d", 0) != path  # the hash keeps long names apart
    with store_lock(cache, "ego4d", 0):
        assert path.exists()
    with pytest.raises(StoreLockedError):
        path.write_text(json.dumps({"host": "elsewhere", "pid": 5}))
        with store_lock(cache, "ego4d", 0):
            pass
    assert short_name("abc") == "abc"
