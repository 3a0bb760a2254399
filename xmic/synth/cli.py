"""``xmic synth``: write the synthetic benchmark (two datasets in the EPIC-100 and Ego4D formats)."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("synth")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="output folder")
@click.option("--seed", type=int, default=0, show_default=True, help="global seed (same seed = same files)")
@click.option(
    "--scale",
    type=float,
    default=None,
    help="multiply the segment counts (default 1.0: 200 train + 60 val per dataset)",
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
    small: bool,
    overwrite: bool,
    annotations_only: bool,
    workers: int | None,
    no_progress: bool,
) -> None:
    """Generate a synthetic egocentric benchmark: kitchen A as EPIC-KITCHENS-100, kitchen B as Ego4D FHO."""
    from tqdm import tqdm

    from xmic.synth.datasets import DATASET_SPECS
    from xmic.synth.generate import Sizes, existing_outputs, generate, plan_dataset

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
        total = sum(len(vs) for i, s in enumerate(DATASET_SPECS) for vs in plan_dataset(s, i, seed, scale).values())
    started = time.perf_counter()
    with tqdm(total=total, unit="video", desc="synth", disable=no_progress or annotations_only) as bar:
        try:
            report = generate(
                out,
                seed=seed,
                scale=scale,
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
