"""Synthetic egocentric benchmark in the real annotation formats (EPIC-KITCHENS-100, Ego4D FHO, EGTEA Gaze+).

``xmic synth --out DIR`` (:mod:`xmic.synth.cli`) or :func:`generate` writes small datasets with a domain shift
between them (by default kitchen A as EPIC-100 and kitchen B as Ego4D; ``--datasets epic,ego4d,egtea`` adds
kitchen C as EGTEA Gaze+), their MP4 files, ground-truth hand boxes for ``--hands given`` and ``manifest.json``.
"""

from xmic.synth.datasets import (
    ALL_DATASET_SPECS,
    DATASET_SPECS,
    DEFAULT_DATASETS,
    KITCHEN_A,
    KITCHEN_B,
    KITCHEN_C,
    DatasetSpec,
    Style,
    class_split,
)
from xmic.synth.generate import SynthReport, VideoResult, generate, plan_dataset
from xmic.synth.manifest import MANIFEST, load_manifest

__all__ = [
    "ALL_DATASET_SPECS",
    "DATASET_SPECS",
    "DEFAULT_DATASETS",
    "KITCHEN_A",
    "KITCHEN_B",
    "KITCHEN_C",
    "MANIFEST",
    "DatasetSpec",
    "Style",
    "SynthReport",
    "VideoResult",
    "class_split",
    "generate",
    "load_manifest",
    "plan_dataset",
]
