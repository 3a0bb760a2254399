"""Hand boxes for the hand view, behind one interface chosen with ``--hands``.

``make_hand_provider("epic-hoa" | "mediapipe" | "yolo" | "given" | "none", **options)`` returns a
:class:`HandBoxProvider` whose ``boxes(video_id, frame_indices, frames, segment)`` gives one normalised
xyxy box per frame, NaN where there is none (the caller then uses the full frame). Heavy dependencies
(mediapipe, ultralytics) are imported only by the provider that needs them.
"""

from xmic.extract.hands.base import (
    BoxRequest,
    HandBoxError,
    HandBoxProvider,
    NoHandBoxes,
    finalize_boxes,
    nan_boxes,
    union_box,
)
from xmic.extract.hands.factory import HAND_OPTIONS, HAND_PROVIDERS, hand_options, make_hand_provider, pop_hand_options

__all__ = [
    "HAND_OPTIONS",
    "HAND_PROVIDERS",
    "BoxRequest",
    "HandBoxError",
    "HandBoxProvider",
    "NoHandBoxes",
    "finalize_boxes",
    "hand_options",
    "make_hand_provider",
    "nan_boxes",
    "pop_hand_options",
    "union_box",
]
