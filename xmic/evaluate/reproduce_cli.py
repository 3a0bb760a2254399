"""`xmic reproduce --table N`: rebuild one of the paper's tables from the feature store (see reproduce.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xmic.adapt.config import PRESETS

#: Store groups the demo uses in place of the real datasets.
DEMO_DATASETS = {"epic": "synth-epic", "ego4d": "synth-ego4d", "egtea": "synth-egtea"}
#: Small vocabularies with some names in common, so cross-dataset and shared/novel columns mean something.
DEMO_VOCAB = {
    "epic": {
        "verb": ["take", "put", "open", "close", "wash", "cut"],
        "noun": ["pan", "knife", "cup", "board", "tap", "plate", "spoon", "bowl"],
    },
    "ego4d": {
        "verb": ["take", "put", "hold", "open", "pick", "turn"],
        "noun": ["knife", "cup", "phone", "door", "plate", "box", "bag", "spoon"],
    },
    "egtea": {
        "verb": ["take", "put", "open", "cut", "pour"],
        "noun": ["cup", "knife", "bowl", "pan", "egg"],
    },
}
DEMO_EVAL_SPLIT = {"epic": "validation", "ego4d": "val", "egtea": "test_split1"}


def write_demo_groups(
    cache: Path, datasets: dict[str, str], *, n: int = 192, num_frames: int = 16, noise: float = 40.0
) -> list[str]:
    """Write a random synthetic group for every demo dataset missing from ``cache``; returns the groups written.

    Each group: ``n`` segments (3/4 train, 1/4 evaluation split named as the real dataset's), T = ``num_frames``,
    CLIP features of width 512 carrying class signal under ``noise`` (see :mod:`xmic.cache.synthetic`).
    """
    import numpy as np

    from xmic.cache.synthetic import write_random_store
    from xmic.evaluate.reproduce import store_groups

    present = set(store_groups(cache))
    written = []
    for seed, (logical, group) in enumerate(sorted(datasets.items())):
        if group in present or logical not in DEMO_VOCAB:
            continue
        split = np.where(np.arange(n) < 3 * n // 4, "train", DEMO_EVAL_SPLIT[logical])
        if logical == "egtea":
            split = np.full(n, DEMO_EVAL_SPLIT[logical])
        write_random_store(
            cache,
            dataset=group,
            n=n,
            num_frames=num_frames,
            vocab=DEMO_VOCAB[logical],
            split=split,
            noise=noise,
            seed=seed + 1,
        )
        written.append(group)
    return written


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


@click.command("reproduce")
@click.option("--table", "number", type=click.IntRange(1, 7), required=True, help="Which table of the paper (1-7).")
@click.option("--cache", type=click.Path(path_type=Path), required=True, help="Feature store.")
@click.option("--epic-root", default=None, help="EPIC-KITCHENS-100 root, to extract a missing epic group.")
@click.option("--ego4d-root", default=None, help="Ego4D root, to extract a missing ego4d group.")
@click.option("--egtea-root", default=None, help="EGTEA Gaze+ root, to extract a missing egtea group.")
@click.option("--hoa-dir", default=None, help="EPIC-100 hand-object detections for extraction (epic-hoa hands).")
@click.option("--model-dir", default=None, help="Local model folder / HF cache (extraction; CoOp, Co-CoOp, A5).")
@click.option("--second-encoder", default=None, help="Second encoder to extract with a missing group (dinov2-vitb14).")
@click.option("--seeds", default="0", show_default=True, help="Seeds, comma-separated; mean ± std over them.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="authors-code", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("reproduce"), show_default=True)
@click.option("--runs", type=click.Path(path_type=Path), default=None, help="Run folders (default OUT/runs).")
@click.option("--device", default=None, help="cuda or cpu (default: cuda when available).")
@click.option("--epochs", type=int, default=None, help="Override the preset's epochs (quick runs).")
@click.option("--frames", type=int, default=None, help="Override the 16 frames per clip.")
@click.option("--batch-size", type=int, default=None, help="Override the preset's batch size.")
@click.option("--rows", default=None, help="Only these rows, comma-separated keys or methods (e.g. zero-shot,xmic).")
@click.option("--targets", default="noun,verb", show_default=True, help="noun, verb or both.")
@click.option("--split-files", default=None, help="Folder of the authors' shared-class files (Table 2).")
@click.option("--datasets", "dataset_map", default=None, help="Store groups per dataset: epic=GROUP,ego4d=GROUP.")
@click.option(
    "--paper-numbers",
    default=None,
    help="CSV of the paper's numbers typed in from the PDF (see `xmic paper-numbers template`).",
)
@click.option("--demo", is_flag=True, help="Use the synthetic demo groups (synth-*), writing them when missing.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def reproduce_cmd(number: int, cache: Path, demo: bool, **kw: Any) -> None:
    """Rebuild Table N: train (or reuse) every run, evaluate, print paper | ours | Δ as Markdown."""
    from xmic.cache.errors import StoreError
    from xmic.evaluate.paper_file import PaperFileError
    from xmic.evaluate.reproduce import DEFAULT_DATASETS, ReproduceError, ReproduceSettings, reproduce_table

    targets = tuple(t.strip() for t in kw["targets"].split(",") if t.strip())
    if not targets or any(t not in ("noun", "verb") for t in targets):
        raise click.BadParameter(f"targets must be noun and/or verb, got {kw['targets']!r}", param_hint="--targets")
    datasets = parse_datasets(kw["dataset_map"], DEMO_DATASETS if demo else DEFAULT_DATASETS)
    epochs = kw["epochs"]
    if demo:
        written = write_demo_groups(cache, datasets)
        if written:
            click.echo(f"demo: wrote synthetic groups {', '.join(written)} into {cache}")
        epochs = 3 if epochs is None else epochs
    roots = {d: _path(kw[f"{d}_root"]) for d in ("epic", "ego4d", "egtea")}
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
        hoa_dir=_path(kw["hoa_dir"]),
        second_encoder=kw["second_encoder"] or None,
        paper_numbers=_path(kw["paper_numbers"]),
        progress=not kw["quiet"],
    )
    try:
        reproduce_table(number, settings, echo=click.echo)
    except (ReproduceError, StoreError, FileNotFoundError, PaperFileError) as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    reproduce_cmd()
