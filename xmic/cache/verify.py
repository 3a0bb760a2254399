"""Checking a store: every flag, shape, spec, checksum and NaN (what it holds: :mod:`xmic.cache.info`).

Unless ``quick``, every chunk of every array is read through the storage library's checksum
(:mod:`xmic.cache.integrity`); chunks that fail, and done chunks whose data reads as lost (NaN features, pending
rows, never-written boxes, box sources that are no valid ``hand_source`` code or disagree with the boxes), are
collected in ``VerifyReport.damaged`` so ``reset_damaged`` can un-flag them.

A store is ``ok`` only when every chunk of every dataset group is flagged done, every array has the shape
its spec implies, every ok row has finite features and a frame index, no row of a done chunk is still
pending, the text arrays fit their vocabularies, and **no row failed**: failed rows are listed (with their
reasons) among the problems and in ``failed_rows``, because a model trained on such a store silently sees
fewer segments than the annotation file holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xmic.cache import frames as frame_cache
from xmic.cache import guard, layout
from xmic.cache.backend import Backend, Session
from xmic.cache.errors import StoreError
from xmic.cache.export import export_store
from xmic.cache.info import store_info  # noqa: F401 - re-exported: part of this module's interface
from xmic.cache.integrity import missing_everywhere, read_every_chunk, reset_damaged
from xmic.cache.schema import (
    HAND_BOX_UNWRITTEN,
    HAND_SOURCE_NAMES,
    HAND_SOURCE_NONE,
    ROW_FAILED,
    ROW_OK,
    ROW_PENDING,
    SEGMENT_COLUMNS,
    TARGETS,
    VIEWS,
    StoreSpec,
    num_chunks,
)
from xmic.cache.tempfiles import stale_partial_files

#: At most this many individual rows are spelled out per problem kind.
MAX_LISTED = 20

__all__ = ["VerifyReport", "export_store", "reset_damaged", "store_info", "verify_store"]


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_store`: ``ok`` iff ``problems`` is empty."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    failed_rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: dataset group -> chunks flagged done whose data is lost or damaged (``reset_damaged`` un-flags them)
    damaged: dict[str, list[int]] = field(default_factory=dict)
    #: rows skipped on purpose (``--skip-bad``), with their reasons: listed, not problems
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        if self.ok:
            return "OK" + notes
        return f"{len(self.problems)} problem(s):\n" + "\n".join(f"- {p}" for p in self.problems) + notes


def verify_store(path: str | os.PathLike, fmt: str | None = None, *, quick: bool = False) -> VerifyReport:
    """Check every dataset group and every text array of the store at ``path``.

    Unless ``quick``, every chunk of every array is read once, so that the storage library checks its checksum
    (Zarr crc32c, HDF5 fletcher32) and its decompression; each chunk that fails is a problem naming the array and
    the chunk. ``quick`` checks flags, shapes, specs and row states only (NaN checks need the full read too).
    """
    problems: list[str] = []
    failed: list[dict[str, Any]] = []
    damaged: dict[str, set[int]] = {}
    notes: list[str] = []
    try:
        backend = Backend(path, fmt)
        with backend.session("r") as s:
            groups = [g for g in s.children("")[0] if g != layout.TEXT_GROUP]
            if not groups:
                problems.append(f"{path} holds no dataset group")
            specs: dict[str, StoreSpec] = {}
            unreadable = missing_everywhere(s, path, problems)
            if not quick:
                unreadable |= read_every_chunk(s, problems, notes, backend.fmt)
                unreadable = _frames_without_codec(unreadable, problems)
            for ds in groups:
                try:
                    specs[ds] = layout.read_spec(s, ds, str(path))
                except StoreError as exc:
                    problems.append(str(exc))
                    continue
                bad = damaged.setdefault(ds, set())
                bad.update(c for key, c in unreadable if key.startswith(f"{ds}/") and guard.is_row_chunked(key))
                try:
                    _verify_dataset(s, ds, specs[ds], problems, failed, bad, quick=quick)
                except Exception as exc:  # noqa: BLE001 - damaged metadata the library cannot open: name it, go on
                    why = str(exc).split("\n")[0][:200]
                    problems.append(f"group {ds}: an array's metadata is unreadable ({type(exc).__name__}: {why})")
            _verify_text(s, specs, problems, unreadable, quick=quick)
    except (StoreError, OSError) as exc:
        problems.append(str(exc))
    stray = stale_partial_files(path)
    if stray:
        notes.append(
            f"{len(stray)} temporary files of an interrupted write (e.g. {stray[0].relative_to(path)}): not data; "
            "the next single-process `xmic extract` on this store removes them, or delete them"
        )
    if quick:
        notes.append("--quick: chunk contents (checksums, NaN) were not read")
    skipped = _skipped_records(path, fmt)
    damaged_lists = {ds: sorted(c) for ds, c in damaged.items() if c}
    if damaged_lists:
        notes.append(
            f"damaged chunks: {'; '.join(f'{ds} {_short(c)}' for ds, c in damaged_lists.items())}; "
            f"`xmic cache verify {path} --reset-damaged` marks them not done, then re-run the same `xmic extract` "
            "command to recompute them"
        )
    return VerifyReport(
        ok=not problems, problems=problems, failed_rows=failed, notes=notes, damaged=damaged_lists, skipped_rows=skipped
    )


def _frames_without_codec(unreadable: set[tuple[str, int]], problems: list[str]) -> set[tuple[str, int]]:
    """Without imagecodecs (the ``frames`` extra) a frame cache cannot be decoded here, which says nothing about its
    chunks: one problem per frame array instead of one per chunk, and its chunks are not counted as damaged."""
    keys = {k for k, _ in unreadable if "/frames/" in k}
    if not keys or frame_cache.codec_available():
        return unreadable
    for key in sorted(keys):
        problems[:] = [p for p in problems if not p.startswith(f"array {key} chunk ")]
        problems.append(f"array {key}: {frame_cache.codec_missing_message('checking the frame cache')}")
    return {(k, c) for k, c in unreadable if k not in keys}


def _skipped_records(path: str | os.PathLike, fmt: str | None) -> list[dict[str, Any]]:
    """Annotation rows ``--skip-bad`` left out of each dataset group (recorded by ``xmic extract``)."""
    out = []
    try:
        with Backend(path, fmt).session("r") as s:
            for ds in layout.dataset_groups(s):
                out += [{"dataset": ds, **rec} for rec in layout.read_skipped(s, ds)]
    except (StoreError, OSError, ValueError):
        return []
    return out


def _short(chunks: list[int]) -> str:
    return "chunks " + ", ".join(map(str, chunks[:MAX_LISTED])) + (" …" if len(chunks) > MAX_LISTED else "")


def _ranges(idx: np.ndarray) -> list[tuple[int, int]]:
    """Sorted indices -> inclusive runs of consecutive values."""
    if not idx.size:
        return []
    cuts = np.flatnonzero(np.diff(idx) != 1) + 1
    return [(int(r[0]), int(r[-1])) for r in np.split(idx, cuts)]


def _listed(rows: np.ndarray, ids: np.ndarray) -> str:
    shown = ", ".join(f"{int(r)} ({ids[r]})" for r in rows[:MAX_LISTED])
    return shown + (f", … {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else "")


def _expected_shapes(ds: str, spec: StoreSpec, n: int) -> dict[str, tuple[int, ...]]:
    t = spec.num_frames
    shapes = {layout.segments_key(ds, c): (n,) for c in SEGMENT_COLUMNS}
    shapes |= {f"{ds}/frame_index": (n, t), f"{ds}/hand_box": (n, t, 4), f"{ds}/row_status": (n,)}
    shapes[f"{ds}/done"] = (num_chunks(n, spec.chunk_rows),)
    for name, enc in spec.encoders.items():
        for view in VIEWS:
            shapes[layout.features_key(ds, name, view)] = (n, t, enc.dim)
    return shapes


def _verify_dataset(
    s: Session, ds: str, spec: StoreSpec, problems: list[str], failed: list[dict], bad_chunks: set[int], *, quick=False
) -> None:
    where = f"dataset {ds}"
    id_key = layout.segments_key(ds, "segment_id")
    if not s.has(id_key):
        problems.append(f"{where}: array {id_key} is missing")
        return
    n = s.info(id_key).shape[0]
    good = set()
    expected = _expected_shapes(ds, spec, n)
    if s.has(f"{ds}/hand_source"):  # optional: stores from before it was recorded have no such array
        expected[f"{ds}/hand_source"] = (n, spec.num_frames)
    expected |= frame_cache.expected_shapes(ds, spec, n)  # the frame cache, when the spec records one
    for key, shape in expected.items():
        if not s.has(key):
            problems.append(f"{where}: array {key} is missing")
        elif (got := s.info(key).shape) != shape:
            problems.append(f"{where}: array {key} has shape {got}, expected {shape}")
        else:
            good.add(key)
    for target in TARGETS:
        if not s.has(layout.vocab_key(ds, target)):
            problems.append(f"{where}: array {layout.vocab_key(ds, target)} is missing")
    if not {f"{ds}/done", f"{ds}/row_status", id_key} <= good:
        return
    try:
        ids = s.read(id_key)
        done, status = s.read(f"{ds}/done"), s.read(f"{ds}/row_status")
        videos = s.read(layout.segments_key(ds, "video_id"))
    except Exception as exc:  # noqa: BLE001 - reported chunk by chunk by the full read
        problems.append(f"{where}: its row index cannot be read ({type(exc).__name__}); see the chunk problems above")
        return
    c = spec.chunk_rows
    for lo, hi in _ranges(np.flatnonzero(done != 1)):
        label = f"chunk {lo}" if lo == hi else f"chunks {lo}-{hi}"
        problems.append(f"{where}: {label} (rows {lo * c}-{min(n, (hi + 1) * c) - 1}) not flagged done")
    in_done = np.repeat(done == 1, c)[:n]
    pending = np.flatnonzero(in_done & (status == ROW_PENDING))
    if pending.size:
        bad_chunks.update(int(r) // c for r in pending)
        problems.append(
            f"{where}: {pending.size} rows of done chunks are still pending: {_listed(pending, ids)} "
            f"({_short(sorted({int(r) // c for r in pending}))}: the row_status chunk is missing or damaged)"
        )
    odd = np.flatnonzero(~np.isin(status, (ROW_PENDING, ROW_OK, ROW_FAILED)))
    if odd.size:
        bad_chunks.update(int(r) // c for r in odd)
        problems.append(f"{where}: {odd.size} rows have an unknown row_status: {_listed(odd, ids)}")
    failed_status = np.where(in_done, status, ROW_PENDING)  # rows of unfinished chunks will be redone
    _verify_failures(s, ds, ids, videos, done, failed_status, problems, failed)
    if quick:
        return
    ok = in_done & (status == ROW_OK)
    checks = sorted(k for k in good if "/features/" in k or k.endswith(("/frame_index", "/hand_box", "/hand_source")))
    for key in checks:
        bad = _bad_rows(s, key, ok, done, c)
        if bad.size:
            bad_chunks.update(int(r) // c for r in bad)
            if key.endswith("/frame_index"):
                what = "a negative frame index"
            elif key.endswith("/hand_box"):
                what = "boxes that read as never written"
            elif key.endswith("/hand_source"):
                what = "box sources that are no valid code or disagree with hand_box"
            else:
                what = "NaN/inf features"
            problems.append(
                f"{where}: {key} has {what} in {bad.size} ok rows: {_listed(bad, ids)} "
                f"({_short(sorted({int(r) // c for r in bad}))}: missing or damaged)"
            )


def _bad_rows(s: Session, key: str, ok: np.ndarray, done: np.ndarray, c: int) -> np.ndarray:
    """Rows flagged ok whose values in ``key`` are not finite (or negative, for frame_index; or the never-written
    fill for hand_box); chunk by chunk. Chunks the library cannot read are skipped (the full read names them)."""
    bad = []
    n = len(ok)
    for chunk in np.flatnonzero(done == 1):
        rows = slice(int(chunk) * c, min(n, (int(chunk) + 1) * c))
        mask = ok[rows]
        if not mask.any():
            continue
        try:
            block = s.read(key, rows)
        except Exception:  # noqa: BLE001 - already a problem of the full read
            continue
        flat = block.reshape(len(block), -1)
        if key.endswith("/frame_index"):
            good = (flat >= 0).all(axis=1)
        elif key.endswith("/hand_box"):
            good = ~(flat == HAND_BOX_UNWRITTEN).any(axis=1)
        elif key.endswith("/hand_source"):
            good = np.isin(flat, list(HAND_SOURCE_NAMES)).all(axis=1)
            try:  # NONE exactly where the box is NaN (a never-written box is hand_box's own problem)
                box = s.read(key[: -len("hand_source")] + "hand_box", rows).reshape(len(block), -1, 4)
            except Exception:  # noqa: BLE001 - the hand_box chunk is unreadable: the full read names it
                box = None
            if box is not None:
                agree = ((flat == HAND_SOURCE_NONE) == np.isnan(box).any(axis=-1)) | (box == HAND_BOX_UNWRITTEN).any(-1)
                good &= agree.all(axis=1)
        else:
            good = np.isfinite(flat).all(axis=1)
        bad.append(np.flatnonzero(mask & ~good) + rows.start)
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def _verify_failures(
    s: Session,
    ds: str,
    ids: np.ndarray,
    videos: np.ndarray,
    done: np.ndarray,
    status: np.ndarray,
    problems: list[str],
    failed: list[dict],
) -> None:
    records: dict[int, dict[str, Any]] = {}
    folder = layout.failed_group(ds)
    if s.is_group(folder):
        for name in s.children(folder)[1]:
            if name.isdigit() and int(name) < len(done) and done[int(name)] == 1:
                for line in s.read(f"{folder}/{name}"):
                    rec = json.loads(line)
                    records.setdefault(int(rec["row"]), rec)
    missing = {"reason": "(no failure record)"}
    recs = [
        {
            "dataset": ds,
            **(
                records.get(int(r)) or {"row": int(r), "segment_id": str(ids[r]), "video_id": str(videos[r]), **missing}
            ),
        }
        for r in np.flatnonzero(status == ROW_FAILED)
    ]
    failed.extend(recs)
    for rec in recs[:MAX_LISTED]:
        problems.append(
            f"dataset {ds}: row {rec['row']} failed (segment {rec.get('segment_id')}, "
            f"video {rec.get('video_id')}): {rec.get('reason')}"
        )
    if len(recs) > MAX_LISTED:
        problems.append(f"dataset {ds}: … and {len(recs) - MAX_LISTED} more failed rows (see failed_rows)")


def _verify_text(
    s: Session, specs: dict[str, StoreSpec], problems: list[str], unreadable: set[tuple[str, int]], *, quick=False
) -> None:
    if not s.is_group(layout.TEXT_GROUP):
        return
    vocab_sizes = {
        (ds, t): s.info(layout.vocab_key(ds, t)).shape[0]
        for ds in specs
        for t in TARGETS
        if s.has(layout.vocab_key(ds, t))
    }
    for key in s.walk_arrays(layout.TEXT_GROUP):
        parts = key.split("/")
        if len(parts) != 5 or parts[3] not in TARGETS:
            problems.append(f"text array {key} is not at text/<encoder>/<dataset>/<verb|noun>/<template>")
            continue
        _, enc, ds, target, _ = parts
        shape = s.info(key).shape
        want_c = vocab_sizes.get((ds, target))
        enc_spec = specs[ds].encoders.get(enc) if ds in specs else None
        want = (want_c if want_c is not None else "C", enc_spec.dim if enc_spec else "D")
        if len(shape) != 2 or (want_c is not None and shape[0] != want_c) or (enc_spec and shape[1] != enc_spec.dim):
            problems.append(f"text array {key} has shape {shape}, expected ({want[0]}, {want[1]})")
        elif not quick and not any(k == key for k, _ in unreadable) and not np.isfinite(s.read(key)).all():
            problems.append(f"text array {key} has NaN/inf values")
        if layout.TEMPLATE_ATTR not in s.get_attrs(key):
            problems.append(f"text array {key} has no {layout.TEMPLATE_ATTR!r} attribute")
