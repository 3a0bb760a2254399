"""``xmic cache {info, verify, export, show-boxes}``: look inside a store, check it, copy it, draw its hand boxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from xmic.cache.errors import StoreError


def _size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def format_info(info: dict[str, Any]) -> str:
    """The dict of :func:`xmic.cache.verify.store_info` as a human-readable table."""
    lines = [f"{info['path']}  ({info['format']}, {_size(info['size_bytes'])})"]
    for name, d in info["datasets"].items():
        if "error" in d:
            lines.append(f"dataset {name}: ERROR {d['error']}")
            continue
        rows, chunks = d["rows"], d["chunks"]
        lines += [
            f"dataset {name}",
            f"  segments   {d['n_rows']} in {d['videos']} videos; splits "
            + ", ".join(f"{k} {v}" for k, v in d["splits"].items()),
            f"  frames     T={d['num_frames']}  sampling {d['sampling']}  hands {d['hands']}",
            f"  chunks     {chunks['done']}/{chunks['total']} done ({d['chunk_rows']} rows each)",
            f"  rows       ok {rows['ok']}  failed {rows['failed']}  pending {rows['pending']}"
            + (f"  (+{len(d['skipped'])} annotation rows skipped by --skip-bad)" if d.get("skipped") else ""),
            f"  vocab      {d['vocab']['verb']} verbs, {d['vocab']['noun']} nouns",
        ]
        if d.get("hand_boxes"):
            lines.append(f"  hand boxes {_hand_boxes_line(d['hand_boxes'])}")
        for enc, e in d["encoders"].items():
            clips = f"  ({e['clip_frames']}-frame clips)" if e.get("clip_frames", 1) > 1 else ""
            lines.append(f"  encoder    {enc:<16} D={e['dim']:<5} {e['model_id']}{clips}")
        for enc, f in d.get("frames", {}).items():  # the frame cache (xmic extract --frames-cache)
            lines.append(f"  frames     {enc:<16} {_frames_line(f)}")
        for rec in d.get("skipped", [])[:20]:
            lines.append(f"  skipped    {rec.get('file')}: {rec.get('where')}: {rec.get('reason')}")
    for enc, per_ds in info["text"].items():
        for ds, per_target in per_ds.items():
            for target, t in per_target.items():
                lines.append(
                    f"text {enc}/{ds}/{target}: ({t['classes']}, {t['dim']}), {len(t['templates'])} templates: "
                    + ", ".join(repr(x) for x in t["templates"])
                )
    return "\n".join(lines)


def _frames_line(f: dict[str, Any]) -> str:
    """One frame cache of ``store_info``: size, codec, bytes on disk and per written clip."""
    if "error" in f:
        return f"ERROR {f['error']}"
    per_clip = f"{_size(round(f['bytes_per_clip']))} per clip" if f.get("bytes_per_clip") else "no clip written yet"
    return (
        f"{f['image_size']}x{f['image_size']} RGB, {f['codec']} quality {f['quality']} ({f['subsampling']}), "
        f"{_size(f['bytes'])} for {f['rows_written']} clips, {per_clip}"
    )


def _hand_boxes_line(h: dict[str, Any]) -> str:
    """Share of the ok rows' slots with a detected, an interpolated or no box (``store_info``'s ``hand_boxes``)."""
    if "error" in h:
        return f"unreadable ({h['error']}); run `xmic cache verify`"
    if not h["slots"]:
        return "no ok rows yet"
    parts = []
    for name in ("detected", "interpolated", "none"):
        if h.get(name) is None:
            parts.append(f"{name} not recorded")
        else:
            parts.append(f"{name} {100 * h[f'{name}_share']:.1f}%")
    line = ", ".join(parts) + f" of {h['slots']} slots of ok rows"
    if h.get("invalid"):
        line += f"; {h['invalid']} slots hold no valid source code (damaged: run `xmic cache verify`)"
    if not h["recorded"]:
        line += " (store from before box sources were recorded: none/detected from NaN boxes)"
    return line


@click.group("cache")
def cache() -> None:
    """Inspect, verify and export a feature store (Zarr directory or HDF5 file)."""


@cache.command("info")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info_cmd(path: Path, as_json: bool) -> None:
    """Print what the store at PATH holds: datasets, N, T, encoders, chunks, rows, text embeddings."""
    from xmic.cache.verify import store_info

    try:
        info = store_info(path)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(info, indent=2) if as_json else format_info(info))


@cache.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--failed",
    "failed_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the failed rows (with reasons) to this JSON-lines file.",
)
@click.option(
    "--quick", is_flag=True, help="Skip reading every chunk (no checksum or NaN check): flags and shapes only."
)
@click.option(
    "--reset-damaged",
    is_flag=True,
    help="Mark the chunks found lost or damaged as not done, so that re-running the same `xmic extract` redoes them.",
)
def verify_cmd(path: Path, failed_out: Path | None, quick: bool, reset_damaged: bool) -> None:
    """Check every done flag, shape, spec, checksum, NaN and failed row of PATH; exit status 1 unless it is OK.

    Every chunk of every array is read once, so that the storage library checks its checksum (Zarr crc32c, HDF5
    fletcher32); each chunk that fails is named by array and index. Rows skipped on purpose (`--skip-bad`) are
    listed with their reasons but do not make the store fail.
    """
    from xmic.cache.verify import reset_damaged as reset
    from xmic.cache.verify import verify_store

    report = verify_store(path, quick=quick)
    if failed_out is not None:
        with open(failed_out, "w", encoding="utf-8") as fh:
            for rec in report.failed_rows:
                fh.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
        click.echo(f"{len(report.failed_rows)} failed rows written to {failed_out}", err=True)
    click.echo(report.summary())
    if report.skipped_rows:
        click.echo(f"{len(report.skipped_rows)} rows skipped on purpose (--skip-bad):")
        for rec in report.skipped_rows[:20]:
            click.echo(f"  {rec.get('dataset')}: {rec.get('file')}: {rec.get('where')}: {rec.get('reason')}")
    if reset_damaged and report.damaged:
        n = reset(path, report.damaged)
        click.echo(f"marked {n} damaged chunks not done; re-run the same `xmic extract` command to recompute them")
    if not report.ok:
        raise SystemExit(1)


@cache.command("export")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--to", "out", required=True, type=click.Path(path_type=Path), help="Output store, e.g. cache.h5.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["h5", "zarr"]),
    default=None,
    help="Output format (default: from the suffix of --to; .h5/.hdf5 -> h5).",
)
@click.option("--overwrite", is_flag=True, help="Replace --to when it exists.")
def export_cmd(path: Path, out: Path, fmt: str | None, overwrite: bool) -> None:
    """Copy the store at PATH into a new store (by default one HDF5 file) with the same layout."""
    from xmic.cache.export import export_store

    try:
        export_store(path, out, fmt=fmt, overwrite=overwrite)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"exported {path} -> {out}")


@cache.command("show-boxes")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--dataset", required=True, help="Store group (epic, ego4d, egtea, ...).")
@click.option("--rows", default=None, help="Store rows to draw, comma-separated (default: 4 ok rows spread out).")
@click.option("--count", default=4, show_default=True, help="Rows drawn when --rows is not given.")
@click.option("--per-row", default=8, show_default=True, help="Sampled frames shown per segment.")
@click.option(
    "--root",
    default=None,
    type=click.Path(path_type=Path),
    help="Dataset root to decode the frames from (default: the root `xmic extract` recorded in the store).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG to write, e.g. boxes.png.")
def show_boxes_cmd(
    path: Path, dataset: str, rows: str | None, count: int, per_row: int, root: Path | None, out: Path
) -> None:
    """Contact sheet of sampled frames with their stored hand boxes and the hand crops the encoder saw."""
    from xmic.extract.boxsheet import BoxSheetError, show_boxes

    try:
        picked = None if rows is None else [int(r) for r in rows.split(",") if r.strip()]
    except ValueError:
        raise click.BadParameter(f"expected row numbers, comma-separated; got {rows!r}", param_hint="--rows") from None
    try:
        written, drawn = show_boxes(path, dataset, out, rows=picked, root=root, count=count, per_row=per_row)
    except (BoxSheetError, StoreError, FileNotFoundError, KeyError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {written} (rows {', '.join(map(str, drawn))})")
