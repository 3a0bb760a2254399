"""``--hands hoa`` (``epic-hoa`` for EPIC): boxes from 100DOH hand-object detections in the EPIC-KITCHENS format.

Format: one pickle per video holding a list with one serialised ``Detections`` message per RGB frame
(:mod:`xmic.extract.hands.hoa_proto`); list position ``p`` holds ``frame_number = p + 1``. The official
EPIC-KITCHENS-100 release is in this format, and the same tooling writes it for any video (README, "Hand-object
boxes for Ego4D and EGTEA"); :func:`write_hoa_pickle` writes it too.

Frame numbering per dataset (``dataset``, ``--hoa-dataset``; ``xmic extract`` sets it from its ``--dataset``). The
provider is given a segment's ``frame_index`` row, in the annotation's numbering, and the detections count the
frames of the decoded media from 1:

========  ==========================================  ======================================  =====================
dataset   store ``frame_index``                       pickle                                  ``frame_number``
========  ==========================================  ======================================  =====================
epic      RGB frame file number N (``frame_N.jpg``,   ``<dir>/PXX/PXX_YY.pkl`` or               N
          60 fps EPIC-55, 50 fps extension)           ``<dir>/PXX_YY.pkl``
ego4d     0-based frame i of ``v2/clips/<clip_uid>``  ``<dir>/<clip_uid>.pkl``                 i + 1
          (30 fps)
egtea     0-based frame i of the cropped clip         ``<dir>/<session>/<clip>.pkl`` or        i + 1
          ``cropped_clips/<session>/<clip>.mp4``      ``<dir>/<clip>.pkl``
          (24 fps)
========  ==========================================  ======================================  =====================

``first_frame`` (``--hoa-first-frame``) overrides the dataset's rule: the index the caller gives a video's first
frame (1: EPIC numbering, where an index 0 is read as frame 1, as the frame reader does; 0: 0-based indices).
The indices must count frames at the rate the detections were computed at (EPIC: the annotation rate; Ego4D and
EGTEA: every frame of the clip, as decoded).

Box rule (the X-MIC paper): keep hands with score >= ``hand_threshold`` (0.8) and objects with score
>= ``object_threshold`` (0.01); for each kept hand whose state is not NO_CONTACT, the object in contact
is the kept object whose centre is nearest to the hand's centre plus its ``object_offset`` (the
``epic_kitchens.hoa`` matching rule); the frame's box is the union of the kept hands and their matched
objects. No kept hand -> NaN (the caller uses the full frame). Thresholds are inclusive (the paper says
"hands >= 0.8"; the library's own matcher skips hands with score <= threshold, which differs only at equality).
"""

from __future__ import annotations

import pickle
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from xmic.extract.hands.base import HandBoxError, HandBoxProvider, nan_boxes, union_box
from xmic.extract.hands.hoa_proto import (
    NO_CONTACT,
    FrameDetections,
    ProtoDecodeError,
    decode_frame_detections,
    peek_frame_number,
)

#: Per dataset: the index of a video's first frame in the store's ``frame_index`` (1: EPIC frame numbers, 0: 0-based).
HOA_FIRST_FRAME = {"epic": 1, "ego4d": 0, "egtea": 0}
HOA_DATASETS = tuple(HOA_FIRST_FRAME)
PAPER_HAND_THRESHOLD = 0.8
PAPER_OBJECT_THRESHOLD = 0.01
MISSING_POLICIES = ("error", "skip")


def contact_objects(det: FrameDetections, hand_threshold: float, object_threshold: float) -> dict[int, int]:
    """Match each kept in-contact hand to an object (the ``epic_kitchens.hoa`` offset rule).

    Args:
        det: One frame's detections.
        hand_threshold: Hands with a lower score are ignored.
        object_threshold: Objects with a lower score are not candidates.

    Returns:
        ``{hand position: object position}`` in ``det.hands`` / ``det.objects``; a hand in NO_CONTACT, or
        any hand when no object passes the threshold, is absent.
    """
    candidates = [i for i, obj in enumerate(det.objects) if obj.score >= object_threshold]
    if not candidates:
        return {}
    centres = np.array([det.objects[i].bbox.centre for i in candidates], dtype=np.float64)  # (K, 2)
    matches = {}
    for h, hand in enumerate(det.hands):
        if hand.score < hand_threshold or hand.state == NO_CONTACT:
            continue
        target = np.asarray(hand.bbox.centre) + np.asarray(hand.object_offset)
        matches[h] = candidates[int(np.argmin(((centres - target) ** 2).sum(axis=1)))]
    return matches


def hand_object_box(
    det: FrameDetections,
    hand_threshold: float = PAPER_HAND_THRESHOLD,
    object_threshold: float = PAPER_OBJECT_THRESHOLD,
) -> np.ndarray:
    """The frame's box: union of the kept hands and the objects they touch.

    Returns:
        ``(4,)`` float32 normalised xyxy, NaN when no hand passes ``hand_threshold``.
    """
    hands = [h.bbox.xyxy for h in det.hands if h.score >= hand_threshold]
    if not hands:
        return np.full(4, np.nan, dtype=np.float32)
    objects = [det.objects[o].bbox.xyxy for o in contact_objects(det, hand_threshold, object_threshold).values()]
    return union_box(hands + objects)


class _SafeUnpickler(pickle.Unpickler):
    """Loads plain containers of bytes only (the detection pickles); refuses any class or function."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):  # protocol-2 pickles store bytes this way
            import _codecs

            return _codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (expected a list of bytes)")


class _VideoDetections:
    """One video's pickle: raw messages, decoded lazily and memoised per frame."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                raw = _SafeUnpickler(f).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise HandBoxError(f"{path}: not a hand-object detection pickle ({err})") from None
        if not isinstance(raw, (list, tuple)) or not all(isinstance(m, (bytes, bytearray)) for m in raw):
            raise HandBoxError(f"{path}: expected a pickled list of serialised Detections messages (bytes)")
        self.raw = raw
        self._decoded: dict[int, FrameDetections] = {}
        self._position_of: dict[int, int] | None = None  # frame_number -> position, built on a mismatch

    def __len__(self) -> int:
        return len(self.raw)

    def _decode(self, position: int) -> FrameDetections:
        det = self._decoded.get(position)
        if det is None:
            try:
                det = decode_frame_detections(self.raw[position])
            except ProtoDecodeError as err:
                raise HandBoxError(f"{self.path}: message at list position {position}: {err}") from None
            self._decoded[position] = det
        return det

    def frame(self, frame_number: int) -> FrameDetections | None:
        """Detections of 1-based ``frame_number``; None when the pickle has no entry for it."""
        if self._position_of is None:
            position = frame_number - 1
            if 0 <= position < len(self.raw):
                det = self._decode(position)
                # An empty message (frame without detections) decodes to frame_number 0 and is accepted.
                if det.frame_number in (frame_number, 0):
                    return det
            elif self.raw and peek_frame_number(self.raw[-1]) in (len(self.raw), 0):
                return None  # past the end of a well-ordered list
            self._position_of = {}
            for p, msg in enumerate(self.raw):
                try:
                    self._position_of.setdefault(peek_frame_number(msg), p)
                except ProtoDecodeError as err:
                    raise HandBoxError(f"{self.path}: message at list position {p}: {err}") from None
        position = self._position_of.get(frame_number)
        return None if position is None else self._decode(position)


class EpicHoaProvider(HandBoxProvider):
    """Boxes from hand-object detection pickles in the ``epic_kitchens.hoa`` format (see the module docstring).

    Args:
        hoa_dir: Root of the detections (``--hoa-dir``).
        dataset: Whose videos: ``"epic"``, ``"ego4d"`` or ``"egtea"`` (file layout and frame numbering).
        hand_threshold: Minimum hand score (the paper: 0.8).
        object_threshold: Minimum object score (the paper: 0.01).
        first_frame: The index the caller gives a video's first frame (1: EPIC frame numbers, 0: 0-based); None:
            the dataset's numbering (:data:`HOA_FIRST_FRAME`).
        missing: ``"error"`` (default): a video without a pickle raises naming the paths searched;
            ``"skip"``: its frames get NaN boxes, a warning is issued once and the video is listed in
            :attr:`missing_videos`. Frames past the end of a pickle always get NaN and are counted in
            :attr:`missing_frames`.
        cache_videos: How many videos' pickles to keep in memory (segments arrive sorted by video).
    """

    name = "epic-hoa"
    needs_frames = False

    def __init__(
        self,
        hoa_dir: str | Path,
        hand_threshold: float = PAPER_HAND_THRESHOLD,
        object_threshold: float = PAPER_OBJECT_THRESHOLD,
        first_frame: int | None = None,
        missing: str = "error",
        cache_videos: int = 2,
        dataset: str = "epic",
        name: str | None = None,
    ) -> None:
        if dataset not in HOA_FIRST_FRAME:
            raise ValueError(f"--hoa-dataset must be one of {', '.join(HOA_DATASETS)}, got {dataset!r}")
        self.dataset = dataset
        if name is not None:
            self.name = name
        self.hoa_dir = Path(hoa_dir)
        if not self.hoa_dir.is_dir():
            raise FileNotFoundError(f"--hoa-dir {self.hoa_dir} is not a directory")
        if missing not in MISSING_POLICIES:
            raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
        if not 0 <= hand_threshold <= 1 or not 0 <= object_threshold <= 1:
            raise ValueError(f"thresholds must be in [0, 1], got hand {hand_threshold}, object {object_threshold}")
        self.hand_threshold = float(hand_threshold)
        self.object_threshold = float(object_threshold)
        self.first_frame = HOA_FIRST_FRAME[dataset] if first_frame is None else int(first_frame)
        self.missing = missing
        self.cache_videos = max(1, int(cache_videos))
        self._cache: OrderedDict[str, _VideoDetections | None] = OrderedDict()
        self.missing_videos: list[str] = []
        self.missing_frames: dict[str, int] = {}

    def candidate_paths(self, video_id: str) -> list[Path]:
        """Where the pickle of ``video_id`` may be, in search order (the dataset's folder, then flat)."""
        flat = self.hoa_dir / f"{video_id}.pkl"
        if self.dataset == "epic":
            return [self.hoa_dir / video_id.split("_")[0] / f"{video_id}.pkl", flat]
        if self.dataset == "egtea":
            from xmic.extract.datasets.egtea import parse_clip_name

            try:
                session = parse_clip_name(video_id).session
            except ValueError:
                return [flat]
            return [self.hoa_dir / session / f"{video_id}.pkl", flat]
        return [flat]

    def _video(self, video_id: str) -> _VideoDetections | None:
        if video_id in self._cache:
            self._cache.move_to_end(video_id)
            return self._cache[video_id]
        paths = self.candidate_paths(video_id)
        path = next((p for p in paths if p.is_file()), None)
        if path is None:
            searched = " or ".join(str(p) for p in paths)
            if self.missing == "error":
                raise HandBoxError(
                    f"no hand-object detections for video {video_id}: {searched} not found "
                    "(pass --hand-missing skip to use full frames for such videos)"
                )
            warnings.warn(f"no hand-object detections for {video_id} ({searched}); using full frames", stacklevel=3)
            self.missing_videos.append(video_id)
            video = None
        else:
            video = _VideoDetections(path)
        self._cache[video_id] = video
        while len(self._cache) > self.cache_videos:
            self._cache.popitem(last=False)
        return video

    def frame_number(self, frame_index: int) -> int:
        """The detections' 1-based ``frame_number`` of a caller's frame index."""
        number = int(frame_index) - self.first_frame + 1
        return 1 if number == 0 and frame_index >= 0 else number

    def detections(self, video_id: str, frame_index: int) -> FrameDetections | None:
        """The raw detections of one frame (None when the video or frame has none)."""
        video = self._video(video_id)
        return None if video is None else video.frame(self.frame_number(frame_index))

    def _boxes(self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any) -> np.ndarray:
        video = self._video(video_id)
        out = nan_boxes(len(frame_indices))
        if video is None:
            return out
        for row, index in enumerate(frame_indices):
            det = video.frame(self.frame_number(index))
            if det is None:
                if video_id not in self.missing_frames:
                    warnings.warn(
                        f"{video.path} has no detections for frame index {int(index)} ({len(video)} frames); "
                        "using the full frame",
                        stacklevel=3,
                    )
                self.missing_frames[video_id] = self.missing_frames.get(video_id, 0) + 1
                continue
            out[row] = hand_object_box(det, self.hand_threshold, self.object_threshold)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "hands": self.name,
            "hoa_dir": str(self.hoa_dir),
            "dataset": self.dataset,
            "hand_threshold": self.hand_threshold,
            "object_threshold": self.object_threshold,
            "first_frame": self.first_frame,
            "missing": self.missing,
        }


def write_hoa_pickle(path: str | Path, detections: list[FrameDetections]) -> Path:
    """Write one video's detections as the ``epic_kitchens.hoa`` pickle (a list of serialised messages).

    Args:
        path: The ``.pkl`` to write (parent folders are created).
        detections: One :class:`FrameDetections` per frame, in frame order; the k-th should carry
            ``frame_number = k + 1``.

    Returns:
        ``path``.
    """
    from xmic.extract.hands.hoa_proto import encode_frame_detections

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump([encode_frame_detections(d) for d in detections], f)
    return path
