"""The one-command demo: synthetic benchmark -> tiny frozen encoders -> feature store -> Table 1 -> results.

Layout of ``out``::

    data/            the synthetic benchmark (EPIC-format kitchen A, Ego4D-format kitchen B, manifest.json)
    models/          demo-clip/ (tiny, pretrained on third-person pairs), demo-dinov2/ (with --dino)
    cache/           the feature store, groups synth-epic and synth-ego4d
    runs/            one folder per trained run (method x target x direction)
    table1.md/json/png  Table 1 as `xmic reproduce --table 1` writes it on demo data (ours with 95 % intervals over
                     test clips, chance, the paper's numbers as reference), plus the hand-crop reference row
    results.json     every number of the demo, the settings and the wall time of each step
    plots/           table1_bars.png (within / cross / hm per method)
    report.md        per-run report (config, training, evaluation, per-class accuracy; `xmic report` adds PNGs)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmic.demo.groups import (
    DEMO_ADAPTER_HIDDEN,
    DEMO_BACKBONES,
    DEMO_BATCH,
    DEMO_EPOCHS,
    DEMO_GROUPS,
    REFERENCE_ROW,
)
from xmic.demo.pretrain import PretrainConfig
from xmic.owned import MANIFEST, clear_outputs, writing

Echo = Callable[[str], None]
#: `xmic demo` keeps to its time budget without Vita-CLIP's encoder-in-the-loop training; DEMO=1 runs it.
VITA_CLIP_NOT_IN_DEMO = (
    "left out of `xmic demo` (it runs the visual encoder on every frame of every step: minutes on 2 cores); the "
    "store holds its frame cache, and `make reproduce-table1 DEMO=1` runs it"
)
QUICK_PRETRAIN = PretrainConfig(steps=40, batch_size=128, pairs=800, holdout=200, warmup=5)
#: Most processes the demo starts by default (its 24 training runs gain little beyond).
MAX_JOBS = 8


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), at most :data:`MAX_JOBS`."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_JOBS))


@dataclass
class DemoConfig:
    """Settings of one demo run (``xmic demo --help``).

    ``None`` fields take their default for the mode: full (scale 1.0, 15 epochs, 200 pretraining steps) or
    ``quick`` (scale 0.1, 2 epochs, 40 pretraining steps; for tests and smoke runs). ``jobs`` processes extract the
    two datasets and train the runs (default: the cores this process may use, at most
    :data:`MAX_JOBS`), each with ``threads`` torch threads; a run's numbers do not depend on how many there are.
    """

    out: Path
    seed: int = 0
    scale: float | None = None
    epochs: int | None = None
    batch_size: int = DEMO_BATCH
    quick: bool = False
    pretrain_steps: int | None = None
    rows: tuple[str, ...] | None = None
    targets: tuple[str, ...] = ("noun", "verb")
    dino: bool = False
    adapter_hidden: int | None = DEMO_ADAPTER_HIDDEN
    plots: bool = True
    report: bool = True
    threads: int | None = 1
    workers: int | None = None
    jobs: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.jobs is None:
            self.jobs = usable_cores()
        if self.scale is None:
            self.scale = 0.1 if self.quick else 1.0
        if self.epochs is None:
            self.epochs = 2 if self.quick else DEMO_EPOCHS
        if self.adapter_hidden == 0:
            self.adapter_hidden = None

    def pretrain_config(self) -> PretrainConfig | None:
        base = QUICK_PRETRAIN if self.quick else PretrainConfig()
        steps = base.steps if self.pretrain_steps is None else self.pretrain_steps
        return None if steps == 0 else dataclasses.replace(base, steps=steps, seed=self.seed)


@dataclass
class DemoResult:
    """What :func:`run_demo` wrote and measured."""

    out: Path
    results: dict[str, Any]
    markdown: str
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def prepare_out(out: Path) -> None:
    """Create ``out`` or clear an earlier demo in it: only what the demo's list of written files
    (:mod:`xmic.owned`) names is deleted; a folder holding anything else is refused, naming that file."""
    out.mkdir(parents=True, exist_ok=True)
    fix = "move it out of the folder or give a new --out"
    if not (out / MANIFEST).exists() and (out / "results.json").exists():
        fix += " (a demo written by an older xmic has no list of its files: delete that folder yourself)"
    clear_outputs(out, what=f"the demo folder {out}", fix=fix)


def written(out: Path, *names: str):
    """Context manager: the body writes ``names`` into the demo folder ``out`` (recorded in its list of files)."""
    return writing(out, names, what=f"the demo folder {out}", fix="move it out of the folder or give a new --out")


class _Steps:
    """Numbered log lines with the wall time of each step."""

    def __init__(self, total: int, echo: Echo, out: Path) -> None:
        self.total, self.echo, self.k, self.out = total, echo, 0, out
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, key: str, title: str, writes: tuple[str, ...]) -> Iterator[None]:
        """One step that writes ``writes`` (names under the demo folder)."""
        self.k += 1
        self.echo(f"[{self.k}/{self.total}] {title}")
        t0 = time.perf_counter()
        with written(self.out, *writes):
            yield
        self.timings[key] = time.perf_counter() - t0
        self.echo(f"[{self.k}/{self.total}] {title}: done in {self.timings[key]:.1f} s")


def run_demo(config: DemoConfig, echo: Echo = print) -> DemoResult:
    """Run every step of the demo into ``config.out`` and return its numbers (see the module docstring).

    Torch's CPU thread count is set to ``config.threads`` for the run and restored afterwards.
    """
    import torch

    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)  # tiny models: more threads only add synchronisation on 2 cores
    try:
        return _run_steps(config, echo)
    finally:
        torch.set_num_threads(threads)


def _run_steps(config: DemoConfig, echo: Echo) -> DemoResult:
    from xmic.demo.models import DINO_NAME, make_demo_encoders
    from xmic.demo.store import extract_demo_store
    from xmic.evaluate.reproduce import ReproduceSettings, reproduce_table
    from xmic.evaluate.reproduce_modes import train_share
    from xmic.synth import generate

    t_start = time.perf_counter()
    out = config.out
    prepare_out(out)
    steps = _Steps(5, echo, out)
    title = f"synthetic benchmark (seed {config.seed}, scale {config.scale}) -> {out / 'data'}"
    with steps.step("generate", title, ("data",)):
        synth = _generate(generate, out / "data", config)
        for name, info in synth.manifest["datasets"].items():
            counts = ", ".join(f"{s} {c['segments']}" for s, c in info["counts"].items())
            echo(f"  {name} ({info['title']}): {counts} segments")
    with steps.step("models", f"tiny frozen encoders -> {out / 'models'}", ("models",)):
        models = make_demo_encoders(
            out / "models", synth.manifest, seed=config.seed, pretrain=config.pretrain_config(), dino=config.dino,
            progress=config.progress, echo=lambda m: echo("  " + m),
        )  # fmt: skip
    with steps.step("extract", f"features -> {out / 'cache'} (groups synth-epic, synth-ego4d)", ("cache",)):
        second = DINO_NAME if config.dino else None
        extracted = extract_demo_store(
            out / "data", synth.manifest, out / "cache", out / "models", second_encoder=second, jobs=config.jobs,
            progress=config.progress, echo=lambda m: echo("  " + m),
        )  # fmt: skip
    settings = ReproduceSettings(
        cache=out / "cache", out=out, runs=out / "runs", seeds=(config.seed,), datasets=dict(DEMO_GROUPS),
        targets=config.targets, rows=config.rows, epochs=config.epochs, batch_size=config.batch_size, device="cpu",
        model_dir=out / "models", demo=True, backbones=dict(DEMO_BACKBONES), progress=config.progress,
        xmic_options={} if config.adapter_hidden is None else {"mlp_hidden": config.adapter_hidden},
        not_run={"vita-clip": VITA_CLIP_NOT_IN_DEMO},
    )  # fmt: skip
    what = " and ".join(f"{t}s" for t in config.targets)
    tables = ("runs", "table1.md", "table1.json", "table1.png")
    with steps.step("train", f"Table 1: X-MIC and the baselines, {what}, both directions", tables):
        if config.jobs > 1:  # the runs in parallel processes; the table below reuses them
            train_share([1], settings, lambda m: echo("  " + m), None, config.jobs)
        table = reproduce_table(1, settings, echo=lambda m: None if m.startswith("## Table") else echo("  " + m))
        reference, reference_results = _hand_view_reference(settings, echo)
        standing = rewrite_table_with_reference(table, settings, reference_results)
    with steps.step("report", f"results.json, plots and report.md -> {out}", ("plots", "report_files", "report.md")):
        from xmic.demo.outputs import write_outputs

        result = write_outputs(config, synth.manifest, models, extracted, table, reference, standing, echo)
    result.timings = {**steps.timings, "total": time.perf_counter() - t_start}
    result.results["timings_seconds"] = result.timings
    with written(out, "results.json"):
        (out / "results.json").write_text(json.dumps(result.results, indent=2, sort_keys=True, default=str) + "\n")
    return result


def _generate(generate: Callable[..., Any], data: Path, config: DemoConfig) -> Any:
    from tqdm.auto import tqdm

    from xmic.synth.datasets import DATASET_SPECS
    from xmic.synth.generate import plan_dataset

    total = sum(
        len(v) for i, s in enumerate(DATASET_SPECS) for v in plan_dataset(s, i, config.seed, config.scale).values()
    )
    with tqdm(total=total, unit="video", desc="render", disable=not config.progress) as bar:
        return generate(
            data, seed=config.seed, scale=config.scale, overwrite=True, workers=config.jobs if config.workers is None else config.workers,
            on_video=lambda _r: bar.update(1),
        )  # fmt: skip


def rewrite_table_with_reference(table: Any, settings: Any, reference_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Rewrite ``table1.md`` and ``table1.png`` with :data:`REFERENCE_ROW` under zero-shot CLIP, and with where X-MIC
    stands against zero-shot CLIP, CLIP-Adapter and that reference (:mod:`xmic.demo.standing`), which is returned.

    Args:
        table: the :class:`~xmic.evaluate.reproduce.ReproduceReport` of Table 1 (its files are replaced).
        settings: the demo's :class:`~xmic.evaluate.reproduce.ReproduceSettings`.
        reference_results: the hand-crop reference's evaluations (one per target and direction).
    """
    from xmic.demo.standing import standing_lines, standing_record
    from xmic.evaluate.paper_file import load_paper_table
    from xmic.evaluate.reproduce import extra_header
    from xmic.evaluate.table_plot import save_table_bars
    from xmic.evaluate.tables import collect, render_markdown

    paper = load_paper_table(1, settings.paper_numbers)
    keys = [k for k in paper.rows if k in table.results or k in table.skipped]
    rows = {k: paper.rows[k] for k in keys[:1]} | {REFERENCE_ROW: {}} | {k: paper.rows[k] for k in keys[1:]}
    shown = dataclasses.replace(paper, rows=rows)
    results = {**table.results, REFERENCE_ROW: reference_results}
    summaries = collect(shown, results, settings.datasets)
    lines = extra_header(settings, 1) + [
        f"**{REFERENCE_ROW}**: zero-shot CLIP classifying the hand crop, the view X-MIC classifies; trained nothing. "
        "It separates what the view gives from what the adapter learns."
    ]
    table.markdown = render_markdown(
        shown, results, datasets=settings.datasets, skipped=table.skipped, extra_header=lines, summaries=summaries,
        demo=True, after_grid=standing_lines(shown, summaries),
    )  # fmt: skip
    table.md_path.write_text(table.markdown)
    if table.png_path is not None:
        save_table_bars(shown, summaries, table.png_path, table.skipped, demo=True)
    return standing_record(shown, summaries)


def _hand_view_reference(settings: Any, echo: Echo) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Zero-shot CLIP classifying the hand crop instead of the full frame: what X-MIC's classified view alone gives.

    X-MIC classifies the hand crop (the authors' configuration) while the Table 1 baselines classify the full
    frame; this reference separates that choice from what the adapter learns.

    Returns:
        ``{target: {direction: scores}}`` and the evaluations themselves.
    """
    from xmic.adapt.config import TrainConfig
    from xmic.adapt.trainer import train
    from xmic.demo.results import direction_scores
    from xmic.evaluate.evaluator import evaluate_run
    from xmic.evaluate.reproduce import store_groups

    groups = [g for g in (settings.group("epic"), settings.group("ego4d")) if g in store_groups(settings.cache)]
    out: dict[str, Any] = {}
    evaluations = []
    for target in settings.targets:
        for train_group in groups:
            cfg = TrainConfig.from_preset(
                settings.preset, dataset=train_group, target=target, method="zero-shot", classified_view="hand",
                seed=settings.seeds[0], device="cpu",
            )  # fmt: skip
            run = settings.runs_dir / f"zero-shot-hand-{train_group}-{target}-s{cfg.seed}"
            train(cfg, settings.cache, run, progress=False, overwrite=True)
            result = evaluate_run(run, settings.cache, groups, eval_splits=("validation", "val"))
            evaluations.append(result)
            direction, scores = direction_scores(result)
            out.setdefault(target, {})[direction] = scores
    echo("  reference: zero-shot CLIP on the hand crop (X-MIC's classified view), trained nothing")
    return out, evaluations
