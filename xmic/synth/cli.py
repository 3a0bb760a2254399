"""``xmic synth``: write the synthetic benchmark (datasets in the EPIC-100, Ego4D and EGTEA Gaze+ formats)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from xmic.synth.datasets import DATASET_NAMES, DEFAULT_DATASETS


def parse_datasets(value: str) -> tuple[str, ...]:
    """``"epic,ego4d"`` -> ``("epic", "ego4d")``; :class:`click.BadParameter` naming unknown or missing names."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in DATASET_NAMES]
    if unknown:
        raise click.BadParameter(
            f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASET_NAMES)}", param_hint="--datasets"
        )
    if not names:
        raise click.BadParameter(f"give at least one of {', '.join(DATASET_NAMES)}", param_hint="--datasets")
    return names


@click.command("synth")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="output folder")
@click.option("--seed", type=int, default=0, show_default=True, help="global seed (same seed = same files)")
@click.option(
    "--scale",
    type=float,
    default=None,
    help="multiply the segment counts (default 1.0: 200 train + 200 validation segments per dataset)",
)
@click.option(
    "--datasets",
    default=",".join(DEFAULT_DATASETS),
    show_default=True,
    help=f"datasets to write, comma-separated: {', '.join(DATASET_NAMES)} (egtea = kitchen C as EGTEA Gaze+)",
)
@click.option("--small", is_flag=True, help="a tiny benchmark for tests and smoke runs (--scale 0.1)")
@click.option("--overwrite", is_flag=True, help="replace a benchmark already in --out")
@click.option("--annotations-only", is_flag=True, help="write annotations and manifest, no videos or hand boxes")
@click.option("--workers", type=int, default=None, help="render processes (default: up to 2); 0 renders in-process")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def synth(
    out: Path,
    seed: int,
    scale: float | None,
    datasets: str,
    small: bool,
    overwrite: bool,
    annotations_only: bool,
    workers: int | None,
    no_progress: bool,
) -> None:
    """Generate a synthetic egocentric benchmark: kitchen A as EPIC-KITCHENS-100, kitchen B as Ego4D FHO and,
    with --datasets ...,egtea, kitchen C as EGTEA Gaze+."""
    from tqdm import tqdm

    from xmic.synth.datasets import dataset_index, specs_for
    from xmic.synth.generate import Sizes, existing_outputs, generate, plan_dataset

    names = parse_datasets(datasets)

    if small and scale is not None:
        raise click.UsageError("give either --small or --scale, not both")
    scale = 0.1 if small else (1.0 if scale is None else scale)
    try:
        Sizes().scaled(scale)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scale") from None
    present = existing_outputs(out)
    if present and not overwrite:
        listing = ", ".join(str(p) for p in present)
        raise click.ClickException(f"{out} already holds a synthetic benchmark ({listing}); pass --overwrite")
    total = 0
    if not annotations_only:
        total = sum(len(vs) for s in specs_for(names) for vs in plan_dataset(s, dataset_index(s), seed, scale).values())
    started = time.perf_counter()
    with tqdm(total=total, unit="video", desc="synth", disable=no_progress or annotations_only) as bar:
        try:
            report = generate(
                out,
                seed=seed,
                scale=scale,
                datasets=names,
                overwrite=overwrite,
                videos=not annotations_only,
                workers=workers,
                on_video=lambda _result: bar.update(1),
            )
        except FileExistsError as exc:
            raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - started
    for name, info in report.manifest["datasets"].items():
        counts = ", ".join(
            f"{split} {c['segments']} segments in {c['videos']} videos" for split, c in info["counts"].items()
        )
        click.echo(f"{name} ({info['title']}): {counts} -> {out / info['root']}")
    shared = report.manifest["shared"]
    click.echo(f"shared classes: {len(shared['verb'])} verbs, {len(shared['noun'])} nouns; {elapsed:.1f} s")
    click.echo(f"manifest: {out / 'manifest.json'}")


if __name__ == "__main__":
    synth()
