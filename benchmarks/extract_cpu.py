"""CPU cost of stage one's preprocessing and given hand boxes: the uint8 path against the float reference, one run.

Three measurements on synthetic frames of the demo's size (EPIC-like 192x108 frames, one torch thread):

* ``full``: whole frames, batches of 64, to the tiny CLIP's input (shorter side 64, bicubic, centre crop 64) and
  LaViLa's (32, bilinear): :func:`xmic.extract.preprocess.preprocess` (uint8 resize on the CPU) against the float
  reference (resize in float32, round, normalise) that the CPU path ran before.
* ``crops``: hand crops, one frame per box size (every crop resized alone, as :func:`preprocess_crops` does when
  the boxes differ).
* ``hands``: a ``--hands given`` box file of 13,600 frames of 3 boxes, checked and unioned as one table against
  frame by frame.

Each line prints the best of ``--repeat`` timings of both paths and their ratio (reference / new); for whole frames
also how far each path's resized pixels are from PIL's (what the Hugging Face processors compute): the largest
difference in levels and the share of values that differ. Timings are this machine's; the ratio is what to compare.

Usage::

    python benchmarks/extract_cpu.py [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Fastest of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def reference_preprocess(frames: np.ndarray, spec: Any) -> torch.Tensor:
    """The float path: ``(B, H, W, 3)`` uint8 -> float32 resize, rounded, centre crop, ``(x / 255 - mean) / std``."""
    from xmic.extract.preprocess import as_uint8_batch, center_crop, resize_shortest

    y = resize_shortest(as_uint8_batch(frames).float(), spec.resize, spec.interpolation)
    y = center_crop(y, spec.image_size)
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return (y / 255.0 - mean) / std


def pil_levels(frames: np.ndarray, spec: Any) -> np.ndarray:
    """What the Hugging Face processors feed the model before normalising: PIL's resize, then the centre crop."""
    from PIL import Image

    from xmic.extract.preprocess import center_crop, resized_shape

    h, w = resized_shape(frames.shape[1], frames.shape[2], spec.resize)
    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[spec.interpolation]
    out = np.stack([np.asarray(Image.fromarray(f).resize((w, h), resample)) for f in frames]).transpose(0, 3, 1, 2)
    return center_crop(torch.from_numpy(out), spec.image_size).numpy().astype(np.int16)


def levels_apart(levels: torch.Tensor | np.ndarray, pil: np.ndarray) -> dict[str, float]:
    """Largest difference in levels from PIL's and the share of values that differ at all."""
    d = np.abs(np.asarray(levels, dtype=np.int16) - pil)
    return {"max": int(d.max()), "share": float((d > 0).mean())}


def smooth_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 frames with edges and gradients (not white noise, which no camera gives)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(xx[None] / rng.uniform(3, 12, (n, 1, 1))) * np.cos(
        yy[None] / rng.uniform(3, 12, (n, 1, 1))
    )
    frames = base[..., None] + rng.normal(0, 12, (n, h, w, 3))
    frames[:, h // 3 : h // 2, w // 4 : w // 2] = rng.uniform(0, 255, (n, 1, 1, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def measure_preprocess(repeat: int) -> list[dict[str, Any]]:
    from xmic.extract.preprocess import crop_boxes, preprocess, preprocess_crops, preprocess_uint8
    from xmic.registry import DEMO_CLIP, DEMO_LAVILA, get_encoder_spec

    frames = smooth_frames(64, 108, 192)
    rng = np.random.default_rng(1)
    x0, y0 = rng.uniform(0.05, 0.5, 64), rng.uniform(0.05, 0.4, 64)
    boxes = np.stack([x0, y0, x0 + rng.uniform(0.15, 0.45, 64), y0 + rng.uniform(0.3, 0.55, 64)], 1).astype(np.float32)
    out = []
    for name in (DEMO_CLIP, DEMO_LAVILA):
        spec = get_encoder_spec(name)
        new_full = best_of(lambda s=spec: preprocess(frames, s), repeat)
        ref_full = best_of(lambda s=spec: reference_preprocess(frames, s), repeat)
        pil = pil_levels(frames, spec)
        std = torch.tensor(spec.std).view(1, -1, 1, 1)
        mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        ref_levels = ((reference_preprocess(frames, spec) * std + mean) * 255).round()
        from_pil = {
            "new": levels_apart(preprocess_uint8(frames, spec), pil),
            "reference": levels_apart(ref_levels, pil),
        }
        crops = crop_boxes(frames, boxes)
        new_crop = best_of(lambda s=spec: preprocess_crops(frames, boxes, s), repeat)
        ref_crop = best_of(lambda s=spec, cs=crops: [reference_preprocess(c.numpy()[None], s) for c in cs], repeat)
        for what, new, ref in (("full", new_full, ref_full), ("crops", new_crop, ref_crop)):
            out.append(
                {
                    "what": what,
                    "encoder": name,
                    "interpolation": spec.interpolation,
                    "images": len(frames),
                    "seconds_new": new,
                    "seconds_reference": ref,
                    "ratio": ref / new,
                    "from_pil": from_pil if what == "full" else None,
                }
            )
    return out


def measure_hands(repeat: int) -> dict[str, Any]:
    from xmic.extract.hands.given import _checked_table, _table_frame_by_frame

    rng = np.random.default_rng(2)
    n = 13_600
    lo = rng.uniform(0.05, 0.5, (n, 3, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(0.05, 0.4, (n, 3, 2))], axis=2).round(4)
    frames = {str(i): boxes[i].tolist() for i in range(n)}
    path = Path("synthetic.json")
    new = best_of(lambda: _checked_table(frames, path), repeat)
    ref = best_of(lambda: _table_frame_by_frame(frames, path), repeat)
    a, b = _checked_table(frames, path), _table_frame_by_frame(frames, path)
    same = a is not None and list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    return {
        "what": "hands",
        "frames": n,
        "seconds_new": new,
        "seconds_reference": ref,
        "ratio": ref / new,
        "equal": same,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timings per path; the best is kept (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = measure_preprocess(args.repeat) + [measure_hands(args.repeat)]
    if args.json:
        print(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
        return 0
    for r in rows:
        what = r["what"] if r["what"] == "hands" else f"{r['what']:5s} {r['encoder']} ({r['interpolation']})"
        extra = ""
        if r.get("from_pil"):
            n, f = r["from_pil"]["new"], r["from_pil"]["reference"]
            extra = (
                f"; from PIL: new {n['max']} level(s) at most in {n['share']:.2%} of values, "
                f"reference {f['max']} in {f['share']:.2%}"
            )
        extra += f", tables equal: {r['equal']}" if "equal" in r else ""
        print(
            f"{what:34s} new {r['seconds_new'] * 1e3:7.1f} ms  reference {r['seconds_reference'] * 1e3:7.1f} ms  "
            f"ratio {r['ratio']:4.1f}x{extra}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
