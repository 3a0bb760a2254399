"""Reading a dataset group of the store: whole arrays at once into RAM or onto a device.

Stage two loads each feature array once (:meth:`StoreReader.load_features`) and indexes batches in memory;
nothing here is meant to be called per clip in a training loop. Every read opens the store read-only and
closes it again, so a reader never holds an HDF5 handle that would block a writer.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from typing import Any

import numpy as np

from xmic.cache import guard, layout
from xmic.cache.backend import Backend, Session
from xmic.cache.errors import StoreError, StoreSpecError, spec_differences
from xmic.cache.schema import (
    HAND_BOX_UNWRITTEN,
    HAND_SOURCE_NAMES,
    HAND_SOURCE_NONE,
    HAND_SOURCE_UNWRITTEN,
    PROMPT_TEMPLATES,
    ROW_OK,
    TARGETS,
    VIEWS,
    EncoderSpec,
    StoreSpec,
    chunk_slice,
    hand_source_from_boxes,
    template_key,
)

#: Fields of :meth:`StoreReader.check_spec`'s ``expected``.
CHECKABLE_FIELDS = ("num_frames", "encoders", "sampling", "hands", "dataset")


#: The most bytes of whole arrays one reader keeps (:attr:`StoreReader.keep_arrays`): the demo's stores fit many
#: times over; the feature arrays of a full EPIC-KITCHENS or Ego4D store may not, and are then read again.
KEEP_BYTES = 1 << 30


def shared_reader(
    readers: dict[tuple[str, str], StoreReader] | None, path: str | os.PathLike, dataset: str
) -> StoreReader:
    """A reader of ``dataset`` in the store at ``path``; with ``readers`` (a caller's dict over many runs of one
    finished store), the one kept there, which keeps the arrays it reads (:attr:`StoreReader.keep_arrays`)."""
    if readers is None:
        return StoreReader(path, dataset)
    key = (str(path), dataset)
    if key not in readers:
        readers[key] = StoreReader(path, dataset)
        readers[key].keep_arrays = True
    return readers[key]


def list_datasets(path: str | os.PathLike, fmt: str | None = None) -> list[str]:
    """Names of the dataset groups in the store at ``path`` (sorted)."""
    with Backend(path, fmt).session("r") as s:
        return layout.dataset_groups(s)


class StoreReader(layout.GroupView):
    """Read-only view of one dataset group.

    Args:
        path: the store (Zarr directory or HDF5 file).
        dataset: the group to read; ``None`` picks the only one (StoreError listing them when several).
        fmt: ``"zarr"`` / ``"h5"``; default from what is on disk.
    """

    def __init__(self, path: str | os.PathLike, dataset: str | None = None, fmt: str | None = None):
        self._backend = Backend(path, fmt)
        with self._backend.session("r") as s:
            names = layout.dataset_groups(s)
            if dataset is None:
                if len(names) != 1:
                    found = ", ".join(names) if names else "none"
                    raise StoreError(f"{path} holds {len(names)} dataset groups ({found}); pass dataset=")
                dataset = names[0]
            elif dataset not in names:
                raise StoreError(f"{path} has no dataset group {dataset!r}; it holds: {', '.join(names) or 'none'}")
            self.spec: StoreSpec = layout.read_spec(s, dataset, str(path))
            self.n_rows: int = s.info(layout.segments_key(dataset, "segment_id")).shape[0]
        self.dataset = dataset
        #: Keep the whole arrays read (features, row status, done flags) for this reader's life, for a caller that
        #: reads one finished store for many runs (evaluations, reports); off, each read goes to the store.
        self.keep_arrays = False
        self._kept: dict[str, np.ndarray] = {}

    def _read_whole(self, key: str, read: Any) -> np.ndarray:
        """``read()``, or the array kept from an earlier call when :attr:`keep_arrays` is on (up to
        :data:`KEEP_BYTES` in all per reader; larger arrays are read again each time)."""
        if key in self._kept:
            return self._kept[key]
        arr = read()
        if self.keep_arrays and arr.nbytes + sum(a.nbytes for a in self._kept.values()) <= KEEP_BYTES:
            self._kept[key] = arr
        return arr

    def __repr__(self) -> str:
        return f"StoreReader({str(self.path)!r}, dataset={self.dataset!r}, n_rows={self.n_rows}, fmt={self.fmt!r})"

    def chunk_slice(self, chunk: int) -> slice:
        return chunk_slice(chunk, self.spec.chunk_rows, self.n_rows)

    def _read(self, key: str, sel: Any = ...) -> np.ndarray:
        with self._backend.session("r") as s:
            if not s.has(key):
                raise StoreError(f"{self.path}: array {key} is missing")
            return self._get(s, key, sel)

    def _get(self, s: Session, key: str, sel: Any = ...) -> np.ndarray:
        """``key[sel]`` once every chunk ``key`` must hold is known to exist (looked for once per reader and array);
        a missing or unreadable chunk is a :class:`~xmic.cache.guard.StoreDamageError` naming it and the repair."""
        self._present(s, key)
        return guard.read_checked(s, self.path, key, sel)

    def _present(self, s: Session, key: str) -> None:
        checked = self.__dict__.setdefault("_checked_keys", set())
        if key not in checked:
            guard.check_present(s, self.path, key)
            checked.add(key)

    @cached_property
    def segments(self) -> dict[str, np.ndarray]:
        """Column -> (N,) numpy array (strings as ``<U``)."""
        with self._backend.session("r") as s:
            cols = s.children(layout.segments_key(self.dataset))[1]
            return {c: self._get(s, layout.segments_key(self.dataset, c)) for c in cols}

    @cached_property
    def vocab(self) -> dict[str, list[str]]:
        """``{"verb": [...], "noun": [...]}`` class names in label order."""
        return {t: [str(x) for x in self._read(layout.vocab_key(self.dataset, t))] for t in TARGETS}

    @property
    def row_status(self) -> np.ndarray:
        """(N,) uint8 ROW_PENDING / ROW_OK / ROW_FAILED, read afresh each time (unless :attr:`keep_arrays`)."""
        key = f"{self.dataset}/row_status"
        return self._read_whole(key, lambda: self._read(key))

    @property
    def done(self) -> np.ndarray:
        """(n_chunks,) uint8 done flags, read afresh each time (unless :attr:`keep_arrays`)."""
        key = f"{self.dataset}/done"
        return self._read_whole(key, lambda: self._read(key))

    @property
    def frame_index(self) -> np.ndarray:
        """(N, T) int32 source frame of every slot (-1 where unwritten)."""
        return self._read(f"{self.dataset}/frame_index")

    @property
    def hand_box(self) -> np.ndarray:
        """(N, T, 4) float32 normalised xyxy, NaN where no box (or unwritten); see :meth:`read_hand_box`."""
        return self.read_hand_box()

    def read_hand_box(self, rows: slice = slice(None)) -> np.ndarray:
        """``hand_box[rows]``: NaN where no box, and NaN for the rows of chunks not extracted yet.

        Raises:
            StoreError: a row of a done chunk reads as never written (:data:`HAND_BOX_UNWRITTEN`): its chunk object
                is gone (a partial copy), which would otherwise read as "no box".
        """
        box = self._read(f"{self.dataset}/hand_box", rows)
        start = rows.indices(self.n_rows)[0]
        unwritten = (box == HAND_BOX_UNWRITTEN).reshape(len(box), -1).any(axis=1)
        if not unwritten.any():
            return box
        chunk_of = (np.arange(len(box)) + start) // self.spec.chunk_rows
        lost = unwritten & (self.done[chunk_of] == 1)
        if lost.any():
            chunks = sorted({int(c) for c in chunk_of[lost]})
            raise StoreError(
                f"{self.path} / {self.dataset}: hand_box of {int(lost.sum())} rows of done chunk(s) "
                f"{', '.join(map(str, chunks[:10]))} reads as never written (the chunk is missing); "
                f"run `xmic cache verify {self.path} --reset-damaged`, then re-run the same `xmic extract` command"
            )
        box = box.copy()
        box[unwritten] = np.nan
        return box

    @property
    def has_hand_source(self) -> bool:
        """Whether the group records where each box came from (``hand_source``; absent in older stores)."""
        with self._backend.session("r") as s:
            return s.has(f"{self.dataset}/hand_source")

    @property
    def hand_source(self) -> np.ndarray | None:
        """(N, T) uint8 ``HAND_SOURCE_*`` code of every slot, or None for an older store; see :meth:`read_hand_source`."""
        return self.read_hand_source()

    def read_hand_source(self, rows: slice = slice(None), *, derive: bool = False) -> np.ndarray | None:
        """``hand_source[rows]``: where each slot's box came from (none / detected / interpolated).

        Rows of chunks not extracted yet read as ``HAND_SOURCE_NONE`` (like their NaN boxes). A store written before
        the array existed gives None, or with ``derive`` the codes its boxes imply (NaN: none, else detected; it
        cannot tell interpolated boxes, which such stores never had).

        Raises:
            StoreError: a row of a done chunk holds a code that is not one (the never-written fill
                :data:`HAND_SOURCE_UNWRITTEN`: its chunk object is gone), which would otherwise read as "no box".
        """
        key = f"{self.dataset}/hand_source"
        with self._backend.session("r") as s:
            present = s.has(key)
            src = self._get(s, key, rows) if present else None
        if src is None:
            if not derive:
                return None
            return hand_source_from_boxes(self.read_hand_box(rows))
        start = rows.indices(self.n_rows)[0]
        invalid = (~np.isin(src, list(HAND_SOURCE_NAMES))).any(axis=1)
        if not invalid.any():
            return src
        chunk_of = (np.arange(len(src)) + start) // self.spec.chunk_rows
        lost = invalid & (self.done[chunk_of] == 1)
        if lost.any():
            chunks = sorted({int(c) for c in chunk_of[lost]})
            raise StoreError(
                f"{self.path} / {self.dataset}: hand_source of {int(lost.sum())} rows of done chunk(s) "
                f"{', '.join(map(str, chunks[:10]))} holds no valid code (the chunk is missing or damaged); "
                f"run `xmic cache verify {self.path} --reset-damaged`, then re-run the same `xmic extract` command"
            )
        src = src.copy()
        src[invalid] = np.where(src[invalid] == HAND_SOURCE_UNWRITTEN, HAND_SOURCE_NONE, src[invalid])
        return src

    def ok_rows(self) -> np.ndarray:
        """Indices of the rows with status ROW_OK, ascending (int64)."""
        return np.flatnonzero(self.row_status == ROW_OK)

    def complete(self) -> bool:
        """Whether every chunk is flagged done."""
        return bool(np.all(self.done == 1))

    def load_features_numpy(self, encoder: str, view: str, rows: Any = None) -> np.ndarray:
        """(N, T, D) or (len(rows), T, D) float16 numpy array, read in one pass over the chunks."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, not {view!r}")
        key = layout.features_key(self.dataset, encoder, view)
        if rows is None and key in self._kept:
            return self._kept[key]
        with self._backend.session("r") as s:
            if not s.has(key):
                raise StoreError(
                    f"{self.path} dataset {self.dataset!r} has no features for encoder {encoder!r}; "
                    f"it holds: {', '.join(sorted(self.spec.encoders)) or 'none'}"
                )
            self._present(s, key)
            if rows is None:
                return self._read_whole(key, lambda: guard.read_checked(s, self.path, key))
            return _read_rows(s, key, np.asarray(rows), self.n_rows, self.path)

    def load_features(self, encoder: str, view: str, device: Any = "cpu", rows: Any = None) -> Any:
        """The ``features/<encoder>/<view>`` array as one float16 tensor on ``device``.

        Args:
            encoder: registry name, e.g. ``"clip-vit-b16"``.
            view: ``"full"`` or ``"hand"``.
            device: torch device; the array is read into host memory and moved in a single copy.
            rows: optional (M,) row indices (any order, repeats allowed).

        Returns:
            torch.Tensor (N, T, D) or (M, T, D), float16.
        """
        import torch

        arr = self.load_features_numpy(encoder, view, rows)
        return torch.from_numpy(arr).to(device)

    def has_frames(self, encoder: str | None = None) -> bool:
        """Whether the group holds a frame cache (``xmic extract --frames-cache``) of ``encoder`` (default: of any)."""
        names = [encoder] if encoder else list(self.spec.frames)
        if not names or any(n not in self.spec.frames for n in names):
            return False
        with self._backend.session("r") as s:
            return all(s.has(layout.frames_key(self.dataset, n)) for n in names)

    def frames_encoder(self, encoder: str | None = None) -> str:
        """The encoder whose frame cache to read: ``encoder``, default the only one the group has.

        Raises:
            StoreError: there is no such frame cache; the message gives the ``xmic extract ... --frames-cache``
                command that writes one.
        """
        from xmic.registry import text_encoders

        if encoder is None and len(self.spec.frames) == 1:
            encoder = next(iter(self.spec.frames))
        if encoder is None and len(self.spec.frames) > 1:
            raise StoreError(f"{self.path} holds frame caches of {sorted(self.spec.frames)}; name the encoder")
        if encoder is not None and self.has_frames(encoder):
            return encoder
        name = encoder or next(iter(text_encoders(self.spec.encoders)), None) or "clip-vit-b16"
        held = f"it holds frames of {sorted(self.spec.frames)}; " if self.spec.frames else ""
        raise StoreError(
            f"store {self.path}, dataset group {self.dataset!r}: no frame cache of {name} ({held}a feature cache "
            "holds the encoder's outputs, and Vita-CLIP runs the frozen visual encoder on the frames). Write one with "
            "`xmic extract ... --frames-cache`, which re-extracts the group (features included):\n  "
            + _reextract_command(self.spec, str(self.path), self.dataset, frames_cache=True, encoder=name)
        )

    def load_frames_numpy(self, encoder: str | None = None, rows: Any = None, slots: Any = None) -> np.ndarray:
        """The frame cache's images as uint8 ``(B, T', S, S, 3)`` numpy (RGB, channels last); see
        :meth:`load_frames`."""
        from xmic.cache import frames as frame_cache

        encoder = self.frames_encoder(encoder)
        rows = np.arange(self.n_rows) if rows is None else np.asarray(rows)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise ValueError(f"rows must be a 1-D integer array, got {rows.dtype} {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise IndexError(f"rows {rows.min()}..{rows.max()} out of range for {self.n_rows} rows")
        t = self.spec.num_frames
        if slots is not None:
            slots = np.asarray(slots)
            if (
                slots.dtype.kind not in "iu"
                or slots.ndim not in (1, 2)
                or (slots.ndim == 2 and slots.shape[0] != len(rows))
            ):
                raise ValueError(f"slots must be (T',) or ({len(rows)}, T') integers, got {slots.dtype} {slots.shape}")
            if slots.size and (slots.min() < 0 or slots.max() >= t):
                raise IndexError(f"slots {slots.min()}..{slots.max()} out of range for T={t}")
        with self._backend.session("r") as s:
            key = layout.frames_key(self.dataset, encoder)
            self._present(s, key)
            try:
                return frame_cache.read(s, key, rows, slots, t)
            except (IndexError, TypeError, StoreError):
                raise
            except Exception as exc:  # noqa: BLE001 - checksum or JPEG decoding: the library's errors vary
                bad = sorted({int(r) // self.spec.chunk_rows for r in rows})
                chunk = next((c for c in bad if guard.chunk_unreadable(s, key, c, self.spec.chunk_rows)), bad[0])
                why = str(exc).split("\n")[0][:160]
                raise guard.StoreDamageError(
                    f"{self.path}: array {key} chunk {chunk} fails its checksum or cannot be decoded "
                    f"({type(exc).__name__}: {why}); " + guard.repair_hint(self.path, key, unreadable=True)
                ) from None

    def load_frames(
        self,
        encoder: str | None = None,
        rows: Any = None,
        slots: Any = None,
        device: Any = "cpu",
        *,
        channels_last: bool = False,
    ) -> Any:
        """Preprocessed full frames of ``rows`` from the frame cache, as one uint8 tensor on ``device``.

        The images are the encoder's input before normalisation (resized, centre-cropped to its ``image_size``),
        JPEG-decoded (:mod:`xmic.cache.frames` states the loss); :func:`xmic.extract.preprocess.normalize_uint8`
        turns them into the encoder's pixels. Only the images asked for are decoded, so read a batch at a time.

        Args:
            encoder: whose frame cache (default: the only one).
            rows: (B,) store rows (any order, repeats allowed); default every row.
            slots: (T',) slots for every row, or (B, T') per row (e.g. one candidate per bin); default all T.
            device: torch device; one copy from host memory.
            channels_last: ``(B, T', S, S, 3)`` instead of ``(B, T', 3, S, S)``.

        Returns:
            torch.uint8 ``(B, T', 3, S, S)`` (default) or ``(B, T', S, S, 3)``.

        Raises:
            StoreError: the group has no frame cache; the message gives the extract command that writes one.
        """
        import torch

        out = torch.from_numpy(self.load_frames_numpy(encoder, rows, slots)).to(device)
        return out if channels_last else out.permute(0, 1, 4, 2, 3).contiguous()

    def _text_dir(self, encoder: str, target: str, dataset: str | None) -> str:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
        return f"{layout.TEXT_GROUP}/{encoder}/{dataset or self.dataset}/{target}"

    def text_templates(self, encoder: str, target: str, dataset: str | None = None) -> list[str]:
        """Prompt templates with stored embeddings: the paper's six in Table 7 order, then others sorted."""
        folder = self._text_dir(encoder, target, dataset)
        with self._backend.session("r") as s:
            if not s.is_group(folder):
                return []
            found = [s.get_attrs(f"{folder}/{k}").get(layout.TEMPLATE_ATTR, k) for k in s.children(folder)[1]]
        known = [t for t in PROMPT_TEMPLATES if t in found]
        return known + sorted(t for t in found if t not in PROMPT_TEMPLATES)

    def load_text(self, encoder: str, target: str, template: str = "{}", dataset: str | None = None) -> Any:
        """(C, D) float32 tensor of class-text embeddings of ``dataset``'s (default: this group's) vocabulary."""
        import torch

        key = f"{self._text_dir(encoder, target, dataset)}/{template_key(template)}"
        with self._backend.session("r") as s:
            arr = self._get(s, key) if s.has(key) else None
        if arr is None:
            have = self.text_templates(encoder, target, dataset)
            raise StoreError(
                f"{self.path} has no {target} text embeddings of {encoder} for dataset "
                f"{dataset or self.dataset!r} with template {template!r}; stored templates: {have or 'none'}"
            )
        if not np.isfinite(arr).all():
            raise StoreError(
                f"{self.path}: text array {key} has NaN/inf values (damaged); run `xmic cache verify {self.path}` "
                "and re-extract the text embeddings with the same `xmic extract` command on a fresh --cache"
            )
        return torch.from_numpy(arr.astype(np.float32, copy=False))

    def skipped(self) -> list[dict[str, Any]]:
        """Annotation rows ``--skip-bad`` left out of this group: ``status`` "skipped", ``file``, ``where``, ``reason``."""
        with self._backend.session("r") as s:
            return layout.read_skipped(s, self.dataset)

    def failures(self) -> list[dict[str, Any]]:
        """Failure records of the done chunks, in row order (each has row, segment_id, video_id, reason)."""
        folder = layout.failed_group(self.dataset)
        done = self.done
        records = []
        with self._backend.session("r") as s:
            if not s.is_group(folder):
                return []
            for name in s.children(folder)[1]:
                if name.isdigit() and int(name) < len(done) and done[int(name)]:
                    records.extend(json.loads(line) for line in self._get(s, f"{folder}/{name}"))
        return sorted(records, key=lambda r: r["row"])

    def check_bin_centres(self) -> None:
        """Raise StoreSpecError when the group's frames hold no bin centres (an old ``uniform-bins:16x2`` store).

        Evaluation takes the centre frame of each bin, so a store whose sampling rule has an even number of
        candidates per bin cannot be used by stage two; the message says how to re-extract it.
        """
        from xmic.sampling import parse_sampling_rule, rule_lacks_bin_centres

        rule = self.spec.sampling
        if not rule_lacks_bin_centres(rule):
            return
        bins, per_bin = parse_sampling_rule(rule)
        raise StoreSpecError(
            f"store {self.path}, dataset group {self.dataset!r}: its frames were sampled with rule {rule!r} "
            f"({self.spec.num_frames} slots, {per_bin} candidates in each of {bins} bins), which has no candidate "
            "at a bin's centre; evaluation takes every bin's centre frame (the authors' uniform sampling), so "
            "this store cannot be trained or evaluated on. Re-extract it with the current `xmic extract` "
            "(16 bins x 3 candidates, 48 slots), into a new --cache or over this group with --overwrite; "
            "re-running the old command will not resume it (the slots differ):\n  "
            + _reextract_command(self.spec, str(self.path), self.dataset)
        )

    def check_spec(self, expected: dict[str, Any]) -> None:
        """Raise StoreSpecError unless the store matches every field of ``expected``.

        Args:
            expected: any of ``num_frames``, ``encoders`` (``{name: EncoderSpec.identity() dict}`` or
                ``{name: EncoderSpec}``; the store may hold more encoders), ``sampling``, ``hands``,
                ``dataset``.
        """
        unknown = sorted(set(expected) - set(CHECKABLE_FIELDS))
        if unknown:
            raise ValueError(f"check_spec: unknown fields {unknown}; known: {list(CHECKABLE_FIELDS)}")
        asked = dict(expected)
        if "encoders" in asked:
            asked["encoders"] = {name: _identity(e) for name, e in asked["encoders"].items()}
        stored = layout.spec_fields(self.spec)
        lines = spec_differences(stored, asked, asked_label="the run asks for")
        if lines:
            raise StoreSpecError(
                f"store {self.path} (dataset {self.dataset!r}) does not match the run:\n  " + "\n  ".join(lines)
            )


def _reextract_command(
    spec: StoreSpec, path: str, group: str, *, frames_cache: bool | None = None, encoder: str | None = None
) -> str:
    """An ``xmic extract ... --overwrite`` line rebuilt from the extraction config the store recorded.

    ``frames_cache``: add ``--frames-cache`` (default: when the store has a frame cache); ``encoder`` replaces the
    recorded ``--encoder``."""
    cfg = spec.config or {}
    dataset = cfg.get("dataset") or group
    parts = [f"xmic extract --dataset {dataset} --root {cfg.get('root') or '<DATASET_ROOT>'}"]
    if cfg.get("splits"):
        parts.append("--split " + ",".join(map(str, cfg["splits"])))
    parts.append(f"--cache {path}")
    from xmic.registry import text_encoders

    clip = text_encoders(spec.encoders)
    encoder = encoder or cfg.get("encoder") or (clip[0] if clip else None)
    second = cfg.get("second_encoder") or next((n for n in sorted(spec.encoders) if n != encoder), None)
    if encoder:
        parts.append(f"--encoder {encoder}")
    if second:
        parts.append(f"--second-encoder {second}")
    parts += [f"--extra-encoder {n}" for n in cfg.get("extra_encoders") or []]
    parts.append(f"--hands {spec.hands}")
    for name, value in sorted((cfg.get("hand_options") or {}).items()):
        if value is not None:
            parts.append(f"--{name.replace('_', '-')} {value}")
    for key in ("model_dir", "center_sec", "media", "egtea_split"):
        if cfg.get(key) is not None:
            parts.append(f"--{key.replace('_', '-')} {cfg[key]}")
    if frames_cache if frames_cache is not None else bool(spec.frames):
        parts.append("--frames-cache")
        quality = next((f.get("quality") for f in spec.frames.values()), None) or cfg.get("frames_quality")
        if quality and int(quality) != 95:
            parts.append(f"--frames-quality {int(quality)}")
    line = " ".join([*parts, "--overwrite"])
    if group != dataset:
        line += f"   (then rename the new group {dataset!r} to {group!r}, as this one was)"
    return line


def _identity(enc: EncoderSpec | dict[str, Any]) -> dict[str, Any]:
    d = enc.identity() if isinstance(enc, EncoderSpec) else {k: v for k, v in enc.items() if k != "source"}
    return json.loads(json.dumps(d))


def _read_rows(s: Session, key: str, rows: np.ndarray, n_rows: int, path: Any = "") -> np.ndarray:
    """``array[rows]`` for any (M,) row indices, reading each touched storage chunk once."""
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"rows must be a 1-D integer array, got {rows.dtype} {rows.shape}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise IndexError(f"rows {rows.min()}..{rows.max()} out of range for {n_rows} rows of {key}")
    info = s.info(key)
    out = np.empty((len(rows), *info.shape[1:]), dtype=np.dtype(info.dtype))
    if not rows.size:
        return out
    step = info.chunks[0] if info.chunks else n_rows
    order = np.argsort(rows, kind="stable")
    srt = rows[order]
    groups = np.split(np.arange(len(srt)), np.flatnonzero(np.diff(srt // step)) + 1)
    for g in groups:
        lo, hi = int(srt[g[0]]), int(srt[g[-1]]) + 1
        out[order[g]] = guard.read_checked(s, path, key, slice(lo, hi))[srt[g] - lo]
    return out
