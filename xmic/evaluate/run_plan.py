"""The runs of several tables as one list: each run once, its ``xmic train`` command, its expected cost, its shard.

:func:`collect_runs` merges the :class:`~xmic.evaluate.reproduce.TablePlan` of each table (Tables 1 and 2 share
every run; Table 4's F+H row is Table 1's X-MIC trained on Ego4D), keeping the order in which the tables first
need them. :func:`assign_shards` splits that list into N shares of near-equal expected cost (longest first onto
the least loaded share), the same on every host that plans the same tables on the same store.
:func:`discover_shard` finds this process's share from a SLURM job array or a ``torchrun`` / ``srun`` launch.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xmic.adapt.config import TrainConfig
from xmic.evaluate.reproduce_data import ReproduceError

if TYPE_CHECKING:
    from xmic.evaluate.reproduce import TablePlan

#: Relative cost of one training epoch over one clip, by method (zero-shot trains nothing; the prompt learners
#: run the text encoder at every step, Co-CoOp once per clip). Estimates, used only to balance shards.
METHOD_COST = {
    "zero-shot": 0.0,
    "clip-adapter": 1.0,
    "clip-adapter-star": 1.0,
    "xmic": 2.0,
    "coop": 6.0,
    "a5": 6.0,
    "cocoop": 12.0,
    "vita-clip": 20.0,
}
#: Methods not listed above (added later) count as X-MIC.
DEFAULT_METHOD_COST = 2.0


@dataclass
class PlannedRun:
    """A distinct run of the plan: its config and folder, the training clips, the tables that use it and the
    evaluations they need (store groups tested, evaluation splits)."""

    cfg: TrainConfig
    run_dir: Path
    clips: int
    tables: list[int] = field(default_factory=list)
    evaluations: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def cost(self) -> float:
        return expected_cost(self.cfg, self.clips)


def expected_cost(cfg: TrainConfig, clips: int) -> float:
    """Relative cost of a run: clips x frames/16 x (1 + epochs x the method's cost); the 1 is loading and testing."""
    weight = METHOD_COST.get(cfg.method, DEFAULT_METHOD_COST)
    return clips * cfg.frames / 16 * (1 + cfg.epochs * weight)


def training_clips(reader: Any, split: str) -> int:
    """Rows of the reader's group in the training split ``split``."""
    return int((np.asarray(reader.segments["split"]).astype(str) == split).sum())


def collect_runs(plans: list[TablePlan]) -> list[PlannedRun]:
    """Every distinct run of ``plans``, in the order the tables first need them, with all their evaluations."""
    runs: dict[Path, PlannedRun] = {}
    for plan in plans:
        for table_run in plan.runs:
            run = runs.get(table_run.run_dir)
            if run is None:
                clips = training_clips(plan.readers[table_run.train], table_run.cfg.train_split)
                run = runs[table_run.run_dir] = PlannedRun(table_run.cfg, table_run.run_dir, clips)
            if plan.number not in run.tables:
                run.tables.append(plan.number)
            evaluation = (tuple(plan.groups(table_run)), plan.eval_splits)
            if evaluation not in run.evaluations:
                run.evaluations.append(evaluation)
    return list(runs.values())


def assign_shards(runs: list[PlannedRun], count: int) -> list[list[PlannedRun]]:
    """``count`` shares of ``runs`` of near-equal expected cost: the costliest run first, each onto the share
    with the least cost so far (the lowest index on ties). Each share keeps the plan's order."""
    if count < 1:
        raise ValueError(f"need at least one shard, got {count}")
    loads = [0.0] * count
    owner: dict[Path, int] = {}
    for run in sorted(runs, key=lambda r: (-r.cost, r.name)):
        i = min(range(count), key=lambda k: (loads[k], k))
        owner[run.run_dir] = i
        loads[i] += run.cost
    return [[r for r in runs if owner[r.run_dir] == i] for i in range(count)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1 <= I <= N) -> ``(I - 1, N)``.

    Raises:
        ValueError: not of that form.
    """
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard takes I/N with 1 <= I <= N (1/4 is the first of four shards), got {text!r}")
    return i - 1, n


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ReproduceError(f"{name}={env[name]!r} is not an integer") from None


def discover_shard(env: Mapping[str, str] | None = None) -> tuple[int, int, str] | None:
    """This process's share ``(index, count, where from)`` from the launcher's environment, or ``None``.

    A SLURM job array gives ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` of ``SLURM_ARRAY_TASK_COUNT``; within
    it, or alone, ``torchrun``'s ``RANK``/``WORLD_SIZE`` (or ``srun``'s ``SLURM_PROCID``/``SLURM_NTASKS``) split
    each array task further. ``None`` when all of these describe a single process.
    """
    from xmic.extract.launch import discover_rank

    env = os.environ if env is None else env
    task, tasks, source = 0, 1, []
    if "SLURM_ARRAY_TASK_COUNT" in env and "SLURM_ARRAY_TASK_ID" in env:
        tasks = _int(env, "SLURM_ARRAY_TASK_COUNT")
        task = (
            _int(env, "SLURM_ARRAY_TASK_ID") - _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        )
        if not 0 <= task < tasks:
            raise ReproduceError(
                f"SLURM array task {env['SLURM_ARRAY_TASK_ID']} is not one of {tasks} consecutive tasks; submit "
                "the array as --array=0-(N-1) or 1-N, without a step"
            )
        source.append("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
    try:
        rank, world = discover_rank(env=env)
    except ValueError as exc:
        raise ReproduceError(str(exc)) from None
    if world > 1:
        source.append("RANK/WORLD_SIZE" if "RANK" in env and "WORLD_SIZE" in env else "SLURM_PROCID/SLURM_NTASKS")
    if tasks * world == 1:
        return None
    return task * world + rank, tasks * world, " and ".join(source)


#: ``xmic train`` options that every command names, in this order.
_FIXED = ("dataset", "target", "method", "preset", "seed")
#: Options that are not part of the run's definition (the store and folder are given separately).
_NOT_CONFIG = {"cache", "out", "device", "quiet"}
#: Options that set a value inside ``TrainConfig.extra``: option name -> (section, key).
_EXTRA_OPTIONS = {"adapter_hidden": ("xmic", "mlp_hidden")}


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def train_command(cfg: TrainConfig, cache: Path, run_dir: Path) -> list[str]:
    """The ``xmic train`` command line that trains ``cfg`` into ``run_dir`` (the device left to the host).

    Every option of ``xmic train`` named after a :class:`~xmic.adapt.config.TrainConfig` field is given when the
    run's value differs from what the preset gives, so options added to ``xmic train`` later take part.

    Raises:
        ReproduceError: the run sets a field that ``xmic train`` has no option for.
    """
    from xmic.adapt.train_cli import train_cmd

    want = cfg.to_dict()
    base = TrainConfig.from_preset(cfg.preset, **{k: want[k] for k in _FIXED if k != "preset"}).to_dict()
    args = ["xmic", "train", "--cache", str(cache)]
    for name in _FIXED:
        args += [f"--{name}", _text(want[name])]
    covered = {*_FIXED, "device", "flags_version"}
    extra_want, extra_base = _strip_extra(want["extra"]), _strip_extra(base["extra"])
    if extra_want == extra_base:
        covered.add("extra")
    for param in train_cmd.params:
        if param.name is None or param.name in _NOT_CONFIG or param.name in _FIXED or not param.opts:
            continue
        if param.name in _EXTRA_OPTIONS:
            section, key = _EXTRA_OPTIONS[param.name]
            value, default = (d["extra"].get(section, {}).get(key) for d in (want, base))
        elif param.name in want:
            value, default = want[param.name], base[param.name]
            covered.add(param.name)
        else:
            continue
        if value == default:
            continue
        flag = getattr(param, "is_flag", False) and getattr(param, "secondary_opts", None)
        if getattr(param, "multiple", False) and isinstance(value, dict):  # --option KEY=VALUE, once per key
            args += [a for k, v in value.items() for a in (param.opts[0], f"{k}={json.dumps(v)}")]
        else:
            args += [param.opts[0] if value else param.secondary_opts[0]] if flag else [param.opts[0], _text(value)]
    uncovered = sorted(k for k in want if want[k] != base[k] and k not in covered)
    if uncovered:
        raise ReproduceError(
            f"{run_dir.name}: `xmic train` has no option for {', '.join(uncovered)}, so --plan cannot print its command"
        )
    return [*args, "--out", str(run_dir)]


def _strip_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` without the values that ``xmic train`` options set (and without sections left empty)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in extra.items()}
    for section, key in _EXTRA_OPTIONS.values():
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
            if not out[section]:
                del out[section]
    return out


def plan_line(run: PlannedRun, cache: Path) -> str:
    """One line of ``--plan``: run folder, expected cost, tables, ``xmic train`` command (tab-separated)."""
    tables = ",".join(map(str, run.tables))
    return f"{run.run_dir}\t{run.cost:.0f}\t{tables}\t{shlex.join(train_command(run.cfg, cache, run.run_dir))}"
