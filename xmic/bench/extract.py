"""`xmic bench extract`: clips/s of a whole extraction and the share of its time in decode, hands, encode, write.

The dataset is generated on the spot in the real Ego4D FHO layout (``v2/annotations/fho_lta_{train,taxonomy}.json``
and ``v2/clips/<clip_uid>.mp4``, :mod:`xmic.synth.video` videos) with boxes for ``--hands given``; the
encoders are tiny random-weight CLIP and DINOv2 checkpoints (:mod:`xmic.demo.tiny_models`), so the numbers
measure the pipeline (decode, crops, preprocessing, store writes), not a real ViT. :func:`write_ego4d_dataset`
and :func:`write_tiny_encoders` are also what the extraction tests build their data with.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

TAXONOMY = {"verbs": ["cut", "put", "take", "wash"], "nouns": ["knife", "bowl_(bowl,_dish)", "apple", "cup"]}
FPS = 30


def write_ego4d_dataset(
    root: str | Path,
    clips: dict[str, int],
    segments: dict[str, Sequence[tuple[int, int]]],
    *,
    split: str = "train",
    width: int = 64,
    height: int = 48,
    gop: int = 8,
    missing: Sequence[str] = (),
    first_action: int = 0,
) -> Path:
    """Write a small Ego4D FHO (LTA v2) dataset: annotations, taxonomy and H.264 clips.

    Args:
        root: Dataset root (created).
        clips: ``{clip_uid: number of frames}`` of the clips to write (at 30 fps, frame ``i`` shows ``i``).
        segments: ``{clip_uid: [(start_frame, end_frame), ...]}`` actions (inclusive frames); a clip_uid
            absent from ``clips`` or listed in ``missing`` has annotations but no video file.
        split: Which ``fho_lta_<split>.json`` to write (an existing one is replaced).
        width: Clip width. height: Clip height. gop: Keyframe interval.
        missing: Clip uids to leave without a video.
        first_action: ``action_idx`` of each clip's first action (segment ids are ``<clip_uid>_<action_idx>``).

    Returns:
        ``root``. Labels cycle through the taxonomy (action ``k`` of a clip: verb ``k % 4``, noun ``(k+1) % 4``).
    """
    from xmic.synth.video import write_test_video

    root = Path(root)
    ann = root / "v2" / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "fho_lta_taxonomy.json").write_text(json.dumps(TAXONOMY))
    for uid, n in clips.items():
        path = root / "v2" / "clips" / f"{uid}.mp4"
        if uid not in missing and not path.exists():
            write_test_video(path, n, width, height, fps=FPS, gop=gop)
    actions = []
    for uid, spans in segments.items():
        for k, (start, stop) in enumerate(spans):
            actions.append(
                {
                    "clip_uid": uid,
                    "action_idx": first_action + k,
                    "action_clip_start_sec": start / FPS,
                    "action_clip_end_sec": (stop + 1) / FPS,
                    "action_clip_start_frame": start,
                    "action_clip_end_frame": stop,
                    "verb_label": k % len(TAXONOMY["verbs"]),
                    "noun_label": (k + 1) % len(TAXONOMY["nouns"]),
                }
            )
    name = {"val": "fho_lta_val.json", "validation": "fho_lta_val.json"}.get(split, f"fho_lta_{split}.json")
    (ann / name).write_text(json.dumps({"version": "2", "split": split, "clips": actions}))
    return root


def write_tiny_encoders(model_dir: str | Path, names: Sequence[str] = ("clip-vit-b16", "dinov2-vitb14")) -> Path:
    """Tiny random-weight checkpoints at ``model_dir/<registry name>`` (what ``--model-dir`` then finds).

    CLIP entries get :func:`~xmic.demo.tiny_models.make_tiny_clip` (seeded by their position in ``names``, so
    two CLIP entries differ), DINOv2 entries :func:`~xmic.demo.tiny_models.make_tiny_dinov2`.
    """
    from xmic.demo.tiny_models import make_tiny_clip, make_tiny_dinov2
    from xmic.registry import get_encoder_spec

    words = [w.split("_")[0] for w in TAXONOMY["verbs"] + TAXONOMY["nouns"]]
    for seed, name in enumerate(names):
        out = Path(model_dir) / name
        if (out / "config.json").is_file():
            continue
        if get_encoder_spec(name).family == "clip":
            make_tiny_clip(out, vocab_words=words, seed=seed)
        else:
            make_tiny_dinov2(out, seed=seed)
    return Path(model_dir)


def write_given_boxes_for(boxes_dir: str | Path, clips: dict[str, int], seed: int = 0) -> Path:
    """A box on every other frame of each clip (``--hands given``), random but inside the frame."""
    from xmic.extract.hands.given import write_given_boxes

    rng = np.random.default_rng(seed)
    for uid, n in clips.items():
        frames = {}
        for i in range(0, n, 2):
            x0, y0 = rng.uniform(0.0, 0.5, 2)
            w, h = rng.uniform(0.2, 0.5, 2)
            frames[i] = [[float(x0), float(y0), float(min(1.0, x0 + w)), float(min(1.0, y0 + h))]]
        write_given_boxes(boxes_dir, uid, frames)
    return Path(boxes_dir)


def run_extract_bench(
    *,
    n_clips: int = 8,
    clip_frames: int = 600,
    segments_per_clip: int = 10,
    num_frames: int = 16,
    workers: int = 1,
    width: int = 320,
    height: int = 240,
    hands: str = "given",
    workdir: Path | None = None,
    model_dir: Path | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    decode_ceiling: bool = False,
) -> dict[str, Any]:
    """Generate the dataset and tiny encoders, run one extraction, and return its speed and time shares.

    ``model_dir`` holds ``clip-vit-b16`` and ``dinov2-vitb14`` checkpoints to use instead of tiny ones (e.g.
    real-size random weights); ``device`` and ``batch_size`` go to the extraction. ``decode_ceiling`` also
    times the decode path alone (same rows, settings and workers, no encoders): ``decode_only_clips_per_second``
    and ``share_of_decode_ceiling``.
    """
    from xmic.extract.runner import ExtractConfig, run_extraction

    rng = np.random.default_rng(0)
    clips = {f"clip{i:03d}": clip_frames for i in range(n_clips)}
    segments = {}
    for uid in clips:
        starts = np.sort(rng.integers(0, clip_frames - 60, segments_per_clip))
        segments[uid] = [(int(s), int(s + rng.integers(20, 60))) for s in starts]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t0 = time.perf_counter()
        root = write_ego4d_dataset(Path(tmp) / "ego4d", clips, segments, width=width, height=height, gop=15)
        models = model_dir if model_dir is not None else write_tiny_encoders(Path(tmp) / "models")
        boxes = write_given_boxes_for(Path(tmp) / "boxes", clips)
        generate_s = time.perf_counter() - t0
        config = ExtractConfig(
            dataset="ego4d",
            root=root,
            splits=("train",),
            cache=Path(tmp) / "cache",
            encoder="clip-vit-b16",
            second_encoder="dinov2-vitb14",
            hands=hands,
            hand_options={"hand_boxes": str(boxes)} if hands == "given" else {},
            model_dir=models,
            num_frames=num_frames,
            workers=workers,
            device=device,
            batch_size=batch_size,
            chunk_rows=16,
            progress=False,
        )
        report = run_extraction(config, echo=lambda _line: None)
        ceiling = time_decode_only(config) if decode_ceiling else None
    result = {
        "benchmark": "extract",
        "clips": report.rows_ok + report.rows_failed,
        "clips_ok": report.rows_ok,
        "clips_per_second": round(report.clips_per_second, 2),
        "shares": {k: round(v, 3) for k, v in report.shares.items()},
        "seconds": {k: round(v, 3) for k, v in report.timings.items()},
        "wall_seconds": round(report.wall_seconds, 2),
        "generate_seconds": round(generate_s, 2),
        "setup": f"{n_clips} clips x {clip_frames} frames {width}x{height} H.264, {segments_per_clip} segments each, "
        f"T={num_frames}, {'model-dir' if model_dir else 'tiny'} CLIP + DINOv2 on {device}, hands {hands}, "
        f"{workers} decode workers",
        "cpus": os.cpu_count(),
    }
    if ceiling is not None:
        rows, seconds = ceiling
        result["decode_only_clips_per_second"] = round(rows / seconds, 2)
        result["decode_only_seconds"] = round(seconds, 3)
        result["share_of_decode_ceiling"] = round(report.clips_per_second * seconds / rows, 3)
    return result


def time_decode_only(config: Any) -> tuple[int, float]:
    """``(rows, seconds)`` to decode every row of ``config``'s dataset through the extraction's decode pool
    (same chunks, settings and workers) with no hands, encoders or store: the ceiling of that extraction."""
    from xmic.extract.launch import DecodePool
    from xmic.extract.pipeline import DecodeSettings
    from xmic.extract.plan import FIRST_FRAME, load_dataset, plan_chunks

    records = load_dataset(config).records
    chunk_rows = config.chunk_rows or 16
    chunks = list(range(-(-len(records) // chunk_rows)))
    jobs = plan_chunks(
        records,
        chunk_rows,
        chunks,
        clamp_stop=config.dataset == "egtea",
        first_frame=FIRST_FRAME.get(config.dataset, 0),
    )
    settings = DecodeSettings(
        config.num_frames, config.resolved_bins(), config.decode_size, piece_rows=config.piece_rows
    )
    pool = DecodePool(jobs, settings, config.workers, config.prefetch)
    t0 = time.perf_counter()
    try:
        for _item in pool:
            pass
    finally:
        pool.close()
    return sum(j.row_stop - j.row_start for j in jobs), time.perf_counter() - t0


@click.command("extract")
@click.option("--clips", "n_clips", type=int, default=8, show_default=True, help="Generated clips.")
@click.option("--clip-frames", type=int, default=600, show_default=True, help="Frames per clip (30 fps).")
@click.option("--segments", "segments_per_clip", type=int, default=10, show_default=True, help="Segments per clip.")
@click.option("--frames", "num_frames", type=int, default=16, show_default=True, help="Slots T per segment.")
@click.option("--workers", type=int, default=1, show_default=True, help="Decode worker processes.")
@click.option("--hands", type=click.Choice(["none", "given"]), default="given", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def extract_bench_cmd(
    n_clips: int, clip_frames: int, segments_per_clip: int, num_frames: int, workers: int, hands: str, as_json: bool
) -> None:
    """Clips/s of an extraction (tiny encoders, generated videos) and its time shares."""
    result = run_extract_bench(
        n_clips=n_clips,
        clip_frames=clip_frames,
        segments_per_clip=segments_per_clip,
        num_frames=num_frames,
        workers=workers,
        hands=hands,
    )
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key:>18}: {value}")
