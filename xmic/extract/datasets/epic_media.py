"""EPIC-KITCHENS-100 frame rates and media layout.

Frame rates. ``start_frame`` / ``stop_frame`` in the EPIC-100 CSVs index the released RGB frames, which
were extracted after re-encoding every video to one rate: 60 fps for EPIC-55 videos (``PXX_YY``) and
50 fps for the extension (``PXX_1YY``) [epic-kitchens-55-annotations#25,
epic-kitchens-100-annotations#34, C2-Action-Detection#8]. The MP4 files keep their native rate, listed in
``EPIC_100_video_info.csv``: 59.94 fps for most EPIC-55 videos, 29.97 (P09_07, P09_08, P10_04, P18_02),
47.95 (P17_01..04) or 90 (P18_09), and 50 for the extension. A decoder reading the MP4 maps an
annotation index to a native frame by time, :func:`to_native_frames`; at 60 -> 59.94 fps skipping this
drifts by 3.6 s per hour of video.

Errata. The README of epic-kitchens-100-annotations notes that the released RGB (and flow) frames of
``P01_109`` and ``P27_103`` are wrong (they drift from the annotations towards the end of the video;
issue #11); the videos and annotations are fine, and the fix is to re-extract the frames from the MP4
at 50 fps. :func:`find_epic_media` therefore prefers the MP4 for these two videos and flags frame
folders of them.

Media layouts searched under the dataset root (first hit wins; ``PXX`` participant, ``PXX_YY`` video):

- videos: ``PXX/videos/PXX_YY.MP4`` (download script), ``videos/PXX/PXX_YY.MP4``,
  ``videos/{train,test}/PXX/PXX_YY.MP4`` (EPIC-55 release), ``videos/PXX_YY.MP4``, ``PXX/PXX_YY.MP4``,
  ``PXX_YY.MP4`` (each also as ``.mp4``)
- frame folders (``frame_%010d.jpg``, 1-based): ``PXX/rgb_frames/PXX_YY/`` (download script),
  ``rgb_frames/PXX/PXX_YY/``, ``rgb_frames/PXX_YY/``, ``frames_rgb_flow/rgb/{train,test}/PXX/PXX_YY/``
  (EPIC-55 release), ``PXX/PXX_YY/``, ``PXX_YY/``
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from xmic.extract.datasets.records import AnnotationError

EPIC55_ANNOTATION_FPS = 60.0
EXTENSION_ANNOTATION_FPS = 50.0
NTSC_60 = 60000 / 1001
NTSC_30 = 30000 / 1001
NTSC_48 = 48000 / 1001
#: Native rates that differ from the usual 59.94 (EPIC-55) / 50 (extension), from EPIC_100_video_info.csv.
NATIVE_FPS_EXCEPTIONS: dict[str, float] = {
    "P09_07": NTSC_30,
    "P09_08": NTSC_30,
    "P10_04": NTSC_30,
    "P18_02": NTSC_30,
    "P17_01": NTSC_48,
    "P17_02": NTSC_48,
    "P17_03": NTSC_48,
    "P17_04": NTSC_48,
    "P18_09": 90.0,
}
#: Videos whose released RGB frames are wrong (README erratum); use the MP4 or re-extracted frames.
ERRATA_FRAME_VIDEOS = frozenset({"P01_109", "P27_103"})
MEDIA_PREFERENCES = ("auto", "video", "frames")

_VIDEO_ID = re.compile(r"^(P\d+)_(\d+)$")


def parse_video_id(video_id: str) -> tuple[str, str]:
    """``"P01_104"`` -> ``("P01", "104")``; ValueError for ids not of the form ``PXX_YY``."""
    match = _VIDEO_ID.match(video_id)
    if match is None:
        raise ValueError(f"not an EPIC-KITCHENS video id (PXX_YY or PXX_1YY): {video_id!r}")
    return match.group(1), match.group(2)


def is_extension_video(video_id: str) -> bool:
    """True for EPIC-100 extension videos (``PXX_1YY``: three or more digits after the underscore)."""
    return len(parse_video_id(video_id)[1]) >= 3


def annotation_fps(video_id: str) -> float:
    """Rate of the CSV's frame indices: 60 for EPIC-55 videos (``PXX_YY``), 50 for ``PXX_1YY``."""
    return EXTENSION_ANNOTATION_FPS if is_extension_video(video_id) else EPIC55_ANNOTATION_FPS


def builtin_native_fps(video_id: str) -> float:
    """Native MP4 rate from the built-in table (EPIC_100_video_info.csv v1.1.0)."""
    if video_id in NATIVE_FPS_EXCEPTIONS:
        return NATIVE_FPS_EXCEPTIONS[video_id]
    return EXTENSION_ANNOTATION_FPS if is_extension_video(video_id) else NTSC_60


def read_video_info(path: Path) -> dict[str, float]:
    """``{video_id: native fps}`` from ``EPIC_100_video_info.csv`` (``video_id,duration,fps,resolution``)."""
    out: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"video_id", "fps"} - set(reader.fieldnames or [])
        if missing:
            raise AnnotationError(path, f"missing column(s) {sorted(missing)}; header is {reader.fieldnames}", "line 1")
        for row in reader:
            where = f"data row {reader.line_num - 1} (line {reader.line_num})"
            try:
                fps = float(row["fps"] or "")
            except ValueError:
                raise AnnotationError(path, f"column 'fps': expected a number, got {row['fps']!r}", where) from None
            if not math.isfinite(fps) or fps <= 0:
                raise AnnotationError(path, f"column 'fps': expected a positive rate, got {row['fps']!r}", where)
            out[(row["video_id"] or "").strip()] = fps
    return out


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def to_native_frames(start: int, stop: int, annot_fps: float, native_fps: float) -> tuple[int, int]:
    """Map annotation frame indices to the video's native frame indices by time.

    ``frame_native = round(idx / annot_fps * native_fps)`` (halves round up), and ``stop >= start`` is
    kept. Identity when the two rates are equal.
    """
    if annot_fps <= 0 or native_fps <= 0:
        raise ValueError(f"frame rates must be positive, got annot_fps={annot_fps}, native_fps={native_fps}")
    if math.isclose(annot_fps, native_fps, rel_tol=0, abs_tol=1e-9):
        return int(start), int(stop)
    scale = native_fps / annot_fps
    native_start = _round_half_up(start * scale)
    return native_start, max(native_start, _round_half_up(stop * scale))


def _video_candidates(root: Path, video_id: str, participant: str) -> list[Path]:
    stems = [
        root / participant / "videos" / video_id,
        root / "videos" / participant / video_id,
        root / "videos" / "train" / participant / video_id,
        root / "videos" / "test" / participant / video_id,
        root / "videos" / video_id,
        root / participant / video_id,
        root / video_id,
    ]
    return [stem.with_name(stem.name + ext) for stem in stems for ext in (".MP4", ".mp4")]


def _frames_candidates(root: Path, video_id: str, participant: str) -> list[Path]:
    return [
        root / participant / "rgb_frames" / video_id,
        root / "rgb_frames" / participant / video_id,
        root / "rgb_frames" / video_id,
        root / "frames_rgb_flow" / "rgb" / "train" / participant / video_id,
        root / "frames_rgb_flow" / "rgb" / "test" / participant / video_id,
        root / participant / video_id,
        root / video_id,
    ]


def find_epic_media(root: Path, video_id: str, prefer: str = "auto") -> tuple[Path | None, str, str | None]:
    """Locate one video's media under ``root``.

    Args:
        root: Dataset root.
        video_id: ``PXX_YY`` (other ids are looked up as ``root/videos/<id>.MP4`` etc. too).
        prefer: "auto" (MP4, else frame folder), "video" (MP4 only) or "frames" (frame folder only,
            except the errata videos, for which "auto" and "frames" both take an MP4 when one exists).

    Returns:
        ``(path or None, media kind, note or None)``; the note tells what needs attention (errata
        frames, frames still packed in a ``.tar``).
    """
    if prefer not in MEDIA_PREFERENCES:
        raise ValueError(f"media preference must be one of {MEDIA_PREFERENCES}, got {prefer!r}")
    match = _VIDEO_ID.match(video_id)
    participant = match.group(1) if match else ""
    videos = _video_candidates(root, video_id, participant)
    folders = _frames_candidates(root, video_id, participant)
    video = next((p for p in videos if p.is_file()), None)
    frames = next((p for p in folders if p.is_dir()), None)
    errata = video_id in ERRATA_FRAME_VIDEOS
    if video is not None and (prefer == "video" or prefer == "auto" or errata):
        return video, "video", None
    if frames is not None and prefer in ("auto", "frames"):
        note = None
        if errata:
            note = (
                f"{video_id}: the released RGB frames of this video are wrong (EPIC-100 README erratum); "
                f"use {video_id}.MP4 or frames re-extracted from it at 50 fps ({frames})"
            )
        return frames, "frames", note
    note = None
    if prefer != "video":
        tar = next((p.with_name(p.name + ".tar") for p in folders if p.with_name(p.name + ".tar").is_file()), None)
        note = f"{video_id}: frames are still packed in {tar}; extract them into {tar.with_suffix('')}" if tar else None
    return None, "frames" if prefer == "frames" else "video", note
