"""Generate the synthetic benchmark: plan the chosen datasets, render and encode every video, write annotations,
hand boxes and ``manifest.json``.

Layout under ``out`` (``egtea/`` only when asked for, ``generate(..., datasets=("epic", "ego4d", "egtea"))``)::

    manifest.json
    epic/annotations/EPIC_100_{train,validation,verb_classes,noun_classes,video_info}.csv
    epic/PXX/videos/PXX_1YY.MP4             50 fps, frame numbers = annotation numbers
    epic/hand_boxes/PXX_1YY.json            --hands given --hand-boxes epic/hand_boxes
    ego4d/v2/annotations/fho_lta_{train,val,taxonomy}.json
    ego4d/v2/clips/<clip_uid>.mp4           30 fps
    ego4d/hand_boxes/<clip_uid>.json
    egtea/action_annotation/{verb,noun,action}_idx.txt
    egtea/action_annotation/{train,test}_split{1,2,3}.txt        splits 2 and 3 repeat split 1
    egtea/cropped_clips/<session>/<clip>.mp4                     24 fps, one action filling the clip
    egtea/hand_boxes/<clip>.json                                 frames 0..n-1 of the clip

An EGTEA clip is named ``<session>-<start_ms>-<end_ms>-F<first>-F<last>`` after its place in a (never
rendered) session video, with exactly ``last - first + 1`` frames, the count the reader derives from the name.

Everything is a function of ``seed`` and ``scale``: plans come from generators seeded with ``(seed, dataset)``
(the dataset's fixed position in :data:`~xmic.synth.datasets.ALL_DATASET_SPECS`, so a dataset's files do not
depend on which others are generated), each video's look from ``(seed, dataset, split, video)``, so the output
does not depend on the number of worker processes either.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from xmic.owned import clear_outputs, writing
from xmic.synth.datasets import (
    ALL_DATASET_SPECS,
    DEFAULT_DATASETS,
    DatasetSpec,
    Style,
    dataset_index,
    specs_for,
)
from xmic.synth.manifest import MANIFEST, build_manifest
from xmic.synth.motion import VideoPlan, plan_segment
from xmic.synth.writers import (
    EPIC_FIRST_FRAME,
    HAND_BOXES,
    ego4d_clip_path,
    egtea_clip_name,
    egtea_clip_path,
    epic_video_path,
    write_ego4d_annotations,
    write_egtea_annotations,
    write_epic_annotations,
)

#: Made-up EGTEA recipe names of the synthetic sessions (``P01-R01-BlockSort``).
EGTEA_RECIPES = ("BlockSort", "ShapeStack", "ColourMatch", "ToyTidy")


@dataclass(frozen=True)
class Sizes:
    """How much to generate per dataset (before ``scale``) and how the videos are cut.

    Attributes:
        train: Train segments per dataset.
        val: Validation (EGTEA: test) segments per dataset.
        segments_per_video: ``(min, max)`` segments in one video (the last video of a split may hold fewer); an
            EGTEA clip always holds one.
        segment_seconds: ``(min, max)`` duration of one action (of one EGTEA clip).
        gap_seconds: ``(min, max)`` unannotated time before each action (and after the last; for EGTEA the
            time between two clips of a session).
        participants: EPIC participants the videos are spread over (EGTEA: sessions the clips are spread over).
    """

    train: int = 200
    val: int = 200
    segments_per_video: tuple[int, int] = (6, 10)
    segment_seconds: tuple[float, float] = (0.7, 1.4)
    gap_seconds: tuple[float, float] = (0.15, 0.4)
    participants: int = 4

    def scaled(self, scale: float) -> tuple[int, int]:
        """``(train, val)`` segment counts at ``scale`` (at least 1 each)."""
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        return max(1, round(self.train * scale)), max(1, round(self.val * scale))


@dataclass
class VideoResult:
    """One written video."""

    video_id: str
    path: Path
    n_frames: int
    width: int
    height: int
    fps: float
    boxes_path: Path | None


@dataclass
class SynthReport:
    """What :func:`generate` wrote.

    Attributes:
        out: The output folder.
        manifest: The manifest as written.
        plans: ``{dataset: {split: [VideoPlan, ...]}}``.
        videos: ``{dataset: [VideoResult, ...]}`` (empty when videos were not rendered).
        files: Annotation files per dataset.
    """

    out: Path
    manifest: dict[str, Any]
    plans: dict[str, dict[str, list[VideoPlan]]]
    videos: dict[str, list[VideoResult]] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)


def _balanced(rng: np.random.Generator, names: tuple[str, ...], n: int) -> list[str]:
    """``n`` labels cycling through shuffled copies of ``names`` (every class about equally often)."""
    out: list[str] = []
    while len(out) < n:
        out.extend(names[i] for i in rng.permutation(len(names)))
    return out[:n]


def _video_ids(
    spec: DatasetSpec, rng: np.random.Generator, count: int, sizes: Sizes, taken: dict[str, int]
) -> list[str]:
    if spec.name == "epic":
        ids = []
        for _ in range(count):
            k = sum(taken.values()) % sizes.participants + 1
            participant = f"P{k:02d}"
            taken[participant] = taken.get(participant, 0) + 1
            ids.append(f"{participant}_{100 + taken[participant]}")  # extension-style: 50 fps
        return ids
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(count)]


def plan_dataset(
    spec: DatasetSpec, index: int, seed: int, scale: float, sizes: Sizes = Sizes()
) -> dict[str, list[VideoPlan]]:
    """Plan every video of both splits of one dataset.

    Args:
        spec: The dataset.
        index: Its position in :data:`DATASET_SPECS` (part of the seeds).
        seed: Global seed.
        scale: Multiplies the segment counts of ``sizes``.
        sizes: Counts and durations.

    Returns:
        ``{split name: videos}`` with the reader's split names (``train`` and ``validation`` / ``val`` /
        ``test``). An EGTEA video is one clip holding one segment (see :func:`plan_egtea_clips`).
    """
    rng = np.random.default_rng([seed, index])
    counts = sizes.scaled(scale)
    if spec.name == "egtea":
        return plan_egtea_clips(spec, rng, (seed, index), counts, sizes)
    taken: dict[str, int] = {}
    out: dict[str, list[VideoPlan]] = {}
    for split_index, (split, n_segments) in enumerate(zip(spec.splits, counts, strict=True)):
        verbs, nouns = _balanced(rng, spec.verbs, n_segments), _balanced(rng, spec.nouns, n_segments)
        per_video = []
        while sum(per_video) < n_segments:
            per_video.append(int(rng.integers(sizes.segments_per_video[0], sizes.segments_per_video[1] + 1)))
        per_video[-1] -= sum(per_video) - n_segments
        ids = _video_ids(spec, rng, len(per_video), sizes, taken)
        videos, used = [], 0
        for video_index, (video_id, n) in enumerate(zip(ids, per_video, strict=True)):
            segments, cursor = [], 0
            for k in range(n):
                cursor += max(1, round(rng.uniform(*sizes.gap_seconds) * spec.fps))
                length = max(2, round(rng.uniform(*sizes.segment_seconds) * spec.fps))
                segments.append(
                    plan_segment(spec, rng, k, verbs[used + k], nouns[used + k], cursor, cursor + length - 1)
                )
                cursor += length
            used += n
            n_frames = cursor + max(1, round(rng.uniform(*sizes.gap_seconds) * spec.fps))
            seed_tuple = (seed, index, split_index, video_index)
            videos.append(VideoPlan(video_id, split, n_frames, spec.fps, tuple(segments), seed_tuple))
        out[split] = videos
    return out


def egtea_sessions(count: int) -> list[str]:
    """``count`` EGTEA-style session names: ``P01-R01-BlockSort``, ``P02-R02-ShapeStack``, ..."""
    out = []
    for k in range(max(1, count)):
        recipe = k % len(EGTEA_RECIPES)
        out.append(f"P{k + 1:02d}-R{recipe + 1:02d}-{EGTEA_RECIPES[recipe]}")
    return out


def plan_egtea_clips(
    spec: DatasetSpec, rng: np.random.Generator, seeds: tuple[int, int], counts: tuple[int, int], sizes: Sizes
) -> dict[str, list[VideoPlan]]:
    """Plan EGTEA clips: one action per clip, the action filling the clip (frames ``0..n - 1``).

    The clips of both splits are spread round-robin over :func:`egtea_sessions`; each session keeps a cursor
    (its first clip starts 5-60 s in, then a gap of ``sizes.gap_seconds`` between clips), which gives each clip
    its place in the session video and so its name (:func:`~xmic.synth.writers.egtea_clip_name`).

    Args:
        spec: The EGTEA dataset.
        rng: The dataset's generator (seeded with ``seeds``).
        seeds: ``(global seed, dataset index)``, the start of each clip's render seed.
        counts: ``(train, test)`` clip counts.
        sizes: Durations and the number of sessions (``participants``).

    Returns:
        ``{"train": clips, "test": clips}`` (``spec.splits``).
    """
    sessions = egtea_sessions(sizes.participants)
    cursor = {s: round(rng.uniform(5.0, 60.0) * spec.fps) for s in sessions}
    out: dict[str, list[VideoPlan]] = {}
    made = 0
    for split_index, (split, n_clips) in enumerate(zip(spec.splits, counts, strict=True)):
        verbs, nouns = _balanced(rng, spec.verbs, n_clips), _balanced(rng, spec.nouns, n_clips)
        clips = []
        for k in range(n_clips):
            session = sessions[made % len(sessions)]
            made += 1
            first = cursor[session] + max(1, round(rng.uniform(*sizes.gap_seconds) * spec.fps))
            length = max(2, round(rng.uniform(*sizes.segment_seconds) * spec.fps))
            cursor[session] = first + length
            segment = plan_segment(spec, rng, 0, verbs[k], nouns[k], 0, length - 1)
            name = egtea_clip_name(session, first, first + length - 1, spec.fps)
            clips.append(VideoPlan(name, split, length, spec.fps, (segment,), (*seeds, split_index, k)))
        out[split] = clips
    return out


def render_video(style: Style, plan: VideoPlan, path: Path, boxes_dir: Path | None, frame_base: int = 0) -> VideoResult:
    """Render, encode and (optionally) write the given hand boxes of one video.

    The boxes file maps every frame of every segment to its boxes (hands and the manipulated object,
    normalised xyxy; :func:`xmic.extract.hands.given.write_given_boxes`), keyed in the annotations'
    numbering: rendered frame i is frame ``i + frame_base`` (EPIC counts from 1).
    """
    from xmic.extract.hands.given import write_given_boxes
    from xmic.synth.scene import VideoRenderer
    from xmic.synth.writers import write_mp4

    renderer = VideoRenderer(style, plan)
    wanted = {f for seg in plan.segments for f in range(seg.start, seg.stop + 1)}
    boxes: dict[int, list[list[float]]] = {}

    def frames() -> Iterator[np.ndarray]:
        for index, img, frame_boxes in renderer.frames():
            if index in wanted:
                boxes[index + frame_base] = frame_boxes
            yield img

    n = write_mp4(path, frames(), style.width, style.height, plan.fps)
    boxes_path = write_given_boxes(boxes_dir, plan.video_id, boxes) if boxes_dir is not None else None
    return VideoResult(plan.video_id, Path(path), n, style.width, style.height, plan.fps, boxes_path)


def existing_outputs(out: str | Path) -> list[Path]:
    """The paths of an earlier benchmark under ``out`` (``manifest.json``, ``epic/``, ``ego4d/``, ``egtea/``)
    that exist."""
    out = Path(out)
    return [p for p in (out / MANIFEST, *(out / spec.name for spec in ALL_DATASET_SPECS)) if p.exists()]


def _clear(out: Path, overwrite: bool) -> None:
    """Delete an earlier benchmark in ``out`` (``overwrite``): only the files its list of written files names."""
    present = existing_outputs(out)
    if present and not overwrite:
        listing = ", ".join(str(p) for p in present)
        raise FileExistsError(f"{out} already holds a synthetic benchmark ({listing}); pass --overwrite to replace it")
    clear_outputs(
        out, [p.name for p in present], what=f"the benchmark in {out}", fix="move it out or give another --out"
    )


def generate(
    out: str | Path,
    seed: int = 0,
    scale: float = 1.0,
    *,
    datasets: tuple[str, ...] = DEFAULT_DATASETS,
    overwrite: bool = False,
    videos: bool = True,
    workers: int | None = None,
    sizes: Sizes = Sizes(),
    on_video: Callable[[VideoResult], None] | None = None,
) -> SynthReport:
    """Write the chosen synthetic datasets, their hand boxes and ``manifest.json`` under ``out``.

    Args:
        out: Output folder (created).
        seed: Global seed; the same seed and scale give identical annotation files and decoded frames.
        scale: Multiplies the default segment counts (200 train + 200 validation per dataset).
        datasets: Which datasets to write: ``"epic"`` (kitchen A), ``"ego4d"`` (kitchen B), ``"egtea"``
            (kitchen C). Each dataset's files are the same whichever others are chosen.
        overwrite: Replace an earlier benchmark in ``out`` (only ``manifest.json``, ``epic/``, ``ego4d/`` and
            ``egtea/``, all of them whichever datasets are chosen now).
        videos: Render the MP4 files and hand boxes (False: annotations and manifest only).
        workers: Processes rendering videos (default: up to 2, one per CPU); 0 or 1 renders in-process. The
            workers are spawned, so a script calling this with workers > 1 needs ``if __name__ == "__main__":``.
        sizes: Counts and durations before ``scale``.
        on_video: Called after each written video (progress).

    Returns:
        A :class:`SynthReport`.

    Raises:
        FileExistsError: ``out`` already holds a benchmark and ``overwrite`` is False.
        ValueError: An unknown dataset name, or none.
    """
    specs = specs_for(datasets)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out, overwrite)
    names = [MANIFEST, *(spec.name for spec in ALL_DATASET_SPECS)]
    with writing(out, names, what=f"the benchmark in {out}", fix="move it out or give another --out"):
        plans = {spec.name: plan_dataset(spec, dataset_index(spec), seed, scale, sizes) for spec in specs}
        report = SynthReport(out, {}, plans)
        jobs = []
        for spec in specs:
            root = out / spec.name
            report.videos[spec.name] = []
            report.files[spec.name] = _write_annotations(root, spec, seed, plans)
            path_of = _MEDIA_PATHS[spec.name]
            for split_videos in plans[spec.name].values():
                base = EPIC_FIRST_FRAME if spec.name == "epic" else 0
                jobs += [
                    (spec, (spec.style, v, path_of(root, v.video_id), root / HAND_BOXES, base)) for v in split_videos
                ]
        if videos:
            for spec_name, result in _run(jobs, workers):
                report.videos[spec_name].append(result)
                if on_video is not None:
                    on_video(result)
            for results in report.videos.values():
                results.sort(key=lambda r: r.video_id)
        report.manifest = build_manifest(seed, scale, plans, sizes, videos)
        (out / MANIFEST).write_text(json.dumps(report.manifest, indent=2) + "\n", encoding="utf-8")
    return report


_MEDIA_PATHS: dict[str, Callable[[Path, str], Path]] = {
    "epic": epic_video_path,
    "ego4d": ego4d_clip_path,
    "egtea": egtea_clip_path,
}


def _write_annotations(
    root: Path, spec: DatasetSpec, seed: int, plans: dict[str, dict[str, list[VideoPlan]]]
) -> list[Path]:
    """Write one dataset's annotation files in its format; the written paths."""
    if spec.name == "epic":
        return write_epic_annotations(root, spec, plans[spec.name])
    if spec.name == "ego4d":
        return write_ego4d_annotations(root, spec, plans[spec.name], _parents(seed, plans))
    return write_egtea_annotations(root, spec, plans[spec.name])


def _parents(seed: int, plans: dict[str, dict[str, list[VideoPlan]]]) -> dict[str, tuple[str, int]]:
    """A made-up parent video and offset for every Ego4D clip (metadata only)."""
    rng = np.random.default_rng([seed, 99])
    out = {}
    for videos in plans["ego4d"].values():
        for v in videos:
            out[v.video_id] = (str(uuid.UUID(bytes=rng.bytes(16), version=4)), int(rng.integers(0, 30 * 600)))
    return out


def _run(jobs: list, workers: int | None) -> Iterator[tuple[str, VideoResult]]:
    """Yield ``(dataset name, VideoResult)`` as videos finish."""
    if workers is None:
        workers = min(2, os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        for spec, args in jobs:
            yield spec.name, render_video(*args)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(render_video, *args): spec.name for spec, args in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
