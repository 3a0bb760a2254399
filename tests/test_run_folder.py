"""A run folder belongs to one run: locked while training, replaced only whole, only with --overwrite, and a
killed run leaves the old run as it was."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.adapt.run_folder import RunExistsError, lock_path, new_run, run_lock
from xmic.cache.synthetic import write_random_store
from xmic.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runfolder") / "s.zarr"
    return write_random_store(path, dataset="alpha", n=32, num_frames=16, encoders={"clip-vit-b16": 32})


def train_args(store: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--cache", str(store), "--out", str(out), "--epochs", "1", "--device", "cpu", "--quiet", *extra]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_retrain_needs_overwrite_and_leaves_no_file_of_the_other_method(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "R"
    assert CliRunner().invoke(main, train_args(store, run, "--method", "xmic")).exit_code == 0
    (run / "eval.json").write_text("{}")  # an evaluation of the xmic run
    before = snapshot(run)
    res = CliRunner().invoke(main, train_args(store, run, "--method", "zero-shot"))
    assert res.exit_code == 1 and "holds a finished run; pass --overwrite" in res.output, res.output
    assert snapshot(run) == before
    res = CliRunner().invoke(main, train_args(store, run, "--method", "zero-shot", "--overwrite"))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "run.json"]  # no xmic weights, no old eval
    assert json.loads((run / "config.json").read_text())["method"] == "zero-shot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R"]  # no partial folder, no lock left


def test_a_foreign_file_in_the_run_folder_is_never_deleted(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "R"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, train_args(store, run, "--overwrite"))
    assert res.exit_code == 1 and "notes.txt: not written by xmic" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert (run / "notes.txt").read_text() == "mine"


def test_a_second_run_into_a_locked_folder_is_refused(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "R"
    lock_path(run).write_text(json.dumps({"host": os.uname().nodename, "pid": 1, "started": "then"}))
    res = CliRunner().invoke(main, train_args(store, run))
    assert res.exit_code == 1 and "a run is being trained into this folder by pid 1" in res.output, res.output
    assert not run.exists()
    lock_path(run).write_text("")  # an empty lock names no process: taken over
    assert CliRunner().invoke(main, train_args(store, run)).exit_code == 0
    lock_path(run).write_text(json.dumps({"host": os.uname().nodename, "pid": 1, "started": "then"}))
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--cache", str(store), "--device", "cpu"])
    assert res.exit_code == 1 and "being trained into this folder by pid 1" in res.output, res.output
    assert not (run / "eval.json").exists()


def test_a_failed_run_leaves_the_old_run_and_no_partial_folder(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "R"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "run.json").write_text("{}")
    before = snapshot(run)
    with pytest.raises(RuntimeError, match="stopped"), new_run(run, overwrite=True) as work:
        (work / "metrics.jsonl").write_text("{}\n")
        raise RuntimeError("stopped")
    assert snapshot(run) == before and sorted(p.name for p in tmp_path.iterdir()) == ["R"]
    with pytest.raises(RunExistsError), new_run(run):
        pass
    (tmp_path / ".R.old-999999").mkdir()  # killed between its two renames: the old run it was replacing
    (tmp_path / ".R.old-999999" / "model.safetensors").write_bytes(b"old")
    with run_lock(run), new_run(run, overwrite=True) as work:  # re-entrant: a caller may hold the lock
        (work / "run.json").write_text("new")
    assert snapshot(run) == {"run.json": b"new"} and sorted(p.name for p in tmp_path.iterdir()) == ["R"]


def test_a_killed_retrain_keeps_the_old_run_whole(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "R"
    assert CliRunner().invoke(main, train_args(store, run)).exit_code == 0
    before = snapshot(run)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = train_args(store, run, "--overwrite")
    args[args.index("--epochs") + 1] = "100000"
    proc = subprocess.Popen([sys.executable, "-m", "xmic.cli", *args], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".R.partial-*/metrics.jsonl")):  # training has begun: metrics written
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.1)
        res = CliRunner().invoke(main, train_args(store, run, "--overwrite"))  # a concurrent run is refused
        assert res.exit_code == 1 and f"being trained into this folder by pid {proc.pid}" in res.output
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert snapshot(run) == before  # old weights with old metrics, nothing new beside them
    res = CliRunner().invoke(main, train_args(store, run, "--overwrite"))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R"]  # the killed run's partial folder and lock are gone


def test_checkpoint_has_the_permissions_of_the_other_run_files(store: Path, tmp_path: Path) -> None:
    run = tmp_path / "R"
    assert CliRunner().invoke(main, train_args(store, run)).exit_code == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"] == modes["run.json"], modes
