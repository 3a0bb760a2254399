"""The main-process half of stage one: hand boxes and encoders over decoded pieces, and a chunk's arrays.

:func:`encode_pieces` finds the hand boxes of :class:`~xmic.extract.pipeline.Piece` s and runs every encoder on
the full frames and the hand crops; :class:`ChunkAssembler` gathers a chunk's results (and its failed rows) into
the arrays of one ``write_chunk``. :class:`Timings` adds up where the time went.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xmic.cache.schema import HAND_SOURCE_NONE, ROW_FAILED, ROW_OK, ROW_PENDING, hand_source_from_boxes
from xmic.extract.pipeline import Piece
from xmic.sampling import DEFAULT_BINS


@dataclass
class Timings:
    """Seconds spent in each part of the extraction (decode summed over workers)."""

    decode: float = 0.0
    hands: float = 0.0
    encode: float = 0.0
    write: float = 0.0
    wait: float = 0.0  # main process blocked on the decode workers
    text: float = 0.0
    setup: float = 0.0

    def shares(self) -> dict[str, float]:
        """Fractions of decode / hands / encode / write in their sum (0 when nothing ran)."""
        parts = {"decode": self.decode, "hands": self.hands, "encode": self.encode, "write": self.write}
        total = sum(parts.values())
        return {k: (v / total if total > 0 else 0.0) for k, v in parts.items()}


def piece_boxes(piece: Piece, provider: Any, records: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(n, T, 4)`` float32 hand boxes of a piece's rows (NaN = none) and their ``(n, T)`` uint8 ``HAND_SOURCE_*``
    codes (none / detected / interpolated); HandBoxError when the source fails."""
    from xmic.extract.hands.base import BoxRequest

    requests = [
        BoxRequest(
            piece.video_id,
            piece.frame_index[i],
            piece.frames[i] if provider.needs_frames else None,
            records[int(piece.rows[i])],
        )
        for i in range(len(piece.rows))
    ]
    if hasattr(provider, "boxes_with_sources"):
        pairs = provider.boxes_with_sources(requests)
        boxes = np.stack([b for b, _ in pairs]).astype(np.float32)
        return boxes, np.stack([src for _, src in pairs]).astype(np.uint8)
    boxes = np.stack(provider.boxes_many(requests)).astype(np.float32)  # a duck-typed provider: none / detected
    return boxes, hand_source_from_boxes(boxes)


def encoder_views(enc: Any, frames: np.ndarray, boxes: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """One encoder's full-frame and hand-crop features of whole segments.

    Args:
        enc: A loaded encoder: an image encoder (``encode_images`` / ``encode_crops``) or a clip encoder
            (``clip_frames > 1``, ``encode_slots``, :mod:`xmic.extract.lavila_encoder`).
        frames: uint8 ``(R, T, H, W, 3)``, every slot of R segments.
        boxes: ``(R, T, 4)`` normalised xyxy, NaN = no box (the hand view is then the full frame).
        bins: The store's bins (a clip encoder groups the slots of ``clip_frames`` consecutive bins).

    Returns:
        ``(full, hand)``, each ``(R, T, D)`` float32.
    """
    r, t = frames.shape[:2]
    has_box = ~np.isnan(boxes).any(axis=-1)  # (R, T)
    if getattr(enc, "clip_frames", 1) > 1:
        full = enc.encode_slots(frames, None, bins).numpy()
        hand = full.copy()
        rows = has_box.any(axis=1)
        if rows.any():
            hand[rows] = enc.encode_slots(frames[rows], boxes[rows], bins).numpy()
        return full, hand
    flat, flat_boxes, flat_has = frames.reshape(r * t, *frames.shape[2:]), boxes.reshape(-1, 4), has_box.reshape(-1)
    full = enc.encode_images(flat).numpy()
    hand = full.copy()
    if flat_has.any():
        hand[flat_has] = enc.encode_crops(flat[flat_has], flat_boxes[flat_has]).numpy()
    return full.reshape(r, t, -1), hand.reshape(r, t, -1)


def encode_pieces(
    pieces: list[Piece],
    provider: Any,
    encoders: dict[str, Any],
    records: list[Any],
    timings: Timings,
    bins: int = DEFAULT_BINS,
) -> list[tuple[np.ndarray, dict[str, dict[str, np.ndarray]]] | Exception]:
    """Hand boxes and features of several pieces, encoded together (one batch per frame size).

    Args:
        pieces: Decoded pieces (``n_i`` rows each).
        provider: A hand-box provider (``boxes_many``, ``needs_frames``).
        encoders: ``{name: FrozenEncoder}``.
        records: All store rows (segment records, for the provider's messages).
        timings: ``hands`` and ``encode`` are added to.
        bins: The store's bins (for clip encoders, see :func:`encoder_views`).

    Returns:
        Per piece, ``(hand_box (n_i, T, 4) float32, {encoder: {"full": (n_i, T, D), "hand": ...} float16},
        hand_source (n_i, T) uint8)``, or
        the :class:`~xmic.extract.hands.base.HandBoxError` its boxes raised (the caller fails those rows). The hand
        view of a frame without a box is its full-frame feature.
    """
    from xmic.extract.hands.base import HandBoxError

    t0 = time.perf_counter()
    out: list[Any] = []
    for piece in pieces:
        try:
            out.append(piece_boxes(piece, provider, records))
        except HandBoxError as exc:
            out.append(exc)
    t1 = time.perf_counter()
    timings.hands += t1 - t0
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, piece in enumerate(pieces):
        if not isinstance(out[i], Exception):
            groups.setdefault(piece.frames.shape[2:], []).append(i)
    for shape, idx in groups.items():
        frames = np.concatenate([pieces[i].frames.reshape(-1, *shape) for i in idx])  # (M, H, W, 3)
        boxes = np.concatenate([out[i][0].reshape(-1, 4) for i in idx])  # (M, 4)
        sizes = np.cumsum([pieces[i].frames.shape[0] * pieces[i].frames.shape[1] for i in idx])[:-1]
        t = pieces[idx[0]].frames.shape[1]
        views: dict[str, dict[str, list[np.ndarray]]] = {}
        for name, enc in encoders.items():
            full, hand = encoder_views(enc, frames.reshape(-1, t, *shape), boxes.reshape(-1, t, 4), bins)
            views[name] = {"full": np.split(full.reshape(-1, full.shape[-1]), sizes)}
            views[name]["hand"] = np.split(hand.reshape(-1, hand.shape[-1]), sizes)
        for k, i in enumerate(idx):
            n, t = pieces[i].frame_index.shape
            feats = {
                name: {view: parts[k].reshape(n, t, -1).astype(np.float16) for view, parts in v.items()}
                for name, v in views.items()
            }
            out[i] = (out[i][0], feats, out[i][1])
    timings.encode += time.perf_counter() - t1
    return out


@dataclass
class ChunkAssembler:
    """The arrays of one chunk, filled piece by piece; failed and unfilled rows keep NaN / -1."""

    chunk: int
    row_start: int
    n: int
    num_frames: int
    dims: dict[str, int]
    waiting: list[Piece] = field(default_factory=list)  # decoded pieces not encoded yet
    _failures: dict[int, dict[str, Any]] = field(default_factory=dict)
    frame_size: int = 0  # S of the frame cache's (n, T, S, S, 3) uint8 images; 0: no frame cache

    def __post_init__(self) -> None:
        n, t = self.n, self.num_frames
        self.frame_index = np.full((n, t), -1, np.int32)
        self.hand_box = np.full((n, t, 4), np.nan, np.float32)
        self.hand_source = np.full((n, t), HAND_SOURCE_NONE, np.uint8)
        self.features = {
            name: {view: np.full((n, t, d), np.nan, np.float16) for view in ("full", "hand")}
            for name, d in self.dims.items()
        }
        self.row_status = np.full(n, ROW_PENDING, np.uint8)
        s = self.frame_size
        self.frames = np.zeros((n, t, s, s, 3), np.uint8) if s else None  # failed rows stay black

    def add(
        self,
        rows: np.ndarray,
        frame_index: np.ndarray,
        hand_box: np.ndarray,
        feats: dict[str, dict[str, np.ndarray]],
        hand_source: np.ndarray | None = None,
    ) -> None:
        """Fill ``rows`` (store rows) with their frame index ``(n, T)``, boxes ``(n, T, 4)``, features and box
        sources ``(n, T)`` (default: none / detected from the boxes)."""
        local = np.asarray(rows) - self.row_start
        self.frame_index[local] = frame_index
        self.hand_box[local] = hand_box
        self.hand_source[local] = hand_source_from_boxes(hand_box) if hand_source is None else hand_source
        for name, views in feats.items():
            for view, arr in views.items():
                self.features[name][view][local] = arr
        self.row_status[local] = ROW_OK

    def add_frames(self, rows: np.ndarray, frames: np.ndarray) -> None:
        """The frame cache's images ``(n, T, S, S, 3)`` uint8 of ``rows`` (store rows)."""
        if self.frames is None:
            raise ValueError("this chunk has no frame cache (frame_size 0)")
        self.frames[np.asarray(rows) - self.row_start] = frames

    def fail(self, rows: list[int], reasons: list[str]) -> None:
        """Mark ``rows`` failed with one reason each (their arrays stay unwritten: NaN / -1)."""
        for row, reason in zip(rows, reasons, strict=True):
            local = row - self.row_start
            self.row_status[local] = ROW_FAILED
            self.frame_index[local] = -1
            self.hand_box[local] = np.nan
            self.hand_source[local] = HAND_SOURCE_NONE
            for views in self.features.values():
                for arr in views.values():
                    arr[local] = np.nan
            if self.frames is not None:
                self.frames[local] = 0
            self._failures[int(row)] = {"row": int(row), "reason": reason}

    @property
    def failures(self) -> list[dict[str, Any]]:
        """One ``{"row", "reason"}`` record per failed row, by row."""
        return [self._failures[r] for r in sorted(self._failures)]

    def pending_rows(self) -> list[int]:
        """Store rows that are neither ok nor failed."""
        return [self.row_start + int(i) for i in np.flatnonzero(self.row_status == ROW_PENDING)]
