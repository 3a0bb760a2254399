"""What one extraction covers: the dataset's rows read from its annotations, and the chunks they form.

:func:`load_dataset` reads every requested split into one sorted list of rows; :func:`plan_chunks` groups a
chunk's rows by video so that each video is decoded once per chunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xmic.extract.datasets import DatasetAnnotations, read_annotations, records_to_columns
from xmic.extract.datasets.ego4d import AUTHORS_CENTER_SEC
from xmic.extract.datasets.records import sort_records
from xmic.extract.pipeline import ChunkJob, VideoJob, _annotation_last_frame

if TYPE_CHECKING:
    from xmic.extract.runner import ExtractConfig

#: The annotation number of a media's first frame, per dataset (EPIC's frame files start at frame_0000000001.jpg).
FIRST_FRAME = {"epic": 1, "ego4d": 0, "egtea": 0}


@dataclass
class Dataset:
    """All splits of one dataset as the rows of one store group."""

    records: list[Any]
    vocab: dict[str, list[str]]
    splits: list[DatasetAnnotations]
    annotations: dict[str, str]  # file -> sha256

    def columns(self) -> dict[str, Any]:
        """The store's segment columns, ``{column: (N,) array}``."""
        return records_to_columns(self.records)


def egtea_options(config: ExtractConfig, split: str) -> dict[str, Any]:
    """EGTEA reader options of ``split``: which of the three partitions (the test files all together by default,
    the paper's Table 3 protocol; each clip once)."""
    if config.dataset != "egtea":
        return {}
    chosen = config.egtea_split
    if chosen not in (None, "1", "2", "3", "all"):
        raise ValueError(f"--egtea-split must be 1, 2, 3 or all, got {chosen!r}")
    if split == "test":
        return {"test_splits": "all" if chosen in (None, "all") else int(chosen)}
    if chosen == "all":
        raise ValueError("--egtea-split all reads the three test files together; a train split takes 1, 2 or 3")
    return {"split_id": 1 if chosen is None else int(chosen)}


def center_window(config: ExtractConfig) -> float | None:
    """Seconds kept around the middle of each action window, as the store records it (``center_sec``).

    Ego4D: ``config.center_sec`` None gives the authors' 4 s (:data:`AUTHORS_CENTER_SEC`), 0 the whole window
    (None), any other positive value that many seconds. Other datasets: None; giving a value is an error.
    """
    sec = config.center_sec
    if sec is not None and not (math.isfinite(sec) and sec >= 0):
        raise ValueError(f"--center-sec must be a number of seconds >= 0 (0: the whole window), got {sec!r}")
    if config.dataset != "ego4d":
        if sec is not None:
            raise ValueError(f"--center-sec applies to ego4d only, not {config.dataset}")
        return None
    if sec is None:
        return AUTHORS_CENTER_SEC
    return None if sec == 0 else float(sec)


def load_dataset(config: ExtractConfig) -> Dataset:
    """Read every split, check they share one vocabulary, and sort all rows by video and time."""
    options: dict[str, Any] = {"skip_bad": config.skip_bad}
    center = center_window(config)
    if center is not None:
        options["center_sec"] = center
    if config.media is not None:
        if config.dataset != "epic":
            raise ValueError(f"--media applies to epic only, not {config.dataset}")
        options["media"] = config.media
    if config.egtea_split is not None and config.dataset != "egtea":
        raise ValueError(f"--egtea-split applies to egtea only, not {config.dataset}")
    splits = [
        read_annotations(
            config.dataset, Path(config.root), s, config.annotations_dir, **options, **egtea_options(config, s)
        )
        for s in config.splits
    ]
    vocab = splits[0].vocab
    for other in splits[1:]:
        if other.vocab != vocab:
            raise ValueError(f"splits {splits[0].split} and {other.split} of {config.dataset} have other vocabularies")
    records = sort_records([r for s in splits for r in s.records])
    seen: dict[str, str] = {}
    for r in records:
        if seen.setdefault(r.segment_id, r.split) != r.split:
            raise ValueError(
                f"segment {r.segment_id} is in splits {seen[r.segment_id]} and {r.split}; one store group needs "
                "unique segment ids (extract the splits into separate stores)"
            )
    if not records:
        raise ValueError(f"no segments in {config.dataset} splits {', '.join(config.splits)} under {config.root}")
    annotations: dict[str, str] = {}
    for s in splits:
        annotations.update(s.annotation_sha256())
    return Dataset(records, vocab, splits, annotations)


def plan_chunks(
    records: list[Any], chunk_rows: int, chunks: list[int], clamp_stop: bool = False, first_frame: int = 0
) -> list[ChunkJob]:
    """Group the rows of each chunk in ``chunks`` by video.

    Args:
        records: The store's rows in order (:class:`~xmic.extract.datasets.SegmentRecord`).
        chunk_rows: Rows per store chunk.
        chunks: Which chunks to plan.
        clamp_stop: Clamp every row's stop frame to its media's length (EGTEA).
        first_frame: The annotations' number of a media's first frame (EPIC 1, Ego4D and EGTEA 0).

    Returns:
        One :class:`ChunkJob` per chunk, in the order given.
    """
    jobs = []
    for c in chunks:
        lo, hi = c * chunk_rows, min(len(records), (c + 1) * chunk_rows)
        videos: list[VideoJob] = []
        row = lo
        while row < hi:
            first = records[row]
            end = row
            while end < hi and records[end].video_id == first.video_id:
                end += 1
            videos.append(
                VideoJob.for_records(records[row:end], range(row, end), clamp_stop=clamp_stop, first_frame=first_frame)
            )
            row = end
        jobs.append(ChunkJob(c, lo, hi, tuple(videos)))
    return jobs


def fit_stops_to_media(records: list[Any], workers: int = 8) -> tuple[list[Any], list[tuple[str, int, int]]]:
    """EGTEA: each row's stop frame clamped to the frames its clip really has, as the decoder clamps it.

    An EGTEA clip name gives the clip's first and last frame in the session video, and the reader takes
    ``stop_frame = last - first`` from it (:mod:`xmic.extract.datasets.egtea`); a clip can hold fewer frames
    than that. The decoder samples only frames the clip has (``stop = max(min(stop, last), start)``, the clip's
    last frame from its container, without decoding), so the same clamp applied here, before the store's
    segment table is written, makes ``segments/stop_frame`` the stop the slots were sampled from. The name's
    stop stays readable in ``segment_id`` (the clip name). Rows without media, or whose clip cannot be opened,
    keep the name's stop (they fail with their reason during extraction).

    Args:
        records: The store's rows (:class:`~xmic.extract.datasets.SegmentRecord`), sorted.
        workers: Threads that open the clips' containers.

    Returns:
        ``(records, changed)``: the rows in the same order, and ``(segment_id, name's stop, stop used)`` of each
        row whose stop changed.
    """
    from concurrent.futures import ThreadPoolExecutor

    from xmic.extract.decode import probe_video
    from xmic.extract.segplan import VideoDecodeError

    def last_frame(path: Path, annot_fps: float) -> int | None:
        try:
            info = probe_video(path)
        except VideoDecodeError:
            return None
        if info.n_frames <= 0:
            return None
        return _annotation_last_frame(info.n_frames, annot_fps, info.fps)

    clips = {(str(r.video_path), float(r.fps)) for r in records if r.video_path is not None}
    with ThreadPoolExecutor(max(1, min(workers, len(clips)))) as pool:
        lasts = dict(zip(clips, pool.map(lambda c: last_frame(Path(c[0]), c[1]), clips), strict=True))
    out, changed = [], []
    for r in records:
        last = None if r.video_path is None else lasts[(str(r.video_path), float(r.fps))]
        stop = r.stop_frame if last is None else max(min(int(r.stop_frame), last), int(r.start_frame))
        if stop != r.stop_frame:
            changed.append((r.segment_id, int(r.stop_frame), stop))
            r = replace(r, stop_frame=stop, stop_sec=stop / float(r.fps))
        out.append(r)
    return (sort_records(out) if changed else out), changed


def media_candidates(dataset: str, root: Path, video_id: str, media: str | None = None) -> list[Path]:
    """The paths under ``root`` where the media of ``video_id`` is looked for, in order (files and, for EPIC, frame
    folders): what a missing-media message shows."""
    if dataset == "ego4d":
        from xmic.extract.datasets.ego4d import _media_candidates as ego4d_candidates

        return ego4d_candidates(root, video_id)
    if dataset == "egtea":
        from xmic.extract.datasets.egtea import _media_candidates as egtea_candidates
        from xmic.extract.datasets.egtea import parse_clip_name

        try:
            session = parse_clip_name(video_id).session
        except ValueError:
            session = ""
        return egtea_candidates(root, video_id, session)
    from xmic.extract.datasets.epic_media import _VIDEO_ID, _frames_candidates, _video_candidates

    match = _VIDEO_ID.match(video_id)
    participant = match.group(1) if match else ""
    videos = [] if media == "frames" else _video_candidates(root, video_id, participant)
    frames = [] if media == "video" else _frames_candidates(root, video_id, participant)
    return videos + frames


def searched_line(dataset: str, root: Path, video_id: str, media: str | None = None, shown: int = 4) -> str:
    """``looked for <root>/v2/clips/<id>.mp4, ...`` for one video: the first ``shown`` candidates, relative to
    ``root``, and how many more."""
    paths = media_candidates(dataset, root, video_id, media)
    rel = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths]
    more = f" and {len(rel) - shown} more" if len(rel) > shown else ""
    return f"looked for {', '.join(rel[:shown])}{more} under {root}"


def check_media(data: Dataset, root: Path, skip_bad: bool, media: str | None = None) -> int:
    """Rows whose media is missing: an error naming them unless ``skip_bad`` (then the run records them as
    failed rows, which ``xmic cache verify`` lists); returns how many there are."""
    missing = [r for r in data.records if r.video_path is None]
    if missing and not skip_bad:
        videos = sorted({r.video_id for r in missing})
        files = sorted({str(f) for s in data.splits for f in s.annotation_files})
        shown = ", ".join(videos[:8]) + (", …" if len(videos) > 8 else "")
        first = missing[0]
        raise FileNotFoundError(
            f"{len(missing)} rows of {', '.join(files)} have no media under {root}: {len(videos)} videos ({shown}); "
            f"e.g. segment {first.segment_id} (split {first.split}) needs {first.media_kind} {first.video_id} "
            f"({searched_line(data.splits[0].dataset, root, first.video_id, media)}). "
            "Download them, or pass --skip-bad to extract the rest and record these rows as failed "
            "(`xmic cache verify` lists them)"
        )
    return len(missing)
