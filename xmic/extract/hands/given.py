"""``--hands given``: boxes supplied with the data (the synthetic generator, or boxes computed elsewhere).

One file per video in ``<boxes_dir>``, either

- ``<video_id>.json``::

      {"video_id": "P01_01",                       # optional; checked when present
       "frames": {"12": [[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.7, 0.9]],
                  "13": []}}

  keys are frame indices in the numbering of the store's ``frame_index`` (the annotation's numbering:
  EPIC frame file numbers, 0-based frames at the annotation rate for Ego4D / EGTEA), values lists of
  normalised ``[x0, y0, x1, y1]`` boxes (hands and the objects they hold); or
- ``<video_id>.npz`` with ``frame_index`` ``(M,)`` int and ``boxes`` ``(M, 4)`` float (several rows may share
  a frame index).

A frame's box is the union of its boxes; a frame that is absent or has no box gets NaN (full frame).
:func:`write_given_boxes` writes the JSON form.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmic.extract.hands.base import (
    BOX_TOLERANCE,
    HandBoxError,
    HandBoxProvider,
    check_box_list,
    nan_boxes,
    union_box,
)

MISSING_POLICIES = ("error", "skip")


def write_given_boxes(boxes_dir: str | Path, video_id: str, frames: Mapping[int, Sequence[Sequence[float]]]) -> Path:
    """Write ``<boxes_dir>/<video_id>.json`` for :class:`GivenBoxProvider`.

    Args:
        boxes_dir: Output folder (created).
        video_id: The video the boxes belong to.
        frames: ``{frame index: [[x0, y0, x1, y1], ...]}`` normalised boxes.

    Returns:
        The written path.
    """
    out = {}
    for index, boxes in sorted(frames.items()):
        where = f"boxes of {video_id} frame {index}"
        out[str(int(index))] = check_box_list(boxes, where).tolist()
    path = Path(boxes_dir) / f"{video_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"video_id": video_id, "frames": out}))
    return path


def _read_json(path: Path, video_id: str) -> dict[int, np.ndarray]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HandBoxError(f"{path}: cannot read the box file ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), dict):
        raise HandBoxError(f'{path}: expected {{"frames": {{"<frame index>": [[x0, y0, x1, y1], ...]}}}}')
    if doc.get("video_id", video_id) != video_id:
        raise HandBoxError(f"{path}: holds boxes of video {doc['video_id']!r}, expected {video_id!r}")
    return _checked_table(doc["frames"], path) or _table_frame_by_frame(doc["frames"], path)


def _table_frame_by_frame(frames: dict[str, Any], path: Path) -> dict[int, np.ndarray]:
    """``{frame index: (4,) float32 union box}``, each frame checked in turn (the first bad one raises)."""
    table = {}
    for key, boxes in frames.items():
        try:
            index = int(key)
        except ValueError:
            raise HandBoxError(f"{path}: frame key {key!r} is not an integer frame index") from None
        b = check_box_list(boxes, f"{path}: frame {key}")
        table[index] = union_box(b)
    return table


def _checked_table(frames: dict[str, Any], path: Path) -> dict[int, np.ndarray] | None:
    """:func:`_table_frame_by_frame` checked and unioned a whole video at once (frames grouped by their number of
    boxes); None when anything is off, so that the frame-by-frame pass names the first bad frame."""
    try:
        keys = [int(k) for k in frames]
    except ValueError:
        return None
    if len(set(keys)) != len(keys):  # "7" and "07": the later one wins, as frame by frame
        return None
    by_count: dict[int, list[int]] = {}
    values = list(frames.values())
    for i, boxes in enumerate(values):
        if not isinstance(boxes, list):
            return None
        by_count.setdefault(len(boxes), []).append(i)
    table: dict[int, np.ndarray] = {}
    for count, idx in by_count.items():
        if count == 0:
            table.update((keys[i], np.full(4, np.nan, np.float32)) for i in idx)
            continue
        try:
            b = np.asarray([values[i] for i in idx], dtype=np.float64)  # (n, K, 4)
        except (TypeError, ValueError):
            return None
        if b.shape != (len(idx), count, 4) or not np.isfinite(b).all():
            return None
        tol = BOX_TOLERANCE
        if (b < -tol).any() or (b > 1 + tol).any() or not ((b[..., 2] > b[..., 0]) & (b[..., 3] > b[..., 1])).all():
            return None
        b = np.clip(b, 0.0, 1.0)
        union = np.concatenate([b[..., :2].min(axis=1), b[..., 2:].max(axis=1)], axis=1).astype(np.float32)
        table.update(zip((keys[i] for i in idx), union, strict=True))
    return {k: table[k] for k in keys}


def _read_npz(path: Path) -> dict[int, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            index = np.asarray(npz["frame_index"])
            boxes = np.asarray(npz["boxes"], dtype=np.float64)
    except KeyError as err:
        raise HandBoxError(f"{path}: missing array {err} (need 'frame_index' (M,) and 'boxes' (M, 4))") from None
    except (OSError, ValueError) as err:
        raise HandBoxError(f"{path}: cannot read the box file ({err})") from None
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer) or boxes.shape != (len(index), 4):
        raise HandBoxError(
            f"{path}: need 'frame_index' (M,) int and 'boxes' (M, 4); got {index.dtype} {index.shape} and {boxes.shape}"
        )
    table = {}
    for i in np.unique(index):
        rows = np.flatnonzero(index == i)
        table[int(i)] = union_box(check_box_list(boxes[rows], f"{path}: frame {int(i)} (rows {rows.tolist()})"))
    return table


class GivenBoxProvider(HandBoxProvider):
    """Boxes read from per-video files (see the module docstring).

    Args:
        boxes_dir: Folder of ``<video_id>.json`` / ``<video_id>.npz`` (``--hand-boxes``).
        missing: ``"error"``: a video without a file raises naming the paths; ``"skip"``: NaN boxes, a
            warning, and the video is listed in :attr:`missing_videos`.
        cache_videos: How many videos' tables to keep in memory.
    """

    name = "given"
    needs_frames = False

    def __init__(self, boxes_dir: str | Path, missing: str = "error", cache_videos: int = 4) -> None:
        self.boxes_dir = Path(boxes_dir)
        if not self.boxes_dir.is_dir():
            raise FileNotFoundError(f"--hand-boxes {self.boxes_dir} is not a directory")
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
        self.missing = missing
        self.cache_videos = max(1, int(cache_videos))
        self._cache: OrderedDict[str, dict[int, np.ndarray] | None] = OrderedDict()
        self.missing_videos: list[str] = []

    def _table(self, video_id: str) -> dict[int, np.ndarray] | None:
        if video_id in self._cache:
            self._cache.move_to_end(video_id)
            return self._cache[video_id]
        json_path, npz_path = self.boxes_dir / f"{video_id}.json", self.boxes_dir / f"{video_id}.npz"
        if json_path.is_file():
            table = _read_json(json_path, video_id)
        elif npz_path.is_file():
            table = _read_npz(npz_path)
        elif self.missing == "error":
            raise HandBoxError(
                f"no boxes for video {video_id}: {json_path} or {npz_path} not found "
                "(pass --hand-missing skip to use full frames for such videos)"
            )
        else:
            warnings.warn(f"no boxes for {video_id} ({json_path} / .npz); using full frames", stacklevel=3)
            self.missing_videos.append(video_id)
            table = None
        self._cache[video_id] = table
        while len(self._cache) > self.cache_videos:
            self._cache.popitem(last=False)
        return table

    def _boxes(self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any) -> np.ndarray:
        table = self._table(video_id)
        out = nan_boxes(len(frame_indices))
        if table is not None:
            for row, index in enumerate(frame_indices):
                box = table.get(int(index))
                if box is not None:
                    out[row] = box
        return out

    def describe(self) -> dict[str, Any]:
        return {"hands": self.name, "boxes_dir": str(self.boxes_dir), "missing": self.missing}
