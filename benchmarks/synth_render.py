"""CPU time of the synthetic renderer (``xmic synth``): the renderer as it was before its speed-up against today's,
in one run, as a ratio; also the lighting lookup alone and the H.264 encoding of the same frames.

The earlier renderer is ``xmic/synth/scene.py`` at git revision ``--old`` (default ``cd7b831``, the last one that
lit every frame with fancy indexing and painted colours with numpy's broadcast), loaded from this repository's
history next to the current one. Both render the same videos of the three kitchens; the frames and boxes must be
equal (the run stops otherwise), then each path is timed ``--repeat`` times with ``time.process_time`` and the
best is kept. Timings depend on the machine and its load; the ratios are what to compare.

Usage::

    python benchmarks/synth_render.py [--old REV] [--videos 2] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from xmic.synth import scene  # noqa: E402
from xmic.synth.datasets import ALL_DATASET_SPECS, dataset_index  # noqa: E402
from xmic.synth.generate import plan_dataset  # noqa: E402
from xmic.synth.writers import write_mp4  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def old_scene(rev: str) -> ModuleType:
    """``xmic/synth/scene.py`` at git revision ``rev``, imported as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:xmic/synth/scene.py"], capture_output=True, text=True, check=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("old_scene", f.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    """Lowest CPU seconds of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="cd7b831", help="git revision of the earlier renderer")
    ap.add_argument("--videos", type=int, default=2, help="videos per kitchen")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    old = old_scene(args.old)
    jobs = []
    for spec in ALL_DATASET_SPECS:
        plans = plan_dataset(spec, dataset_index(spec), seed=0, scale=0.1)
        jobs += [(spec.style, v) for v in plans[spec.splits[0]][: args.videos]]
    n_frames = sum(v.n_frames for _, v in jobs)

    def render(module: ModuleType) -> list[tuple[np.ndarray, list[list[float]]]]:
        return [(img, boxes) for style, v in jobs for _, img, boxes in module.VideoRenderer(style, v).frames()]

    before, after = render(old), render(scene)
    for i, ((a, ba), (b, bb)) in enumerate(zip(before, after, strict=True)):
        if not (np.array_equal(a, b) and ba == bb):
            sys.exit(f"frame {i}: the renderers differ (pixels equal: {np.array_equal(a, b)}, boxes {ba} / {bb})")

    frame = after[0][0]
    lut = scene.VideoRenderer(*jobs[0]).lut
    lut_calls = 200
    lut_old = best_cpu(lambda: [old.apply_lut(frame, lut) for _ in range(lut_calls)], args.repeat) / lut_calls
    lut_new = best_cpu(lambda: [scene.apply_lut(frame, lut) for _ in range(lut_calls)], args.repeat) / lut_calls
    render_old = best_cpu(lambda: render(old), args.repeat)
    render_new = best_cpu(lambda: render(scene), args.repeat)
    style = jobs[0][0]
    frames = [img for img, _ in after[: jobs[0][1].n_frames]]
    with tempfile.TemporaryDirectory() as tmp:
        encode = best_cpu(lambda: write_mp4(Path(tmp) / "a.mp4", frames, style.width, style.height, 50.0), 1)
    result = {
        "frames": n_frames,
        "render_ms_per_frame": {"old": 1e3 * render_old / n_frames, "new": 1e3 * render_new / n_frames},
        "render_ratio_old_over_new": render_old / render_new,
        "apply_lut_us": {"fancy_index": 1e6 * lut_old, "take": 1e6 * lut_new},
        "apply_lut_ratio": lut_old / lut_new,
        "encode_ms_per_frame": 1e3 * encode / len(frames),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    out = io.StringIO()
    out.write(f"{n_frames} frames of {len(jobs)} videos; frames and boxes identical\n")
    r = result["render_ms_per_frame"]
    out.write(
        f"render: old {r['old']:.3f} ms/frame, new {r['new']:.3f} ms/frame, ratio {result['render_ratio_old_over_new']:.2f}x\n"
    )
    u = result["apply_lut_us"]
    out.write(
        f"apply_lut ({frame.shape[1]}x{frame.shape[0]}): fancy index {u['fancy_index']:.1f} us, np.take {u['take']:.1f} us, "
        f"ratio {result['apply_lut_ratio']:.2f}x (the renderer now lights once per video, not per frame)\n"
    )
    out.write(f"H.264 encode of the same frames (unchanged): {result['encode_ms_per_frame']:.3f} ms/frame\n")
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()
