"""The hand-box provider interface: one normalised xyxy box per frame, NaN when there is none.

Every provider answers :meth:`HandBoxProvider.boxes` for one segment's frames. The box of a frame is the
union of the hands (and, where the source knows them, the objects in contact with them) in that frame;
a frame without one gets a NaN row, and the caller then encodes the full frame as the hand view and
records that in the store's ``hand_box`` (DESIGN.md, "Frame sampling and hand crops").

Where each box came from goes to the store's ``hand_source`` (:data:`xmic.cache.schema.HAND_SOURCE_NAMES`):
:meth:`HandBoxProvider.boxes_with_sources` gives the boxes with one code per frame. A provider that fills gaps
(mediapipe, :attr:`HandBoxProvider.interpolates`) sets :attr:`HandBoxProvider.last_interpolated` in ``_boxes``;
every other provider's boxes are detected (or given), and a NaN row is "none".

Pure numpy: no provider's heavy dependency is imported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from xmic.cache.schema import hand_source_from_boxes

#: Boxes closer than this to the frame edge (in normalised units) outside [0, 1] are clipped silently.
BOX_TOLERANCE = 1e-4


class HandBoxError(ValueError):
    """A hand-box source that cannot be read or gives bad boxes (the message names the file and the frame)."""


class BoxRequest(NamedTuple):
    """One segment's worth of frames for :meth:`HandBoxProvider.boxes_many`."""

    video_id: str
    frame_indices: np.ndarray  # (T,) int
    frames: np.ndarray | None = None  # (T, H, W, 3) uint8
    segment: Any = None


def nan_boxes(n: int) -> np.ndarray:
    """``(n, 4)`` float32 of NaN: no box in any frame."""
    return np.full((n, 4), np.nan, dtype=np.float32)


def union_box(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """The smallest xyxy box holding all ``boxes``; NaN when there are none.

    Args:
        boxes: ``(K, 4)`` xyxy boxes (rows with a NaN are ignored).

    Returns:
        ``(4,)`` float32.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    b = b[~np.isnan(b).any(axis=1)]
    if len(b) == 0:
        return np.full(4, np.nan, dtype=np.float32)
    return np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()], dtype=np.float32)


def finalize_boxes(boxes: np.ndarray, n: int, source: str = "provider") -> np.ndarray:
    """Check and tidy a provider's output: shape ``(n, 4)``, clipped to [0, 1], empty boxes become NaN.

    A row with any NaN becomes all NaN. Coordinates up to :data:`BOX_TOLERANCE` outside [0, 1] are clipped;
    a box further outside is partly off-frame and is clipped too (detectors do that), but a box with
    ``x1 <= x0`` or ``y1 <= y0`` after clipping has no area and becomes NaN.

    Args:
        boxes: ``(n, 4)`` normalised xyxy.
        n: Expected number of rows.
        source: Named in the error message.

    Returns:
        ``(n, 4)`` float32.

    Raises:
        HandBoxError: wrong shape, or an infinite coordinate.
    """
    b = np.array(boxes, dtype=np.float32, copy=True)
    if b.shape != (n, 4):
        raise HandBoxError(f"{source}: expected boxes of shape ({n}, 4), got {b.shape}")
    if np.isinf(b).any():
        row = int(np.flatnonzero(np.isinf(b).any(axis=1))[0])
        raise HandBoxError(f"{source}: infinite coordinate in the box of frame row {row}: {b[row].tolist()}")
    nan_rows = np.isnan(b).any(axis=1)
    b = np.clip(b, 0.0, 1.0)
    empty = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    b[nan_rows | empty] = np.nan
    return b


def check_box_list(boxes: Any, where: str) -> np.ndarray:
    """Validate user-given boxes: ``(K, 4)`` finite xyxy in [0, 1] with ``x0 < x1`` and ``y0 < y1``.

    Args:
        boxes: A list of ``[x0, y0, x1, y1]`` (possibly empty) or a ``(K, 4)`` array.
        where: Names the file and frame in the error message.

    Returns:
        ``(K, 4)`` float64.

    Raises:
        HandBoxError: the boxes are malformed, out of range or empty.
    """
    try:
        b = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise HandBoxError(f"{where}: boxes must be a list of [x0, y0, x1, y1] numbers, got {boxes!r}") from None
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise HandBoxError(f"{where}: boxes must be a list of [x0, y0, x1, y1], got shape {b.shape}")
    for k, box in enumerate(b):
        if not np.isfinite(box).all():
            raise HandBoxError(f"{where}: box {k} {box.tolist()} is not finite")
        if (box < -BOX_TOLERANCE).any() or (box > 1 + BOX_TOLERANCE).any():
            raise HandBoxError(f"{where}: box {k} {box.tolist()} is not normalised to [0, 1]")
        if not (box[2] > box[0] and box[3] > box[1]):
            raise HandBoxError(f"{where}: box {k} {box.tolist()} is empty (need x0 < x1 and y0 < y1)")
    return np.clip(b, 0.0, 1.0)


def _segment_name(segment: Any) -> str:
    name = getattr(segment, "segment_id", None)
    return f" (segment {name})" if name is not None else ""


class HandBoxProvider:
    """Base class of the hand-box sources. Subclasses implement :meth:`_boxes`.

    Attributes:
        name: The ``--hands`` name (recorded in the store's spec).
        needs_frames: Whether :meth:`boxes` needs the decoded pixels; when False the caller may pass None.
    """

    name: str = "base"
    needs_frames: bool = False
    #: Whether the provider may fill frames by interpolation (then it sets :attr:`last_interpolated`).
    interpolates: bool = False
    #: ``(T,)`` bool of the last :meth:`boxes` call: the rows whose box was interpolated, not detected. A provider
    #: that interpolates sets it in ``_boxes``; the others leave it empty (nothing interpolated).
    last_interpolated: np.ndarray = np.zeros(0, dtype=bool)

    def boxes(
        self,
        video_id: str,
        frame_indices: np.ndarray,
        frames: np.ndarray | None = None,
        segment: Any = None,
    ) -> np.ndarray:
        """The hand box of each frame of one segment.

        Args:
            video_id: The media unit the frames come from (an EPIC video, an Ego4D clip, ...).
            frame_indices: ``(T,)`` int source frame of each slot (the store's ``frame_index`` row).
            frames: ``(T, H, W, 3)`` uint8 RGB, needed when :attr:`needs_frames`.
            segment: The segment record, only named in messages.

        Returns:
            ``(T, 4)`` float32 normalised xyxy in [0, 1]; NaN rows where the frame has no box.

        Raises:
            ValueError: inputs of the wrong shape, or frames missing for a provider that needs them.
            HandBoxError: the provider's source is missing or unreadable.
        """
        idx, frames, where = self.check_inputs(video_id, frame_indices, frames, segment)
        if len(idx) == 0:
            return nan_boxes(0)
        out = self._boxes(str(video_id), idx.astype(np.int64), frames, segment)
        return finalize_boxes(out, len(idx), where)

    def check_inputs(
        self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any = None
    ) -> tuple[np.ndarray, np.ndarray | None, str]:
        """Validate one request; returns ``(frame_indices (T,), frames or None, name for messages)``."""
        idx = np.asarray(frame_indices)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"frame_indices must be a 1-D integer array, got {idx.dtype} of shape {idx.shape}")
        where = f"{self.name} hand boxes of {video_id}{_segment_name(segment)}"
        if frames is not None:
            frames = np.asarray(frames)
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] != len(idx) or frames.dtype != np.uint8:
                raise ValueError(
                    f"{where}: frames must be uint8 ({len(idx)}, H, W, 3), got {frames.dtype} {frames.shape}"
                )
        elif self.needs_frames:
            raise ValueError(f"{where}: the {self.name!r} provider needs the decoded frames, got frames=None")
        return idx, frames, where

    def boxes_many(self, requests: Iterable[BoxRequest]) -> list[np.ndarray]:
        """:meth:`boxes` of several segments; detectors override this to batch frames across segments.

        Args:
            requests: One :class:`BoxRequest` per segment.

        Returns:
            One ``(T_i, 4)`` float32 array per request, in order.
        """
        return [self.boxes(*BoxRequest(*r)) for r in requests]

    def boxes_with_sources(self, requests: Iterable[BoxRequest]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`boxes_many` with where each box came from, for the store's ``hand_source``.

        Returns:
            One ``((T_i, 4) float32 boxes, (T_i,) uint8 HAND_SOURCE_* codes)`` per request: NONE for a NaN row,
            INTERPOLATED for a row the provider filled across a gap (:attr:`last_interpolated`), DETECTED otherwise.
        """
        if not self.interpolates:  # keep a detector's batching (boxes_many) when there is nothing to mark
            return [(b, hand_source_from_boxes(b)) for b in self.boxes_many(requests)]
        out = []
        for request in requests:
            self.last_interpolated = np.zeros(0, dtype=bool)
            boxes = self.boxes(*BoxRequest(*request))
            filled = self.last_interpolated if len(self.last_interpolated) == len(boxes) else None
            out.append((boxes, hand_source_from_boxes(boxes, filled)))
        return out

    def _boxes(self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What produced the boxes (name and settings), for the store's config record."""
        return {"hands": self.name}

    def close(self) -> None:
        """Release models or files (a no-op for most providers)."""

    def __enter__(self) -> HandBoxProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "hands")
        return f"{type(self).__name__}({settings})"


class NoHandBoxes(HandBoxProvider):
    """``--hands none``: no box in any frame (the hand view is the full frame)."""

    name = "none"
    needs_frames = False

    def _boxes(self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any) -> np.ndarray:
        return nan_boxes(len(frame_indices))
