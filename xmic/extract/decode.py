"""Sparse per-video decoding with PyAV: every requested frame of every segment of one video in one pass.

Frame index convention: frame ``i`` is the ``i``-th frame of the video stream in presentation order,
counted from 0 at the stream's start. It is computed from each decoded frame's timestamp,
``round((pts - stream.start_time) * time_base * average_rate)``, so it stays right after a seek.
(EPIC-KITCHENS ``frame_%010d.jpg`` files are numbered from 1: file ``i + 1`` is frame ``i``; see
:mod:`xmic.extract.frames`.)

:class:`VideoFrameReader` gathers the requested indices of all segments of a video, sorts them,
decodes forward once and seeks (to the keyframe before the next needed frame) only across gaps longer
than the seek gap. It keeps only the needed frames, releases each once every segment that uses it has
been emitted, and emits a segment as soon as all its frames are decoded.

A requested index past the last frame by at most ``overshoot_tolerance`` frames (annotations that
overshoot the video by a frame or two are common) is served by the last frame and counted in
``stats.clamped``; further past the end it is an error naming the file, the index and the segment.

PyAV is imported inside the functions that need it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmic.extract.segplan import (
    DEFAULT_OVERSHOOT,
    DecodeStats,
    FramePlan,
    Size,
    VideoDecodeError,
    VideoInfo,
    as_frame_lists,
    output_hw,
)

__all__ = [
    "DEFAULT_OVERSHOOT",
    "DEFAULT_SEEK_GAP",
    "DecodeStats",
    "VideoDecodeError",
    "VideoFrameReader",
    "VideoInfo",
    "decode_all_then_index",
    "decode_video_segments",
    "output_hw",
    "probe_video",
]

#: Seek when the next needed frame is more than this many frames ahead (raised automatically to the
#: longest keyframe interval seen, unless the caller fixes ``seek_gap_frames``).
DEFAULT_SEEK_GAP = 64


def _open(path: str | Path) -> tuple[Any, Any]:
    """Open ``path`` and return ``(container, video stream)``; :class:`VideoDecodeError` otherwise."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise VideoDecodeError(path, f"cannot open video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream")
    stream = container.streams.video[0]
    if stream.average_rate is None and stream.guessed_rate is None:
        container.close()
        raise VideoDecodeError(path, "video stream has no frame rate")
    stream.thread_type = "AUTO"
    return container, stream


def _info(container: Any, stream: Any) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    n_frames = int(stream.frames) if stream.frames else round(duration * fps)
    cc = stream.codec_context
    return VideoInfo(fps, n_frames, int(cc.width), int(cc.height), duration, str(cc.name))


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, frame count, size and duration of ``path`` from its container (no decoding)."""
    container, stream = _open(path)
    try:
        return _info(container, stream)
    finally:
        container.close()


class _Frames:
    """RGB conversion of decoded frames, shared by the sparse and the reference path."""

    def __init__(self, path: str | Path, width: int, height: int, size: Size, interpolation: str) -> None:
        self.path = path
        self.out_h, self.out_w = output_hw(width, height, size)
        self.resize = (self.out_h, self.out_w) != (height, width)
        self.interpolation = interpolation
        self._reformatter: Any = None  # one for the whole video: to_ndarray would set up a new one per frame

    def to_rgb(self, frame: Any) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB array of a decoded frame."""
        import av
        from av.video.reformatter import VideoReformatter

        if self._reformatter is None:
            self._reformatter = VideoReformatter()
        try:
            if self.resize:
                rgb = self._reformatter.reformat(
                    frame, format="rgb24", width=self.out_w, height=self.out_h, interpolation=self.interpolation
                )
            else:
                rgb = self._reformatter.reformat(frame, format="rgb24")
            return rgb.to_ndarray()
        except av.FFmpegError as exc:
            raise VideoDecodeError(self.path, f"cannot convert frame to RGB: {exc}") from exc


class VideoFrameReader:
    """Reads the frames of many segments of one video in a single forward pass with sparse seeks.

    Example::

        with VideoFrameReader("P01_01.MP4", size=256) as reader:
            for seg, frames in reader.read([slot_frames(0, 99), slot_frames(5000, 5200)]):
                ...  # frames: (T, H, W, 3) uint8 RGB

    Args:
        path: Video file.
        size: Output size (see :func:`output_hw`); ``None`` keeps the source size.
        interpolation: PyAV/swscale interpolation used when resizing (e.g. ``"AREA"``, ``"BILINEAR"``).
        seek_gap_frames: Seek when the next needed frame is more than this many frames ahead; ``None``
            = max(:data:`DEFAULT_SEEK_GAP`, longest keyframe interval seen so far).
        overshoot_tolerance: Requested frames at most this far past the last frame are clamped to it.
        skip_bad_segments: If True, a segment that cannot be served is not emitted and its reason goes to
            ``stats.failed``; otherwise :class:`VideoDecodeError` is raised.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        size: Size = None,
        interpolation: str = "AREA",
        seek_gap_frames: int | None = None,
        overshoot_tolerance: int = DEFAULT_OVERSHOOT,
        skip_bad_segments: bool = False,
    ) -> None:
        self.path = Path(path)
        self.size = size
        self.interpolation = interpolation
        self.seek_gap_frames = seek_gap_frames
        self.overshoot_tolerance = overshoot_tolerance
        self.skip_bad_segments = skip_bad_segments
        self.stats = DecodeStats()
        self._container, self._stream = _open(self.path)
        self.info = _info(self._container, self._stream)
        tb, rate = self._stream.time_base, self._stream.average_rate or self._stream.guessed_rate
        self._start = self._stream.start_time or 0
        self._index_per_pts = float(tb * rate)
        self._pts_per_index = 1 / (tb * rate)  # Fraction
        self._max_gop = 0
        self._last_index = -1  # last frame index seen when the stream ended
        self._fresh = True  # nothing decoded yet: the demuxer is at the stream start

    def __enter__(self) -> VideoFrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _gap(self) -> int:
        if self.seek_gap_frames is not None:
            return self.seek_gap_frames
        return max(DEFAULT_SEEK_GAP, self._max_gop)

    def _index(self, frame: Any, pos: int) -> int:
        if frame.pts is None:
            return pos + 1
        return round((frame.pts - self._start) * self._index_per_pts)

    def _decode_from(self, offset: int | None) -> Iterator[Any]:
        """Decoded frames from the keyframe at or before pts ``offset`` (``None``: the current position)."""
        import av

        if offset is not None:
            self.stats.seeks += 1
            try:
                self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
            except av.FFmpegError as exc:
                raise VideoDecodeError(self.path, f"seek to pts {offset} failed: {exc}") from exc
        frames = self._container.decode(self._stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                raise VideoDecodeError(self.path, f"decoding failed: {exc}") from exc
            self.stats.frames_decoded += 1
            yield frame

    def _seek(self, target: int) -> Iterator[Any]:
        """Frames from the keyframe before frame ``target``; seeks further back if the demuxer overshoots."""
        back = 0
        while True:
            goal = max(0, target - back)
            frames = self._decode_from(self._start + math.floor(goal * self._pts_per_index))
            first = next(frames, None)
            landed = None if first is None else self._index(first, target - 1)
            if goal == 0 or (landed is not None and landed <= target):
                if landed is None:
                    return frames
                self._max_gop = max(self._max_gop, target - landed)  # the keyframe interval is at least this
                return itertools.chain([first], frames)
            self.stats.seek_retries += 1
            back = max(2 * back, self._max_gop, round(self.info.fps), 1)

    def _needed_frames(self, needed: np.ndarray) -> Iterator[tuple[int, Any]]:
        """``(index, frame)`` for every needed index in ascending order; ``frame`` is None past the end."""
        ptr, pos, prev, last_key = 0, -1, None, None
        fresh, self._fresh = self._fresh, False
        frames: Iterator[Any] | None = None
        sought = -1
        while ptr < len(needed):
            target = int(needed[ptr])
            if frames is None or (target - pos > self._gap() and sought != target):
                if frames is None and fresh and target <= self._gap():
                    frames = self._decode_from(None)
                else:
                    frames, prev, last_key, sought = self._seek(target), None, None, target
            frame = next(frames, None)
            if frame is None:
                break
            idx = self._index(frame, pos)
            if frame.key_frame:
                if last_key is not None and idx > last_key:
                    self._max_gop = max(self._max_gop, idx - last_key)
                last_key = idx
            if idx <= pos:
                continue
            while ptr < len(needed) and needed[ptr] < idx:  # index absent from the stream
                self.stats.substituted += 1
                yield int(needed[ptr]), prev if prev is not None else frame
                ptr += 1
            if ptr < len(needed) and needed[ptr] == idx:
                yield idx, frame
                ptr += 1
            prev, pos = frame, idx
        for index in needed[ptr:].tolist():  # past the last frame
            self._last_index = pos
            if prev is not None and index - pos <= self.overshoot_tolerance:
                self.stats.clamped += 1
                yield index, prev
            else:
                yield index, None

    def read(self, frame_lists: Sequence[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """Frames of every segment of this video.

        Args:
            frame_lists: One 1-D integer array of frame indices per segment (e.g. ``(T,)`` from
                :func:`xmic.sampling.slot_frames`), in any order, overlapping or not.

        Yields:
            ``(segment_idx, frames)`` with ``frames`` ``(T_s, H, W, 3)`` uint8 RGB, in the order segments
            are completed (by their last frame; ties by segment index), not necessarily input order.

        Raises:
            VideoDecodeError: unreadable video, or a frame past the end (unless ``skip_bad_segments``).
        """
        if self._container is None:
            raise VideoDecodeError(self.path, "reader is closed")
        plan = FramePlan(as_frame_lists(self.path, frame_lists))
        conv = _Frames(self.path, self.info.width, self.info.height, self.size, self.interpolation)
        for index, frame in self._needed_frames(plan.needed):
            if frame is None:
                n = self._last_index + 1
                for s in plan.users[index]:
                    if s in plan.dead:
                        continue
                    reason = f"segment {s}: frame {index} requested but the video has {n} frames (0..{n - 1})"
                    if not self.skip_bad_segments:
                        raise VideoDecodeError(self.path, reason)
                    self.stats.failed[s] = reason
                    plan.dead.add(s)
                    plan.release(s)
                continue
            if not plan.wanted(index):
                continue
            done = plan.add(index, conv.to_rgb(frame))
            self.stats.frames_converted += 1
            self.stats.peak_frames_held = max(self.stats.peak_frames_held, len(plan.held))
            for s in done:
                self.stats.segments_emitted += 1
                yield s, plan.take(s)


def decode_video_segments(
    path: str | Path,
    frame_lists: Sequence[np.ndarray],
    *,
    size: Size = None,
    interpolation: str = "AREA",
    seek_gap_frames: int | None = None,
    overshoot_tolerance: int = DEFAULT_OVERSHOOT,
    skip_bad_segments: bool = False,
    stats: DecodeStats | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Open ``path``, yield ``(segment_idx, (T, H, W, 3) uint8)`` per segment (see :class:`VideoFrameReader`).

    ``stats``, when given, is filled with the reader's counters as decoding proceeds.
    """
    with VideoFrameReader(
        path,
        size=size,
        interpolation=interpolation,
        seek_gap_frames=seek_gap_frames,
        overshoot_tolerance=overshoot_tolerance,
        skip_bad_segments=skip_bad_segments,
    ) as reader:
        if stats is not None:
            reader.stats = stats
        yield from reader.read(frame_lists)


def decode_all_then_index(
    path: str | Path, frame_lists: Sequence[np.ndarray], *, size: Size = None, interpolation: str = "AREA"
) -> list[np.ndarray]:
    """Reference path: decode every frame in order, count them from 0 and pick the requested ones.

    Independent of timestamps and seeking (frame ``i`` is the ``i``-th frame the decoder returns).
    Holds only the requested frames.

    Returns:
        One ``(T_s, H, W, 3)`` uint8 array per segment, in input order.
    """
    import av

    lists = as_frame_lists(path, frame_lists)
    wanted = set(np.concatenate(lists).tolist()) if lists else set()
    container, stream = _open(path)
    try:
        conv = _Frames(path, int(stream.codec_context.width), int(stream.codec_context.height), size, interpolation)
        kept: dict[int, np.ndarray] = {}
        n = 0
        try:
            for n, frame in enumerate(container.decode(stream), start=1):
                if n - 1 in wanted:
                    kept[n - 1] = conv.to_rgb(frame)
        except av.FFmpegError as exc:
            raise VideoDecodeError(path, f"decoding failed after frame {n - 1}: {exc}") from exc
    finally:
        container.close()
    for s, frames in enumerate(lists):
        beyond = frames[frames >= n]
        if beyond.size:
            raise VideoDecodeError(
                path, f"segment {s}: frame {int(beyond[0])} requested but the video has {n} frames (0..{n - 1})"
            )
    return [np.stack([kept[i] for i in frames.tolist()]) for frames in lists]
