"""``xmic demo``: the whole pipeline on a synthetic benchmark in a few minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("demo_out"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the data, the encoders and training.")
@click.option(
    "--scale",
    type=float,
    default=None,
    help="Benchmark size (1.0 = 200 train + 200 test clips per dataset; --quick: 0.1).",
)
@click.option(
    "--epochs", type=int, default=None, help="Training epochs per run (default: the preset's 15; --quick: 2)."
)
@click.option(
    "--batch-size", type=int, default=16, show_default=True, help="Clips per step (the demo's datasets are small)."
)
@click.option(
    "--pretrain-steps",
    type=int,
    default=None,
    help="Tiny CLIP pretraining steps (default 200; --quick: 40; 0: random weights).",
)
@click.option(
    "--quick", is_flag=True, help="Tiny benchmark, 2 epochs, short pretraining: seconds, for tests and smoke runs."
)
@click.option(
    "--rows", default=None, help="Only these Table 1 rows, comma-separated keys or methods (e.g. zero-shot,xmic)."
)
@click.option("--targets", default="noun,verb", show_default=True, help="noun, verb or both.")
@click.option(
    "--adapter-hidden",
    type=click.IntRange(min=0),
    default=32,
    show_default=True,
    help="X-MIC's a_v bottleneck width (the real model's 32); 0: DESIGN.md's Dc/16, 4 units at the tiny Dc=64.",
)
@click.option("--dino", is_flag=True, help="Also a tiny random-weight DINOv2 as second encoder (runs X-MIC+DINO).")
@click.option("--no-plots", is_flag=True, help="No PNG figures.")
@click.option("--no-report", is_flag=True, help="No report.md.")
@click.option(
    "--threads", type=int, default=1, show_default=True, help="Torch CPU threads per process (0: torch's default)."
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes that extract the datasets and train the runs (default: the usable cores, at most 8; the numbers "
    "do not depend on it).",
)
@click.option("--workers", type=int, default=None, help="Video render processes (default: --jobs; 0: in-process).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo_cmd(
    out: Path, quick: bool, rows: str | None, targets: str, no_plots: bool, no_report: bool, quiet: bool, **kw
) -> None:
    """Synthetic benchmark -> tiny frozen encoders -> store -> X-MIC and the baselines -> Table 1, in minutes."""
    from transformers.utils import logging as hf_logging

    from xmic.cache.errors import StoreError
    from xmic.demo.outputs import summary_lines
    from xmic.demo.pipeline import DemoConfig, run_demo
    from xmic.evaluate.reproduce import ReproduceError

    hf_logging.disable_progress_bar()  # the baselines reload the text tower for every run
    wanted = tuple(t.strip() for t in targets.split(",") if t.strip())
    if not wanted or any(t not in ("noun", "verb") for t in wanted):
        raise click.BadParameter(f"targets must be noun and/or verb, got {targets!r}", param_hint="--targets")
    if kw["scale"] is not None and not kw["scale"] > 0:
        raise click.BadParameter(f"scale must be positive, got {kw['scale']}", param_hint="--scale")
    config = DemoConfig(
        out=out, quick=quick, rows=tuple(rows.split(",")) if rows else None, targets=wanted, plots=not no_plots,
        report=not no_report, progress=not quiet, **kw,
    )  # fmt: skip
    try:
        result = run_demo(config, echo=click.echo)
    except (FileExistsError, ReproduceError, StoreError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("")
    click.echo(result.markdown)
    for line in summary_lines(result):
        click.echo(line)


if __name__ == "__main__":
    demo_cmd()
