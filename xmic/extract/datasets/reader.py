"""One entry point for every dataset: find the annotation files of a split, then read them.

Where files are looked for (first hit wins; ``annotations_dir`` first when given):

- epic: ``<annotations_dir>``, ``<root>``, ``<root>/annotations``, ``<root>/epic-kitchens-100-annotations``,
  ``<root>/annotations/epic-kitchens-100-annotations``, and the ``UDA_annotations`` folder of each.
  Split "train" -> ``EPIC_100_train.csv``, "validation" (or "val") -> ``EPIC_100_validation.csv``, "test"
  -> ``EPIC_100_test_timestamps.csv``, "uda_source_train" -> ``EPIC_100_uda_source_train.csv``,
  "uda_target_test" -> ``EPIC_100_uda_target_test_timestamps.csv``, ...; the ``.pkl`` of the same name
  when there is no CSV; or a path to the file itself. Class CSVs and the optional
  ``EPIC_100_video_info.csv`` come from the same folders (and the annotation file's folder).
- ego4d: ``<annotations_dir>``, ``<root>/v2/annotations``, ``<root>/annotations``, ``<root>/v1/annotations``,
  ``<root>``. Split "train" / "val" (or "validation") / "test" -> ``fho_lta_{train,val,test_unannotated}.json``;
  ``fho_lta_taxonomy.json``.
- egtea: ``<annotations_dir>``, ``<root>/action_annotation``, ``<root>/Action_Annotations``,
  ``<root>/action_annotations``, ``<root>/annotations``, ``<root>``: the first folder holding the split
  file (e.g. ``test_split1.txt``).

Media is searched under ``root`` by each reader.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from xmic.extract.datasets._common import find_file, unique_dirs
from xmic.extract.datasets.ego4d import read_ego4d
from xmic.extract.datasets.egtea import read_egtea
from xmic.extract.datasets.epic import read_epic
from xmic.extract.datasets.records import DatasetAnnotations

DATASETS = ("epic", "ego4d", "egtea")
_EPIC_SPLIT_ALIASES = {"val": "validation", "valid": "validation"}
_EGO4D_SPLIT_FILES = {
    "train": ["fho_lta_train.json"],
    "val": ["fho_lta_val.json"],
    "validation": ["fho_lta_val.json"],
    "test": ["fho_lta_test_unannotated.json", "fho_lta_test.json"],
}


def read_annotations(
    dataset: str, root: Path, split: str, annotations_dir: Path | None = None, **options: Any
) -> DatasetAnnotations:
    """Find and read the annotations of one split.

    Args:
        dataset: "epic" | "ego4d" | "egtea".
        root: Dataset root (media are searched under it; annotations too, see the module docstring).
        split: Split name (see the module docstring), or for "epic" a path to an annotation file.
        annotations_dir: Folder holding the annotation files, searched before ``root``.
        **options: Passed to the reader: :func:`~xmic.extract.datasets.epic.read_epic` (``media``,
            ``fps``, ``video_info``, ``skip_bad``), :func:`~xmic.extract.datasets.ego4d.read_ego4d`
            (``center_sec``, ``fps``, ``check_names``, ``skip_bad``),
            :func:`~xmic.extract.datasets.egtea.read_egtea` (``split_id``, ``test_splits``, ``dedupe``,
            ``skip_bad``).

    Returns:
        The split's :class:`DatasetAnnotations`.

    Raises:
        FileNotFoundError: An annotation file is missing; the message lists every place searched.
        ValueError: Unknown dataset or split.
    """
    root = Path(root)
    annotations_dir = Path(annotations_dir) if annotations_dir is not None else None
    if dataset in _READERS:
        allowed = _options_of(_READERS[dataset])
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise TypeError(f"unknown option(s) {unknown} for dataset {dataset!r}; accepted: {sorted(allowed)}")
    if dataset == "epic":
        return _read_epic(root, split, annotations_dir, options)
    if dataset == "ego4d":
        return _read_ego4d(root, split, annotations_dir, options)
    if dataset == "egtea":
        return _read_egtea(root, split, annotations_dir, options)
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")


_READERS = {"epic": read_epic, "ego4d": read_ego4d, "egtea": read_egtea}
_SET_BY_READER = {
    "media_root",
    "split",
    "annotation_file",
    "annotation_dir",
    "taxonomy",
    "verb_classes",
    "noun_classes",
}


def _options_of(reader: Any) -> set[str]:
    params = inspect.signature(reader).parameters.values()
    return {p.name for p in params if p.kind is p.KEYWORD_ONLY} - _SET_BY_READER


def _epic_dirs(root: Path, annotations_dir: Path | None) -> list[Path]:
    bases = [
        annotations_dir,
        root,
        root / "annotations",
        root / "epic-kitchens-100-annotations",
        root / "annotations" / "epic-kitchens-100-annotations",
    ]
    return unique_dirs([d for b in bases if b is not None for d in (b, b / "UDA_annotations")])


def _read_epic(root: Path, split: str, annotations_dir: Path | None, options: dict[str, Any]) -> DatasetAnnotations:
    dirs = _epic_dirs(root, annotations_dir)
    as_path = Path(split)
    if as_path.suffix in (".csv", ".pkl") and as_path.is_file():
        annotation_file = as_path
        split_name = None
    else:
        split_name = _EPIC_SPLIT_ALIASES.get(split, split)
        stems = [f"EPIC_100_{split_name}", f"EPIC_100_{split_name}_timestamps"]
        names = [s + ".csv" for s in stems] + [s + ".pkl" for s in stems]
        annotation_file = find_file(names, dirs, f"EPIC-KITCHENS-100 annotations for split {split!r}")
    class_dirs = unique_dirs([annotation_file.parent, annotation_file.parent.parent, *dirs])
    verbs = find_file(["EPIC_100_verb_classes.csv"], class_dirs, "EPIC-KITCHENS-100 verb classes")
    nouns = find_file(["EPIC_100_noun_classes.csv"], class_dirs, "EPIC-KITCHENS-100 noun classes")
    options = dict(options)
    if "video_info" not in options:
        try:
            options["video_info"] = find_file(["EPIC_100_video_info.csv"], class_dirs, "video info")
        except FileNotFoundError:
            options["video_info"] = None
    return read_epic(annotation_file, verbs, nouns, media_root=root, split=split_name, **options)


def _read_ego4d(root: Path, split: str, annotations_dir: Path | None, options: dict[str, Any]) -> DatasetAnnotations:
    if split not in _EGO4D_SPLIT_FILES:
        raise ValueError(f"unknown Ego4D split {split!r}; expected one of {sorted(_EGO4D_SPLIT_FILES)}")
    dirs = unique_dirs(
        [annotations_dir, root / "v2" / "annotations", root / "annotations", root / "v1" / "annotations", root]
    )
    annotation_file = find_file(_EGO4D_SPLIT_FILES[split], dirs, f"Ego4D FHO LTA annotations for split {split!r}")
    taxonomy_dirs = unique_dirs([annotation_file.parent, *dirs])
    taxonomy = find_file(["fho_lta_taxonomy.json"], taxonomy_dirs, "Ego4D FHO LTA taxonomy")
    split_name = "val" if split == "validation" else split
    return read_ego4d(annotation_file, taxonomy, media_root=root, split=split_name, **options)


def _read_egtea(root: Path, split: str, annotations_dir: Path | None, options: dict[str, Any]) -> DatasetAnnotations:
    if split not in ("train", "test"):
        raise ValueError(f"EGTEA split must be 'train' or 'test', got {split!r}")
    test_splits = options.get("test_splits")
    if split == "test" and test_splits is not None:
        first = 1 if test_splits == "all" else test_splits
    else:
        first = options.get("split_id", 1)
    dirs = unique_dirs(
        [
            annotations_dir,
            root / "action_annotation",
            root / "Action_Annotations",
            root / "action_annotations",
            root / "annotations",
            root,
        ]
    )
    split_file = find_file([f"{split}_split{first}.txt"], dirs, f"EGTEA Gaze+ {split} split {first}")
    return read_egtea(split_file.parent, split=split, media_root=root, **options)
