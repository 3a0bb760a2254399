"""Writing a dataset group of the store, one chunk of segments at a time.

A chunk is written whole (every array, then its failure records) and only then flagged in ``done``; a crash
loses at most the chunks in flight, and :meth:`StoreWriter.pending_chunks` tells a re-run what is left. In a
Zarr store every chunk of every array is its own object, so several processes (each with its own
:class:`StoreWriter`) may write disjoint chunks at once; create the group once (rank 0) and
:meth:`StoreWriter.open` it elsewhere. An HDF5 store allows one writing process at a time.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import numpy as np

from xmic.cache import frames as frame_cache
from xmic.cache import guard, layout
from xmic.cache.backend import STR, Backend, Session
from xmic.cache.errors import StoreSpecError
from xmic.cache.reopen import check_resume, intact, read_by_chunk
from xmic.cache.schema import (
    HAND_BOX_UNWRITTEN,
    HAND_SOURCE_NAMES,
    HAND_SOURCE_NONE,
    HAND_SOURCE_UNWRITTEN,
    ROW_FAILED,
    ROW_OK,
    ROW_PENDING,
    TARGETS,
    VIEWS,
    StoreSpec,
    chunk_slice,
    hand_source_from_boxes,
    num_chunks,
)
from xmic.cache.segments import normalise_segments, normalise_vocab

#: Value of an unwritten slot: NaN features, boxes -1 (not NaN, which means "no box"), box source 255 (no valid
#: code), frame index -1, row status pending, done 0. None of them is a value a finished chunk holds, so a lost chunk
#: object reads as damage.
FILL = {
    "features": np.nan,
    "hand_box": HAND_BOX_UNWRITTEN,
    "hand_source": HAND_SOURCE_UNWRITTEN,
    "frame_index": -1,
    "row_status": ROW_PENDING,
    "done": 0,
}


class StoreWriter(layout.GroupView):
    """Writes chunks of one dataset group. Build it with :meth:`create` or :meth:`open`."""

    def __init__(self, backend: Backend, spec: StoreSpec, n_rows: int):
        self._backend = backend
        self.spec = spec
        self.n_rows = n_rows
        self._ids: tuple[np.ndarray, np.ndarray] | None = None
        self._has_source: bool | None = None  # whether the group has ``hand_source`` (not in older stores)

    @property
    def dataset(self) -> str:
        return self.spec.dataset

    def chunk_slice(self, chunk: int) -> slice:
        """Rows of ``chunk``; IndexError when it is out of range."""
        if not 0 <= chunk < self.n_chunks:
            raise IndexError(f"chunk {chunk} out of range: {self.path} dataset {self.dataset} has {self.n_chunks}")
        return chunk_slice(chunk, self.spec.chunk_rows, self.n_rows)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        spec: StoreSpec,
        segments: dict[str, Any],
        vocab: dict[str, list[str]],
        fmt: str | None = None,
        *,
        overwrite: bool = False,
    ) -> StoreWriter:
        """Create group ``spec.dataset`` (all arrays pre-allocated, nothing done) or open it for resuming.

        Args:
            path: the store (a directory for Zarr, a file for HDF5); other dataset groups in it are kept.
            spec: what is extracted; ``spec.encoders`` names the feature arrays and their widths.
            segments: column -> (N,) array; every column of ``SEGMENT_COLUMNS`` (extra columns are kept).
            vocab: ``{"verb": [...], "noun": [...]}`` class names in label order.
            fmt: ``"zarr"`` or ``"h5"``; default from what is on disk, else the suffix (.h5/.hdf5 -> h5).
            overwrite: discard an existing group of that name instead of resuming it.

        Raises:
            StoreSpecError: the group exists with a different spec (``config`` and ``xmic_version`` are not
                compared, nor the encoders' load path), different segments or a different vocabulary.
        """
        for name in (spec.dataset, *spec.encoders):
            if not name or "/" in name or name == layout.TEXT_GROUP:
                raise ValueError(f"{name!r} cannot name a dataset or encoder: empty, has '/' or is reserved")
        backend = Backend(path, fmt)
        segs = normalise_segments(segments, where=f"segments for {path}")
        voc = normalise_vocab(vocab, segs, where=f"segments for {path}")
        n = len(segs["segment_id"])
        if spec.chunk_rows < 1 or spec.num_frames < 1:
            raise ValueError(
                f"spec needs chunk_rows >= 1 and num_frames >= 1, got {spec.chunk_rows}, {spec.num_frames}"
            )
        if backend.fmt == "h5" and (not backend.path.exists() or _h5_start_afresh(backend, spec, segs, voc, overwrite)):
            _create_h5(backend, spec, segs, voc)
            return cls(backend, spec, n)
        with backend.session("a") as s:
            if s.has(spec.dataset) and not overwrite:
                if layout.SPEC_ATTR not in s.get_attrs(spec.dataset):
                    raise StoreSpecError(
                        f"{path}: group {spec.dataset!r} exists without a spec (creation interrupted?); "
                        "re-run `xmic extract` with --overwrite to discard it"
                    )
                check_resume(s, spec, segs, voc, where=str(path))
                return cls(backend, layout.read_spec(s, spec.dataset, str(path)), n)
            s.delete(spec.dataset)
            _allocate(s, spec, segs, voc)
        return cls(backend, spec, n)

    @classmethod
    def open(cls, path: str | os.PathLike, dataset: str, fmt: str | None = None) -> StoreWriter:
        """Open an existing group to write its pending chunks (the other ranks of a multi-process run)."""
        backend = Backend(path, fmt)
        with backend.session("r") as s:
            spec = layout.read_spec(s, dataset, str(path))
            n = s.info(layout.segments_key(dataset, "segment_id")).shape[0]
        return cls(backend, spec, n)

    def pending_chunks(self, *, retry_failed: bool = True) -> list[int]:
        """Indices of the chunks to (re)compute, ascending: those whose done flag is 0 (or cannot be read), done
        chunks with a chunk object missing from any array written with the rows (features, frame cache, boxes, row
        states) or a missing or unreadable failure record, and with ``retry_failed`` done chunks with failed rows.
        A done chunk whose objects are all there but fail their checksum is found by ``xmic cache verify``
        (``--reset-damaged`` un-flags it)."""
        ds = self.dataset
        with self._backend.session("r") as s:
            done = read_by_chunk(s, f"{ds}/done", 1, fill=0)
            todo = done != 1
            flagged = np.flatnonzero(done == 1)
            for key in s.walk_arrays(ds):
                if guard.is_row_chunked(key):
                    todo[s.missing_chunks(key, flagged)] = True
            if s.is_group(layout.failed_group(ds)):
                for name in s.children(layout.failed_group(ds))[1]:
                    if name.isdigit() and int(name) < len(done) and not intact(s, layout.failed_key(ds, int(name))):
                        todo[int(name)] = True
            if retry_failed:
                status = read_by_chunk(s, f"{ds}/row_status", self.spec.chunk_rows, fill=ROW_PENDING)
                failed_rows = np.flatnonzero(status == ROW_FAILED)
                todo[np.unique(failed_rows // self.spec.chunk_rows)] = True
        return [int(i) for i in np.flatnonzero(todo)]

    def failed_rows(self, chunks: list[int] | None = None) -> int:
        """How many rows of done ``chunks`` (default: all) are recorded as failed."""
        with self._backend.session("r") as s:
            done = read_by_chunk(s, f"{self.dataset}/done", 1, fill=0)
            status = read_by_chunk(s, f"{self.dataset}/row_status", self.spec.chunk_rows, fill=ROW_PENDING)
        in_done = np.repeat(done == 1, self.spec.chunk_rows)[: len(status)]
        if chunks is not None:
            mine = np.zeros(len(done), bool)
            mine[list(chunks)] = True
            in_done &= np.repeat(mine, self.spec.chunk_rows)[: len(status)]
        return int(np.count_nonzero(in_done & (status == ROW_FAILED)))

    def write_chunk(
        self,
        chunk: int,
        *,
        frame_index: np.ndarray,
        hand_box: np.ndarray,
        features: dict[str, dict[str, np.ndarray]],
        row_status: np.ndarray,
        failures: list[dict[str, Any]] | None = None,
        hand_source: np.ndarray | None = None,
        frames: dict[str, Any] | None = None,
    ) -> None:
        """Write every array of ``chunk`` (n rows), its failure records, then set ``done[chunk] = 1``.

        Args:
            chunk: chunk index; its rows are :meth:`chunk_slice`.
            frame_index: (n, T) integer source frame of every slot.
            hand_box: (n, T, 4) float normalised xyxy, NaN where no box was found.
            features: ``{encoder: {"full": (n, T, D), "hand": (n, T, D)}}`` for every encoder of the spec;
                floating arrays (numpy or torch), stored as float16.
            row_status: (n,) ``ROW_OK`` or ``ROW_FAILED`` per row.
            failures: one dict per failed row with at least ``row`` (the store row, not the row within the
                chunk) and ``reason``; ``segment_id``/``video_id`` are filled in when absent. Every
                ``ROW_FAILED`` row needs a record.
            hand_source: (n, T) integer code of every slot's box (``HAND_SOURCE_*``): NONE exactly where
                ``hand_box`` is NaN. Default: NONE / DETECTED from the boxes (a provider that does not interpolate).
                A group made before the array existed (an older store being resumed) does not get it.
            frames: ``{encoder: (n, T, S, S, 3) uint8}`` for every encoder of the spec's frame cache
                (``spec.frames``, :mod:`xmic.cache.frames`); required exactly when the store has one.

        Raises:
            ValueError: a missing array, a wrong shape or dtype, or failure records that do not match
                ``row_status``; nothing is written then.
        """
        rows = self.chunk_slice(chunk)
        n, t = rows.stop - rows.start, self.spec.num_frames
        fi = _checked("frame_index", frame_index, (n, t), "iu", np.int32)
        hb = _checked("hand_box", hand_box, (n, t, 4), "f", np.float32)
        rs = _checked("row_status", row_status, (n,), "iub", np.uint8)
        hs = _checked_source(hand_source, hb, (n, t), chunk)
        bad = np.flatnonzero((rs != ROW_OK) & (rs != ROW_FAILED))
        if bad.size:
            raise ValueError(
                f"row_status of chunk {chunk} must be ROW_OK ({ROW_OK}) or ROW_FAILED ({ROW_FAILED}); "
                f"row {rows.start + int(bad[0])} has {int(rs[bad[0]])}"
            )
        feats = self._checked_features(features, n)
        frame_arrays = frame_cache.checked(self.spec, frames, n, chunk)
        records = self._checked_failures(failures or [], rows, rs)
        ds = self.dataset
        # every array's rows of a chunk are one storage chunk, which the library writes whole with its checksum
        with self._backend.session("a") as s:
            s.write(f"{ds}/done", slice(chunk, chunk + 1), np.zeros(1, np.uint8))
            if self._has_source is None:
                self._has_source = s.has(f"{ds}/hand_source")
            writes = [(f"{ds}/frame_index", rows, fi), (f"{ds}/hand_box", rows, hb)]
            if self._has_source:
                writes.append((f"{ds}/hand_source", rows, hs))
            writes += [(layout.features_key(ds, enc, view), rows, arr) for (enc, view), arr in feats.items()]
            writes += [(key, rows, arr) for key, arr in frame_arrays.items()]  # the frame cache: a shard of JPEGs
            writes.append((f"{ds}/row_status", rows, rs))
            for key, sel, value in writes:  # an error stops here: the done flag below is set only when all are written
                s.write(key, sel, value)
            s.delete(layout.failed_key(ds, chunk))
            if records:
                lines = np.array([json.dumps(r, sort_keys=True, default=str) for r in records])
                s.create_array(layout.failed_key(ds, chunk), (len(lines),), STR, data=lines)
            s.write(f"{ds}/done", slice(chunk, chunk + 1), np.ones(1, np.uint8))

    def record_skipped(self, records: list[dict[str, Any]]) -> None:
        """Record the annotation rows ``--skip-bad`` left out of this group (each a dict with at least ``reason``);
        ``xmic cache verify`` and ``xmic cache info`` list them. Replaces what an earlier run recorded."""
        for rec in records:
            if not isinstance(rec, dict) or "reason" not in rec:
                raise ValueError(f"a skipped-row record needs a 'reason', got {rec!r}")
        text = json.dumps([{"status": "skipped", **r} for r in records], sort_keys=True, default=str)
        with self._backend.session("a") as s:
            s.set_attrs(self.dataset, {layout.SKIPPED_ATTR: text})

    def write_text(self, encoder: str, dataset: str, target: str, template: str, emb: Any) -> None:
        """Store the (C, D) float32 class-text embeddings of ``dataset``'s ``target`` vocabulary.

        The array goes to ``text/<encoder>/<dataset>/<target>/<template_key(template)>`` with the template in
        its ``template`` attribute. C is checked against the vocabulary when ``dataset`` is a group of this
        store, D against the encoder's width when ``encoder`` is in this group's spec.
        """
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
        if "{}" not in template:
            raise ValueError(f"prompt template {template!r} has no '{{}}' for the class name")
        for name, value in (("encoder", encoder), ("dataset", dataset)):
            if not value or "/" in value:
                raise ValueError(f"{name} {value!r} must be a non-empty name without '/'")
        arr = _to_numpy(emb)
        if arr.ndim != 2 or arr.dtype.kind != "f":
            raise ValueError(
                f"text embedding for {encoder}/{dataset}/{target} {template!r}: expected float (C, D), "
                f"got {arr.dtype} {arr.shape}"
            )
        key = layout.text_key(encoder, dataset, target, template)
        with self._backend.session("a") as s:
            vocab = layout.vocab_key(dataset, target)
            expected_c = s.info(vocab).shape[0] if s.has(vocab) else None
            if expected_c is not None and arr.shape[0] != expected_c:
                raise ValueError(
                    f"text embedding {key}: expected ({expected_c}, D) for the {dataset} {target} "
                    f"vocabulary, got {arr.shape}"
                )
            enc = self.spec.encoders.get(encoder)
            if enc is not None and arr.shape[1] != enc.dim:
                raise ValueError(f"text embedding {key}: expected width {enc.dim} of {encoder}, got {arr.shape}")
            if s.has(key) and s.get_attrs(key).get(layout.TEMPLATE_ATTR, template) != template:
                other = s.get_attrs(key)[layout.TEMPLATE_ATTR]
                raise ValueError(f"templates {template!r} and {other!r} share the array name {key}")
            s.create_array(key, arr.shape, "float32", data=arr.astype(np.float32))
            s.set_attrs(key, {layout.TEMPLATE_ATTR: template})

    def damaged_texts(self, encoder: str, dataset: str, target: str, templates: Any) -> list[str]:
        """Of ``templates``, those whose class-text array is absent, lacks a chunk, fails to read back or holds
        NaN/inf (what ``write_text`` must write again)."""
        out = []
        with self._backend.session("r") as s:
            for template in templates:
                key = layout.text_key(encoder, dataset, target, template)
                if not intact(s, key) or not np.isfinite(s.read(key)).all():
                    out.append(template)
        return out

    def _checked_features(self, features: dict[str, dict[str, Any]], n: int) -> dict[tuple[str, str], np.ndarray]:
        extra = sorted(set(features) - set(self.spec.encoders))
        if extra:
            raise ValueError(f"features for encoders not in the spec: {extra}; spec has {sorted(self.spec.encoders)}")
        out = {}
        for name, enc in self.spec.encoders.items():
            views = features.get(name)
            if views is None:
                raise ValueError(f"features missing for encoder {name!r} (spec has {sorted(self.spec.encoders)})")
            for view in VIEWS:
                if view not in views:
                    raise ValueError(f"features[{name!r}] lacks view {view!r}; need {list(VIEWS)}")
                shape = (n, self.spec.num_frames, enc.dim)
                out[name, view] = _checked(f"features[{name!r}][{view!r}]", views[view], shape, "f", np.float16)
        return out

    def _checked_failures(self, failures: list[dict[str, Any]], rows: slice, rs: np.ndarray) -> list[dict[str, Any]]:
        if failures and self._ids is None:
            with self._backend.session("r") as s:
                self._ids = tuple(s.read(layout.segments_key(self.dataset, c)) for c in ("segment_id", "video_id"))
        records = []
        for rec in failures:
            if not isinstance(rec, dict) or "row" not in rec or "reason" not in rec:
                raise ValueError(f"a failure record needs at least 'row' and 'reason', got {rec!r}")
            row = int(rec["row"])
            if not rows.start <= row < rows.stop:
                raise ValueError(f"failure record for row {row} is outside chunk rows {rows.start}..{rows.stop - 1}")
            full = {"segment_id": str(self._ids[0][row]), "video_id": str(self._ids[1][row]), **rec, "row": row}
            records.append(full)
        failed = {rows.start + int(i) for i in np.flatnonzero(rs == ROW_FAILED)}
        recorded = {r["row"] for r in records}
        if failed != recorded:
            raise ValueError(
                f"failure records and row_status disagree in rows {rows.start}..{rows.stop - 1}: "
                f"failed without record {sorted(failed - recorded)}, record without failed status "
                f"{sorted(recorded - failed)}"
            )
        return sorted(records, key=lambda r: r["row"])


def write_failed_jsonl(reader: Any, out_path: str | os.PathLike) -> int:
    """Write ``reader.failures()`` (a :class:`~xmic.cache.reader.StoreReader`) as JSON lines; returns the count."""
    records = reader.failures()
    with open(out_path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, sort_keys=True, default=str) + "\n")
    return len(records)


def _to_numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _checked(name: str, value: Any, shape: tuple[int, ...], kinds: str, dtype: Any) -> np.ndarray:
    arr = _to_numpy(value)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, given {arr.shape}")
    if arr.dtype.kind not in kinds:
        raise ValueError(f"{name}: expected a {'floating' if kinds == 'f' else 'integer'} array, given {arr.dtype}")
    if arr.dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise ValueError(f"{name}: values {arr.min()}..{arr.max()} do not fit {np.dtype(dtype)}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _checked_source(hand_source: Any, hand_box: np.ndarray, shape: tuple[int, int], chunk: int) -> np.ndarray:
    """The (n, T) uint8 ``hand_source`` of a chunk: given (checked against the codes and the boxes) or derived."""
    if hand_source is None:
        return hand_source_from_boxes(hand_box)
    hs = _checked("hand_source", hand_source, shape, "iub", np.uint8)
    unknown = ~np.isin(hs, list(HAND_SOURCE_NAMES))
    if unknown.any():
        r, t = np.argwhere(unknown)[0]
        raise ValueError(
            f"hand_source of chunk {chunk}: code {int(hs[r, t])} at row {r} slot {t} is none of "
            f"{dict(HAND_SOURCE_NAMES)}"
        )
    no_box = np.isnan(hand_box).any(axis=-1)
    wrong = no_box != (hs == HAND_SOURCE_NONE)
    if wrong.any():
        r, t = np.argwhere(wrong)[0]
        raise ValueError(
            f"hand_source of chunk {chunk} disagrees with hand_box at row {r} slot {t}: code {int(hs[r, t])} "
            f"({HAND_SOURCE_NAMES[int(hs[r, t])]}) for {'no box' if no_box[r, t] else 'a box'}; "
            f"{HAND_SOURCE_NONE} (none) goes exactly with a NaN box"
        )
    return hs


def _create_h5(backend: Backend, spec: StoreSpec, segs: dict[str, np.ndarray], voc: dict[str, np.ndarray]) -> None:
    """A new HDF5 store: allocated under a temporary name beside ``backend.path`` and renamed into place once the
    file is closed (its metadata flushed), so a write that fails (a full disk) leaves no file at the store's path;
    the temporary file is removed then, and one left by a killed run is removed by the next creation."""
    for stale in backend.path.parent.glob(f".{backend.path.name}.*{H5_CREATING}"):
        stale.unlink(missing_ok=True)
    tmp = backend.path.with_name(f".{backend.path.name}.{uuid.uuid4().hex[:12]}{H5_CREATING}")
    try:
        with Backend(tmp, "h5").session("a") as s:
            _allocate(s, spec, segs, voc)
        os.replace(tmp, backend.path)
    finally:
        tmp.unlink(missing_ok=True)


def _h5_start_afresh(
    backend: Backend, spec: StoreSpec, segs: dict[str, np.ndarray], voc: dict[str, np.ndarray], overwrite: bool
) -> bool:
    """Whether an existing HDF5 store is made anew (under a temporary name, then renamed over it) instead of being
    changed in place: it holds nothing but group ``dataset`` (and that group's class texts), and either the group is
    to be discarded (``overwrite``) or none of its chunks is done (a first write that failed, e.g. on a full disk,
    can leave HDF5's metadata damaged; there is nothing to keep) and it was made as this run would make it
    (StoreSpecError otherwise, as for any resume). A file that does not open is left to the caller."""
    dataset = spec.dataset
    with backend.session("r") as s:
        others = [g for g in s.children("")[0] if g not in (dataset, layout.TEXT_GROUP)]
        if s.is_group(layout.TEXT_GROUP):
            for enc in s.children(layout.TEXT_GROUP)[0]:
                others += [d for d in s.children(f"{layout.TEXT_GROUP}/{enc}")[0] if d != dataset]
        if others:
            return False
        if overwrite:
            return True
        if not s.has(f"{dataset}/done") or layout.SPEC_ATTR not in s.get_attrs(dataset):
            return False  # an interrupted creation: the caller's own rules apply
        try:
            if s.read(f"{dataset}/done").any():
                return False
        except Exception:  # noqa: BLE001 - unreadable done flags: no chunk can be trusted as done
            pass
        check_resume(s, spec, segs, voc, where=str(backend.path), repair=False)
        return True


#: Suffix of an HDF5 store being created (see :func:`_create_h5`).
H5_CREATING = ".creating"


def _allocate(s: Session, spec: StoreSpec, segs: dict[str, np.ndarray], vocab: dict[str, np.ndarray]) -> None:
    """Create every array of the group with its fill value; the spec attribute goes last."""
    ds, n, t, c = spec.dataset, len(segs["segment_id"]), spec.num_frames, spec.chunk_rows
    s.require_group(ds)
    for col, arr in segs.items():
        s.create_array(
            layout.segments_key(ds, col), (n,), STR if arr.dtype.kind == "U" else str(arr.dtype), (c,), data=arr
        )
    for target, names in vocab.items():
        s.create_array(layout.vocab_key(ds, target), (len(names),), STR, data=names)
    s.create_array(f"{ds}/frame_index", (n, t), "int32", (c, t), FILL["frame_index"])
    s.create_array(f"{ds}/hand_box", (n, t, 4), "float32", (c, t, 4), FILL["hand_box"])
    s.create_array(f"{ds}/hand_source", (n, t), "uint8", (c, t), FILL["hand_source"])
    for name, enc in spec.encoders.items():
        for view in VIEWS:
            s.create_array(
                layout.features_key(ds, name, view), (n, t, enc.dim), "float16", (c, t, enc.dim), FILL["features"]
            )
    if spec.frames:
        frame_cache.allocate(s, spec, n)
    s.create_array(f"{ds}/row_status", (n,), "uint8", (c,), FILL["row_status"])
    s.create_array(f"{ds}/done", (num_chunks(n, c),), "uint8", (1,), FILL["done"])
    s.require_group(layout.failed_group(ds))
    s.set_attrs("", {layout.LAYOUT_ATTR: layout.LAYOUT_VERSION})
    s.set_attrs(ds, {layout.SPEC_ATTR: spec.to_json()})
