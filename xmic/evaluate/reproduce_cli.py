"""`xmic reproduce --table N`: rebuild the paper's tables from the feature store (see reproduce.py), in one process,
as shards of a cluster job (--shard, SLURM arrays, torchrun), or K runs at a time (--jobs); --plan and --assemble."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xmic.adapt.baseline_options import FORMS
from xmic.adapt.config import PRESETS


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def parse_seeds(text: str | None) -> tuple[int, ...]:
    """ "0,1,2" or "0 1 2" -> (0, 1, 2); empty -> (0,)."""
    parts = [p for p in (text or "").replace(",", " ").split() if p]
    try:
        return tuple(int(p) for p in parts) or (0,)
    except ValueError:
        raise click.BadParameter(
            f"seeds must be integers separated by commas, got {text!r}", param_hint="--seeds"
        ) from None


def parse_datasets(text: str | None, base: dict[str, str]) -> dict[str, str]:
    """ "epic=synth-epic,ego4d=synth-ego4d" on top of ``base``."""
    out = dict(base)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, group = item.partition("=")
        if not sep or not name.strip() or not group.strip():
            raise click.BadParameter(f"expected NAME=GROUP, got {item!r}", param_hint="--datasets")
        out[name.strip()] = group.strip()
    return out


def parse_tables(text: str) -> list[int]:
    """ "4" -> [4]; "1,4" -> [1, 4]; "all" -> [1, ..., 7]."""
    from xmic.evaluate.table_specs import TABLE_SPECS

    if text.strip().lower() == "all":
        return sorted(TABLE_SPECS)
    try:
        numbers = sorted({int(p) for p in text.replace(",", " ").split()})
    except ValueError:
        numbers = []
    if not numbers or any(n not in TABLE_SPECS for n in numbers):
        raise click.BadParameter(
            f"expected a table 1-7, several (1,4) or all, got {text!r}", param_hint="--table"
        ) from None
    return numbers


@click.command("reproduce")
@click.option("--table", "tables", required=True, help="Which table of the paper: 1-7, several (1,4) or all.")
@click.option(
    "--plan", "plan", is_flag=True, help="Print the runs (folder, cost, tables, xmic train command); train nothing."
)
@click.option(
    "--shard",
    default=None,
    help="Train only share I of N of the runs (I/N, 1 <= I <= N) and write no table; default from "
    "SLURM_ARRAY_TASK_ID/COUNT or torchrun's RANK/WORLD_SIZE.",
)
@click.option(
    "--assemble", is_flag=True, help="Build the tables from finished runs, training nothing; name the missing."
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs trained at once on this machine (worker processes; one GPU each when there are GPUs).",
)
@click.option("--cache", type=click.Path(path_type=Path), required=True, help="Feature store.")
@click.option("--epic-root", default=None, help="EPIC-KITCHENS-100 root, to extract a missing epic group.")
@click.option("--ego4d-root", default=None, help="Ego4D root, to extract a missing ego4d group.")
@click.option("--egtea-root", default=None, help="EGTEA Gaze+ root, to extract a missing egtea group.")
@click.option(
    "--hoa-dir",
    default=None,
    help="Extraction: 100DOH hand-object detection pickles, DIR (EPIC's) or one folder per dataset, "
    "epic=DIR,ego4d=DIR,egtea=DIR (hoa hands for those datasets).",
)
@click.option(
    "--hands",
    "hands_choice",
    default=None,
    help="Extraction: hand-box provider for all datasets or per dataset, e.g. ego4d=mediapipe,egtea=yolo,"
    "epic=epic-hoa (hoa, epic-hoa, mediapipe, yolo, none). Default: hoa (epic: epic-hoa) where --hoa-dir gives "
    "the dataset a folder, else mediapipe.",
)
@click.option(
    "--hand-model",
    default=None,
    help="Extraction: MediaPipe hand_landmarker.task (default $XMIC_HAND_MODEL or hand_landmarker.task in --model-dir).",
)
@click.option("--yolo-weights", default=None, help="Extraction: YOLO weights file for --hands ...=yolo.")
@click.option(
    "--allow-no-hands",
    is_flag=True,
    help="Run X-MIC rows and Table 4 on groups without hand boxes (hand view = full frame), and extract with none.",
)
@click.option("--model-dir", default=None, help="Local model folder / HF cache (extraction; CoOp, Co-CoOp, A5).")
@click.option("--second-encoder", default=None, help="Second encoder to extract with a missing group (dinov2-vitb14).")
@click.option("--skip-bad", is_flag=True, help="Extraction: record rows without media as failed instead of stopping.")
@click.option(
    "--seeds", default=None, help="Seeds, comma-separated; mean ± std over them (default 0; with --demo 0,1,2)."
)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="authors-code", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("reproduce"), show_default=True)
@click.option("--runs", type=click.Path(path_type=Path), default=None, help="Run folders (default OUT/runs).")
@click.option("--device", default=None, help="cuda or cpu (default: cuda when available).")
@click.option("--epochs", type=int, default=None, help="Override the preset's epochs (quick runs).")
@click.option("--frames", type=int, default=None, help="Override the 16 frames per clip.")
@click.option(
    "--batch-size", type=int, default=None, help="Override the preset's batch size (with --demo: the demo's 16)."
)
@click.option("--rows", default=None, help="Only these rows, comma-separated keys or methods (e.g. zero-shot,xmic).")
@click.option("--targets", default="noun,verb", show_default=True, help="noun, verb or both.")
@click.option("--split-files", default=None, help="Folder of the authors' shared-class files (Table 2).")
@click.option("--datasets", "dataset_map", default=None, help="Store groups per dataset: epic=GROUP,ego4d=GROUP.")
@click.option(
    "--paper-numbers",
    default=None,
    help="CSV of the paper's numbers typed in from the PDF (see `xmic paper-numbers template`).",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Use the demo's groups (synth-*), generating and extracting the missing ones next to --cache.",
)
@click.option(
    "--adapter-hidden",
    type=click.IntRange(min=1),
    default=None,
    help="X-MIC rows: bottleneck width of the MLP giving a_v (default Dc/16; with --demo, 32: see `xmic demo`).",
)
@click.option(
    "--form",
    type=click.Choice(FORMS),
    default=None,
    help="Baseline rows: 'authors' or 'paper' form (default: the preset's; docs/baselines.md).",
)
@click.option(
    "--option",
    "baseline_option",
    multiple=True,
    metavar="METHOD:KEY=VALUE",
    help="Baseline rows: one option of one method, e.g. clip-adapter:ratio=0.2 (repeatable; docs/baselines.md).",
)
@click.option(
    "--demo-quick",
    is_flag=True,
    help="With --demo: build missing groups at a tenth of the size and train 3 epochs, one seed (CI).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def reproduce_cmd(tables: str, cache: Path, demo: bool, demo_quick: bool, **kw: Any) -> None:
    """Rebuild Table N: train (or reuse) every run, evaluate, print paper | ours | Δ as Markdown.

    On a cluster: --plan lists the runs; --shard I/N (or a SLURM array / torchrun) trains one share of them, on
    hosts sharing the --out folder; --assemble then writes the tables. --jobs K trains K runs at once.
    """
    from xmic.adapt.baseline_options import parse_option
    from xmic.cache.errors import StoreError
    from xmic.demo.groups import (
        DEMO_ADAPTER_HIDDEN,
        DEMO_BACKBONES,
        DEMO_BATCH,
        DEMO_EPOCHS,
        DEMO_GROUPS,
        DEMO_SEEDS,
        QUICK_EPOCHS,
        ensure_demo_groups,
    )
    from xmic.evaluate.paper_file import PaperFileError
    from xmic.evaluate.reproduce import DEFAULT_DATASETS, ReproduceError, ReproduceSettings
    from xmic.evaluate.reproduce_data import parse_hands, parse_hoa_dirs
    from xmic.evaluate.reproduce_modes import logical_datasets

    numbers = parse_tables(tables)
    modes = [name for name in ("plan", "assemble") if kw[name]] + (["shard"] if kw["shard"] else [])
    if kw["plan"] and kw["assemble"] or kw["assemble"] and kw["shard"]:
        raise click.UsageError(f"--{' and --'.join(modes)} do not go together")

    targets = tuple(t.strip() for t in kw["targets"].split(",") if t.strip())
    if not targets or any(t not in ("noun", "verb") for t in targets):
        raise click.BadParameter(f"targets must be noun and/or verb, got {kw['targets']!r}", param_hint="--targets")
    datasets = parse_datasets(kw["dataset_map"], DEMO_GROUPS if demo else DEFAULT_DATASETS)
    try:
        hands = parse_hands(kw["hands_choice"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--hands") from None
    try:
        hoa_dirs = parse_hoa_dirs(kw["hoa_dir"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--hoa-dir") from None
    epochs = kw["epochs"]
    if demo_quick and not demo:
        raise click.BadParameter("--demo-quick goes with --demo", param_hint="--demo-quick")
    say = _echo(err=kw["plan"])
    build = None
    if demo:

        def build() -> None:
            needed = logical_datasets(numbers)
            try:
                built = ensure_demo_groups(cache, needed, quick=demo_quick, progress=not kw["quiet"], echo=say)
            except (RuntimeError, StoreError) as exc:
                raise click.ClickException(f"building the demo groups: {exc}") from None
            if built:
                say(f"demo: built groups {', '.join(built)} in {cache}")

        # the recipe of `xmic demo` (--demo-quick: a few epochs, for CI); the table's header states it
        epochs = (QUICK_EPOCHS if demo_quick else DEMO_EPOCHS) if epochs is None else epochs
        if kw["batch_size"] is None:
            kw["batch_size"] = DEMO_BATCH
        if kw["seeds"] is None and not demo_quick:
            kw["seeds"] = ",".join(map(str, DEMO_SEEDS))
        if kw["adapter_hidden"] is None:
            kw["adapter_hidden"] = DEMO_ADAPTER_HIDDEN
        if kw["model_dir"] is None and (cache.parent / "models").is_dir():
            kw["model_dir"] = str(cache.parent / "models")  # the demo's tiny encoders (CoOp, Co-CoOp, A5)
    roots = {d: _path(kw[f"{d}_root"]) for d in ("epic", "ego4d", "egtea")}
    baseline_options: dict[str, dict[str, Any]] = {}
    for text in kw["baseline_option"]:
        method, sep, rest = text.partition(":")
        try:
            if not sep:
                raise ValueError(f"--option takes METHOD:KEY=VALUE, got {text!r}")
            key, value = parse_option(rest)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--option") from None
        baseline_options.setdefault(method, {})[key] = value
    settings = ReproduceSettings(
        cache=cache,
        out=kw["out"],
        runs=kw["runs"],
        seeds=parse_seeds(kw["seeds"]),
        preset=kw["preset"],
        datasets=datasets,
        targets=targets,
        rows=tuple(kw["rows"].split(",")) if kw["rows"] else None,
        epochs=epochs,
        frames=kw["frames"],
        batch_size=kw["batch_size"],
        device=kw["device"] or None,
        split_files=_path(kw["split_files"]),
        model_dir=_path(kw["model_dir"]),
        roots={d: p for d, p in roots.items() if p is not None},
        hoa_dir=hoa_dirs or None,
        hands=hands,
        hand_model=_path(kw["hand_model"]),
        yolo_weights=_path(kw["yolo_weights"]),
        allow_no_hands=kw["allow_no_hands"],
        second_encoder=kw["second_encoder"] or None,
        skip_bad=kw["skip_bad"],
        paper_numbers=_path(kw["paper_numbers"]),
        xmic_options={} if kw["adapter_hidden"] is None else {"mlp_hidden": kw["adapter_hidden"]},
        form=kw["form"],
        baseline_options=baseline_options,
        demo=demo,
        backbones=dict(DEMO_BACKBONES) if demo else {},
        progress=not kw["quiet"],
    )
    try:
        _dispatch(numbers, settings, kw, say, build)
    except (ReproduceError, StoreError, FileNotFoundError, PaperFileError) as exc:
        raise click.ClickException(str(exc)) from None


def _echo(err: bool):
    return lambda line: click.echo(line, err=err)


def _dispatch(numbers: list[int], settings: Any, kw: dict[str, Any], say: Any, build: Any) -> None:
    """Run the mode the options ask for (see xmic.evaluate.reproduce_modes)."""
    import dataclasses

    from xmic.evaluate.paper_file import load_paper_table
    from xmic.evaluate.reproduce_modes import assemble_tables, prepare, print_plan, reproduce_tables, train_share
    from xmic.evaluate.run_plan import discover_shard, parse_shard

    shard = None
    if kw["shard"]:
        try:
            shard = parse_shard(kw["shard"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--shard") from None
    elif not kw["plan"] and not kw["assemble"] and (found := discover_shard()) is not None:
        shard = found[:2]
        click.echo(f"shard {shard[0] + 1}/{shard[1]} from {found[2]}")
    training = not kw["plan"] and not kw["assemble"]
    if training and shard is not None and settings.device is None:  # torchrun / srun: the rank's own GPU
        import torch

        from xmic.extract.launch import default_device

        settings = dataclasses.replace(settings, device=default_device(torch.cuda.device_count()))
    for number in numbers:  # a bad --paper-numbers file fails before any extraction or training
        load_paper_table(number, settings.paper_numbers)
    prepare(settings, numbers, say, extract=training, build=build)
    if kw["plan"]:
        print_plan(numbers, settings, click.echo, shard)
    elif kw["assemble"]:
        assemble_tables(numbers, settings, click.echo)
    elif shard is not None:
        train_share(numbers, settings, click.echo, shard, kw["jobs"])
        click.echo("when every shard is done, the same command with --assemble instead of --shard writes the tables")
    else:
        reproduce_tables(numbers, settings, click.echo, kw["jobs"])


if __name__ == "__main__":
    reproduce_cmd()
