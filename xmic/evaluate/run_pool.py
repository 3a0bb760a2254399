"""Train and evaluate planned runs: one after another in this process, or in K spawned worker processes.

Every run is claimed before it is trained (:mod:`xmic.evaluate.run_claim`): a run another live process holds is
put off to the end and then waited for, a run found finished is reused. Each run is evaluated on every test the tables need right
after training, so that ``xmic reproduce --assemble`` only reads cached evaluations. Workers take the costliest
remaining run first; with GPUs, worker ``k`` trains on GPU ``k mod n``; on the CPU each worker gets an equal share
of the cores as torch threads.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xmic.evaluate.reproduce import ReproduceError, ReproduceSettings, RunHeldError, _Runner
from xmic.evaluate.run_plan import PlannedRun

Echo = Callable[[str], None]


@dataclass
class PoolReport:
    """What happened to each run: ``trained``, ``reused`` or ``held`` (by another live process), by run name."""

    status: dict[str, str] = field(default_factory=dict)

    def count(self) -> Counter[str]:
        return Counter(self.status.values())

    def line(self) -> str:
        c = self.count()
        held = f", {c['held']} held by other processes" if c["held"] else ""
        return f"{c['trained']} runs trained, {c['reused']} reused{held}"


class _Worker:
    """One process's runner and store readers, kept from run to run."""

    def __init__(self, settings: ReproduceSettings, echo: Echo) -> None:
        self.runner = _Runner(settings, echo)
        self.readers: dict[str, Any] = {}

    def __call__(self, run: PlannedRun, wait: bool = False) -> str:
        from xmic.cache.reader import StoreReader

        settings = self.runner.settings
        reader = self.readers.get(run.cfg.dataset)
        if reader is None:
            reader = self.readers[run.cfg.dataset] = StoreReader(settings.cache, run.cfg.dataset)
        cfg = dataclasses.replace(run.cfg, device=self.runner.device)
        try:
            run_dir, reused = self.runner.run(cfg, reader, wait=wait)
        except RunHeldError as exc:
            self.runner.echo(f"later: {exc}")
            return "held"
        for groups, eval_splits in run.evaluations:
            self.runner.evaluate(run_dir, list(groups), eval_splits)
        return "reused" if reused else "trained"


def train_runs(runs: list[PlannedRun], settings: ReproduceSettings, echo: Echo = print, jobs: int = 1) -> PoolReport:
    """Train (or reuse) and evaluate ``runs``; ``jobs`` > 1 spreads them over that many worker processes.

    Runs that other processes hold are left to the end; then each is waited for until it is finished (or its
    holder has died, and it is trained here), so that every run is done when this returns.
    """
    report = _train(runs, settings, echo, jobs, wait=False)
    held = [run for run in runs if report.status[run.name] == "held"]
    if held:
        echo(f"{len(held)} runs held by other processes: waiting for them")
        report.status.update(_train(held, settings, echo, jobs, wait=True).status)
    return report


def _train(runs: list[PlannedRun], settings: ReproduceSettings, echo: Echo, jobs: int, wait: bool) -> PoolReport:
    report = PoolReport()
    if jobs <= 1 or len(runs) <= 1:
        worker = _Worker(settings, echo)
        for run in runs:
            report.status[run.name] = worker(run, wait)
        return report
    import multiprocessing as mp

    import torch

    gpus = torch.cuda.device_count() if settings.device in (None, "cuda") else 0
    threads = max(1, (os.cpu_count() or 1) // jobs)
    ctx = mp.get_context("spawn")
    ids = ctx.Queue()
    for k in range(jobs):
        ids.put(k)
    order = sorted(runs, key=lambda r: (-r.cost, r.name))
    with ctx.Pool(jobs, initializer=_init, initargs=(ids, settings, gpus, threads)) as pool:
        try:
            for name, status in pool.imap_unordered(_work, [(run, wait) for run in order]):
                report.status[name] = status
        except ReproduceError:
            pool.terminate()
            raise
    return report


_WORKER: _Worker | None = None


def _init(ids: Any, settings: ReproduceSettings, gpus: int, threads: int) -> None:
    """Worker start: its GPU (or its share of the CPU threads), its runner."""
    import torch

    global _WORKER
    k = ids.get()
    if gpus:
        settings = dataclasses.replace(settings, device=f"cuda:{k % gpus}")
    else:
        torch.set_num_threads(threads)
    settings = dataclasses.replace(settings, progress=False)
    _WORKER = _Worker(settings, lambda line: print(f"[worker {k}] {line}", flush=True))


def _work(task: tuple[PlannedRun, bool]) -> tuple[str, str]:
    assert _WORKER is not None
    run, wait = task
    try:
        return run.name, _WORKER(run, wait)
    except ReproduceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a worker's error comes back to the parent as one line naming the run
        raise ReproduceError(f"{run.name}: {type(exc).__name__}: {exc}") from None
