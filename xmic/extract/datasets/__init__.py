"""Stage-one dataset readers: EPIC-KITCHENS-100, Ego4D FHO (LTA v2) and EGTEA Gaze+ -> segment records."""

from xmic.extract.datasets.reader import DATASETS, read_annotations
from xmic.extract.datasets.records import (
    NO_LABEL,
    AnnotationError,
    DatasetAnnotations,
    SegmentRecord,
    SkippedRow,
    records_to_columns,
)

__all__ = [
    "DATASETS",
    "NO_LABEL",
    "AnnotationError",
    "DatasetAnnotations",
    "SegmentRecord",
    "SkippedRow",
    "read_annotations",
    "records_to_columns",
]
