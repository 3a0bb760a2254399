"""`xmic train` and `xmic evaluate`."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from xmic.adapt.baseline_options import FORMS
from xmic.adapt.config import METHODS, PRESETS, VIDEO_POOLS, VIEW_CHOICES
from xmic.cache.errors import StoreError


def _bool_flag(name: str, default: bool, help_: str):
    return click.option(f"--{name}/--no-{name}", default=default, show_default=True, help=help_)


class _KeepArgs(click.Command):
    """A command that keeps its own command-line arguments (``ctx.meta["xmic_args"]``), so that an error can say
    the exact command to run instead."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["xmic_args"] = list(args)
        return super().parse_args(ctx, args)


def _without_option(args: list[str], name: str) -> list[str]:
    """``args`` without every ``name VALUE`` / ``name=VALUE`` pair."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _commands_per_group(command: str, groups: list[str], add: str = "--dataset") -> str:
    """One line per group: this command as the user typed it, with ``--dataset GROUP`` instead of theirs."""
    import shlex

    ctx = click.get_current_context()
    args = _without_option(ctx.meta.get("xmic_args", []), add)
    return "\n".join(f"  xmic {command} {shlex.join([*args, add, g])}" for g in groups)


def store_groups(cache: Path) -> list[str]:
    """The dataset groups of the store at ``cache`` (a ClickException when it is not a store)."""
    from xmic.cache.reader import list_datasets

    try:
        return list_datasets(cache)
    except (StoreError, OSError, ValueError) as exc:
        raise click.ClickException(f"{cache} is not a feature store xmic can read: {exc}") from exc


def resolve_train_dataset(cache: Path, dataset: str | None) -> str:
    """The dataset group to train on: ``dataset`` when the store has it; the store's only group when none is given.

    Raises:
        click.UsageError: no group, or several and none chosen, or one the store does not hold; the message lists
            the store's groups and the exact command for each.
    """
    groups = store_groups(cache)
    if not groups:
        raise click.UsageError(f"{cache} holds no dataset group yet; extract one first with `xmic extract`")
    if dataset is None and len(groups) == 1:
        return groups[0]
    if dataset in groups:
        return dataset
    if dataset is None:
        head = f"{cache} holds {len(groups)} dataset groups ({', '.join(groups)}); choose one with --dataset:"
    else:
        head = f"{cache} has no dataset group {dataset!r}; it holds {', '.join(groups)}. To train on one of them:"
    raise click.UsageError(f"{head}\n{_commands_per_group('train', groups)}")


@click.command("train", cls=_KeepArgs)
@click.option("--cache", "cache", type=click.Path(path_type=Path, exists=True), required=True, help="Feature store.")
@click.option(
    "--dataset",
    default=None,
    help="Dataset group of the store to train on (synth-epic, epic, ego4d, ...); default: the store's only group.",
)
@click.option("--target", type=click.Choice(["noun", "verb"]), default="noun", show_default=True)
@click.option("--method", type=click.Choice(METHODS), default="xmic", show_default=True)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="authors-code", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder (default runs/<dataset>-<target>-<method>-s<seed>).",
)
@click.option("--device", default=None, help="cuda or cpu (default: cuda when available).")
@click.option("--encoder", default=None, help="CLIP encoder of the store (default: the store's CLIP entry).")
@click.option("--second-encoder", default=None, help="Conditioning encoder, e.g. dinov2-vitb14 (default: --encoder).")
@click.option("--views", type=click.Choice(VIEW_CHOICES), default="F+H", show_default=True, help="Conditioning views.")
@click.option(
    "--classified-view",
    type=click.Choice(["full", "hand"]),
    default=None,
    help="CLIP view that is classified (default: hand for xmic, as the authors' configuration; full for baselines).",
)
@_bool_flag("n1", True, "X-MIC (Table 6): l2-normalise the conditioning features before the adapter.")
@_bool_flag("n2", False, "X-MIC (Table 6): l2-normalise the X-MIC vector a_v before adding it to the class texts.")
@_bool_flag("n3", False, "X-MIC (Table 6): l2-normalise the class-text embeddings before the sum.")
@click.option(
    "--video-pool",
    type=click.Choice(VIDEO_POOLS),
    default="mean",
    show_default=True,
    help="X-MIC's classified video feature: mean = l2norm of the mean of the raw frame features (the authors'); "
    "norm-mean = each frame l2-normalised first (as zero-shot CLIP).",
)
@click.option("--template", default="{}", show_default=True, help="Prompt template stored in the cache.")
@click.option("--epochs", type=int, default=None, help="Override the preset.")
@click.option("--frames", type=click.IntRange(min=1), default=None, help="Frames sampled per clip (default 16).")
@click.option("--lr", type=float, default=None, help="Override the preset.")
@click.option("--batch-size", type=int, default=None, help="Override the preset.")
@click.option("--model-dir", "text_model_dir", default=None, help="Local CLIP weights (CoOp, Co-CoOp, A5).")
@_bool_flag("amp", True, "bf16 autocast on CUDA and on CPUs with native bf16 (fp32 otherwise).")
@click.option(
    "--adapter-hidden",
    type=click.IntRange(min=1),
    default=None,
    help="X-MIC: bottleneck width of the MLP giving a_v (default Dc/16, 32 at Dc=512).",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the finished run in --out (it stays until the new run is complete)."
)
@click.option("--ignore-lock", is_flag=True, help="Take over the lock of --out from a process that is gone.")
@click.option(
    "--form",
    type=click.Choice(FORMS),
    default=None,
    help="Baselines: 'authors' (the X-MIC authors' trainers) or 'paper' (each method's own paper); default: the "
    "preset's (authors-code: authors, paper: paper). See docs/baselines.md.",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Baselines: one option of the method, e.g. ratio=0.2, heads=4, pool=norm-mean, period=true, "
    "class_position=middle, n_ctx=4, ctx_init='a photo of a', learn_scale=false (repeatable; docs/baselines.md).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_cmd(
    cache,
    dataset,
    target,
    method,
    preset,
    seed,
    out,
    device,
    encoder,
    second_encoder,
    views,
    classified_view,
    n1,
    n2,
    n3,
    video_pool,
    template,
    epochs,
    frames,
    lr,
    batch_size,
    text_model_dir,
    amp,
    adapter_hidden,
    form,
    options,
    overwrite,
    ignore_lock,
    quiet,
):
    """Train X-MIC or a baseline from the feature store (the frozen encoders never run).

    X-MIC scores the classified video feature with l2norm(t_k + 2 a_v) for every class text t_k; --n1/--n2/--n3
    add the l2-normalisations of the paper's Table 6 before that sum, which is always normalised.
    """
    import torch

    from xmic.adapt.baseline_options import parse_option
    from xmic.adapt.config import TrainConfig
    from xmic.adapt.trainer import train

    try:
        parsed = dict(parse_option(o) for o in options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    dataset = resolve_train_dataset(cache, dataset)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = TrainConfig.from_preset(
        preset,
        dataset=dataset,
        target=target,
        method=method,
        seed=seed,
        device=device,
        encoder=encoder,
        second_encoder=second_encoder,
        views=views,
        classified_view=classified_view,
        n1=n1,
        n2=n2,
        n3=n3,
        video_pool=video_pool,
        template=template,
        epochs=epochs,
        frames=frames,
        lr=lr,
        batch_size=batch_size,
        text_model_dir=text_model_dir,
        amp=amp,
        form=form,
        options=parsed or None,
    )
    if adapter_hidden is not None:
        cfg.extra = {**cfg.extra, "xmic": {**cfg.extra.get("xmic", {}), "mlp_hidden": adapter_hidden}}
    out = out or Path("runs") / f"{dataset}-{target}-{method}-s{seed}"
    try:
        result = train(cfg, cache, out, progress=not quiet, overwrite=overwrite, ignore_lock=ignore_lock)
    except (StoreError, KeyError, NotImplementedError) as exc:  # ValueError, OSError: xmic.cli's error policy
        raise click.ClickException(str(exc)) from exc
    final = result.metrics[-1] if result.metrics else {}
    click.echo(f"run written to {out}  (last epoch: {epoch_line(final)})")
    failed = result.meta.get("rows_failed_left_out", 0)
    if failed:
        click.echo(f"left out: {failed} training rows whose extraction failed (`xmic cache verify {cache}` lists them)")


def epoch_line(metrics: dict[str, Any]) -> str:
    """One epoch's metrics for people: ``epoch 3, loss 1.2345, train top-1 41.67%, lr 0.002, 0.8 s, 120 clips/s``
    (percent like every other accuracy xmic prints; metrics.jsonl keeps the fraction)."""
    if not metrics:
        return "no epoch"
    parts = []
    for key, value in metrics.items():
        if key == "train_top1":
            parts.append(f"train top-1 {100 * value:.2f}%")
        elif key == "loss":
            parts.append(f"loss {value:.4f}")
        elif key == "seconds":
            parts.append(f"{value:.1f} s")
        elif key == "clips_per_s":
            parts.append(f"{value:.0f} clips/s")
        elif isinstance(value, float):
            parts.append(f"{key} {value:g}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


@click.command("evaluate", cls=_KeepArgs)
@click.option("--run", "run_dir", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--cache", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--dataset", "datasets", multiple=True, help="Dataset group(s) to test on (default: all in the store).")
@click.option(
    "--split-files",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Folder with the authors' shared-class files (*common*_<target>.txt).",
)
@click.option(
    "--eval-split",
    "eval_splits",
    multiple=True,
    help="Splits to test on (default: every split whose name does not start with 'train').",
)
@click.option("--device", default=None)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Folder for eval.json/eval.md (default: the run)."
)
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="CoOp / Co-CoOp / A5 runs: local CLIP weights, when the folder the run recorded has moved.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
@click.option("--ignore-lock", is_flag=True, help="Take over the lock of the run folder from a process that is gone.")
def evaluate_cmd(run_dir, cache, datasets, split_files, eval_splits, device, out, model_dir, as_json, ignore_lock):
    """Top-1, class-mean top-1, within/cross, harmonic mean and shared/novel subsets of a trained run."""
    import torch

    from xmic.evaluate.evaluator import evaluate_run, to_markdown, write_results

    groups = store_groups(cache)
    unknown = [d for d in datasets if d not in groups]
    if unknown or not groups:
        if not groups:
            raise click.UsageError(f"{cache} holds no dataset group yet; extract one first with `xmic extract`")
        raise click.UsageError(
            f"{cache} has no dataset group {', '.join(map(repr, unknown))}; it holds {', '.join(groups)}. Leave out "
            f"--dataset to evaluate on all of them, or evaluate on one:\n{_commands_per_group('evaluate', groups)}"
        )
    from xmic.adapt.run_folder import run_lock

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # written into the run folder: not while another process trains into it (its swap would pair new weights
    # with this evaluation of the old ones)
    with run_lock(run_dir, ignore=ignore_lock) if out is None else nullcontext():
        try:
            results = evaluate_run(
                run_dir,
                cache,
                list(datasets) or None,
                device=device,
                split_files=split_files,
                eval_splits=tuple(eval_splits) or None,
                model_dir=model_dir,
            )
        except (StoreError, KeyError) as exc:  # ValueError, OSError: xmic.cli's error policy
            raise click.ClickException(str(exc)) from exc
        js, md = write_results(results, out or run_dir)
    click.echo(json.dumps(results, indent=2) if as_json else to_markdown(results))
    click.echo(f"written {js} and {md}", err=True)
