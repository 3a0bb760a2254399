"""Writers of the synthetic datasets in the real formats: EPIC-KITCHENS-100 CSVs, Ego4D FHO LTA JSONs, EGTEA Gaze+
split and class files, MP4 files.

Every writer is deterministic: the same plans give byte-identical files (no dates, no absolute paths).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from xmic.synth.datasets import VERBS, DatasetSpec, epic_noun_key, epic_verb_key, noun_parts
from xmic.synth.motion import VideoPlan

#: The 15 columns of ``EPIC_100_{train,validation}.csv``.
EPIC_COLUMNS = (
    "narration_id",
    "participant_id",
    "video_id",
    "narration_timestamp",
    "start_timestamp",
    "stop_timestamp",
    "start_frame",
    "stop_frame",
    "narration",
    "verb",
    "verb_class",
    "noun",
    "noun_class",
    "all_nouns",
    "all_noun_classes",
)
EPIC_ANNOTATIONS = "annotations"
EGO4D_ANNOTATIONS = "v2/annotations"
EGO4D_CLIPS = "v2/clips"
EGTEA_ANNOTATIONS = "action_annotation"
EGTEA_CLIPS = "cropped_clips"
#: EGTEA Gaze+ has three train/test partitions; the synthetic one has one, written under all three ids.
EGTEA_SPLIT_IDS = (1, 2, 3)
HAND_BOXES = "hand_boxes"
#: EPIC numbers frames from 1 (``frame_0000000001.jpg`` is a video's first frame): the CSVs say rendered frame
#: i as ``i + 1``.
EPIC_FIRST_FRAME = 1


def timestamp(seconds: float, decimals: int = 2) -> str:
    """``HH:MM:SS.ff`` as in the EPIC CSVs (``decimals`` digits after the point)."""
    total = round(max(seconds, 0.0), decimals)
    hours, rest = divmod(total, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:0{3 + decimals}.{decimals}f}"


def _csv_text(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(header))
    writer.writerows(rows)
    return buf.getvalue()


def epic_video_path(root: Path, video_id: str) -> Path:
    """``<root>/PXX/videos/PXX_YYY.MP4`` (the layout of the EPIC download script)."""
    return Path(root) / video_id.split("_")[0] / "videos" / f"{video_id}.MP4"


def ego4d_clip_path(root: Path, clip_uid: str) -> Path:
    """``<root>/v2/clips/<clip_uid>.mp4``."""
    return Path(root) / EGO4D_CLIPS / f"{clip_uid}.mp4"


def egtea_clip_name(session: str, first: int, last: int, fps: float) -> str:
    """EGTEA clip name ``<session>-<start_ms>-<end_ms>-F<first>-F<last>`` of frames ``first..last`` of a session.

    ``start_ms`` / ``end_ms`` are the times of the first and the last frame at ``fps``, so the name's frame span
    (``last - first``, what the reader takes as the clip's last frame) and its duration agree.
    ``egtea_clip_name("P01-R01-BlockSort", 240, 263, 24.0) == "P01-R01-BlockSort-10000-10958-F000240-F000263"``.
    """
    start_ms, end_ms = round(first * 1000.0 / fps), round(last * 1000.0 / fps)
    return f"{session}-{start_ms}-{end_ms}-F{first:06d}-F{last:06d}"


def egtea_session(clip: str) -> str:
    """The session part of an EGTEA clip name (everything before its four numeric fields)."""
    return clip.rsplit("-", 4)[0]


def egtea_clip_path(root: Path, clip: str) -> Path:
    """``<root>/cropped_clips/<session>/<clip>.mp4`` (the layout of the EGTEA Gaze+ download)."""
    return Path(root) / EGTEA_CLIPS / egtea_session(clip) / f"{clip}.mp4"


def write_epic_annotations(root: Path, spec: DatasetSpec, splits: dict[str, list[VideoPlan]]) -> list[Path]:
    """Write ``EPIC_100_{split}.csv`` for each split, the class CSVs and ``EPIC_100_video_info.csv``.

    Args:
        root: Dataset root; files go to ``<root>/annotations``.
        spec: The dataset (its class lists and frame rate).
        splits: ``{split name ("train", "validation"): videos}``.

    Returns:
        The written files.
    """
    folder = Path(root) / EPIC_ANNOTATIONS
    folder.mkdir(parents=True, exist_ok=True)
    verb_id = {v: i for i, v in enumerate(spec.verbs)}
    noun_id = {n: i for i, n in enumerate(spec.nouns)}
    written = []
    for split, videos in splits.items():
        rows = []
        for video in videos:
            for seg in video.segments:
                start_sec, stop_sec = seg.start / spec.fps, seg.stop / spec.fps
                noun_key = epic_noun_key(seg.noun)
                rows.append(
                    [
                        f"{video.video_id}_{seg.action_idx}",
                        video.video_id.split("_")[0],
                        video.video_id,
                        timestamp(max(start_sec - 0.25, 0.0), 3),
                        timestamp(start_sec),
                        timestamp(stop_sec),
                        seg.start + EPIC_FIRST_FRAME,
                        seg.stop + EPIC_FIRST_FRAME,
                        f"{seg.verb} {seg.noun}",
                        epic_verb_key(seg.verb),
                        verb_id[seg.verb],
                        noun_key,
                        noun_id[seg.noun],
                        str([noun_key]),
                        str([noun_id[seg.noun]]),
                    ]
                )
        path = folder / f"EPIC_100_{split}.csv"
        path.write_text(_csv_text(EPIC_COLUMNS, rows), encoding="utf-8")
        written.append(path)
    verb_rows = [
        [i, epic_verb_key(v), str([epic_verb_key(v), *VERBS[v].synonyms]), VERBS[v].category]
        for i, v in enumerate(spec.verbs)
    ]
    noun_rows = []
    for i, n in enumerate(spec.nouns):
        colour, shape = noun_parts(n)
        noun_rows.append([i, epic_noun_key(n), str([epic_noun_key(n), f"{colour}-{shape}"]), "toys"])
    info_rows = [
        [v.video_id, f"{v.n_frames / spec.fps:.2f}", f"{spec.fps:.1f}", f"{spec.style.width}x{spec.style.height}"]
        for videos in splits.values()
        for v in videos
    ]
    for name, header, rows in (
        ("EPIC_100_verb_classes.csv", ("id", "key", "instances", "category"), verb_rows),
        ("EPIC_100_noun_classes.csv", ("id", "key", "instances", "category"), noun_rows),
        ("EPIC_100_video_info.csv", ("video_id", "duration", "fps", "resolution"), sorted(info_rows)),
    ):
        path = folder / name
        path.write_text(_csv_text(header, rows), encoding="utf-8")
        written.append(path)
    return written


def write_ego4d_annotations(
    root: Path, spec: DatasetSpec, splits: dict[str, list[VideoPlan]], parents: dict[str, tuple[str, int]]
) -> list[Path]:
    """Write ``fho_lta_{split}.json`` for each split and ``fho_lta_taxonomy.json``.

    Args:
        root: Dataset root; files go to ``<root>/v2/annotations``.
        spec: The dataset.
        splits: ``{split name ("train", "val"): clips}`` (a clip's ``video_id`` is its ``clip_uid``).
        parents: ``{clip_uid: (video_uid, first frame of the clip in the parent video)}``.

    Returns:
        The written files.
    """
    folder = Path(root) / EGO4D_ANNOTATIONS
    folder.mkdir(parents=True, exist_ok=True)
    raw_verbs, raw_nouns = spec.raw_verbs(), spec.raw_nouns()
    verb_id = {v: i for i, v in enumerate(spec.verbs)}
    noun_id = {n: i for i, n in enumerate(spec.nouns)}
    fps = spec.fps
    written = []
    clip_id = 0
    for split, clips in splits.items():
        entries = []
        for clip in clips:
            video_uid, offset = parents[clip.video_id]
            for seg in clip.segments:
                v, n = verb_id[seg.verb], noun_id[seg.noun]
                entries.append(
                    {
                        "clip_id": clip_id,
                        "clip_uid": clip.video_id,
                        "video_uid": video_uid,
                        "clip_parent_start_sec": _sec(offset, fps),
                        "clip_parent_end_sec": _sec(offset + clip.n_frames, fps),
                        "clip_parent_start_frame": offset,
                        "clip_parent_end_frame": offset + clip.n_frames,
                        "action_idx": seg.action_idx,
                        "action_video_start_sec": _sec(offset + seg.start, fps),
                        "action_video_end_sec": _sec(offset + seg.stop, fps),
                        "action_video_start_frame": offset + seg.start,
                        "action_video_end_frame": offset + seg.stop,
                        "action_clip_start_sec": _sec(seg.start, fps),
                        "action_clip_end_sec": _sec(seg.stop, fps),
                        "action_clip_start_frame": seg.start,
                        "action_clip_end_frame": seg.stop,
                        "verb": raw_verbs[v],
                        "noun": raw_nouns[n],
                        "verb_label": v,
                        "noun_label": n,
                    }
                )
            clip_id += 1
        doc = {
            "version": "v2",
            "date": "synthetic",
            "description": f"xmic synthetic {spec.title} in the Ego4D FHO LTA format",
            "split": split,
            "clips": entries,
        }
        path = folder / f"fho_lta_{split}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        written.append(path)
    path = folder / "fho_lta_taxonomy.json"
    path.write_text(json.dumps({"verbs": raw_verbs, "nouns": raw_nouns}, indent=1), encoding="utf-8")
    written.append(path)
    return written


def _idx_text(names: Iterable[str]) -> str:
    """EGTEA class file text: one ``<name> <id>`` line per class, ids from 1."""
    return "".join(f"{name} {i}\n" for i, name in enumerate(names, start=1))


def egtea_actions(splits: dict[str, list[VideoPlan]], spec: DatasetSpec) -> list[tuple[int, int]]:
    """The action classes: every ``(verb label, noun label)`` pair some clip has, sorted (0-based labels)."""
    verb_id = {v: i for i, v in enumerate(spec.verbs)}
    noun_id = {n: i for i, n in enumerate(spec.nouns)}
    return sorted({(verb_id[s.verb], noun_id[s.noun]) for clips in splits.values() for c in clips for s in c.segments})


def write_egtea_annotations(root: Path, spec: DatasetSpec, splits: dict[str, list[VideoPlan]]) -> list[Path]:
    """Write ``{verb,noun,action}_idx.txt`` and ``{split}_split{1,2,3}.txt`` for each split.

    Split lines are ``<clip> <action id> <verb id> <noun id>`` (ids from 1), one per clip in plan order. The
    synthetic benchmark has one partition: ``train_split2/3.txt`` and ``test_split2/3.txt`` repeat split 1, so
    every file the reader can be asked for exists (and ``test_splits="all"`` keeps each clip once).

    Args:
        root: Dataset root; files go to ``<root>/action_annotation``.
        spec: The dataset.
        splits: ``{split name ("train", "test"): clips}``; each clip has exactly one segment, frames
            ``0..n_frames - 1``, and its ``video_id`` is its EGTEA clip name.

    Returns:
        The written files.
    """
    folder = Path(root) / EGTEA_ANNOTATIONS
    folder.mkdir(parents=True, exist_ok=True)
    raw_verbs, raw_nouns = spec.raw_verbs(), spec.raw_nouns()
    verb_id = {v: i for i, v in enumerate(spec.verbs)}
    noun_id = {n: i for i, n in enumerate(spec.nouns)}
    actions = egtea_actions(splits, spec)
    action_id = {pair: i for i, pair in enumerate(actions)}
    classes = {
        "verb_idx.txt": _idx_text(raw_verbs),
        "noun_idx.txt": _idx_text(raw_nouns),
        "action_idx.txt": _idx_text(f"{raw_verbs[v]} {raw_nouns[n]}" for v, n in actions),
    }
    texts: dict[str, str] = {}
    for split, clips in splits.items():
        lines = []
        for clip in clips:
            if len(clip.segments) != 1 or (clip.segments[0].start, clip.segments[0].stop) != (0, clip.n_frames - 1):
                raise ValueError(f"EGTEA clip {clip.video_id} must be one segment filling the clip")
            v, n = verb_id[clip.segments[0].verb], noun_id[clip.segments[0].noun]
            lines.append(f"{clip.video_id} {action_id[(v, n)] + 1} {v + 1} {n + 1}\n")
        texts.update({f"{split}_split{k}.txt": "".join(lines) for k in EGTEA_SPLIT_IDS})
    written = []
    for name, text in {**texts, **classes}.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _sec(frame: int, fps: float) -> float:
    return round(frame / fps, 6)


def _rate(fps: float) -> Fraction | int:
    return int(fps) if float(fps).is_integer() else Fraction(fps).limit_denominator(1001)


def write_mp4(
    path: Path, frames: Iterable[np.ndarray], width: int, height: int, fps: float, gop: int | None = None
) -> int:
    """Encode RGB frames as H.264 (libx264, yuv420p, fixed keyframe interval, no B-frames, one thread).

    Args:
        path: Output ``.mp4`` / ``.MP4`` (parent folders are created).
        frames: ``(height, width, 3)`` uint8 images in order.
        width: Frame width (even).
        height: Frame height (even).
        fps: Constant frame rate.
        gop: Keyframe interval in frames (default half a second).

    Returns:
        The number of frames written.
    """
    import av

    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    gop = gop or max(1, math.ceil(fps / 2))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("h264", rate=_rate(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {
            "preset": "ultrafast",
            "crf": "23",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:threads=1",
        }
        for img in frames:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = n
            container.mux(stream.encode(frame))
            n += 1
        container.mux(stream.encode(None))
    return n
