"""``--hands mediapipe``: hands found by Google MediaPipe's HandLandmarker (Tasks API), hands only.

Each detected hand's box is the min/max of its 21 landmarks (normalised image coordinates) grown by
``margin`` times its width and height on every side, clipped to [0, 1]; the frame's box is the union of
the hands (up to ``num_hands``). Unlike ``epic-hoa`` it does not add the objects in contact: the margin
stands in for them. The model file (``hand_landmarker.task``, ``--hand-model``) is never downloaded:
the user gives its path. mediapipe (optional extra ``xmic[hands]``) is imported when the provider is built.

Running modes: ``"video"`` (default) runs one MediaPipe tracker over each segment's frames in time order
(timestamps from the frame indices at the segment's ``fps``), so a hand found once is followed from frame to
frame instead of being searched for again; ``"image"`` looks at every frame on its own.

Short gaps: a hand (identified by MediaPipe's handedness) found in two frames of a segment but lost in at most
``max_gap`` frames between them, no more than ``max_gap_seconds`` apart, gets the box interpolated linearly in
time between the two. Such frames are recorded: :attr:`MediaPipeHandProvider.last_interpolated` marks the rows
of the last segment, :attr:`MediaPipeHandProvider.interpolated` counts them per video, and
:meth:`~xmic.extract.hands.base.HandBoxProvider.boxes_with_sources` codes them ``HAND_SOURCE_INTERPOLATED`` (2)
for the store's ``hand_source`` (a frame where one hand was seen and the other filled counts as interpolated).

Defaults (``min_detection_confidence`` 0.3, video mode, gaps up to 3 frames) were chosen by counting, on the
real egocentric frames in ``shared/realdata/media``, the frames where the box holds the centre of every
visible hand (see the README, "Hand boxes").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xmic.extract.hands.base import HandBoxProvider, nan_boxes, union_box

#: sha256 of Google's float16 ``hand_landmarker.task`` (the copy in shared/models).
KNOWN_MODEL_SHA256 = "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1"
INSTALL_HINT = "pip install 'xmic[hands]' (mediapipe)"
RUNNING_MODES = ("video", "image")
DEFAULT_MIN_CONF = 0.3
DEFAULT_MAX_GAP = 3
DEFAULT_MAX_GAP_SECONDS = 1.0


#: Lines of MediaPipe's native logs that are kept: glog errors and fatal messages (``E0000 ...``, ``F0000 ...``) and
#: ``ERROR:`` lines; its INFO and WARNING lines (LiteRT set-up, XNNPACK, memory alignment) are dropped.
_KEPT_NATIVE_LINE = re.compile(r"^(E\d{4}|F\d{4}|ERROR|FATAL)")


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Hold back what MediaPipe's C++ code (LiteRT, glog, absl) writes to file descriptor 2 inside the block, and
    write back only its error lines. Python's own ``sys.stderr`` is flushed first, so nothing of ours is lost."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (embedded interpreter): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().decode(errors="replace").splitlines() if _KEPT_NATIVE_LINE.match(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def landmark_box(points: np.ndarray, margin: float) -> np.ndarray:
    """Box of one hand from its landmarks.

    Args:
        points: ``(21, 2)`` normalised ``(x, y)`` landmarks (may lie slightly outside [0, 1]).
        margin: Growth on each side as a fraction of the box's width (x) and height (y).

    Returns:
        ``(4,)`` float32 xyxy clipped to [0, 1].
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return np.clip(np.array([x0 - dx, y0 - dy, x1 + dx, y1 + dy]), 0.0, 1.0).astype(np.float32)


def fill_gaps(times: np.ndarray, boxes: np.ndarray, max_gap: int, max_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate one hand's box over short runs of frames where it was lost.

    Args:
        times: ``(n,)`` increasing frame times (seconds).
        boxes: ``(n, 4)`` the hand's box per frame, NaN where it was not found.
        max_gap: Longest run of missing frames that is filled (0: none).
        max_seconds: Longest time between the two frames that found the hand around a filled run.

    Returns:
        ``(filled boxes (n, 4), filled mask (n,))``; runs at the start or end are never filled.
    """
    out = np.array(boxes, dtype=np.float64, copy=True)
    filled = np.zeros(len(out), dtype=bool)
    found = np.flatnonzero(np.isfinite(out).all(axis=1))
    for a, b in zip(found[:-1], found[1:], strict=True):
        run = b - a - 1
        if run < 1 or run > max_gap or times[b] - times[a] > max_seconds:
            continue
        w = ((times[a + 1 : b] - times[a]) / (times[b] - times[a]))[:, None]
        out[a + 1 : b] = (1 - w) * out[a] + w * out[b]
        filled[a + 1 : b] = True
    return out, filled


class MediaPipeHandProvider(HandBoxProvider):
    """Union of MediaPipe HandLandmarker hand boxes per frame.

    Args:
        model_path: ``hand_landmarker.task`` (``--hand-model``). A file whose sha256 differs from
            :data:`KNOWN_MODEL_SHA256` is used with a warning.
        margin: Box growth on each side, fraction of the hand's width/height (``--hand-margin``).
        min_detection_confidence: MediaPipe's ``min_hand_detection_confidence`` (``--hand-min-conf``).
        min_presence_confidence: MediaPipe's ``min_hand_presence_confidence``.
        num_hands: Most hands per frame.
        running_mode: ``"video"`` (one tracker per segment) or ``"image"`` (``--hand-mode``).
        fps: Frame rate that turns frame indices into times when the segment does not carry its ``fps``.
        max_gap: Longest run of frames a lost hand is interpolated over (``--hand-gap``; 0: no filling).
        max_gap_seconds: Longest time between the two frames around a filled run.
    """

    name = "mediapipe"
    needs_frames = True
    interpolates = True

    def __init__(
        self,
        model_path: str | Path,
        margin: float = 0.2,
        min_detection_confidence: float = DEFAULT_MIN_CONF,
        min_presence_confidence: float | None = None,
        num_hands: int = 2,
        running_mode: str = "video",
        fps: float = 30.0,
        max_gap: int = DEFAULT_MAX_GAP,
        max_gap_seconds: float = DEFAULT_MAX_GAP_SECONDS,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(
                f"--hand-model {self.model_path} does not exist (give the path of MediaPipe's hand_landmarker.task)"
            )
        if running_mode not in RUNNING_MODES:
            raise ValueError(f"--hand-mode must be one of {RUNNING_MODES}, got {running_mode!r}")
        if margin < 0:
            raise ValueError(f"--hand-margin must be >= 0, got {margin}")
        if max_gap < 0:
            raise ValueError(f"--hand-gap must be >= 0, got {max_gap}")
        self.sha256 = file_sha256(self.model_path)
        if self.sha256 != KNOWN_MODEL_SHA256:
            warnings.warn(
                f"{self.model_path}: sha256 {self.sha256} is not the known hand_landmarker.task "
                f"({KNOWN_MODEL_SHA256}); using it anyway",
                stacklevel=2,
            )
        try:
            import mediapipe  # noqa: F401
        except ImportError as err:
            raise ImportError(
                f"--hands mediapipe needs mediapipe, which is not installed: {INSTALL_HINT} ({err})"
            ) from None
        self.margin = float(margin)
        self.min_detection_confidence = float(min_detection_confidence)
        # presence (and tracking) default to the detection threshold: one knob, measured together
        self.min_presence_confidence = float(
            min_detection_confidence if min_presence_confidence is None else min_presence_confidence
        )
        self.num_hands = int(num_hands)
        self.running_mode = running_mode
        self.fps = float(fps)
        self.max_gap = int(max_gap)
        self.max_gap_seconds = float(max_gap_seconds)
        self._landmarker: Any = None
        self.last_interpolated = np.zeros(0, dtype=bool)
        self.interpolated: dict[str, int] = {}

    def _create(self) -> Any:
        from mediapipe.tasks.python import BaseOptions, vision

        mode = vision.RunningMode.VIDEO if self.running_mode == "video" else vision.RunningMode.IMAGE
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=mode,
            num_hands=self.num_hands,
            min_hand_detection_confidence=self.min_detection_confidence,
            min_hand_presence_confidence=self.min_presence_confidence,
            min_tracking_confidence=self.min_presence_confidence,
        )
        return vision.HandLandmarker.create_from_options(options)

    def hands_of(self, result: Any) -> dict[str, np.ndarray]:
        """``{hand key: (4,) box}`` of one ``HandLandmarkerResult``; the key is the handedness label."""
        out: dict[str, np.ndarray] = {}
        for k, hand in enumerate(result.hand_landmarks):
            sides = result.handedness[k] if k < len(result.handedness) else []
            key = sides[0].category_name if sides else f"hand{k}"
            while key in out:  # two hands called the same side: keep both
                key += "+"
            out[key] = landmark_box(np.array([(p.x, p.y) for p in hand], dtype=np.float64), self.margin)
        return out

    def frame_box(self, result: Any) -> np.ndarray:
        """``(4,)`` union box of one ``HandLandmarkerResult`` (NaN without hands)."""
        return union_box(list(self.hands_of(result).values()))

    def _boxes(self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any) -> np.ndarray:
        import mediapipe as mp

        fps = float(getattr(segment, "fps", None) or self.fps)
        # each distinct frame once, in time order: the tracker only goes forward
        unique, first_row, back = np.unique(frame_indices, return_index=True, return_inverse=True)
        times = unique / fps
        per_frame: list[dict[str, np.ndarray]] = []
        with quiet_native_logs():
            if self.running_mode == "video":
                self.close()  # one track per segment
                self._landmarker = self._create()
            elif self._landmarker is None:
                self._landmarker = self._create()
            for k, row in enumerate(first_row):
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frames[row]))
                if self.running_mode == "image":
                    result = self._landmarker.detect(image)
                else:
                    result = self._landmarker.detect_for_video(image, int(round(times[k] * 1000)))
                per_frame.append(self.hands_of(result))
            if self.running_mode == "video":
                self.close()
        filled_any = np.zeros(len(unique), dtype=bool)
        tracks = []
        for key in sorted({key for found in per_frame for key in found}):
            track = np.array([found.get(key, np.full(4, np.nan)) for found in per_frame], dtype=np.float64)
            if self.max_gap:
                track, filled = fill_gaps(times, track, self.max_gap, self.max_gap_seconds)
                filled_any |= filled
            tracks.append(track)
        hands = (
            np.stack([union_box([t[i] for t in tracks]) for i in range(len(unique))])
            if tracks
            else nan_boxes(len(unique))
        )
        self.last_interpolated = filled_any[back]
        count = int(filled_any.sum())
        if count:
            self.interpolated[video_id] = self.interpolated.get(video_id, 0) + count
        return hands[back].astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "hands": self.name,
            "model": str(self.model_path),
            "model_sha256": self.sha256,
            "margin": self.margin,
            "min_detection_confidence": self.min_detection_confidence,
            "min_presence_confidence": self.min_presence_confidence,
            "num_hands": self.num_hands,
            "running_mode": self.running_mode,
            "max_gap": self.max_gap,
            "max_gap_seconds": self.max_gap_seconds,
        }

    def close(self) -> None:
        if self._landmarker is not None:
            with quiet_native_logs():
                self._landmarker.close()
            self._landmarker = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: mediapipe may already be torn down
            self.close()
