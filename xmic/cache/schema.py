"""The store's schema: array names, dtypes, row states and the spec recorded in attributes.

Layout (Zarr v3 group, or the same tree inside one HDF5 file)::

    <store>/
      <dataset>/                      attrs["xmic"]: StoreSpec as JSON
        segments/<column>             (N,) one array per SEGMENT_COLUMNS entry
        vocab/verb, vocab/noun        (C,) class names in label order
        frame_index                   (N, T) int32
        hand_box                      (N, T, 4) float32, normalised xyxy, NaN = no box (full frame used),
                                      HAND_BOX_UNWRITTEN (-1) = never written (older stores: NaN)
        hand_source                   (N, T) uint8, where each slot's box came from: HAND_SOURCE_NONE (0) no box
                                      (full frame), HAND_SOURCE_DETECTED (1) found by the provider or given,
                                      HAND_SOURCE_INTERPOLATED (2) filled across a short gap (at least one hand
                                      of the box was interpolated, not seen in that frame);
                                      HAND_SOURCE_UNWRITTEN (255) = never written. Absent in older stores
                                      (readers then return None; NaN boxes tell 0 from 1 there)
        features/<encoder>/full       (N, T, D) float16
        features/<encoder>/hand       (N, T, D) float16
        frames/<encoder>/full         (N, T, S, S, 3) uint8, only with a frame cache (``StoreSpec.frames``): the
                                      encoder's input before normalisation, JPEG per image (:mod:`xmic.cache.frames`)
        row_status                    (N,) uint8, ROW_PENDING / ROW_OK / ROW_FAILED
        done                          (n_chunks,) uint8, 1 once every array of that chunk is written
      failed.jsonl (zarr: file in the dataset group's folder; h5: attribute) rows that failed, with reasons
      text/<encoder>/<dataset>/<verb|noun>/<template>   (C, D) float32
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

ROW_PENDING = 0
ROW_OK = 1
ROW_FAILED = 2
#: Fill value of ``hand_box``: what a slot reads before its chunk is written, or when the chunk's object is gone.
#: Written boxes are in [0, 1] or NaN (no box), so this can never be mistaken for "no box".
HAND_BOX_UNWRITTEN = -1.0
#: Codes of ``hand_source``: no box (the hand view is the full frame), a box the provider detected (or the user
#: gave), a box interpolated across a short gap between two frames that found the hand.
HAND_SOURCE_NONE = 0
HAND_SOURCE_DETECTED = 1
HAND_SOURCE_INTERPOLATED = 2
#: Code -> name, in code order (``xmic cache info`` reports the share of each).
HAND_SOURCE_NAMES: dict[int, str] = {
    HAND_SOURCE_NONE: "none",
    HAND_SOURCE_DETECTED: "detected",
    HAND_SOURCE_INTERPOLATED: "interpolated",
}
#: Fill value of ``hand_source``: not a valid code, so a lost chunk never reads as "no box" or "detected".
HAND_SOURCE_UNWRITTEN = 255

#: Segment columns and their numpy dtypes ("str" = variable-length unicode).
SEGMENT_COLUMNS: dict[str, str] = {
    "segment_id": "str",
    "video_id": "str",
    "start_frame": "int64",
    "stop_frame": "int64",
    "fps": "float32",
    "verb": "int32",
    "noun": "int32",
    "split": "str",
}

VIEWS = ("full", "hand")
TARGETS = ("verb", "noun")
#: The six prompts of the paper's Table 7 in its order and wording (its "Egocentric image a" included); "{}" is
#: the class name.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "{}",
    "Image of a {}",
    "Video of a {}",
    "Egocentric image a {}",
    "Image of a hand holding a {}",
    "Egocentric image of a hand holding {}",
)
DEFAULT_TEMPLATE = "{}"
#: Aim for chunks of about this many bytes in the largest array (features).
TARGET_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class EncoderSpec:
    """A frozen encoder as the store records it: identity, preprocessing and output width."""

    name: str  # registry name, e.g. "clip-vit-b16"
    family: str  # "clip", "dinov2" or "lavila"
    model_id: str  # Hugging Face id, e.g. "openai/clip-vit-base-patch16" (LaViLa: "lavila/<checkpoint file>")
    dim: int  # output width D
    image_size: int
    resize: int
    interpolation: str  # "bicubic" | "bilinear"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""  # where the weights were loaded from (directory), informational
    weights_sha256: str = ""  # content hash of the weight files (both towers of CLIP); "" = not recorded (old store)
    #: Frames per embedding: 1 for image encoders; F > 1 for video encoders (LaViLa: 4), whose slot ``(bin b,
    #: candidate c)`` holds the embedding of the F-frame clip of candidate ``c`` in bins ``F*(b//F) .. F*(b//F)+F-1``
    #: (:func:`xmic.sampling.window_slots`), so every slot of one clip holds the same vector.
    clip_frames: int = 1
    #: exp(s), the model's own logit scale for image-text cosines (100 for OpenAI's CLIP), read from the weights at
    #: extraction; 0 = none (an image-only encoder, or a store written before the field existed).
    logit_scale: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderSpec:
        kw = dict(d)
        kw["mean"] = tuple(kw["mean"])
        kw["std"] = tuple(kw["std"])
        return cls(**kw)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for features to be interchangeable (not the load path, not ``logit_scale``,
        which the weights' hash covers; ``clip_frames`` only when it is not 1, so specs recorded before the field
        existed still match)."""
        d = self.to_dict()
        d.pop("source")
        d.pop("logit_scale")
        if d.get("clip_frames", 1) == 1:
            d.pop("clip_frames", None)
        return d


def same_identity(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two ``EncoderSpec.identity()`` dicts match; a weights hash absent or empty on either side (a store or
    run from before hashes were recorded) is not compared."""
    a, b = dict(a), dict(b)
    if not a.get("weights_sha256") or not b.get("weights_sha256"):
        a.pop("weights_sha256", None)
        b.pop("weights_sha256", None)
    return a == b


@dataclass
class StoreSpec:
    """What a dataset group of the store holds and how it was made (stored as JSON in attrs)."""

    dataset: str  # "epic" | "ego4d" | "egtea" | any name
    num_frames: int  # T slots per segment
    encoders: dict[str, EncoderSpec]  # features/<name> present, keyed by registry name
    sampling: str = "uniform-bins:16x3"  # frame sampling rule (xmic.sampling.SAMPLING_RULE)
    chunk_rows: int = 256
    hands: str = "none"  # hand-box provider
    annotations: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    config: dict[str, Any] = field(default_factory=dict)  # resolved extraction config
    xmic_version: str = ""
    #: The frame cache (``xmic extract --frames-cache``, :mod:`xmic.cache.frames`): ``{encoder: {"view": "full",
    #: "image_size": S, "codec": "jpeg", "quality": 95, "subsampling": "444"}}`` for ``frames/<encoder>/full``;
    #: empty (and left out of the JSON, so stores without one read as before) when there is none.
    frames: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["encoders"] = {k: v.to_dict() for k, v in self.encoders.items()}
        if not d["frames"]:
            del d["frames"]
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StoreSpec:
        d = json.loads(text)
        d["encoders"] = {k: EncoderSpec.from_dict(v) for k, v in d["encoders"].items()}
        return cls(**d)


def chunk_rows_for(num_frames: int, dim: int, itemsize: int = 2, target_bytes: int = TARGET_CHUNK_BYTES) -> int:
    """Rows per chunk so that one (rows, T, D) feature chunk is about ``target_bytes``; at least 1."""
    return max(1, target_bytes // max(1, num_frames * dim * itemsize))


def num_chunks(n_rows: int, chunk_rows: int) -> int:
    return (n_rows + chunk_rows - 1) // chunk_rows


def chunk_slice(chunk: int, chunk_rows: int, n_rows: int) -> slice:
    """Rows of chunk ``chunk``: ``slice(chunk*chunk_rows, min(n_rows, (chunk+1)*chunk_rows))``."""
    start = chunk * chunk_rows
    return slice(start, min(n_rows, start + chunk_rows))


def template_key(template: str) -> str:
    """Array name of a prompt template: "Image of a {}" -> "image_of_a_class", "{}" -> "class"."""
    words = template.replace("{}", " class ").lower().split()
    return "_".join("".join(ch for ch in w if ch.isalnum()) for w in words) or "class"


def hand_source_from_boxes(hand_box: Any, interpolated: Any = None) -> Any:
    """``hand_source`` codes of boxes ``(..., 4)``: NONE where a box has a NaN, DETECTED elsewhere, INTERPOLATED
    where ``interpolated`` (a bool mask of the leading shape) is set and there is a box. Returns uint8."""
    import numpy as np

    box = np.asarray(hand_box)
    has = ~np.isnan(box).any(axis=-1)
    out = np.where(has, HAND_SOURCE_DETECTED, HAND_SOURCE_NONE).astype(np.uint8)
    if interpolated is not None:
        out[has & np.asarray(interpolated, dtype=bool)] = HAND_SOURCE_INTERPOLATED
    return out
