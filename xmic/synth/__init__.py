"""Synthetic egocentric benchmark in the real annotation formats (EPIC-KITCHENS-100 and Ego4D FHO).

``xmic synth --out DIR`` (:mod:`xmic.synth.cli`) or :func:`generate` writes two small datasets with a domain
shift between them, their MP4 files, ground-truth hand boxes for ``--hands given`` and ``manifest.json``.
"""

from xmic.synth.datasets import DATASET_SPECS, KITCHEN_A, KITCHEN_B, DatasetSpec, Style, class_split
from xmic.synth.generate import MANIFEST, SynthReport, VideoResult, generate, load_manifest, plan_dataset

__all__ = [
    "DATASET_SPECS",
    "KITCHEN_A",
    "KITCHEN_B",
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
