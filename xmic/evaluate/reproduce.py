"""Rebuild a table of the paper from the feature store: train, evaluate, and set our numbers beside the paper's.

A table spec is a list of rows (a method plus :class:`~xmic.adapt.config.TrainConfig` overrides) and the
training directions it needs (train A, test A and B). For every row x target x direction x seed the run is
trained into ``<runs>/<method>-<dataset>-<target>-s<seed>-<config hash>`` or, when that folder holds a finished
run with an equal ``config.json`` made from the same store spec, reused; its evaluation is cached next to it.
Rows whose needs the store cannot meet (Vita-CLIP; X-MIC+DINO without DINOv2 features; the prompt-learning
baselines without local CLIP weights) are listed as "not run" with the reason. Missing dataset groups are
extracted with :func:`xmic.extract.runner.run_extraction` when the dataset's root is given.

:func:`plan_table` lists a table's runs with the configs training uses (``--plan`` prints them, shards split them:
:mod:`xmic.evaluate.reproduce_modes`); a run folder is claimed before it is trained
(:mod:`xmic.evaluate.run_claim`), so processes sharing the run folders never train the same run twice; with
``assemble`` :func:`reproduce_table` trains nothing and names the runs that are missing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmic.adapt.config import PRESETS, StaleRunError, TrainConfig
from xmic.cache.hand_info import hand_boxes_line, no_hands_reason
from xmic.evaluate.paper_file import load_paper_table
from xmic.evaluate.reproduce_data import (  # noqa: F401 - re-exported: part of this module's interface
    EXTRACT_SPLITS,
    ReproduceError,
    ensure_datasets,
    extract_command,
    extract_dataset,
    store_groups,
)
from xmic.evaluate.row_needs import PROMPT_LEARNERS, resolve_row  # noqa: F401 - re-exported
from xmic.evaluate.table_plot import save_table_bars
from xmic.evaluate.table_specs import (  # noqa: F401 - re-exported: part of this module's interface
    BACKBONES,
    BOTH,
    DEFAULT_CLIP,
    EGO4D_TO_EPIC,
    METHOD_ROWS,
    NORM_ROWS,
    TABLE_SPECS,
    VIEW_ROWS,
    RowSpec,
    TableSpec,
    TableSpecError,
    blocks_not_run,
    merge_skipped,
    prompt_template,
    select_rows,
)
from xmic.evaluate.tables import collect, render_markdown
from xmic.report.plots import MISSING_MATPLOTLIB

Echo = Callable[[str], None]
DEFAULT_DATASETS = {"epic": "epic", "ego4d": "ego4d", "egtea": "egtea"}
EVAL_FILE = "eval-{key}.json"


@dataclass
class ReproduceSettings:
    """Everything a table rebuild takes besides the table number.

    ``datasets`` maps the paper's logical names (epic, ego4d, egtea) to the store's dataset groups; ``roots``
    (logical name -> dataset root), ``hoa_dir``, ``second_encoder`` are only used to extract a missing group.
    ``rows`` keeps the rows whose key or method is listed. ``epochs``/``frames``/``batch_size`` override the preset.
    """

    cache: Path
    out: Path = Path("reproduce")
    runs: Path | None = None
    seeds: tuple[int, ...] = (0,)
    preset: str = "authors-code"
    datasets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DATASETS))
    targets: tuple[str, ...] = ("noun", "verb")
    rows: tuple[str, ...] | None = None
    epochs: int | None = None
    frames: int | None = None
    batch_size: int | None = None
    device: str | None = None
    split_files: Path | None = None
    model_dir: Path | None = None
    roots: dict[str, Path] = field(default_factory=dict)
    hoa_dir: Path | dict[str, Path] | None = None  # a folder: EPIC's; a dict: one per dataset
    hands: dict[str, str] = field(default_factory=dict)  # extraction: hand provider per dataset (reproduce_data)
    hand_model: Path | None = None  # extraction: MediaPipe hand_landmarker.task (default: find_hand_model)
    yolo_weights: Path | None = None  # extraction: weights for hands = yolo
    allow_no_hands: bool = False  # X-MIC rows / Table 4 on a group without hand boxes (hand_policy.no_hands_reason)
    second_encoder: str | None = None
    skip_bad: bool = False  # extraction: record rows without media as failed instead of stopping
    paper_numbers: Path | None = None
    xmic_options: dict[str, Any] = field(default_factory=dict)  # XMICConfig fields for the X-MIC rows
    form: str | None = None  # the baselines' form ("authors"/"paper"); None = the preset's
    baseline_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> options of its rows
    not_run: dict[str, str] = field(default_factory=dict)  # method -> why this rebuild leaves its rows out
    demo: bool = False  # the generated demo data: the header says its numbers are not comparable with the paper's
    backbones: dict[str, str] = field(default_factory=dict)  # paper encoder -> stand-in (demo: demo-clip), in header
    progress: bool = True

    @property
    def runs_dir(self) -> Path:
        return self.runs or self.out / "runs"

    def group(self, logical: str) -> str:
        return self.datasets.get(logical, logical)


@dataclass
class ReproduceReport:
    """What one table rebuild did: results per row, rows not run and why, runs trained / reused, files written."""

    number: int
    markdown: str
    results: dict[str, list[dict[str, Any]]]
    skipped: dict[str, str]
    trained: int
    reused: int
    json_path: Path
    md_path: Path
    png_path: Path | None = None  # None without matplotlib


def config_key(cfg: TrainConfig) -> str:
    """A short hash of everything that defines the run except the device it runs on."""
    d = cfg.to_dict()
    d.pop("device")
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:10]


def finished_run(run_dir: Path, cfg: TrainConfig, spec: Any) -> bool:
    """A finished run (run.json written last) with an equal config.json, trained on a store of the same spec."""
    from xmic.adapt.run_io import CONFIG, META

    if not (run_dir / CONFIG).is_file() or not (run_dir / META).is_file():
        return False
    try:
        theirs = TrainConfig.load(run_dir / CONFIG).to_dict()
    except StaleRunError:
        return False  # trained with the old n2/n3 meanings: trained again, never reinterpreted
    mine = cfg.to_dict()
    mine.pop("device")
    theirs.pop("device")
    meta = json.loads((run_dir / META).read_text())
    return mine == theirs and meta.get("store", {}).get("spec") == spec.to_json()


def eval_splits_of(readers: list[Any]) -> tuple[str, ...]:
    """Every split value of the test groups that is not a training split (validation, val, test_split1, ...)."""
    splits = {str(s) for r in readers for s in set(r.segments["split"].tolist())}
    return tuple(sorted(s for s in splits if not s.startswith("train")))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class RunHeldError(ReproduceError):
    """A live process on this or another host holds the claim on a run folder (see :mod:`.run_claim`)."""


class MissingRunsError(ReproduceError):
    """``--assemble``: runs a table needs are not trained yet; ``missing`` lists their folders."""

    def __init__(self, number: int, missing: list[Path]) -> None:
        self.number, self.missing = number, missing
        super().__init__(f"table {number}: {len(missing)} runs are missing: " + ", ".join(p.name for p in missing))


#: Seconds between two looks at a run that another process is training.
WAIT_POLL = 2.0


def run_folder(settings: ReproduceSettings, cfg: TrainConfig) -> Path:
    """``<runs>/<method>-<dataset>-<target>-s<seed>-<config hash>``: the folder of the run ``cfg``."""
    return settings.runs_dir / f"{cfg.method}-{cfg.dataset}-{cfg.target}-s{cfg.seed}-{config_key(cfg)}"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Runner:
    """Trains or reuses one run (under a claim on its folder), then evaluates it or reuses its cached evaluation."""

    def __init__(self, settings: ReproduceSettings, echo: Echo) -> None:
        import torch

        self.settings, self.echo = settings, echo
        self.device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.trained = self.reused = 0
        self.eval_readers: dict = {}  # the finished store's arrays, read once for every run's evaluation

    def config(self, overrides: dict[str, Any], group: str, target: str, seed: int, spec: Any) -> TrainConfig:
        from xmic.adapt.trainer import resolve_encoders

        s = self.settings
        cfg = TrainConfig.from_preset(
            s.preset,
            dataset=group,
            target=target,
            seed=seed,
            device=self.device,
            epochs=s.epochs,
            frames=s.frames,
            batch_size=s.batch_size,
            **overrides,
        )
        if cfg.method != "xmic":
            cfg.form = s.form
            cfg.options = dict(s.baseline_options.get(cfg.method, {}))
            cfg.validate()
        if cfg.method == "xmic" and s.xmic_options:
            cfg.extra = {**cfg.extra, "xmic": {**cfg.extra.get("xmic", {}), **s.xmic_options}}
        cfg.encoder, cfg.second_encoder = resolve_encoders(cfg, spec)
        return cfg

    def run(self, cfg: TrainConfig, reader: Any, *, wait: bool = True) -> tuple[Path, bool]:
        """Train the run of ``cfg`` into its folder, or reuse it when finished; ``(run folder, reused)``.

        The folder is claimed first (:func:`~xmic.evaluate.run_claim.try_claim`). While another live process holds
        it, ``wait`` polls until that process finishes the run (or dies, and the run is trained here); without
        ``wait`` it raises :class:`RunHeldError`.
        """
        from xmic.adapt.trainer import train
        from xmic.evaluate.run_claim import claim_holder, try_claim

        run_dir = run_folder(self.settings, cfg)
        said = False
        while True:
            if finished_run(run_dir, cfg, reader.spec):
                self.reused += 1
                return run_dir, True
            claim = try_claim(run_dir)
            if claim is not None:
                break
            holder = claim_holder(run_dir)
            who = holder.describe() if holder else "another process"
            if not wait:
                raise RunHeldError(f"{run_dir.name} is being trained by {who}")
            if not said:
                self.echo(f"wait for {run_dir.name}: trained by {who}")
                said = True
            time.sleep(WAIT_POLL)
        with claim:
            if finished_run(run_dir, cfg, reader.spec):
                self.reused += 1
                return run_dir, True
            self.echo(f"train {run_dir.name}")  # replaces an unfinished or other run there, its evaluations included
            train(cfg, self.settings.cache, run_dir, progress=self.settings.progress, reader=reader, overwrite=True)
        self.trained += 1
        return run_dir, False

    def evaluate(self, run_dir: Path, groups: list[str], eval_splits: tuple[str, ...]) -> dict[str, Any]:
        from xmic.evaluate.evaluator import evaluate_run

        s = self.settings
        split_files = str(s.split_files) if s.split_files else None
        what = {"groups": groups, "split_files": split_files, "eval_splits": list(eval_splits), "store": str(s.cache)}
        key = hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:10]
        path = run_dir / EVAL_FILE.format(key=key)
        if path.is_file():
            return json.loads(path.read_text())
        try:
            result = evaluate_run(
                run_dir,
                s.cache,
                groups,
                device=self.device,
                split_files=s.split_files,
                eval_splits=eval_splits,
                readers=self.eval_readers,
            )
        except ValueError as exc:
            raise ReproduceError(f"evaluating {run_dir} on {', '.join(groups)}: {exc}") from exc
        result = _clean(result)
        write_atomic(path, json.dumps(result, indent=2, sort_keys=True))
        return result


def hands_header(readers: Mapping[str, Any], no_hands: Mapping[str, str], settings: ReproduceSettings) -> list[str]:
    """The hand-box source of every dataset the table uses, and a mark when X-MIC ran without hand boxes."""
    lines = [hand_boxes_line(readers) + "."]
    if no_hands and settings.allow_no_hands:
        lines.append(
            f"**Without hand boxes** (--allow-no-hands): {', '.join(no_hands)}; X-MIC's hand view there is the full "
            "frame, so its rows (and Table 4's F, H, F+H) are not the paper's setting."
        )
    return lines


def baseline_header(settings: ReproduceSettings) -> list[str]:
    """Lines naming the baselines' form and options where they differ from the preset's, and the optimiser note."""
    from xmic.adapt.baseline_options import PRESET_FORMS

    preset_form = PRESET_FORMS.get(settings.preset, "authors")
    form = settings.form or preset_form
    lines = [
        f"Baselines in their {'authors' if form == 'authors' else 'papers'}' form (docs/baselines.md) with X-MIC's "
        "optimiser settings (the authors shipped none for them)."
    ]
    if form != preset_form:
        lines.append(f"Baseline form changed to {form!r} (preset {settings.preset}: {preset_form!r}).")
    for method, options in sorted(settings.baseline_options.items()):
        if options:
            listed = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
            lines.append(f"{method} options changed from the {form!r} form: {listed}.")
    return lines


def extra_header(settings: ReproduceSettings, number: int) -> list[str]:
    """Header lines that say how this rebuild departs from the paper's protocol or names its data."""
    preset = PRESETS[settings.preset]
    spec = TABLE_SPECS[number]
    used = sorted({d for _, tests in spec.directions for d in tests})
    lines = []
    if settings.demo:
        lines.append(
            "**Demo data**: generated videos and tiny encoders. The paper's numbers are shown for the table's shape "
            "only; demo numbers are not comparable with them."
        )
    if settings.backbones:
        names = {v: k for k, v in BACKBONES.items() if v}
        stand_ins = [f"{names.get(k, k)} rows use {v} as a stand-in" for k, v in settings.backbones.items()]
        lines.append("Stand-in encoders: " + "; ".join(stand_ins) + ".")
    trained = " and ".join(sorted({t for t, _ in spec.directions}))
    lines.append(
        f"Trained on {trained}; "
        + ", ".join(f"{d} = store group {settings.group(d)!r}" for d in used)
        + f"; preset {settings.preset}."
    )
    if settings.epochs is not None and settings.epochs != preset["epochs"]:
        lines.append(f"Epochs overridden to {settings.epochs} (preset: {preset['epochs']}): not the paper's protocol.")
    if settings.frames is not None and settings.frames != 16:
        lines.append(f"Frames per clip overridden to {settings.frames} (paper: 16).")
    if settings.xmic_options:
        options = ", ".join(f"{k}={v}" for k, v in sorted(settings.xmic_options.items()))
        lines.append(f"X-MIC options changed from DESIGN.md's adapter: {options}.")
    lines += baseline_header(settings)
    if number == 2:
        rule = f"the split files in {settings.split_files}" if settings.split_files else "equal normalised names"
        lines.append(f"Shared classes: {rule}.")
    return lines


@dataclass
class TableRun:
    """One run a table needs: the row it fills, target, training direction (logical names), seed, config, folder."""

    row: RowSpec
    target: str
    train: str
    tests: tuple[str, ...]
    seed: int
    cfg: TrainConfig
    run_dir: Path


@dataclass
class TablePlan:
    """Every run of one table in the order the table reports them, and the rows it leaves out (by label)."""

    number: int
    rows: tuple[RowSpec, ...]
    readers: dict[str, Any]  # logical name -> StoreReader of its group
    runs: list[TableRun]
    skipped: dict[str, str]
    no_hands: dict[str, str]
    eval_splits: tuple[str, ...]

    def groups(self, run: TableRun) -> list[str]:
        """The store groups ``run`` is evaluated on."""
        return [self.readers[d].dataset for d in run.tests]


def plan_table(number: int, settings: ReproduceSettings, echo: Echo = print, *, extract: bool = True) -> TablePlan:
    """The runs of table ``number`` on this store: rows x targets x directions x seeds, each with the
    :class:`~xmic.adapt.config.TrainConfig` the rebuild trains (the one ``--plan`` prints as a command).

    Missing dataset groups are extracted first when ``extract`` and the dataset's root is given; otherwise
    :class:`ReproduceError` says how to create them.
    """
    from xmic.cache.reader import StoreReader

    if number not in TABLE_SPECS:
        raise ReproduceError(f"no table {number}; the paper's tables are {', '.join(map(str, TABLE_SPECS))}")
    spec = TABLE_SPECS[number]
    rows = select_rows(spec, settings.rows)
    targets = tuple(t for t in settings.targets if t in spec.targets)
    if not targets:
        raise ReproduceError(f"table {number} reports {' and '.join(spec.targets)}s only, not {settings.targets}")
    logical = sorted({d for train, tests in spec.directions for d in (train, *tests)})
    ensure_datasets(settings if extract else dataclasses.replace(settings, roots={}), logical, echo)
    readers = {d: StoreReader(settings.cache, settings.group(d)) for d in logical}
    eval_splits = eval_splits_of([readers[d] for _, tests in spec.directions for d in tests])
    runner = _Runner(settings, echo)
    skipped: dict[str, str] = {}
    no_hands = {}
    if any(r.method == "xmic" for r in rows):
        no_hands = {r.dataset: why for r in readers.values() if (why := no_hands_reason(r)) is not None}
    runs = []
    for row in rows:
        overrides, reason = resolve_row(row, settings, list(readers.values()), no_hands)
        reason = settings.not_run.get(row.method, reason)
        if reason is not None:
            skipped[row.label] = reason
            continue
        for target in targets:
            for train, tests in spec.directions:
                reader = readers[train]
                for seed in settings.seeds:
                    cfg = runner.config(overrides, reader.dataset, target, seed, reader.spec)
                    runs.append(TableRun(row, target, train, tests, seed, cfg, run_folder(settings, cfg)))
    return TablePlan(number, rows, readers, runs, skipped, no_hands, eval_splits)


def reproduce_table(
    number: int, settings: ReproduceSettings, echo: Echo = print, *, assemble: bool = False
) -> ReproduceReport:
    """Train (or reuse) and evaluate every run of table ``number``, write JSON + Markdown, print the Markdown.

    ``assemble``: train nothing and extract nothing; build the table from the finished run folders, or raise
    :class:`MissingRunsError` naming the runs that are not there yet (and write no table).
    """
    if number in TABLE_SPECS:
        load_paper_table(number, settings.paper_numbers)  # a bad --paper-numbers file fails before any extraction
    plan = plan_table(number, settings, echo, extract=not assemble)
    runner = _Runner(settings, echo)
    if assemble:
        missing = [r.run_dir for r in plan.runs if not finished_run(r.run_dir, r.cfg, plan.readers[r.train].spec)]
        if missing:
            raise MissingRunsError(number, list(dict.fromkeys(missing)))
    results: dict[str, list[dict[str, Any]]] = {r.key: [] for r in plan.rows if r.label not in plan.skipped}
    for run in plan.runs:
        run_dir, reused = runner.run(run.cfg, plan.readers[run.train])
        result = runner.evaluate(run_dir, plan.groups(run), plan.eval_splits)
        cfg = run.cfg
        result.update(
            row=run.row.key, part=run.row.part, seed=run.seed, reused=reused, epochs=cfg.epochs, frames=cfg.frames
        )
        results[run.row.key].append(result)
    return write_table(plan, results, settings, echo, runner.trained, runner.reused)


def write_table(
    plan: TablePlan,
    results: dict[str, list[dict[str, Any]]],
    settings: ReproduceSettings,
    echo: Echo,
    trained: int,
    reused: int,
) -> ReproduceReport:
    """Render the table of ``plan`` from the evaluated ``results`` (row key -> one result per run): Markdown,
    JSON and the bar figure in ``settings.out``; print the Markdown and a summary line."""
    number, rows = plan.number, plan.rows
    paper = load_paper_table(number, settings.paper_numbers)
    spec = TABLE_SPECS[number]
    skipped = merge_skipped(spec, rows, plan.skipped)
    keys = list(dict.fromkeys(r.key for r in rows))
    shown = dataclasses.replace(paper, rows={key: paper.rows[key] for key in keys})
    summaries = collect(shown, results, settings.datasets)
    markdown = render_markdown(
        shown,
        results,
        datasets=settings.datasets,
        skipped=skipped,
        extra_header=extra_header(settings, number) + hands_header(plan.readers, plan.no_hands, settings),
        summaries=summaries,
    )
    settings.out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = settings.out / f"table{number}.json", settings.out / f"table{number}.md"
    record = {
        "table": number,
        "title": paper.title,
        "paper": {"source": paper.source, "rows": shown.rows},
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "progress"},
        "rows": {
            key: {"status": "not run", "reason": skipped[key]}
            if key in skipped
            else {"status": "ok", "results": results.get(key, []), "not_run": blocks_not_run(key, skipped)}
            for key in keys
        },
    }
    write_atomic(json_path, json.dumps(_clean(record), indent=2, sort_keys=True, default=str))
    write_atomic(md_path, markdown)
    png_path = save_table_bars(shown, summaries, settings.out / f"table{number}.png", skipped, demo=settings.demo)
    echo(markdown)
    figure = f", {png_path}" if png_path else f" ({MISSING_MATPLOTLIB})"
    echo(f"table {number}: {trained} runs trained, {reused} reused; wrote {md_path}, {json_path}{figure}")
    return ReproduceReport(number, markdown, results, skipped, trained, reused, json_path, md_path, png_path)
