"""EGTEA Gaze+ action annotations: ``{train,test}_split{1,2,3}.txt`` and ``{verb,noun,action}_idx.txt``.

Split lines are ``<clip> <action_id> <verb_id> <noun_id> [<noun_id> ...]`` with 1-based ids; the
segment takes the first noun (the action's main object). Class files have lines ``<Name> <id>``
(1-based, the name may contain spaces). Clip names are
``<session>-<start_ms>-<end_ms>-F<first_frame>-F<last_frame>``, e.g.
``OP01-R01-PastaSalad-1002316-1004005-F024051-F024101``: session ``OP01-R01-PastaSalad``, the clip's
times in the session video (ms) and its first/last frame there (24 fps). The media is
``cropped_clips/<session>/<clip>.mp4``.

Frame span: the whole clip is the segment, ``start_frame = 0`` and ``stop_frame = last - first`` from the
name. That is an estimate of the clip's last frame (the ms times give a slightly shorter clip): before the
store's segment table is written, `xmic extract` clamps ``stop_frame`` to the frames the clip really has, as the
decoder does before sampling (``xmic.extract.plan.fit_stops_to_media``), so the store records the stop frame
sampling used; the name's stop stays readable in the segment id (the clip name). Rows are named
"line N" (1-based line of the split file).

``test_splits="all"`` reads the three test files together. A clip in several of them is kept once
(``dedupe=True``, default: every clip weighs the same) or once per file (``dedupe=False``: the plain
concatenation, segment ids ``<clip>@test_split<k>``). The labels of a repeated clip must agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from xmic.extract.datasets._common import RowError, RowProblems, check_span, drop_duplicates, prompt_names
from xmic.extract.datasets.records import AnnotationError, DatasetAnnotations, SegmentRecord, sort_records

EGTEA_FPS = 24.0
SPLIT_IDS = (1, 2, 3)
_CLIP = re.compile(r"^(?P<session>.+?)-(?P<start_ms>\d+)-(?P<end_ms>\d+)-F(?P<first>\d+)-F(?P<last>\d+)$")


@dataclass(frozen=True)
class EgteaClipName:
    """The parts of an EGTEA clip name."""

    session: str
    start_ms: int
    end_ms: int
    first_frame: int
    last_frame: int


def parse_clip_name(name: str) -> EgteaClipName:
    """``"OP01-R01-PastaSalad-1002316-1004005-F024051-F024101"`` -> its parts; ValueError otherwise."""
    match = _CLIP.match(name)
    if match is None:
        raise ValueError(f"not an EGTEA clip name (<session>-<ms>-<ms>-F<frame>-F<frame>): {name!r}")
    return EgteaClipName(
        match["session"], int(match["start_ms"]), int(match["end_ms"]), int(match["first"]), int(match["last"])
    )


def read_egtea_classes(path: Path) -> list[str]:
    """Class names in id order from ``verb_idx.txt`` / ``noun_idx.txt`` / ``action_idx.txt`` (ids 1..C)."""
    names: dict[int, str] = {}
    lines_of: dict[str, int] = {}  # name -> the line it first appeared on
    for n, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        name, _, idx = line.strip().rpartition(" ")
        if not name.strip() or not idx.isdigit():
            raise AnnotationError(path, f"expected '<name> <id>', got {line.strip()!r}", f"line {n}")
        if int(idx) in names:
            raise AnnotationError(path, f"id {idx} appears twice", f"line {n}")
        if name.strip() in lines_of:
            raise AnnotationError(
                path,
                f"class name {name.strip()!r} repeats line {lines_of[name.strip()]}: two ids, one name",
                f"line {n}",
            )
        lines_of[name.strip()] = n
        names[int(idx)] = name.strip()
    if sorted(names) != list(range(1, len(names) + 1)):
        raise AnnotationError(path, f"ids must be 1..{len(names)} without gaps, got {sorted(names)[:5]}...")
    return [names[i] for i in range(1, len(names) + 1)]


def _lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise AnnotationError(path, f"not UTF-8 text: {e}") from None


def _media_candidates(root: Path, clip: str, session: str) -> list[Path]:
    name = f"{clip}.mp4"
    return [
        root / "cropped_clips" / session / name,
        root / "video_clips" / "cropped_clips" / session / name,
        root / "cropped_clips" / "cropped_clips" / session / name,
        root / "cropped_clips" / name,
        root / session / name,
        root / name,
    ]


def read_egtea(
    annotation_dir: Path,
    *,
    split: str = "test",
    split_id: int = 1,
    test_splits: int | str | None = None,
    media_root: Path | None = None,
    dedupe: bool = True,
    skip_bad: bool = False,
) -> DatasetAnnotations:
    """Read EGTEA Gaze+ split files into segment records (one per clip).

    Args:
        annotation_dir: Folder with ``train_split*.txt``, ``test_split*.txt``, ``verb_idx.txt``,
            ``noun_idx.txt`` (``action_idx.txt`` optional).
        split: "train" or "test".
        split_id: Which of the three train/test partitions (1, 2, 3).
        test_splits: For ``split="test"``: None (use ``split_id``), 1/2/3, or "all" (the three test
            files together, as the paper's Table 3 evaluates).
        media_root: EGTEA root searched for ``cropped_clips/<session>/<clip>.mp4``; None leaves
            ``video_path`` unset.
        dedupe: With "all", keep a clip found in several test files once (see the module docstring).
        skip_bad: Leave bad lines out and list them in ``skipped`` instead of raising.

    Returns:
        :class:`DatasetAnnotations` (dataset "egtea", split e.g. "test_split1" or "test_split1+2+3").
    """
    annotation_dir = Path(annotation_dir)
    if split not in ("train", "test"):
        raise ValueError(f"EGTEA split must be 'train' or 'test', got {split!r}")
    chosen = test_splits if (split == "test" and test_splits is not None) else split_id
    ids = list(SPLIT_IDS) if chosen == "all" else [chosen]
    if any(i not in SPLIT_IDS for i in ids) or (chosen == "all" and split != "test"):
        raise ValueError(f"EGTEA split ids are 1, 2, 3 (or 'all' for the test files), got {chosen!r}")
    verbs = read_egtea_classes(annotation_dir / "verb_idx.txt")
    nouns = read_egtea_classes(annotation_dir / "noun_idx.txt")
    action_file = annotation_dir / "action_idx.txt"
    n_actions = len(read_egtea_classes(action_file)) if action_file.is_file() else None
    split_name = f"{split}_split" + "+".join(str(i) for i in ids)
    problems = RowProblems(skip_bad)
    parsed: list[tuple[str, SegmentRecord]] = []
    file_of: dict[str, Path] = {}
    first_seen: dict[str, tuple[int, int, int, str]] = {}  # clip -> (verb, noun, split id, where)
    files = []
    repeats = 0
    for k in ids:
        path = annotation_dir / f"{split}_split{k}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"EGTEA split file not found: {path}")
        files.append(path)
        for n, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            where = f"line {n}" if len(ids) == 1 else f"line {n} of {path.name}"
            file_of[where] = path
            try:
                record = _parse_line(line, split_name, len(verbs), len(nouns), n_actions)
                seen = first_seen.setdefault(record.segment_id, (record.verb, record.noun, k, where))
                if seen[2] != k:  # the same clip in another test file
                    if seen[:2] != (record.verb, record.noun):
                        raise RowError(f"clip {record.segment_id} has other labels at {seen[3]}")
                    if dedupe:
                        repeats += 1
                        continue
                if not dedupe and len(ids) > 1:
                    record = replace(record, segment_id=f"{record.segment_id}@{split}_split{k}")
                parsed.append((where, record))
            except RowError as e:
                problems.report(path, where, str(e))
    records = drop_duplicates(parsed, file_of, problems)
    out = DatasetAnnotations(
        dataset="egtea",
        split=split_name,
        records=[],
        vocab={"verb": prompt_names("egtea", verbs), "noun": prompt_names("egtea", nouns)},
        raw_vocab={"verb": verbs, "noun": nouns},
        annotation_files=files + [annotation_dir / "verb_idx.txt", annotation_dir / "noun_idx.txt"],
        skipped=problems.skipped,
        notes=["EGTEA stop_frame is estimated from the clip name; extraction clamps it to the clip's length"],
    )
    if repeats:
        out.notes.append(f"{repeats} lines repeat a clip of an earlier test file; each clip was kept once")
    if media_root is None:
        out.notes.append("no media root given: video paths were not resolved")
        out.records = sort_records(records)
        return out
    found: dict[str, Path | None] = {}
    for clip in sorted({r.video_id for r in records}):
        session = parse_clip_name(clip).session
        found[clip] = next((p for p in _media_candidates(Path(media_root), clip, session) if p.is_file()), None)
        if found[clip] is None:
            out.missing_media.append(clip)
    out.records = sort_records([replace(r, video_path=found[r.video_id]) for r in records])
    return out


def _parse_line(line: str, split: str, n_verbs: int, n_nouns: int, n_actions: int | None) -> SegmentRecord:
    fields = line.split()
    if len(fields) < 4:
        raise RowError(f"expected '<clip> <action> <verb> <noun>...', got {line.strip()!r}")
    clip = fields[0]
    try:
        name = parse_clip_name(clip)
    except ValueError as e:
        raise RowError(str(e)) from None
    try:
        action, verb, *nouns = (int(x) for x in fields[1:])
    except ValueError:
        raise RowError(f"expected integer ids after the clip name, got {fields[1:]}") from None
    for kind, value, size in [("action", action, n_actions), ("verb", verb, n_verbs)] + [
        ("noun", n, n_nouns) for n in nouns
    ]:
        if size is not None and not 1 <= value <= size:
            raise RowError(f"unknown {kind} id {value} (the {kind} ids are 1..{size})")
    stop = name.last_frame - name.first_frame
    check_span(0, stop)
    return SegmentRecord(
        segment_id=clip,
        video_id=clip,
        video_path=None,
        media_kind="video",
        start_frame=0,
        stop_frame=stop,
        fps=EGTEA_FPS,
        verb=verb - 1,
        noun=nouns[0] - 1,
        split=split,
        start_sec=0.0,
        stop_sec=stop / EGTEA_FPS,
    )
