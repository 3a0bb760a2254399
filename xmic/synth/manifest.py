"""``manifest.json`` of a generated benchmark: what a reader of the benchmark needs besides the files themselves.

Class lists (canonical and as each format spells them), shared and novel classes, counts per split as the
dataset readers name the splits, folders, styles and the ``xmic extract`` command for each dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xmic.synth.datasets import ALL_DATASET_SPECS, DatasetSpec, class_split, dataset_index
from xmic.synth.motion import VideoPlan
from xmic.synth.writers import EGO4D_ANNOTATIONS, EGTEA_ANNOTATIONS, EPIC_ANNOTATIONS, HAND_BOXES

if TYPE_CHECKING:
    from xmic.synth.generate import Sizes

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
ANNOTATION_DIRS = {"epic": EPIC_ANNOTATIONS, "ego4d": EGO4D_ANNOTATIONS, "egtea": EGTEA_ANNOTATIONS}


def reader_split_name(spec: DatasetSpec, split: str) -> str:
    """The split name ``xmic extract`` records for ``split`` by default: ``split`` itself; for EGTEA
    ``"train_split1"`` and ``"test_split1+2+3"`` (the three test files together, as Table 3 reads them)."""
    if spec.name != "egtea":
        return split
    return "test_split1+2+3" if split == "test" else f"{split}_split1"


def build_manifest(
    seed: int, scale: float, plans: dict[str, dict[str, list[VideoPlan]]], sizes: Sizes, videos: bool
) -> dict[str, Any]:
    """The machine-readable description of the benchmark (class lists, shared/novel, counts, paths).

    The datasets are the keys of ``plans``. ``shared`` lists the classes every one of them has; a dataset's
    ``novel`` the classes no other of them has (:func:`~xmic.synth.datasets.class_split`). ``pairs`` lists each
    (source, target) pair in :data:`~xmic.synth.datasets.ALL_DATASET_SPECS` order. ``counts`` are keyed by the
    split names ``xmic extract`` records (EGTEA: ``train_split1`` / ``test_split1+2+3``; 2 and 3 copy 1).
    """
    from xmic import __version__

    specs = [s for s in ALL_DATASET_SPECS if s.name in plans]
    split = class_split(*specs)
    datasets: dict[str, Any] = {}
    for spec in specs:
        st = spec.style
        datasets[spec.name] = {
            "title": spec.title,
            "format": spec.format_name,
            "root": spec.name,
            "annotations": f"{spec.name}/{ANNOTATION_DIRS[spec.name]}",
            "hand_boxes": f"{spec.name}/{HAND_BOXES}",
            "seed": [seed, dataset_index(spec)],
            "fps": spec.fps,
            "width": st.width,
            "height": st.height,
            "splits": dict(zip(spec.split_roles, spec.splits, strict=True)),
            "counts": {
                reader_split_name(spec, name): {
                    "videos": len(vs),
                    "segments": sum(len(v.segments) for v in vs),
                    "frames": sum(v.n_frames for v in vs),
                }
                for name, vs in plans[spec.name].items()
            },
            "verbs": list(spec.verbs),
            "nouns": list(spec.nouns),
            "raw_verbs": spec.raw_verbs(),
            "raw_nouns": spec.raw_nouns(),
            "novel": split[f"novel_{spec.name}"],
            "style": {
                "background": st.background,
                "contrast": st.contrast,
                "brightness": st.brightness,
                "tint": list(st.tint),
                "camera_jitter_px": st.jitter_px,
                "camera_pan_px": st.pan_px,
                "object_scale": st.object_scale,
            },
            "extract_hint": (
                f"xmic extract --dataset {spec.name} --root <out>/{spec.name} --split {','.join(spec.splits)} "
                f"--hands given --hand-boxes <out>/{spec.name}/{HAND_BOXES}"
            ),
        }
    return {
        "generator": "xmic.synth",
        "manifest_version": MANIFEST_VERSION,
        "xmic_version": __version__,
        "seed": seed,
        "scale": scale,
        "videos_rendered": videos,
        "sizes": {
            "train": sizes.train,
            "val": sizes.val,
            "segments_per_video": list(sizes.segments_per_video),
            "segment_seconds": list(sizes.segment_seconds),
            "gap_seconds": list(sizes.gap_seconds),
        },
        "datasets": datasets,
        "shared": split["shared"],
        "pairs": [{"source": a.name, "target": b.name} for i, a in enumerate(specs) for b in specs[i + 1 :]],
    }


def load_manifest(out: str | Path) -> dict[str, Any]:
    """Read ``<out>/manifest.json``; a clear error when it is missing."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `xmic synth --out {out}` first")
    return json.loads(path.read_text(encoding="utf-8"))
