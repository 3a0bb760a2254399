"""EPIC-KITCHENS RGB frame folders: ``<folder>/frame_%010d.jpg``, read with PIL.

Numbering convention: the files are numbered from 1 (ffmpeg's ``%010d`` output), xmic frame indices
from 0, so frame index ``i`` is the file ``frame_{i + 1:010d}.jpg``. A reader that takes EPIC's
``start_frame``/``stop_frame`` (which name these files) subtracts 1 to get xmic indices.

Output matches :mod:`xmic.extract.decode`: ``(segment_idx, (T, H, W, 3) uint8 RGB)`` per segment,
emitted as soon as its frames are read, each JPEG read once, frames released after their last segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

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

FRAME_NAME = "frame_{:010d}.jpg"
_FRAME_RE = re.compile(r"^frame_(\d{10})\.jpg$")
_RESAMPLE = {"AREA": "BOX", "BILINEAR": "BILINEAR", "BICUBIC": "BICUBIC", "LANCZOS": "LANCZOS", "POINT": "NEAREST"}


def frame_file(folder: str | Path, index: int) -> Path:
    """The JPEG of 0-based frame ``index``: ``<folder>/frame_{index + 1:010d}.jpg``."""
    if index < 0:
        raise ValueError(f"{folder}: frame index must be >= 0, got {index}")
    return Path(folder) / FRAME_NAME.format(index + 1)


def count_frames(folder: str | Path) -> int:
    """Number of frames: the highest file number present (files are 1-based and contiguous)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoDecodeError(folder, "frame folder does not exist")
    numbers = [int(m.group(1)) for m in map(_FRAME_RE.match, (p.name for p in folder.iterdir())) if m]
    return max(numbers, default=0)


def probe_frame_folder(folder: str | Path, fps: float) -> VideoInfo:
    """:class:`VideoInfo` of a frame folder (the rate is not stored with the JPEGs: pass it)."""
    from PIL import Image

    n = count_frames(folder)
    if n == 0:
        raise VideoDecodeError(folder, "no frame_%010d.jpg files")
    with Image.open(frame_file(folder, 0)) as img:
        width, height = img.size
    return VideoInfo(float(fps), n, width, height, n / fps if fps else 0.0, "jpeg")


def _load(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of one JPEG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise VideoDecodeError(path, f"cannot read frame image: {exc}") from exc


def _resize(rgb: np.ndarray, out_hw: tuple[int, int], interpolation: str) -> np.ndarray:
    from PIL import Image

    if rgb.shape[:2] == out_hw:
        return rgb
    resample = getattr(Image.Resampling, _RESAMPLE[interpolation.upper()])
    return np.asarray(Image.fromarray(rgb).resize((out_hw[1], out_hw[0]), resample=resample))


def read_frame_folder_segments(
    folder: str | Path,
    frame_lists: Sequence[np.ndarray],
    *,
    size: Size = None,
    interpolation: str = "AREA",
    overshoot_tolerance: int = DEFAULT_OVERSHOOT,
    skip_bad_segments: bool = False,
    stats: DecodeStats | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames of many segments of one EPIC frame folder.

    Args:
        folder: ``.../rgb_frames/PXX_YY`` holding ``frame_%010d.jpg``.
        frame_lists: One 1-D array of 0-based frame indices per segment.
        size: Output size (see :func:`xmic.extract.decode.output_hw`); ``None`` keeps the JPEG size.
        interpolation: ``"AREA"`` (PIL box), ``"BILINEAR"``, ``"BICUBIC"``, ``"LANCZOS"`` or ``"POINT"``.
        overshoot_tolerance: Indices at most this far past the last file are served by the last file.
        skip_bad_segments: Skip (and list in ``stats.failed``) segments with a missing or unreadable file
            instead of raising.
        stats: Filled with counters (``frames_decoded`` = JPEGs read).

    Yields:
        ``(segment_idx, (T_s, H, W, 3) uint8)`` in the order segments are completed.

    Raises:
        VideoDecodeError: naming the missing or unreadable JPEG (unless ``skip_bad_segments``).
    """
    if interpolation.upper() not in _RESAMPLE:
        raise ValueError(f"unknown interpolation {interpolation!r}; known: {', '.join(_RESAMPLE)}")
    folder = Path(folder)
    stats = stats if stats is not None else DecodeStats()
    plan = FramePlan(as_frame_lists(folder, frame_lists))
    n_frames: int | None = None
    src_hw: tuple[int, int] | None = None
    for index in plan.needed.tolist():
        if not plan.wanted(index):
            continue
        path = frame_file(folder, index)
        if not path.exists():
            n_frames = count_frames(folder) if n_frames is None else n_frames
            if n_frames > 0 and 0 < index - (n_frames - 1) <= overshoot_tolerance:
                stats.clamped += 1
                path = frame_file(folder, n_frames - 1)
        try:
            if not path.exists():
                raise VideoDecodeError(path, f"missing frame file for frame index {index} (file number {index + 1})")
            rgb = _load(path)
            src_hw = rgb.shape[:2] if src_hw is None else src_hw
            if rgb.shape[:2] != src_hw:
                raise VideoDecodeError(
                    path, f"frame size {rgb.shape[1]}x{rgb.shape[0]} differs from the folder's {src_hw[1]}x{src_hw[0]}"
                )
            rgb = _resize(rgb, output_hw(src_hw[1], src_hw[0], size), interpolation)
        except VideoDecodeError as exc:
            dead = [s for s in plan.users[index] if s not in plan.dead]
            if not skip_bad_segments:
                raise VideoDecodeError(exc.path, f"{exc.reason} (segment {dead[0]})") from exc
            for s in dead:
                stats.failed[s] = str(exc)
                plan.dead.add(s)
                plan.release(s)
            continue
        stats.frames_decoded += 1
        done = plan.add(index, rgb)
        stats.frames_converted += 1
        stats.peak_frames_held = max(stats.peak_frames_held, len(plan.held))
        for s in done:
            stats.segments_emitted += 1
            yield s, plan.take(s)
