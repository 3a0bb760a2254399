"""Per-segment frame bookkeeping shared by the video reader and the JPEG frame-folder reader.

Errors, metadata and counters of a frame source, the output-size rule, and :class:`FramePlan`, which
tracks which segments use which frame so that each frame is converted once, held only while a pending
segment needs it, and a segment is emitted as soon as its last frame arrives. No PyAV here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Requested frames at most this far past the last frame are served by the last frame.
DEFAULT_OVERSHOOT = 3

#: Output size: None (source size), int (shorter side) or (height, width).
Size = int | tuple[int, int] | None


class VideoDecodeError(RuntimeError):
    """A video (or frame folder) could not be read; the message names the file."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
        self.reason = message


@dataclass(frozen=True)
class VideoInfo:
    """Container metadata of a video's first video stream (no decoding)."""

    fps: float  # average frame rate
    n_frames: int  # from the container; estimated from duration * fps when the container has no count
    width: int
    height: int
    duration: float  # seconds
    codec: str = ""


@dataclass
class DecodeStats:
    """Counters of one reader (cumulative over its :meth:`VideoFrameReader.read` calls)."""

    frames_decoded: int = 0  # frames the decoder returned
    frames_converted: int = 0  # frames turned into RGB arrays (each needed frame once)
    seeks: int = 0  # seeks issued, retries included
    seek_retries: int = 0  # seeks repeated further back because the first seek landed past the target
    segments_emitted: int = 0
    peak_frames_held: int = 0  # most RGB frames held at once
    clamped: int = 0  # requested frames past the end served by the last frame
    substituted: int = 0  # requested frames absent from the stream (timestamp gap) served by a neighbour
    failed: dict[int, str] = field(default_factory=dict)  # segment -> reason (skip_bad_segments=True)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_hw(width: int, height: int, size: Size) -> tuple[int, int]:
    """Output ``(height, width)`` for a source of ``width`` x ``height``.

    Args:
        width: Source width.
        height: Source height.
        size: ``None`` keeps the source size; an int sets the shorter side (aspect kept, rounded);
            a pair is the exact ``(height, width)``.
    """
    if size is None:
        return height, width
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        if width <= height:
            return max(1, round(height * size / width)), size
        return size, max(1, round(width * size / height))
    out_h, out_w = (int(v) for v in size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive (height, width), got {size}")
    return out_h, out_w


def as_frame_lists(path: str | Path, frame_lists: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Check and convert per-segment frame lists to int64 arrays; a ValueError names the file and segment."""
    out = []
    for s, frames in enumerate(frame_lists):
        arr = np.asarray(frames)
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0:
            raise ValueError(
                f"{path}: segment {s}: frame list must be a non-empty 1-D array of integers >= 0, "
                f"got dtype {arr.dtype} shape {arr.shape}"
            )
        out.append(arr.astype(np.int64))
    return out


class FramePlan:
    """Which segments use which frame; holds converted frames until their last user is emitted.

    Feed frames in any order with :meth:`add`; it returns the segments that became complete, which
    :meth:`take` then stacks and releases. Shared by the video and the frame-folder readers.
    """

    def __init__(self, frame_lists: list[np.ndarray]) -> None:
        self.lists = frame_lists
        self.uniques = [np.unique(f) for f in frame_lists]
        self.needed = np.unique(np.concatenate(self.uniques)) if frame_lists else np.zeros(0, np.int64)
        self.users: dict[int, list[int]] = {}
        for s, uniq in enumerate(self.uniques):
            for i in uniq.tolist():
                self.users.setdefault(i, []).append(s)
        self.refs = {i: len(segs) for i, segs in self.users.items()}
        self.missing = [len(u) for u in self.uniques]
        self.held: dict[int, np.ndarray] = {}
        self.dead: set[int] = set()  # failed segments

    def wanted(self, index: int) -> bool:
        """Whether a pending (not emitted, not failed) segment still needs frame ``index``."""
        return self.refs.get(index, 0) > 0

    def add(self, index: int, rgb: np.ndarray) -> list[int]:
        """Store frame ``index``; return the segments it completes (ascending)."""
        if not self.wanted(index):
            return []
        self.held[index] = rgb
        done = []
        for s in self.users[index]:
            self.missing[s] -= 1
            if self.missing[s] == 0 and s not in self.dead:
                done.append(s)
        return done

    def take(self, s: int) -> np.ndarray:
        """``(T, H, W, 3)`` frames of segment ``s``; releases frames no other pending segment needs."""
        out = np.stack([self.held[i] for i in self.lists[s].tolist()])
        self.release(s)
        return out

    def release(self, s: int) -> None:
        for i in self.uniques[s].tolist():
            self.refs[i] -= 1
            if self.refs[i] == 0:
                self.held.pop(i, None)
