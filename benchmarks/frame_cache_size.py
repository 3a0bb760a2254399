"""Bytes per clip of the frame cache (``xmic extract --frames-cache``): at the demo's 64 px and at real size, 224 px.

Two measurements, both through the store's real storage path (:mod:`xmic.cache.frames`: one shard per chunk, one
JPEG image + crc32c per inner chunk, the shard index), bytes counted on disk:

* ``real``: a real egocentric video (default: the Ego4D clip in ``shared/realdata/media``, 384x288 H.264), every
  frame preprocessed like the encoder's input (``clip-vit-b16``: shorter side to 224, bicubic, centre crop 224;
  ``demo-clip``: 64), arranged as clips of T = 48 slots (16 bins x 3 candidates over sliding windows of the video)
  and written as a frame-cache array. Also the loss: mean absolute error and the lowest per-image PSNR of the
  decoded images against the encoder's input. EPIC-100 totals: bytes per clip x 67,217 (train) and x 76,885
  (train + validation, 9,668).
* ``demo``: an extraction of a generated EGTEA dataset (the demo's synthetic kitchens, 128x96) with a random tiny
  CLIP of the demo's shape (64 px) and ``--frames-cache``; bytes per clip as ``xmic cache info`` reports them.

Timings (encode/decode images per second on this machine's cores) are informational only.

Usage::

    python benchmarks/frame_cache_size.py [--video PATH] [--quality 95] [--no-demo] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = (
    REPO.parent / "shared" / "realdata" / "media" / "ego4d_lavila_3c0dffd0-e38e-4643-bc48-d513943dc20b_012_014.mp4"
)
EPIC_TRAIN, EPIC_VAL = 67_217, 9_668  # EPIC-KITCHENS-100 action segments: train, validation
T = 48


def decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def clips_of(frames: np.ndarray, n_clips: int) -> np.ndarray:
    """``(n_clips, T, ...)``: the 48 slots of windows covering the video from start to end, shifted evenly."""
    from xmic.sampling import slot_frames

    n = len(frames)
    span = max(1, (3 * n) // 4)
    starts = np.linspace(0, n - span, n_clips).round().astype(int)
    return np.stack([frames[slot_frames(int(s), int(s) + span - 1)] for s in starts])


def measure_real(video: Path, encoder: str, quality: int, n_clips: int = 4) -> dict[str, Any]:
    """Bytes per clip and loss of the real video's frames as ``encoder``'s input, stored as a frame cache."""
    import torch

    from xmic.cache import frames as frame_cache
    from xmic.cache.backend import Backend
    from xmic.extract.preprocess import preprocess_uint8
    from xmic.registry import get_encoder_spec

    spec = get_encoder_spec(encoder)
    source = decode(video)
    with torch.inference_mode():
        images = preprocess_uint8(source, spec).permute(0, 2, 3, 1).contiguous().numpy()
    clips = clips_of(images, n_clips)  # (R, T, S, S, 3)
    size = spec.image_size
    fs = frame_cache.frame_spec(size, quality)
    with tempfile.TemporaryDirectory() as tmp:
        backend = Backend(Path(tmp) / "frames.zarr", "zarr")
        key = "d/frames/x/full"
        with backend.session("a") as s:
            frame_cache.create_array(s, key, n_clips, T, fs, chunk_rows=n_clips)
            t0 = time.perf_counter()
            s.write(key, slice(0, n_clips), clips)
            t_write = time.perf_counter() - t0
        with backend.session("r") as s:
            t0 = time.perf_counter()
            back = s.read(key)
            t_read = time.perf_counter() - t0
        total = frame_cache.array_bytes(backend.path, key)
        meta = len((backend.path / key / "zarr.json").read_bytes())
    err = np.abs(back.astype(np.int16) - clips)
    mse = ((back.astype(np.float64) - clips) ** 2).reshape(-1, size * size * 3).mean(axis=1)
    psnr = 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))
    per_clip = (total - meta) / n_clips
    return {
        "video": str(video),
        "source": list(source.shape[1:3]),
        "encoder": encoder,
        "image_size": size,
        "quality": quality,
        "clips": n_clips,
        "bytes_per_image": per_clip / T,
        "bytes_per_clip": per_clip,
        "raw_bytes_per_clip": T * size * size * 3,
        "ratio": T * size * size * 3 / per_clip,
        "mean_abs_error": float(err.mean()),
        "max_abs_error": int(err.max()),
        "min_psnr_db": float(psnr.min()),
        "encode_images_per_s": n_clips * T / t_write,
        "decode_images_per_s": n_clips * T / t_read,
    }


def measure_demo(quality: int) -> dict[str, Any]:
    """Bytes per clip of an extraction of the demo's synthetic EGTEA kitchens with a 64 px tiny CLIP."""
    from xmic.cache.info import store_info
    from xmic.demo.models import CLIP_SHAPE
    from xmic.demo.tiny_models import make_tiny_clip
    from xmic.extract.runner import ExtractConfig, run_extraction
    from xmic.registry import DEMO_CLIP
    from xmic.synth import KITCHEN_C, generate
    from xmic.synth.generate import Sizes

    sizes = Sizes(train=4, val=4, segments_per_video=(3, 4), segment_seconds=(1.0, 2.0), gap_seconds=(0.2, 0.5))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out / "gen", seed=0, sizes=sizes, workers=0, datasets=("egtea",))
        words = sorted({w for n in KITCHEN_C.verbs + KITCHEN_C.nouns for w in n.split()})
        make_tiny_clip(
            out / "models" / DEMO_CLIP,
            vocab_words=words,
            dim=CLIP_SHAPE["dim"],
            image_size=CLIP_SHAPE["image_size"],
            patch=CLIP_SHAPE["patch"],
            layers=CLIP_SHAPE["layers"],
            heads=CLIP_SHAPE["heads"],
        )
        cfg = ExtractConfig(
            dataset="egtea",
            root=out / "gen" / "egtea",
            splits=("train", "test"),
            cache=out / "cache.zarr",
            encoder=DEMO_CLIP,
            hands="none",
            model_dir=out / "models",
            workers=0,
            device="cpu",
            progress=False,
            frames_cache=True,
            frames_quality=quality,
        )
        report = run_extraction(cfg, echo=lambda _: None)
        info = store_info(cfg.cache)["datasets"]["egtea"]["frames"][DEMO_CLIP]
    return {
        "encoder": DEMO_CLIP,
        "image_size": info["image_size"],
        "quality": quality,
        "clips": info["rows_written"],
        "rows_ok": report.rows_ok,
        "bytes_per_clip": info["bytes_per_clip"],
        "raw_bytes_per_clip": T * info["image_size"] ** 2 * 3,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="a real egocentric video")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo extraction")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"real": {}}
    if args.video.is_file():
        for encoder in ("demo-clip", "clip-vit-b16"):
            r = measure_real(args.video, encoder, args.quality)
            out["real"][str(r["image_size"])] = r
        real = out["real"].get("224")
        if real:
            out["epic100_clips"] = {"train": EPIC_TRAIN, "validation": EPIC_VAL}
            out["epic100_train_bytes_224"] = real["bytes_per_clip"] * EPIC_TRAIN
            out["epic100_train_val_bytes_224"] = real["bytes_per_clip"] * (EPIC_TRAIN + EPIC_VAL)
    if not args.no_demo:
        out["demo"] = measure_demo(args.quality)
    if args.json:
        print(json.dumps(out, indent=1))
        return out
    for size, r in out["real"].items():
        print(
            f"real {size} px ({r['encoder']}, {Path(r['video']).name} {r['source'][1]}x{r['source'][0]}): "
            f"{r['bytes_per_clip'] / 1024:.1f} KiB per clip of {T} images ({r['bytes_per_image'] / 1024:.1f} KiB each, "
            f"{r['ratio']:.1f}x smaller than raw); JPEG q{r['quality']} loss: mean |err| {r['mean_abs_error']:.2f}, "
            f"max {r['max_abs_error']}, PSNR >= {r['min_psnr_db']:.1f} dB; encode {r['encode_images_per_s']:.0f} "
            f"img/s, decode {r['decode_images_per_s']:.0f} img/s"
        )
    if "epic100_train_bytes_224" in out:
        print(
            f"EPIC-100 at 224 px: train {EPIC_TRAIN} clips {out['epic100_train_bytes_224'] / 1024**3:.1f} GiB; "
            f"train + validation {EPIC_TRAIN + EPIC_VAL} clips {out['epic100_train_val_bytes_224'] / 1024**3:.1f} GiB"
        )
    if "demo" in out:
        d = out["demo"]
        print(
            f"demo {d['image_size']} px ({d['encoder']}, synthetic EGTEA, {d['clips']} clips extracted): "
            f"{d['bytes_per_clip'] / 1024:.1f} KiB per clip (raw {d['raw_bytes_per_clip'] / 1024:.0f} KiB)"
        )
    return out


if __name__ == "__main__":
    main()
