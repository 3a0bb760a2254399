"""The segment record every dataset reader produces, and the annotations of one split.

Frame numbering: ``start_frame`` / ``stop_frame`` (inclusive) count frames at ``fps`` frames per second
from the start of the media (``video_path``):

- ``media_kind == "frames"``: the numbers are the JPEG file numbers (EPIC ``frame_%010d.jpg``); EPIC's
  frame folders were extracted at the annotation rate, so they need no conversion. An index 0 (EPIC
  calls its indices 0-based but the files start at 1) is read as ``frame_0000000001.jpg``.
- ``media_kind == "video"``: the numbers are at the annotation rate ``fps``. When the decoder finds a
  different native rate it converts them with
  :func:`xmic.extract.datasets.epic_media.to_native_frames` (EPIC-55 indices are at 60 fps, most of
  its videos at 59.94 fps; a few at 29.97, 47.95 or 90 fps).

``video_id`` names the media unit a segment is decoded from (an EPIC video, an Ego4D clip, an EGTEA
clip), so that sorting by ``video_id`` groups the segments one decoder pass reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xmic.cache.schema import SEGMENT_COLUMNS

MEDIA_KINDS = ("video", "frames")
#: Label of a segment without ground truth (test files without labels).
NO_LABEL = -1


@dataclass(frozen=True)
class SegmentRecord:
    """One annotated segment (see the module docstring for the frame numbering)."""

    segment_id: str
    video_id: str
    video_path: Path | None  # resolved video file or JPEG frame folder; None when not found on disk
    media_kind: str  # "video" | "frames" (the expected kind when video_path is None)
    start_frame: int
    stop_frame: int  # inclusive
    fps: float  # frame rate of the annotation's frame numbers
    verb: int  # 0-based, NO_LABEL when unlabelled
    noun: int
    split: str
    start_sec: float
    stop_sec: float

    @property
    def num_frames(self) -> int:
        """Frames in ``start_frame..stop_frame`` (inclusive)."""
        return self.stop_frame - self.start_frame + 1

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.video_id, self.start_frame, self.stop_frame, self.segment_id)


@dataclass(frozen=True)
class SkippedRow:
    """A row left out with ``skip_bad=True``: where it was and why."""

    file: Path
    where: str  # e.g. "data row 3 (line 4)", "clips[17]", "line 12"
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.reason}"


class AnnotationError(ValueError):
    """An annotation file that cannot be read, or a bad row (naming the file and the row)."""

    def __init__(self, file: Path | str, reason: str, where: str | None = None) -> None:
        self.file = Path(file)
        self.where = where
        self.reason = reason
        super().__init__(f"{file}: {where}: {reason}" if where else f"{file}: {reason}")


@dataclass
class DatasetAnnotations:
    """Everything a reader found for one split of one dataset.

    Attributes:
        dataset: "epic" | "ego4d" | "egtea".
        split: The split name as recorded in the records.
        records: Segments sorted by ``(video_id, start_frame, stop_frame, segment_id)``.
        vocab: ``{"verb": [...], "noun": [...]}`` prompt names in label order.
        raw_vocab: The same vocabularies as spelled in the dataset's class files.
        annotation_files: Files the records were read from (their sha256 goes to the store).
        skipped: Rows left out with ``skip_bad=True``.
        missing_media: Video ids whose media was not found (their records have ``video_path=None``).
        native_fps: Native frame rate of a video where the dataset documents one (EPIC video info).
        notes: Warnings worth showing in a dry run (e.g. EPIC errata).
    """

    dataset: str
    split: str
    records: list[SegmentRecord]
    vocab: dict[str, list[str]]
    raw_vocab: dict[str, list[str]]
    annotation_files: list[Path]
    skipped: list[SkippedRow] = field(default_factory=list)
    missing_media: list[str] = field(default_factory=list)
    native_fps: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def columns(self) -> dict[str, np.ndarray]:
        """The store's segment columns, see :func:`records_to_columns`."""
        return records_to_columns(self.records)

    def annotation_sha256(self) -> dict[str, str]:
        """``{file name: sha256 hex}`` of every annotation file (the path when two names clash)."""
        names = [p.name for p in self.annotation_files]
        return {(p.name if names.count(p.name) == 1 else str(p)): sha256_file(p) for p in self.annotation_files}


def sort_records(records: list[SegmentRecord]) -> list[SegmentRecord]:
    """Records sorted by ``(video_id, start_frame, stop_frame, segment_id)``."""
    return sorted(records, key=SegmentRecord.sort_key)


def _string_array(values: list[str]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.dtypes.StringDType())
    except AttributeError:  # numpy < 2
        return np.array(values, dtype=object)


def records_to_columns(records: list[SegmentRecord]) -> dict[str, np.ndarray]:
    """The store's segment columns (:data:`xmic.cache.schema.SEGMENT_COLUMNS`) of ``records``.

    Returns:
        ``{column: (N,) array}`` in the records' order; "str" columns are variable-length strings
        (numpy ``StringDType``, object arrays on numpy < 2), the others have the schema's dtype.
    """
    out: dict[str, np.ndarray] = {}
    for name, dtype in SEGMENT_COLUMNS.items():
        values = [getattr(r, name) for r in records]
        out[name] = _string_array([str(v) for v in values]) if dtype == "str" else np.array(values, dtype=dtype)
    return out


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()
