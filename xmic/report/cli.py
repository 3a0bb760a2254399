"""``xmic report RUN... --out report.md``: a Markdown summary of trained runs with confusion-matrix PNGs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("report.md"), show_default=True)
@click.option(
    "--cache",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Store (default: each run's own, from run.json).",
)
@click.option(
    "--dataset", "datasets", multiple=True, help="Dataset group(s) to report on (default: those evaluated, else all)."
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--no-plots", is_flag=True, help="No confusion-matrix PNGs.")
def report_cmd(
    runs: tuple[Path, ...], out: Path, cache: Path | None, datasets: tuple[str, ...], device: str, no_plots: bool
) -> None:
    """Summarise RUN folders: config, last epoch, evaluation, per-class accuracy and confusion matrices."""
    from xmic.cache.errors import StoreError
    from xmic.report.markdown import render_report
    from xmic.report.summary import summarize_run

    summaries = []
    readers: dict = {}  # one reader per store group for all runs: each array is read once
    for run in runs:
        try:
            summaries.append(summarize_run(run, cache, list(datasets) or None, device=device, readers=readers))
        except (StoreError, FileNotFoundError, ValueError, KeyError) as exc:
            raise click.ClickException(f"{run}: {exc}") from None
    path, figures, notes = render_report(summaries, out, plots=not no_plots)
    for note in notes:
        click.echo(note, err=True)
    click.echo(f"wrote {path} ({len(summaries)} runs, {len(figures)} figures)")


if __name__ == "__main__":
    report_cmd()
