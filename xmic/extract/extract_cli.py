"""``xmic extract``: the click command of stage one, its dry-run description and its end-of-run summary.

Register with ``main.add_command(extract)`` (``from xmic.extract.extract_cli import extract``). The work itself is
:func:`xmic.extract.runner.run_extraction`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from xmic.extract.hands.factory import choose_hands, hand_options, pop_hand_options
from xmic.extract.runner import Dataset, ExtractConfig, ExtractReport, run_extraction
from xmic.sampling import DEFAULT_NUM_FRAMES

#: Exit status of `xmic extract` when rows failed without --skip-bad (after writing everything that succeeded).
EXIT_ROWS_FAILED = 3
#: Failed rows / skipped rows / missing videos spelled out in printed summaries.
MAX_LISTED = 20


def summary_lines(report: ExtractReport) -> list[str]:
    """The end-of-run summary: rows, speed, time shares, failed rows grouped by reason."""
    t = report.timings
    lines = [
        f"done: {report.chunks_written} chunks, {report.rows_ok} rows ok, {report.rows_failed} failed, "
        f"{report.clips_per_second:.1f} clips/s, {report.wall_seconds:.1f} s in all",
        "time shares: "
        + ", ".join(f"{k} {100 * v:.0f}% ({t[k]:.2f} s)" for k, v in report.shares.items())
        + f"; waiting for decode {t.get('wait', 0.0):.2f} s, text {t.get('text', 0.0):.2f} s, "
        f"setup {t.get('setup', 0.0):.2f} s",
    ]
    earlier = report.rows_failed_total - report.rows_failed
    if earlier > 0:
        lines.append(f"{earlier} rows failed in an earlier run and are still failed (`xmic cache verify` lists them)")
    if report.failures:
        lines.append(f"failed rows ({len(report.failures)}), by reason:")
        reasons = Counter(f["reason"] for f in report.failures)
        lines += [f"  {n} x {reason}" for reason, n in reasons.most_common(MAX_LISTED)]
        lines += [
            f"  row {f['row']} segment {f['segment_id']} video {f['video_id']}" for f in report.failures[:MAX_LISTED]
        ]
        if len(report.failures) > MAX_LISTED:
            lines.append(f"  ... {len(report.failures) - MAX_LISTED} more (xmic cache verify lists them)")
    if report.skipped:
        lines.append(f"skipped annotation rows ({len(report.skipped)}, --skip-bad; recorded in the store):")
        lines += [f"  {k['file']}: {k['where']}: {k['reason']}" for k in report.skipped[:MAX_LISTED]]
        if len(report.skipped) > MAX_LISTED:
            lines.append(f"  ... {len(report.skipped) - MAX_LISTED} more (xmic cache verify lists them)")
    return lines


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _encoder_plan(name: str, model_dir: Path | None) -> dict[str, Any]:
    """Where the weights of ``name`` are and its width, from config.json only (no model is loaded)."""
    from xmic.registry import get_encoder_spec
    from xmic.weights import ModelNotFoundError, find_lavila_checkpoint, find_model_dir

    spec = get_encoder_spec(name)
    if spec.family == "lavila":  # the width is in the checkpoint's tensors; the plan keeps the registry's
        try:
            return {"family": spec.family, "dim": spec.dim, "weights": str(find_lavila_checkpoint(spec, model_dir))}
        except ModelNotFoundError:
            return {"family": spec.family, "dim": spec.dim, "weights": None}
    try:
        folder = find_model_dir(spec, model_dir)
    except ModelNotFoundError:
        return {"family": spec.family, "dim": spec.dim, "weights": None}
    cfg = json.loads((folder / "config.json").read_text())
    dim = cfg.get("hidden_size") if spec.family == "dinov2" else cfg.get("projection_dim")
    return {"family": spec.family, "dim": int(dim or spec.dim), "weights": str(folder)}


def _store_state(config: ExtractConfig) -> dict[str, Any] | None:
    """Done flags and spec of the store's group, when it exists."""
    from xmic.cache.errors import StoreError
    from xmic.cache.reader import StoreReader

    if not Path(config.cache).exists():
        return None
    try:
        reader = StoreReader(config.cache, config.dataset, config.fmt)
    except StoreError:
        return None
    done = reader.done
    return {"spec": reader.spec, "done": [int(c) for c in (done == 1).nonzero()[0]], "n_chunks": len(done)}


def dry_run_info(config: ExtractConfig, data: Dataset, rank: int, world: int, echo: Any = print) -> dict[str, Any]:
    """Describe what ``config`` would do, decoding nothing and loading no model; print it with ``echo``."""
    from xmic.cache.schema import PROMPT_TEMPLATES
    from xmic.extract.launch import chunks_of_rank, planned_chunks
    from xmic.extract.plan import searched_line
    from xmic.registry import TEXT_FAMILIES

    info: dict[str, Any] = {"dataset": config.dataset, "store": str(config.cache), "splits": {}}
    echo(f"dry run: {config.dataset} from {config.root} -> {config.cache} (nothing is decoded or written)")
    for s in data.splits:
        videos = sorted({r.video_id for r in s.records})
        entry = {
            "segments": len(s.records),
            "videos": len(videos),
            "videos_found": len(videos) - len(s.missing_media),
            "missing_videos": list(s.missing_media),
            "skipped": [str(k) for k in s.skipped],
            "notes": list(s.notes),
        }
        info["splits"][s.split] = entry
        echo(
            f"split {s.split}: {entry['segments']} segments, {entry['videos']} videos "
            f"({entry['videos_found']} found, {len(s.missing_media)} missing), {len(s.skipped)} rows skipped"
        )
        if s.missing_media:
            echo(f"  missing videos: {_listed(list(s.missing_media))}")
            first = s.missing_media[0]
            echo(f"  ({first}: {searched_line(config.dataset, Path(config.root), first, config.media)})")
        for k in s.skipped[:MAX_LISTED]:
            echo(f"  skipped: {k}")
        for note in s.notes:
            echo(f"  note: {note}")
    n = len(data.records)
    missing_rows = sum(1 for r in data.records if r.video_path is None)
    encoders = {name: _encoder_plan(name, config.model_dir) for name in config.encoder_names()}
    width = max(e["dim"] for e in encoders.values())
    chunk_rows, n_chunks = planned_chunks(
        config.cache, config.dataset, config.fmt, config.chunk_rows, config.num_frames, width, n
    )
    state = _store_state(config)
    done = state["done"] if state else []
    pending = chunks_of_rank([c for c in range(n_chunks) if c not in set(done)], rank, world)
    info.update(
        rows=n,
        rows_missing_media=missing_rows,
        chunk_rows=chunk_rows,
        chunks_total=n_chunks,
        chunks_done=len(done),
        chunks_pending_rank=len(pending),
        encoders=encoders,
        store_exists=state is not None,
    )
    echo(f"rows: {n} in one group {config.dataset!r}; {missing_rows} would fail (media missing)")
    echo(
        f"chunks: {n_chunks} of {chunk_rows} rows each; "
        + (f"{len(done)} already done; " if state else "store absent (would be created); ")
        + f"rank {rank}/{world} would compute {len(pending)}"
    )
    if state and [c for c in range(state["n_chunks"])] != list(range(n_chunks)):
        echo(f"  warning: the store's group has {state['n_chunks']} chunks, this run plans {n_chunks}")
    if state and sorted(state["spec"].encoders) != sorted(encoders):
        echo(f"  warning: the store holds encoders {sorted(state['spec'].encoders)}; this run would be refused")
    for name, e in encoders.items():
        where = e["weights"] or "NOT FOUND (the run would stop; see --model-dir)"
        echo(f"encoder {name}: D={e['dim']}, full + hand views, T={config.num_frames}; weights: {where}")
        if e["family"] in TEXT_FAMILIES:
            sizes = " + ".join(f"{t} {len(data.vocab[t])}" for t in ("verb", "noun"))
            echo(f"  text embeddings: {sizes} classes x {len(PROMPT_TEMPLATES)} templates (rank 0)")
    if config.frames_cache:
        echo(
            f"frame cache: {config.encoder}'s input frames of all {config.num_frames} slots, JPEG quality "
            f"{config.frames_quality} (4:4:4), one shard per chunk"
        )
    echo(f"hands: {config.hands}; decode size: {config.decode_size or 'source'}; workers: {config.workers}")
    return info


def _check_annotations_first(kwargs: dict[str, Any]) -> None:
    """Raise the annotation error of ``xmic extract``'s arguments, if reading them fails (no hands needed)."""
    from xmic.extract.datasets import AnnotationError
    from xmic.extract.plan import load_dataset

    try:
        load_dataset(ExtractConfig(hands="none", hand_options={}, **kwargs))
    except (AnnotationError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _split_list(values: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(s.strip() for v in values for s in v.split(",") if s.strip())
    if not out:
        raise click.BadParameter("give at least one split", param_hint="--split")
    return out


@click.command("extract")
@click.option("--dataset", type=click.Choice(["epic", "ego4d", "egtea"]), required=True, help="annotation format")
@click.option(
    "--root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True, help="dataset root"
)
@click.option(
    "--split", "splits", multiple=True, default=("train",), show_default=True, help="split(s), e.g. train,validation"
)
@click.option("--cache", type=click.Path(path_type=Path), default=Path("cache"), show_default=True, help="the store")
@click.option("--format", "fmt", type=click.Choice(["zarr", "h5"]), default=None, help="store format (default zarr)")
@click.option("--encoder", default="clip-vit-b16", show_default=True, help="CLIP encoder (registry name)")
@click.option("--second-encoder", default=None, help="second visual encoder, e.g. dinov2-vitb14")
@click.option(
    "--extra-encoder",
    "extra_encoders",
    multiple=True,
    help="more encoders filled in the same decode pass (repeatable), e.g. clip-vit-l14, lavila-tsf-l14 for Table 5",
)
@click.option("--model-dir", type=click.Path(path_type=Path), default=None, help="local model folder or HF cache")
@hand_options
@click.option("--boxes-dir", type=click.Path(path_type=str), default=None, help="alias of --hand-boxes")
@click.option(
    "--frames",
    "num_frames",
    type=click.IntRange(min=1),
    default=DEFAULT_NUM_FRAMES,
    show_default=True,
    help="slots T per segment: 16 bins x 3 candidates, the middle one the bin's centre (evaluation), one drawn "
    "at random per bin in training; an odd number per bin is required",
)
@click.option(
    "--bins", type=click.IntRange(min=1), default=None, help="temporal bins (default 16 if T is a multiple, else T)"
)
@click.option(
    "--workers", type=click.IntRange(min=0), default=2, show_default=True, help="decode processes (0: in-process)"
)
@click.option(
    "--prefetch", type=click.IntRange(min=1), default=None, help="decoded pieces queued ahead (default 2 x workers)"
)
@click.option(
    "--rank", type=click.IntRange(min=0), default=None, help="this process's rank (default RANK / SLURM_PROCID / 0)"
)
@click.option(
    "--world-size",
    type=click.IntRange(min=1),
    default=None,
    help="number of ranks (default WORLD_SIZE / SLURM_NTASKS / 1)",
)
@click.option("--annotations", "annotations_dir", type=click.Path(path_type=Path), default=None, help="annotation dir")
@click.option(
    "--center-sec",
    type=float,
    default=None,
    help="ego4d: keep the central seconds of each action window (default 4, the authors'; 0: the whole window)",
)
@click.option(
    "--media", type=click.Choice(["auto", "video", "frames"]), default=None, help="epic: MP4 or frame folders"
)
@click.option(
    "--egtea-split",
    type=click.Choice(["1", "2", "3", "all"]),
    default=None,
    help="egtea: partition of the split files (default: train 1, test all three together, each clip once)",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="skip bad annotation rows and record rows without media as failed (all listed) instead of stopping",
)
@click.option("--device", default=None, help="cuda, cuda:1, cpu (default cuda when available)")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="images per encoder forward pass")
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=None,
    help="rows per store chunk (default ~8 MiB feature chunks)",
)
@click.option(
    "--decode-size",
    type=click.IntRange(min=0),
    default=256,
    show_default=True,
    help="decode at this shorter side, never upscaling (0: source)",
)
@click.option(
    "--frames-cache",
    is_flag=True,
    help="also store --encoder's preprocessed input frames of every slot (JPEG, for Vita-CLIP; Zarr only; needs "
    "pip install 'xmic[frames]')",
)
@click.option(
    "--frames-quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    help="JPEG quality of the frame cache (4:4:4 chroma)",
)
@click.option("--overwrite", is_flag=True, help="discard this dataset's group in the store and start again")
@click.option("--dry-run", is_flag=True, help="read the annotations and say what would be done; decode nothing")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "json_out", is_flag=True, help="print the report as JSON at the end")
@click.option(
    "--ignore-lock",
    is_flag=True,
    help="run even when the store's lock says another process runs this rank (only if you know it is gone)",
)
def extract(**kwargs: Any) -> None:
    """Extract frozen per-frame features of annotated segments into the store (stage one).

    Exit status: 0 when every row was written; 1 for a bad argument or input (one line says which); 3 when rows
    failed without --skip-bad (everything that succeeded is written; `xmic cache verify` lists the failures).
    """
    from xmic.cache.errors import StoreError
    from xmic.extract.datasets import AnnotationError
    from xmic.extract.hands import HandBoxError
    from xmic.extract.storelock import StoreLockedError

    hand = {k: v for k, v in pop_hand_options(kwargs).items() if v is not None}
    boxes_dir = kwargs.pop("boxes_dir")
    if boxes_dir is not None:
        hand.setdefault("hand_boxes", boxes_dir)
    json_out = kwargs.pop("json_out")
    kwargs["splits"] = _split_list(kwargs["splits"])
    kwargs["progress"] = not kwargs.pop("no_progress")
    try:  # no silent "no hands": a provider named, implied by its flag or a hand model found, else stop
        hands, hand = choose_hands(kwargs.pop("hands"), hand, kwargs.get("model_dir"))
    except (ValueError, FileNotFoundError) as exc:
        _check_annotations_first(kwargs)  # an empty or wrong --root is the first thing to fix
        raise click.ClickException(str(exc)) from None
    try:
        config = ExtractConfig(hands=hands, hand_options=hand, **kwargs)
        report = run_extraction(config, echo=click.echo)
    except (StoreError, AnnotationError, HandBoxError, ValueError, TimeoutError, OSError, StoreLockedError) as exc:
        raise click.ClickException(str(exc)) from None
    if json_out:
        click.echo(json.dumps(report.to_dict(), default=str))
    if report.dry_run is not None:
        missing = [n for n, e in report.dry_run["encoders"].items() if e["weights"] is None]
        if missing:
            raise click.ClickException(
                f"dry run: weights of {', '.join(missing)} not found, so the run would stop; `xmic models` says "
                "where they are looked for and how to get them (pass --model-dir DIR)"
            )
    if report.rows_failed_total and not config.skip_bad:
        click.echo(
            f"error: {report.rows_failed_total} rows failed (`xmic cache verify {config.cache}` lists them); the rest "
            "is written. Fix the media and re-run the same command (it retries the failed rows), or pass --skip-bad "
            "to accept the failures",
            err=True,
        )
        raise SystemExit(EXIT_ROWS_FAILED)


if __name__ == "__main__":
    extract()
