"""What a store holds, per dataset group: rows, chunks done, encoders, failed and skipped rows, hand-box sources,
text embeddings, bytes on disk (``xmic cache info``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from xmic.cache import frames as frame_cache
from xmic.cache import layout
from xmic.cache.backend import Backend, Session
from xmic.cache.errors import StoreError
from xmic.cache.schema import (
    HAND_BOX_UNWRITTEN,
    HAND_SOURCE_INTERPOLATED,
    HAND_SOURCE_NAMES,
    HAND_SOURCE_UNWRITTEN,
    ROW_FAILED,
    ROW_OK,
    ROW_PENDING,
    TARGETS,
    StoreSpec,
    hand_source_from_boxes,
)


def store_info(path: str | os.PathLike, fmt: str | None = None) -> dict[str, Any]:
    """What the store holds, as a JSON-able dict: format, size, dataset groups and text embeddings."""
    backend = Backend(path, fmt)
    out: dict[str, Any] = {"path": str(path), "format": backend.fmt, "size_bytes": backend.size_bytes()}
    with backend.session("r") as s:
        out["datasets"] = {g: _dataset_info(s, g, str(path)) for g in s.children("")[0] if g != layout.TEXT_GROUP}
        out["text"] = _text_info(s)
    return out


def _dataset_info(s: Session, ds: str, where: str) -> dict[str, Any]:
    try:
        spec = layout.read_spec(s, ds, where)
        status, done = s.read(f"{ds}/row_status"), s.read(f"{ds}/done")
        splits = s.read(layout.segments_key(ds, "split"))
        videos = s.read(layout.segments_key(ds, "video_id"))
        vocab = {t: s.info(layout.vocab_key(ds, t)).shape[0] for t in TARGETS}
        skipped = layout.read_skipped(s, ds)
    except (StoreError, KeyError, ValueError) as exc:
        return {"error": str(exc)}
    try:
        boxes = _hand_sources(s, ds, spec, status, done)
    except Exception as exc:  # noqa: BLE001 - a damaged chunk: `xmic cache verify` names it
        boxes = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    names, counts = np.unique(splits, return_counts=True)
    extra: dict[str, Any] = {}
    if spec.frames:  # the frame cache: codec, bytes on disk and per written clip
        try:
            extra["frames"] = frame_cache.cache_info(s, ds, spec, done, where)
        except Exception as exc:  # noqa: BLE001 - damaged metadata: `xmic cache verify` names it
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            extra["frames"] = {enc: {"error": why} for enc in spec.frames}
    return {
        "n_rows": int(len(status)),
        "num_frames": spec.num_frames,
        "chunk_rows": spec.chunk_rows,
        "chunks": {"done": int((done == 1).sum()), "total": int(len(done))},
        "rows": {
            k: int((status == v).sum()) for k, v in (("ok", ROW_OK), ("failed", ROW_FAILED), ("pending", ROW_PENDING))
        },
        "skipped": skipped,
        "videos": int(len(np.unique(videos))),
        "splits": {str(k): int(v) for k, v in zip(names, counts, strict=True)},
        "encoders": {
            n: {"dim": e.dim, "family": e.family, "model_id": e.model_id, "clip_frames": e.clip_frames}
            for n, e in spec.encoders.items()
        },
        "vocab": vocab,
        "sampling": spec.sampling,
        "hands": spec.hands,
        "hand_boxes": boxes,
        "annotations": spec.annotations,
        "xmic_version": spec.xmic_version,
        **extra,
    }


def _hand_sources(s: Session, ds: str, spec: StoreSpec, status: np.ndarray, done: np.ndarray) -> dict[str, Any]:
    """Where the boxes of the ok rows of done chunks came from: slot count and share per ``HAND_SOURCE_NAMES``.

    ``recorded`` is False for a store without ``hand_source``: its NaN boxes tell none from detected, and
    interpolated is None (unknown). Read one chunk at a time."""
    c = spec.chunk_rows
    recorded = s.has(f"{ds}/hand_source")
    counts = dict.fromkeys(HAND_SOURCE_NAMES, 0)
    invalid = 0
    for chunk in np.flatnonzero(done == 1):
        rows = slice(int(chunk) * c, min(len(status), (int(chunk) + 1) * c))
        ok = status[rows] == ROW_OK
        if not ok.any():
            continue
        if recorded:
            codes = s.read(f"{ds}/hand_source", rows)[ok]
        else:
            box = s.read(f"{ds}/hand_box", rows)[ok]
            codes = hand_source_from_boxes(box)
            codes[(box == HAND_BOX_UNWRITTEN).any(axis=-1)] = HAND_SOURCE_UNWRITTEN
        for code in counts:
            counts[code] += int((codes == code).sum())
        invalid += int((~np.isin(codes, list(HAND_SOURCE_NAMES))).sum())
    slots = sum(counts.values()) + invalid
    out: dict[str, Any] = {"recorded": recorded, "slots": slots}
    for code, name in HAND_SOURCE_NAMES.items():
        unknown = not recorded and code == HAND_SOURCE_INTERPOLATED
        out[name] = None if unknown else counts[code]
        out[f"{name}_share"] = None if unknown else (counts[code] / slots if slots else 0.0)
    if invalid:
        out["invalid"] = invalid
    return out


def _text_info(s: Session) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not s.is_group(layout.TEXT_GROUP):
        return out
    for key in s.walk_arrays(layout.TEXT_GROUP):
        parts = key.split("/")
        if len(parts) != 5:
            continue
        _, enc, ds, target, name = parts
        entry = (
            out.setdefault(enc, {})
            .setdefault(ds, {})
            .setdefault(target, {"classes": None, "dim": None, "templates": []})
        )
        shape = s.info(key).shape
        entry["classes"], entry["dim"] = shape[0], shape[-1]
        entry["templates"].append(s.get_attrs(key).get(layout.TEMPLATE_ATTR, name))
    return out
