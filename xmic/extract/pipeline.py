"""One chunk of segments through stage one: plan, decode (per video, sparse), hand boxes, encoders.

The work is split so that the decode half (:func:`decode_chunk`) can run in worker processes and the other half
(:mod:`xmic.extract.assemble`, driven by :class:`xmic.extract.launch.ChunkLoop`) in the main
process next to the GPU:

- :func:`xmic.extract.plan.plan_chunks` turns the store's rows into :class:`ChunkJob` s: the rows of one chunk
  grouped by video (rows are sorted by video and time, so a video's rows in a chunk are consecutive).
- :func:`decode_chunk` decodes each video of a job once for all its rows and yields :class:`Piece` s (up to
  ``piece_rows`` rows of one video with their frames), :class:`Failed` rows with a reason, and finally
  :class:`ChunkDecoded`.
- :func:`xmic.extract.assemble.encode_pieces` finds the hand boxes of pieces and runs every encoder on the full
  frames and the hand crops; :class:`xmic.extract.assemble.ChunkAssembler` gathers the results of a chunk into
  the arrays of one ``write_chunk``.

Frame numbering: ``frame_index`` holds the slots' frames in the **annotation's numbering** (EPIC: the RGB frame
file number ``frame_%010d.jpg``, from 1; Ego4D / EGTEA: 0-based frames at the annotation rate), i.e.
:func:`xmic.sampling.slot_frames` of the segment. ``VideoJob.first_frame`` turns them 0-based (EPIC
``N - 1``): a frame folder serves that index, a video maps it to its native frame by time
(:func:`xmic.extract.datasets.epic_media.to_native_frames`) with the rate probed from the file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmic.extract.datasets.epic_media import to_native_frames
from xmic.extract.segplan import DEFAULT_OVERSHOOT, DecodeStats, VideoDecodeError
from xmic.sampling import slot_frames_batch


@dataclass(frozen=True)
class DecodeSettings:
    """How the decode half works; the same for every chunk.

    Attributes:
        num_frames: Slots ``T`` per segment.
        bins: Temporal bins of the sampling rule.
        size: Shorter side frames are decoded at (never upscaled); None keeps the source size.
        interpolation: Resize filter when ``size`` changes the frame size.
        piece_rows: At most this many rows (all of one video) per :class:`Piece`.
        overshoot: Frames past the end of the media served by its last frame.
    """

    num_frames: int
    bins: int
    size: int | None = 256
    interpolation: str = "AREA"
    piece_rows: int = 8
    overshoot: int = DEFAULT_OVERSHOOT


@dataclass(frozen=True)
class VideoJob:
    """The rows of one chunk that read one video (or frame folder)."""

    video_id: str
    path: str | None  # None: the media was not found
    media_kind: str  # "video" | "frames"
    annot_fps: float
    clamp_stop: bool  # clamp stop_frame to the media's length (EGTEA's estimated stop)
    rows: tuple[int, ...]  # store rows
    starts: tuple[int, ...]  # annotation frames, inclusive
    stops: tuple[int, ...]
    first_frame: int = 0  # annotation number of the media's first frame: EPIC 1 (frame_0000000001.jpg), else 0

    @classmethod
    def for_records(
        cls, records: Sequence[Any], rows: Sequence[int], *, clamp_stop: bool, first_frame: int
    ) -> VideoJob:
        """The job of ``records`` (annotation records of one video, in row order) written to store ``rows``."""
        first = records[0]
        return cls(
            video_id=first.video_id,
            path=None if first.video_path is None else str(first.video_path),
            media_kind=first.media_kind,
            annot_fps=float(first.fps),
            clamp_stop=clamp_stop,
            rows=tuple(int(r) for r in rows),
            starts=tuple(int(r.start_frame) for r in records),
            stops=tuple(int(r.stop_frame) for r in records),
            first_frame=first_frame,
        )


@dataclass(frozen=True)
class ChunkJob:
    """One store chunk: its row range and its videos in row order."""

    chunk: int
    row_start: int
    row_stop: int
    videos: tuple[VideoJob, ...]


@dataclass
class Piece:
    """Decoded frames of up to ``piece_rows`` rows of one video.

    Attributes:
        frame_index: ``(n, T)`` int64 annotation frame of each slot.
        frames: ``(n, T, H, W, 3)`` uint8 RGB.
    """

    chunk: int
    video_id: str
    rows: np.ndarray  # (n,) store rows
    frame_index: np.ndarray
    frames: np.ndarray


@dataclass
class Failed:
    """Rows of a chunk that cannot be extracted, with one reason each."""

    chunk: int
    rows: list[int]
    reasons: list[str]


@dataclass
class ChunkDecoded:
    """Sent after the last piece of a chunk: the decode half of the chunk is over."""

    chunk: int
    seconds: float  # time spent decoding this chunk (not waiting for the consumer)
    frames_decoded: int


class _Clock:
    """Time spent inside a generator, excluding the time its consumer holds a yielded item."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._t0 = time.perf_counter()

    def pause(self) -> None:
        self.seconds += time.perf_counter() - self._t0

    def resume(self) -> None:
        self._t0 = time.perf_counter()


def decode_chunk(job: ChunkJob, settings: DecodeSettings) -> Iterator[Piece | Failed | ChunkDecoded]:
    """Decode every video of ``job`` once (sparse) and yield its pieces, its failed rows, then the end marker.

    A video that is missing, unreadable or shorter than its annotation fails its rows (with the reason) and the
    other videos go on. Errors that are not about the media (bugs, out of memory) propagate.
    """
    clock, stats = _Clock(), DecodeStats()
    for video in job.videos:
        for item in _decode_video(job.chunk, video, settings, stats):
            clock.pause()
            yield item
            clock.resume()
    clock.pause()
    yield ChunkDecoded(job.chunk, clock.seconds, stats.frames_decoded)


def _annotation_last_frame(n_native: int, annot_fps: float, native_fps: float) -> int:
    """The last annotation frame whose native frame lies inside a media of ``n_native`` frames."""
    if math.isclose(annot_fps, native_fps, rel_tol=0, abs_tol=1e-9):
        return n_native - 1
    return math.floor((n_native - 0.5) * annot_fps / native_fps - 1e-9)


def _open_media(video: VideoJob, settings: DecodeSettings) -> tuple[Any, float, int, int | None]:
    """``(reader or folder, native fps, native frame count, decode size)``; VideoDecodeError when unreadable.

    The decode size is ``settings.size`` unless the source's shorter side is already no larger (no upscaling).
    """
    if video.media_kind == "frames":
        from xmic.extract.frames import probe_frame_folder

        info = probe_frame_folder(video.path, video.annot_fps)
        source: Any = Path(video.path)
    else:
        from xmic.extract.decode import VideoFrameReader

        source = VideoFrameReader(
            video.path, interpolation=settings.interpolation, overshoot_tolerance=settings.overshoot,
            skip_bad_segments=True,
        )  # fmt: skip
        info = source.info
    size = settings.size if settings.size is not None and min(info.width, info.height) > settings.size else None
    if not isinstance(source, Path):
        source.size = size
    return source, info.fps, info.n_frames, size


def _source_indices(video: VideoJob, frame_index: np.ndarray, native_fps: float) -> np.ndarray:
    """``(n, T)`` 0-based indices the decoder reads for annotation frames ``frame_index``.

    EPIC numbers frames from 1 (``frame_N.jpg`` is the N-th frame, at time ``(N - 1) / fps``), so annotation
    frame N is media index N - 1 in a frame folder and, mapped by time, ``round((N - 1) * native / annot)`` in
    the MP4; Ego4D and EGTEA number from 0.
    """
    zero_based = np.maximum(frame_index - video.first_frame, 0)
    if video.media_kind == "frames":
        return zero_based
    flat = [to_native_frames(int(f), int(f), video.annot_fps, native_fps)[0] for f in zero_based.ravel()]
    return np.asarray(flat, dtype=np.int64).reshape(frame_index.shape)


def _shorter_reason(path: str, reason: str) -> str:
    detail = reason.split(": ", 1)[1] if reason.startswith("segment ") else reason
    return f"{path}: media shorter than the annotation: {detail}"


def _decode_video(
    chunk: int, video: VideoJob, settings: DecodeSettings, stats: DecodeStats
) -> Iterator[Piece | Failed]:
    rows = list(video.rows)
    if video.path is None:
        yield Failed(chunk, rows, [f"media of video {video.video_id} not found ({video.media_kind})"] * len(rows))
        return
    try:
        source, native_fps, n_native, size = _open_media(video, settings)
    except VideoDecodeError as exc:
        yield Failed(chunk, rows, [str(exc)] * len(rows))
        return
    starts, stops = np.asarray(video.starts, np.int64), np.asarray(video.stops, np.int64)
    bad: dict[int, str] = {}
    if video.clamp_stop and n_native > 0:
        last = _annotation_last_frame(n_native, video.annot_fps, native_fps)
        for i in np.flatnonzero(starts > last).tolist():
            bad[i] = f"{video.path}: segment starts at frame {starts[i]} but the media has {n_native} frames"
        stops = np.maximum(np.minimum(stops, last), starts)
    frame_index = slot_frames_batch(starts, stops, settings.num_frames, settings.bins)  # (n, T)
    source_index = _source_indices(video, frame_index, native_fps)
    keep = [i for i in range(len(rows)) if i not in bad]
    if bad:
        yield Failed(chunk, [rows[i] for i in bad], list(bad.values()))
    if not keep:
        _close(source)
        return
    emitted: set[int] = set()
    local = DecodeStats()
    buffer: list[tuple[int, np.ndarray]] = []
    try:
        for k, frames in _read(source, [source_index[i] for i in keep], size, settings, local):
            emitted.add(k)
            buffer.append((keep[k], frames))
            if len(buffer) >= settings.piece_rows:
                yield _piece(chunk, video, rows, frame_index, buffer)
                buffer = []
    except VideoDecodeError as exc:
        failed = [keep[k] for k in range(len(keep)) if k not in emitted]
        yield Failed(chunk, [rows[i] for i in failed], [str(exc)] * len(failed))
        local.failed.clear()
    finally:
        _close(source)
        stats.frames_decoded += local.frames_decoded
    if buffer:
        yield _piece(chunk, video, rows, frame_index, buffer)
    if local.failed:
        failed = sorted(local.failed)
        if video.media_kind == "video":  # the reader's only per-segment failure: frames past the end
            reasons = [_shorter_reason(video.path, local.failed[k]) for k in failed]
        else:
            reasons = [local.failed[k] for k in failed]
        yield Failed(chunk, [rows[keep[k]] for k in failed], reasons)


def _read(
    source: Any, frame_lists: list[np.ndarray], size: int | None, settings: DecodeSettings, stats: DecodeStats
) -> Iterator[tuple[int, np.ndarray]]:
    if isinstance(source, Path):
        from xmic.extract.frames import read_frame_folder_segments

        yield from read_frame_folder_segments(
            source,
            frame_lists,
            size=size,
            interpolation=settings.interpolation,
            overshoot_tolerance=settings.overshoot,
            skip_bad_segments=True,
            stats=stats,
        )
    else:
        source.stats = stats
        yield from source.read(frame_lists)


def _close(source: Any) -> None:
    if not isinstance(source, Path):
        source.close()


def _piece(
    chunk: int, video: VideoJob, rows: list[int], frame_index: np.ndarray, buffer: list[tuple[int, np.ndarray]]
) -> Piece:
    buffer.sort(key=lambda item: item[0])
    local = [i for i, _ in buffer]
    return Piece(
        chunk=chunk,
        video_id=video.video_id,
        rows=np.asarray([rows[i] for i in local], dtype=np.int64),
        frame_index=frame_index[local],
        frames=np.stack([f for _, f in buffer]),
    )
