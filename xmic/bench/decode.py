"""`xmic bench decode`: sparse per-video decoding against decode-everything-then-index, same video, same run.

The video is a generated 456x256 H.264 MP4 (:mod:`xmic.synth.video`) with EPIC-like segments:
1-5 s long, separated by gaps, covering a minority of the video. Each segment asks for its 32 slot frames
(:func:`xmic.sampling.slot_frames`). Both paths return the same arrays (checked); the reference
decodes every frame of the video (:func:`xmic.extract.decode.decode_all_then_index`), the sparse path
decodes each segment's span plus the keyframe lead-in (:func:`xmic.extract.decode.decode_video_segments`).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from xmic.extract.decode import DecodeStats, decode_all_then_index, decode_video_segments, probe_video
from xmic.sampling import slot_frames
from xmic.synth.video import write_test_video

GOAL_SPEEDUP = 3.0


def epic_like_segments(
    n_frames: int, fps: float, rng: np.random.Generator, min_s: float = 1.0, max_s: float = 5.0, max_gap_s: float = 20.0
) -> list[tuple[int, int]]:
    """Sorted ``(start, stop)`` segments (inclusive) of 1-5 s with gaps of 2-20 s, inside ``n_frames``."""
    segments = []
    pos = int(rng.uniform(0, 3) * fps)
    while True:
        length = int(rng.uniform(min_s, max_s) * fps)
        if pos + length > n_frames:
            return segments
        segments.append((pos, pos + length - 1))
        pos += length + int(rng.uniform(2.0, max_gap_s) * fps)


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run_decode_bench(
    json_out: bool = False,
    *,
    minutes: float = 4.0,
    fps: int = 30,
    gop: int = 15,
    bframes: int = 2,
    preset: str = "veryfast",
    num_frames: int = 32,
    repeats: int = 3,
    seed: int = 0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Generate the video, time both paths (``repeats`` interleaved runs each, the fastest counts) and return the numbers.

    Args:
        json_out: Print the result as one JSON line (otherwise nothing is printed).
        minutes: Video length.
        fps: Frame rate.
        gop: Keyframe interval in frames.
        bframes: Consecutive B-frames in the encoding.
        preset: x264 preset of the generated video.
        num_frames: Slots per segment.
        repeats: Timed runs of each path; the fastest counts.
        seed: Segment layout seed.
        workdir: Where the temporary video goes (default: the system temp dir).

    Returns:
        Timings (``sparse_seconds``, ``reference_seconds``), frames decoded by each path, ``speedup``
        (reference / sparse) and whether the outputs were identical.
    """
    n_frames = int(minutes * 60 * fps)
    segments = epic_like_segments(n_frames, fps, np.random.default_rng(seed))
    frame_lists = [slot_frames(a, b, num_frames) for a, b in segments]
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        video = Path(tmp) / "bench.mp4"
        t0 = time.perf_counter()
        write_test_video(video, n_frames, width=456, height=256, fps=fps, gop=gop, bframes=bframes, preset=preset)
        generate_s = time.perf_counter() - t0
        info = probe_video(video)

        def sparse() -> tuple[dict[int, np.ndarray], DecodeStats]:
            stats = DecodeStats()
            return dict(decode_video_segments(video, frame_lists, stats=stats)), stats

        warm = frame_lists[:2]  # untimed: loads codecs and warms the allocator for both paths alike
        list(decode_video_segments(video, warm))
        decode_all_then_index(video, warm)
        sparse_times, reference_times = [], []
        for _ in range(repeats):  # interleaved, so both paths see the same machine state; the fastest counts
            seconds, (sparse_out, stats) = _time(sparse)
            sparse_times.append(seconds)
            seconds, reference_out = _time(lambda: decode_all_then_index(video, frame_lists))
            reference_times.append(seconds)
        sparse_s, reference_s = min(sparse_times), min(reference_times)
    identical = len(sparse_out) == len(reference_out) and all(
        np.array_equal(sparse_out[s], ref) for s, ref in enumerate(reference_out)
    )
    covered = sum(b - a + 1 for a, b in segments)
    result = {
        "benchmark": "decode",
        "video": f"{info.width}x{info.height} {info.codec} {info.fps:g} fps, {n_frames} frames, gop {gop}, "
        f"bframes {bframes}, x264 {preset}",
        "cpus": os.cpu_count(),
        "generate_seconds": round(generate_s, 2),
        "segments": len(segments),
        "segment_coverage": round(covered / n_frames, 3),
        "frames_requested": int(sum(len(f) for f in frame_lists)),
        "repeats": repeats,
        "sparse_seconds": round(sparse_s, 3),
        "reference_seconds": round(reference_s, 3),
        "sparse_seconds_all": [round(t, 3) for t in sparse_times],
        "reference_seconds_all": [round(t, 3) for t in reference_times],
        "sparse_frames_decoded": stats.frames_decoded,
        "reference_frames_decoded": n_frames,
        "sparse_seeks": stats.seeks,
        "sparse_peak_frames_held": stats.peak_frames_held,
        "identical": identical,
        "speedup": round(reference_s / sparse_s, 3),
        "goal_speedup": GOAL_SPEEDUP,
    }
    if json_out:
        print(json.dumps(result))
    return result


@click.command("decode")
@click.option("--minutes", type=float, default=4.0, show_default=True, help="Length of the generated video.")
@click.option("--gop", type=int, default=15, show_default=True, help="Keyframe interval (frames).")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed runs per path (fastest counts).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def decode_bench_cmd(minutes: float, gop: int, repeats: int, as_json: bool) -> None:
    """Sparse per-video decode vs decode-everything-then-index on a generated 456x256 H.264 video."""
    result = run_decode_bench(False, minutes=minutes, gop=gop, repeats=repeats)
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key:>24}: {value}")
