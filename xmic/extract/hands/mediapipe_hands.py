"""``--hands mediapipe``: hands found by Google MediaPipe's HandLandmarker (Tasks API), hands only.

Each detected hand's box is the min/max of its 21 landmarks (normalised image coordinates) grown by
``margin`` times its width and height on every side, clipped to [0, 1]; the frame's box is the union of
the hands (up to ``num_hands``). Unlike ``epic-hoa`` it does not add the objects in contact: the margin
stands in for them. The model file (``hand_landmarker.task``, ``--hand-model``) is never downloaded:
the user gives its path. mediapipe (optional extra ``xmic[hands]``) is imported when the provider is built.

Running modes: ``"image"`` (default) looks at every frame on its own; ``"video"`` lets MediaPipe track
hands from frame to frame (timestamps from the frame indices at ``fps``), restarting the tracker at a
new video or when the indices go back.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from xmic.extract.hands.base import HandBoxProvider, nan_boxes, union_box

#: sha256 of Google's float16 ``hand_landmarker.task`` (the copy in shared/models).
KNOWN_MODEL_SHA256 = "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1"
INSTALL_HINT = "pip install 'xmic[hands]' (mediapipe)"
RUNNING_MODES = ("image", "video")


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


class MediaPipeHandProvider(HandBoxProvider):
    """Union of MediaPipe HandLandmarker hand boxes per frame.

    Args:
        model_path: ``hand_landmarker.task`` (``--hand-model``). A file whose sha256 differs from
            :data:`KNOWN_MODEL_SHA256` is used with a warning.
        margin: Box growth on each side, fraction of the hand's width/height (``--hand-margin``).
        min_detection_confidence: MediaPipe's ``min_hand_detection_confidence`` (``--hand-min-conf``).
        min_presence_confidence: MediaPipe's ``min_hand_presence_confidence``.
        num_hands: Most hands per frame.
        running_mode: ``"image"`` or ``"video"`` (``--hand-mode``).
        fps: Frame rate that turns frame indices into timestamps in ``"video"`` mode.
    """

    name = "mediapipe"
    needs_frames = True

    def __init__(
        self,
        model_path: str | Path,
        margin: float = 0.2,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        num_hands: int = 2,
        running_mode: str = "image",
        fps: float = 30.0,
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
        self.min_presence_confidence = float(min_presence_confidence)
        self.num_hands = int(num_hands)
        self.running_mode = running_mode
        self.fps = float(fps)
        self._landmarker: Any = None
        self._video: str | None = None
        self._last_ms = -1

    def _create(self) -> Any:
        from mediapipe.tasks.python import BaseOptions, vision

        mode = vision.RunningMode.VIDEO if self.running_mode == "video" else vision.RunningMode.IMAGE
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=mode,
            num_hands=self.num_hands,
            min_hand_detection_confidence=self.min_detection_confidence,
            min_hand_presence_confidence=self.min_presence_confidence,
        )
        return vision.HandLandmarker.create_from_options(options)

    def _restart(self, video_id: str) -> Any:
        self.close()
        self._landmarker = self._create()
        self._video, self._last_ms = video_id, -1
        return self._landmarker

    def frame_box(self, result: Any) -> np.ndarray:
        """``(4,)`` union box of one ``HandLandmarkerResult`` (NaN without hands)."""
        hands = [
            landmark_box(np.array([(p.x, p.y) for p in hand], dtype=np.float64), self.margin)
            for hand in result.hand_landmarks
        ]
        return union_box(hands)

    def _boxes(self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any) -> np.ndarray:
        import mediapipe as mp

        stamps = np.round(frame_indices * (1000.0 / self.fps)).astype(np.int64)
        landmarker = self._landmarker
        if landmarker is None or (self.running_mode == "video" and video_id != self._video):
            landmarker = self._restart(video_id)
        out = nan_boxes(len(frame_indices))
        for row, frame in enumerate(frames):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            if self.running_mode == "image":
                out[row] = self.frame_box(landmarker.detect(image))
                continue
            ms = int(stamps[row])
            if row and ms == self._last_ms:  # a repeated frame (segment shorter than T): same answer
                out[row] = out[row - 1]
                continue
            if ms <= self._last_ms:  # the tracker only goes forward in time
                landmarker = self._restart(video_id)
            out[row] = self.frame_box(landmarker.detect_for_video(image, ms))
            self._last_ms = ms
        return out

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
        }

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: mediapipe may already be torn down
            self.close()
