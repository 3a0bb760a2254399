"""Ego4D FHO long-term-anticipation annotations (v2): ``fho_lta_{train,val}.json`` + taxonomy.

Each entry of the ``clips`` list is one action of a 5-minute clip: ``clip_uid``, ``action_idx``,
``action_clip_start_sec`` / ``action_clip_end_sec`` (the action window in clip time, mostly 8 s),
``action_clip_start_frame`` / ``action_clip_end_frame`` (the same at 30 fps), ``verb`` / ``noun``
(taxonomy names) and ``verb_label`` / ``noun_label`` (0-based ids into ``fho_lta_taxonomy.json``,
``{"verbs": [...], "nouns": [...]}``). ``fho_lta_test_unannotated.json`` has no labels (label -1).
The media of a clip is ``v2/clips/<clip_uid>.mp4`` (30 fps). Rows are named ``clips[i]`` (0-based
index in the ``clips`` list).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from xmic.extract.datasets._common import (
    RowError,
    RowProblems,
    check_label,
    check_plain_name,
    check_span,
    drop_duplicates,
    parse_float,
    parse_int,
    prompt_names,
)
from xmic.extract.datasets.records import NO_LABEL, AnnotationError, DatasetAnnotations, SegmentRecord, sort_records

EGO4D_FPS = 30.0
#: Seconds kept around the middle of each 8 s action window by ``xmic extract`` unless told otherwise (the
#: authors' setting); :func:`read_ego4d` itself keeps the whole window unless given ``center_sec``.
AUTHORS_CENTER_SEC = 4.0
REQUIRED_FIELDS = ("clip_uid", "action_idx", "action_clip_start_sec", "action_clip_end_sec")
LABEL_FIELDS = ("verb_label", "noun_label")


def load_json(path: Path) -> Any:
    """Parsed JSON; an :class:`AnnotationError` naming the file and position for truncated/invalid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            path, f"invalid JSON at line {e.lineno} column {e.colno} (character {e.pos}): {e.msg}"
        ) from None
    except UnicodeDecodeError as e:
        raise AnnotationError(path, f"not UTF-8 text: {e}") from None


def read_ego4d_taxonomy(path: Path) -> tuple[list[str], list[str]]:
    """``(verbs, nouns)`` in label order from ``fho_lta_taxonomy.json``."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(path, f"expected an object with 'verbs' and 'nouns', got {type(data).__name__}")
    out = []
    for key in ("verbs", "nouns"):
        names = data.get(key)
        if not isinstance(names, list) or not names:
            raise AnnotationError(path, f"{key!r} must be a non-empty list of names")
        bad = [i for i, n in enumerate(names) if not isinstance(n, str) or not n.strip()]
        if bad:
            raise AnnotationError(path, f"{key}[{bad[0]}] is not a class name: {names[bad[0]]!r}")
        first: dict[str, int] = {}
        for i, name in enumerate(n.strip() for n in names):
            if name in first:
                raise AnnotationError(
                    path, f"{key}[{i}] {name!r} repeats {key}[{first[name]}]: two classes cannot share a name"
                )
            first[name] = i
        out.append([n.strip() for n in names])
    return out[0], out[1]


def split_from_filename(path: Path) -> str:
    """``fho_lta_val.json`` -> ``"val"``, ``fho_lta_test_unannotated.json`` -> ``"test"``."""
    name = path.stem.removeprefix("fho_lta_").removesuffix("_unannotated")
    return name


def _base(name: str) -> str:
    return name.split("(", 1)[0].replace("_", " ").strip().lower()


def _media_candidates(root: Path, clip_uid: str) -> list[Path]:
    name = f"{clip_uid}.mp4"
    return [root / "v2" / "clips" / name, root / "v1" / "clips" / name, root / "clips" / name, root / name]


def read_ego4d(
    annotation_file: Path,
    taxonomy: Path,
    *,
    media_root: Path | None = None,
    split: str | None = None,
    center_sec: float | None = None,
    fps: float = EGO4D_FPS,
    check_names: bool = True,
    skip_bad: bool = False,
) -> DatasetAnnotations:
    """Read ``fho_lta_<split>.json`` into segment records (one per action).

    Args:
        annotation_file: ``fho_lta_{train,val,test_unannotated}.json``.
        taxonomy: ``fho_lta_taxonomy.json``.
        media_root: Ego4D root searched for ``v2/clips/<clip_uid>.mp4`` (also ``v1/clips/``, ``clips/``,
            the root itself); None leaves ``video_path`` unset.
        split: Split name for the records; default from the file name ("train", "val", "test").
        center_sec: Keep only the central ``center_sec`` seconds of each action window (the authors'
            code used 4.0 of the 8 s windows); None keeps the whole window.
        fps: Clip frame rate (Ego4D clips are 30 fps).
        check_names: Check that a clip's ``verb`` / ``noun`` name agrees with the taxonomy entry of its
            label (compared without the parenthesised synonyms); catches a v1 taxonomy used with v2
            annotations.
        skip_bad: Leave bad clips out and list them in ``skipped`` instead of raising.

    Returns:
        The split's :class:`DatasetAnnotations` (dataset "ego4d"); ``segment_id`` is
        ``f"{clip_uid}_{action_idx}"`` and ``video_id`` the ``clip_uid``.
    """
    annotation_file, taxonomy = Path(annotation_file), Path(taxonomy)
    if center_sec is not None and not (math.isfinite(center_sec) and center_sec > 0):
        raise ValueError(f"center_sec must be a positive number of seconds or None, got {center_sec!r}")
    verbs, nouns = read_ego4d_taxonomy(taxonomy)
    data = load_json(annotation_file)
    clips = data.get("clips") if isinstance(data, dict) else None
    if not isinstance(clips, list):
        raise AnnotationError(annotation_file, "expected a JSON object with a 'clips' list (fho_lta_*.json)")
    split = split or split_from_filename(annotation_file)
    labelled = any(isinstance(c, dict) and any(k in c for k in LABEL_FIELDS) for c in clips)
    problems = RowProblems(skip_bad)
    parsed: list[tuple[str, SegmentRecord]] = []
    for i, clip in enumerate(clips):
        where = f"clips[{i}]"
        try:
            record = _parse_clip(clip, split, labelled, center_sec, fps)
            if labelled:
                check_label(record.verb, len(verbs), "verb", taxonomy.name)
                check_label(record.noun, len(nouns), "noun", taxonomy.name)
                if check_names:
                    _check_names(clip, record, verbs, nouns, taxonomy.name)
            parsed.append((where, record))
        except RowError as e:
            problems.report(annotation_file, where, str(e))
    records = drop_duplicates(parsed, {w: annotation_file for w, _ in parsed}, problems)
    out = DatasetAnnotations(
        dataset="ego4d",
        split=split,
        records=[],
        vocab={"verb": prompt_names("ego4d", verbs), "noun": prompt_names("ego4d", nouns)},
        raw_vocab={"verb": verbs, "noun": nouns},
        annotation_files=[annotation_file, taxonomy],
        skipped=problems.skipped,
    )
    if media_root is None:
        out.notes.append("no media root given: video paths were not resolved")
        out.records = sort_records(records)
        return out
    found: dict[str, Path | None] = {}
    for uid in sorted({r.video_id for r in records}):
        found[uid] = next((p for p in _media_candidates(Path(media_root), uid) if p.is_file()), None)
        if found[uid] is None:
            out.missing_media.append(uid)
    out.records = sort_records([replace(r, video_path=found[r.video_id]) for r in records])
    return out


def _parse_clip(clip: Any, split: str, labelled: bool, center_sec: float | None, fps: float) -> SegmentRecord:
    if not isinstance(clip, dict):
        raise RowError(f"expected an object, got {type(clip).__name__}")
    missing = [k for k in REQUIRED_FIELDS + (LABEL_FIELDS if labelled else ()) if k not in clip]
    if missing:
        raise RowError(f"missing field(s) {missing}")
    clip_uid = check_plain_name(str(clip["clip_uid"]).strip(), "clip_uid")
    if not clip_uid:
        raise RowError("field 'clip_uid': missing value")
    action_idx = parse_int(clip["action_idx"], "action_idx")
    start_sec = parse_float(clip["action_clip_start_sec"], "action_clip_start_sec")
    stop_sec = parse_float(clip["action_clip_end_sec"], "action_clip_end_sec")
    if stop_sec <= start_sec:
        raise RowError(f"action_clip_end_sec {stop_sec} <= action_clip_start_sec {start_sec}")
    if "action_clip_start_frame" in clip and "action_clip_end_frame" in clip:
        start = parse_int(clip["action_clip_start_frame"], "action_clip_start_frame")
        stop = parse_int(clip["action_clip_end_frame"], "action_clip_end_frame")
    else:
        start, stop = round(start_sec * fps), round(stop_sec * fps)
    check_span(start, stop)
    if center_sec is not None:
        cut_sec = max(0.0, (stop_sec - start_sec) - center_sec) / 2
        cut = round(cut_sec * fps)  # one rounding for both ends: the kept span stays centred in frames too
        # offsets keep the annotation's own frame anchor
        start, stop = start + cut, stop - cut
        start_sec, stop_sec = start_sec + cut_sec, stop_sec - cut_sec
        stop = max(stop, start + 1)
    verb = noun = NO_LABEL
    if labelled:
        verb = parse_int(clip["verb_label"], "verb_label")
        noun = parse_int(clip["noun_label"], "noun_label")
    return SegmentRecord(
        segment_id=f"{clip_uid}_{action_idx}",
        video_id=clip_uid,
        video_path=None,
        media_kind="video",
        start_frame=start,
        stop_frame=stop,
        fps=float(fps),
        verb=verb,
        noun=noun,
        split=split,
        start_sec=start_sec,
        stop_sec=stop_sec,
    )


def _check_names(clip: dict[str, Any], record: SegmentRecord, verbs: list[str], nouns: list[str], source: str) -> None:
    for kind, label, vocab in (("verb", record.verb, verbs), ("noun", record.noun, nouns)):
        name = clip.get(kind)
        if isinstance(name, str) and name.strip() and _base(name) != _base(vocab[label]):
            raise RowError(
                f"{kind} {name!r} does not match {kind} class {label} {vocab[label]!r} of {source} "
                f"(taxonomy from another annotation version?)"
            )
