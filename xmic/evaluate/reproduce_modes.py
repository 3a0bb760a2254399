"""The ways ``xmic reproduce`` goes over several tables: print the plan, train one shard of it, assemble the tables.

* :func:`print_plan` (``--plan``): every distinct run of the tables, one line each with its ``xmic train`` command.
* :func:`train_share` (``--shard I/N``, a SLURM array or ``torchrun``; ``--jobs K``): train this process's share
  of the runs (all of them without a shard) and evaluate them; no table is written.
* :func:`assemble_tables` (``--assemble``): the tables from the finished runs, training nothing; the missing runs
  are named.
* :func:`reproduce_tables`: the plain command, which trains what is missing (in K processes with ``--jobs``) and
  writes the tables.

:func:`prepare` makes the dataset groups every table needs present first, under a claim beside the store, so
that shards started together extract (or build the demo's groups) once and then all plan on the same store.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from xmic.evaluate.reproduce import (
    TABLE_SPECS,
    MissingRunsError,
    ReproduceError,
    ReproduceSettings,
    ensure_datasets,
    plan_table,
    reproduce_table,
)
from xmic.evaluate.run_plan import PlannedRun, assign_shards, collect_runs, plan_line

Echo = Callable[[str], None]


def logical_datasets(numbers: list[int]) -> list[str]:
    """The paper's datasets (epic, ego4d, egtea) that tables ``numbers`` train or test on."""
    return sorted({d for n in numbers for train, tests in TABLE_SPECS[n].directions for d in (train, *tests)})


def prepare(settings: ReproduceSettings, numbers: list[int], echo: Echo, *, extract: bool, build=None) -> None:
    """Make every group the tables need present (``build``: the demo's builder, called first), under a claim
    beside the store so that concurrent shards do it once; without ``extract``, only check they are there."""
    from xmic.evaluate.run_claim import wait_claim

    cache = Path(settings.cache)
    guard = (
        wait_claim(cache.parent / f"{cache.name}.reproduce", echo, f"the dataset groups of {cache}")
        if extract or build
        else nullcontext()
    )
    with guard:
        if build is not None:
            build()
        ensure_datasets(settings if extract else _no_roots(settings), logical_datasets(numbers), echo)


def _no_roots(settings: ReproduceSettings) -> ReproduceSettings:
    import dataclasses

    return dataclasses.replace(settings, roots={})


def plan_runs(numbers: list[int], settings: ReproduceSettings, echo: Echo) -> tuple[list, list[PlannedRun]]:
    """The table plans and the distinct runs over them (nothing is extracted or trained)."""
    plans = [plan_table(n, settings, echo, extract=False) for n in numbers]
    return plans, collect_runs(plans)


def my_share(runs: list[PlannedRun], shard: tuple[int, int] | None) -> list[PlannedRun]:
    return runs if shard is None else assign_shards(runs, shard[1])[shard[0]]


def print_plan(numbers: list[int], settings: ReproduceSettings, echo: Echo, shard: tuple[int, int] | None) -> None:
    """``--plan``: one line per run (folder, cost, tables, command), then ``#`` lines counting runs per table."""
    plans, runs = plan_runs(numbers, settings, echo)
    mine = my_share(runs, shard)
    for run in mine:
        echo(plan_line(run, settings.cache))
    for plan in plans:
        configs = len({r.row.label for r in plan.runs})
        targets = len({r.target for r in plan.runs})
        directions = len(TABLE_SPECS[plan.number].directions)
        counts = f"{configs} rows x {targets} targets x {directions} directions x {len(settings.seeds)} seeds"
        not_run = f"; not run: {', '.join(plan.skipped)}" if plan.skipped else ""
        echo(f"# table {plan.number}: {len(plan.runs)} runs ({counts}){not_run}")
    total = sum(len(p.runs) for p in plans)
    cost = sum(r.cost for r in runs)
    echo(f"# {len(runs)} distinct runs ({total - len(runs)} shared between tables), expected cost {cost:.0f}")
    if shard is not None:
        echo(f"# shard {shard[0] + 1}/{shard[1]}: {len(mine)} runs, expected cost {sum(r.cost for r in mine):.0f}")


def train_share(
    numbers: list[int], settings: ReproduceSettings, echo: Echo, shard: tuple[int, int] | None, jobs: int = 1
) -> None:
    """Train and evaluate this shard's runs (every run without a shard), ``jobs`` at a time."""
    from xmic.evaluate.run_pool import train_runs

    _, runs = plan_runs(numbers, settings, echo)
    mine = my_share(runs, shard)
    which = f"shard {shard[0] + 1}/{shard[1]}" if shard else "all runs"
    echo(f"{which}: {len(mine)} of {len(runs)} runs")
    report = train_runs(mine, settings, echo, jobs=jobs)
    echo(f"{which}: {report.line()}")


def assemble_tables(numbers: list[int], settings: ReproduceSettings, echo: Echo) -> None:
    """``--assemble``: write every table whose runs are all finished; then raise naming the missing runs."""
    missing: dict[Path, list[int]] = {}
    for number in numbers:
        try:
            reproduce_table(number, settings, echo, assemble=True)
        except MissingRunsError as exc:
            for path in exc.missing:
                missing.setdefault(path, []).append(number)
    if missing:
        lines = [f"  {p} (table {', '.join(map(str, t))})" for p, t in missing.items()]
        tables = sorted({n for t in missing.values() for n in t})
        raise ReproduceError(
            f"{len(missing)} runs are missing, so table {', '.join(map(str, tables))} was not written; train them "
            "(the same command without --assemble, or its shards) and assemble again:\n" + "\n".join(lines)
        )


def reproduce_tables(numbers: list[int], settings: ReproduceSettings, echo: Echo, jobs: int = 1) -> None:
    """The plain command: train what is missing (``jobs`` at a time), then write every table."""
    if jobs > 1:
        train_share(numbers, settings, echo, None, jobs)
    for number in numbers:
        reproduce_table(number, settings, echo)
