"""`xmic reproduce` beyond one process: --plan, --shard I/N (and the launchers' variables), --jobs, --assemble,
on the session's quick demo; shards run as separate processes."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from xmic.adapt.config import TrainConfig
from xmic.cli import main
from xmic.evaluate.reproduce import ReproduceError, config_key
from xmic.evaluate.run_claim import claim_path
from xmic.evaluate.run_plan import PlannedRun, assign_shards, discover_shard, parse_shard

REPO = Path(__file__).resolve().parents[1]


def base_args(demo: Path, out: Path, table: str, *more: str) -> list[str]:
    """``xmic reproduce`` on the quick demo's store, one epoch, on the CPU."""
    cache = demo / "cache"
    return ["reproduce", "--table", table, "--cache", str(cache), "--demo", "--demo-quick", "--epochs", "1"] + [
        "--device", "cpu", "--quiet", "--out", str(out), *more,
    ]  # fmt: skip


def xmic(*args: str):
    return CliRunner().invoke(main, list(args))


def start(args: list[str]) -> subprocess.Popen:
    """``xmic ARGS`` as a separate process with one torch thread (as the in-process runs here)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "xmic.cli", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(proc: subprocess.Popen) -> str:
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    return out


def plan_lines(result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    return [line.split("\t") for line in result.stdout.splitlines() if line and not line.startswith("#")]


def test_plan_lists_each_run_once_deterministically_and_shards_partition_it(demo, tmp_path):
    args = base_args(demo, tmp_path / "out", "1,2,4", "--plan", "--seeds", "0,1")
    first = xmic(*args)
    lines = plan_lines(first)
    assert plan_lines(xmic(*args)) == lines
    folders = [line[0] for line in lines]
    assert len(folders) == len(set(folders))
    assert all(Path(f).parent == tmp_path / "out" / "runs" for f in folders)
    # Table 2 uses exactly Table 1's runs; Table 4's F+H row is Table 1's X-MIC trained on Ego4D
    assert "# table 1: 64 runs (8 rows x 2 targets x 2 directions x 2 seeds); not run: X-MIC+DINO" in first.stdout
    assert "# table 4: 12 runs (3 rows x 2 targets x 1 directions x 2 seeds)" in first.stdout
    assert len(lines) == 64 + 12 - 4
    assert f"# {len(lines)} distinct runs (68 shared between tables)" in first.stdout
    assert {line[2] for line in lines} == {"1,2", "4", "1,2,4"}
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written

    shares = [plan_lines(xmic(*args, "--shard", f"{i}/3")) for i in (1, 2, 3)]
    assert sorted(line for share in shares for line in map(tuple, share)) == sorted(map(tuple, lines))
    costs = [sum(float(line[1]) for line in share) for share in shares]
    assert max(costs) - min(costs) <= max(float(line[1]) for line in lines)  # longest-first balance

    bad = xmic(*args[:-2], "--shard", "0/3")
    assert bad.exit_code == 2 and "--shard takes I/N with 1 <= I <= N" in bad.output


def test_plan_commands_train_the_planned_runs(demo, tmp_path, monkeypatch):
    out = tmp_path / "out"
    options = ["--option", "clip-adapter:ratio=0.5", "--option", "coop:ctx_init=a photo of a"]
    lines = plan_lines(xmic(*base_args(demo, out, "1,7", "--plan", "--frames", "8", "--batch-size", "16", *options)))
    assert any("--frames 8" in line[3] and "--adapter-hidden 32" in line[3] for line in lines)
    assert any("--option ratio=0.5" in line[3] for line in lines)
    assert any(shlex.split(line[3])[-3] == 'ctx_init="a photo of a"' for line in lines)
    seen: list[tuple[TrainConfig, Path]] = []

    def fake_train(cfg, cache, run, **kw):
        seen.append((cfg, run))
        return SimpleNamespace(metrics=[], meta={})

    monkeypatch.setattr("xmic.adapt.trainer.train", fake_train)
    for folder, _cost, _tables, command in lines:
        words = shlex.split(command)
        assert words[:2] == ["xmic", "train"]
        result = xmic(*words[1:])
        assert result.exit_code == 0, result.output
        cfg, run = seen[-1]
        assert str(run) == folder
        assert run.name == f"{cfg.method}-{cfg.dataset}-{cfg.target}-s{cfg.seed}-{config_key(cfg)}"
    monkeypatch.undo()

    # a command run by hand makes a run folder that the rebuild takes as finished
    args = base_args(demo, out, "1", "--rows", "zero-shot", "--targets", "noun", "--frames", "8", "--batch-size", "16")
    zero_shot = [
        line
        for line in lines
        if "1" in line[2].split(",") and "--method zero-shot" in line[3] and "--target noun" in line[3]
    ]
    assert len(zero_shot) == 2
    assert xmic(*shlex.split(zero_shot[0][3])[1:]).exit_code == 0
    missing = xmic(*args, "--assemble")
    assert missing.exit_code == 1
    assert "1 runs are missing, so table 1 was not written" in missing.output
    assert f"  {zero_shot[1][0]} (table 1)" in missing.output and zero_shot[0][0] not in missing.output
    assert not (out / "table1.md").exists()


def result_files(out: Path) -> tuple[str, dict, list[str]]:
    """The table's Markdown, its JSON without the run's place and reuse, and the checkpoints' digests."""
    record = json.loads((out / "table1.json").read_text())
    record["settings"].pop("out")
    for row in record["rows"].values():
        for r in row.get("results", []):
            r.pop("reused"), r.pop("run")
    digests = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in out.glob("runs/*/model.safetensors"))
    return (out / "table1.md").read_text(), record, digests


def test_two_shard_processes_and_jobs_give_the_serial_tables(demo, tmp_path, one_torch_thread):
    select = ("--rows", "clip-adapter", "--targets", "verb")
    serial = xmic(*base_args(demo, tmp_path / "serial", "1", *select))
    assert serial.exit_code == 0, serial.output
    assert "table 1: 2 runs trained, 0 reused" in serial.output

    shards = [start(base_args(demo, tmp_path / "sharded", "1", *select, "--shard", f"{i}/2")) for i in (1, 2)]
    logs = [finish(p) for p in shards]
    for i, log in enumerate(logs, 1):
        assert f"shard {i}/2: 1 of 2 runs" in log and f"shard {i}/2: 1 runs trained, 0 reused" in log
    assembled = xmic(*base_args(demo, tmp_path / "sharded", "1", *select, "--assemble"))
    assert assembled.exit_code == 0, assembled.output
    assert "table 1: 0 runs trained, 2 reused" in assembled.output

    jobs = xmic(*base_args(demo, tmp_path / "jobs", "1", *select, "--jobs", "2"))
    assert jobs.exit_code == 0, jobs.output
    assert "all runs: 2 runs trained, 0 reused" in jobs.output

    want = result_files(tmp_path / "serial")
    assert len(want[2]) == 2
    numbers = [r["datasets"] for row in want[1]["rows"].values() for r in row.get("results", [])]
    assert any(d["top1"] > 0 for ds in numbers for d in ds.values())  # the comparison is not between zeros
    assert result_files(tmp_path / "sharded") == want
    assert result_files(tmp_path / "jobs") == want


KILLED_AT_TRAIN = """
import os, signal, sys
import xmic.adapt.trainer as trainer
trainer.train = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from xmic.cli import main
main(sys.argv[1:])
"""


def test_a_killed_shards_run_is_retried_by_the_next_invocation(demo, tmp_path):
    args = base_args(demo, tmp_path / "out", "1", "--rows", "zero-shot", "--targets", "noun")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", KILLED_AT_TRAIN, *args, "--shard", "1/1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == -signal.SIGKILL, log
    killed = next(line.split()[1] for line in log.splitlines() if line.startswith("train "))
    claim = claim_path(tmp_path / "out" / "runs" / killed)
    assert json.loads(claim.read_text())["pid"] == proc.pid  # the dead shard's claim is left behind

    missing = xmic(*args, "--assemble")
    assert missing.exit_code == 1 and "2 runs are missing" in missing.output and killed in missing.output

    again = xmic(*args, "--shard", "1/1")
    assert again.exit_code == 0, again.output
    assert f"train {killed}" in again.output and "shard 1/1: 2 runs trained, 0 reused" in again.output
    assert not claim.exists()
    assert xmic(*args, "--assemble").exit_code == 0


def test_two_processes_racing_for_one_run_train_it_once(demo, tmp_path):
    args = base_args(demo, tmp_path / "out", "4", "--rows", "F", "--targets", "noun")
    logs = [finish(p) for p in [start(args), start(args)]]
    trained = [line for log in logs for line in log.splitlines() if line.startswith("train ")]
    assert len(trained) == 1, logs
    assert sum("table 4: 1 runs trained, 0 reused" in log for log in logs) == 1
    assert sum("table 4: 0 runs trained, 1 reused" in log for log in logs) == 1
    assert (tmp_path / "out" / "table4.md").is_file()


def test_shard_from_slurm_arrays_and_torchrun():
    assert discover_shard({}) is None
    assert discover_shard({"RANK": "0", "WORLD_SIZE": "1"}) is None
    array = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert discover_shard(array) == (2, 4, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
    assert discover_shard({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == (5, 8, "RANK/WORLD_SIZE")
    both = {**array, "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}  # an array of 2-task steps
    assert discover_shard(both)[:2] == (2 * 2 + 1, 8)
    with pytest.raises(ReproduceError, match="not one of 4 consecutive tasks"):
        discover_shard({**array, "SLURM_ARRAY_TASK_ID": "9"})
    assert parse_shard("2/4") == (1, 4)
    for bad in ("4", "5/4", "0/4", "a/b", "1/0"):
        with pytest.raises(ValueError, match="1 <= I <= N"):
            parse_shard(bad)


def test_shards_are_balanced_longest_first_and_keep_the_plan_order():
    runs = [
        PlannedRun(TrainConfig(method="clip-adapter", epochs=1, frames=16), Path(f"runs/r{i}"), clips)
        for i, clips in enumerate([3, 5, 3, 4, 3])
    ]
    assert [r.cost for r in runs] == [6, 10, 6, 8, 6]
    shares = assign_shards(runs, 2)
    assert [[r.name for r in s] for s in shares] == [["r1", "r2"], ["r0", "r3", "r4"]]  # costs 16 and 20
    assert assign_shards(list(reversed(runs)), 2)[0][::-1] == shares[0]
    assert [len(s) for s in assign_shards(runs, 7)] == [1, 1, 1, 1, 1, 0, 0]


def test_a_run_held_by_another_process_is_put_off_then_waited_for(demo, tmp_path, one_torch_thread, monkeypatch):
    import threading

    from xmic.evaluate.reproduce import ReproduceSettings
    from xmic.evaluate.reproduce_modes import plan_runs
    from xmic.evaluate.run_claim import try_claim
    from xmic.evaluate.run_pool import train_runs

    monkeypatch.setattr("xmic.evaluate.reproduce.WAIT_POLL", 0.1)
    settings = ReproduceSettings(
        cache=demo / "cache",
        out=tmp_path / "out",
        datasets={"epic": "synth-epic", "ego4d": "synth-ego4d"},
        rows=("F", "H"),
        targets=("noun",),
        epochs=1,
        device="cpu",
        progress=False,
    )
    _, runs = plan_runs([4], settings, lambda _: None)
    assert len(runs) == 2
    claim = try_claim(runs[0].run_dir)  # as if another live process were training it
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith(f"train {runs[1].name}"):
            threading.Timer(0.5, claim.release).start()  # the other process gives up its claim

    report = train_runs(runs, settings, echo)
    assert report.status == {runs[0].name: "trained", runs[1].name: "trained"}
    assert lines.index(f"train {runs[1].name}") < lines.index(f"train {runs[0].name}")
    assert any(line.startswith(f"later: {runs[0].name} is being trained by pid {os.getpid()}") for line in lines)
    assert "1 runs held by other processes: waiting for them" in lines
