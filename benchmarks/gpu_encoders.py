"""Frozen-encoder throughput on one CUDA device, against a bound derived from a bf16 matmul in the same run.

Builds real-size, random-weight vision towers from hand-written configs (no download): CLIP ViT-B/16,
CLIP ViT-L/14 (both with their projection) and DINOv2-B/14 run at 224 px, and LaViLa's TimeSformer-L/14 video
tower (4-frame clips at 224 px, bf16; its img/s counts frames, its bound comes from ``timesformer_flops``). For each, it times batches of
256 images in bf16 (bf16 weights; and fp32 weights under bf16 autocast, the encoders' default on CUDA),
then prints JSON with img/s, FLOPs per image (from the config), the img/s bound implied by the measured
bf16 8192^3 matmul TFLOP/s, and the share of that bound reached. It also times the on-device
preprocessing (resize + crop + normalise) of 456x256 frames, whole and as hand crops.

Usage::

    python benchmarks/gpu_encoders.py [--batch 256] [--iters 20] [--out result.json]
    python benchmarks/gpu_encoders.py --smoke   # tiny shapes on the CPU: checks that the script runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> (family, width, layers, heads, mlp width, patch, image size fed, config image size, projection)
REAL = {
    "clip-vit-b16": ("clip", 768, 12, 12, 3072, 16, 224, 224, 512),
    "clip-vit-l14": ("clip", 1024, 24, 16, 4096, 14, 224, 224, 768),
    "dinov2-vitb14": ("dinov2", 768, 12, 12, 3072, 14, 224, 518, 0),
}
SMOKE = {
    "clip-vit-b16": ("clip", 64, 2, 2, 256, 16, 64, 64, 32),
    "clip-vit-l14": ("clip", 96, 3, 3, 384, 14, 56, 56, 48),
    "dinov2-vitb14": ("dinov2", 64, 2, 2, 256, 14, 56, 98, 0),
}


def vit_flops(width: int, layers: int, mlp: int, patch: int, image: int, projection: int = 0) -> float:
    """FLOPs (2 per multiply-add) of one image through a ViT: patch embedding, blocks, optional projection.

    Per block with N tokens: QKV + output projections ``4 N d^2``, attention scores and mixing ``2 N^2 d``,
    MLP ``2 N d m`` multiply-adds. Norms, softmax and activations are left out (under 1 %).
    """
    patches = (image // patch) ** 2
    n = patches + 1
    block = 4 * n * width**2 + 2 * n**2 * width + 2 * n * width * mlp
    return 2.0 * (patches * 3 * patch**2 * width + layers * block + width * projection)


def lavila_config(smoke: bool):
    """LaViLa's TimeSformer-L/14 (4 frames, 224 px) or, for ``smoke``, a tiny model of the same layout."""
    import dataclasses

    from xmic.lavila.model import LAVILA_CONFIGS

    real = LAVILA_CONFIGS["tsf-l14"]
    if not smoke:
        return real
    return dataclasses.replace(
        real, image_size=56, vision_width=64, vision_layers=2, vision_heads=2, embed_dim=32, text_width=64,
        text_heads=2, text_layers=1, vocab_size=64,
    )  # fmt: skip


def timesformer_flops(cfg) -> float:
    """FLOPs (2 per multiply-add) of one clip through LaViLa's divided space-time video tower and its projection.

    Per block with ``F`` frames of ``P`` patches and ``N = F P + 1`` tokens: two attentions' QKV + output projections
    ``8 N d^2``; time attention (each patch against the CLS and its ``F`` positions) ``2 F P (F + 1) d``, space attention
    (against the CLS and its frame's ``P`` patches) ``2 F P (P + 1) d``, the CLS query against all tokens twice
    ``4 N d``; MLP ``2 N d (4 d)``.
    """
    d, f = cfg.vision_width, cfg.num_frames
    p = cfg.patches_per_frame
    n = f * p + 1
    block = 8 * n * d**2 + 2 * f * p * (f + 1) * d + 2 * f * p * (p + 1) * d + 4 * n * d + 8 * n * d**2
    return 2.0 * (f * p * 3 * cfg.patch_size**2 * d + cfg.vision_layers * block + d * cfg.embed_dim)


def build_lavila_video(cfg) -> torch.nn.Module:
    """LaViLa's video tower with its projection, random weights: ``(B, 3, F, S, S) -> (B, embed_dim)``."""
    from xmic.lavila.model import LavilaDualEncoder

    model = LavilaDualEncoder(cfg)
    model.transformer = torch.nn.Identity()  # the text tower is not timed
    return model


def bench_lavila(cfg, batch_clips: int, iters: int, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Clips/s and frames/s of LaViLa's video tower in ``dtype`` at ``batch_clips`` clips per pass."""
    model = build_lavila_video(cfg).eval().requires_grad_(False).to(device=device, dtype=dtype)
    x = torch.randn(batch_clips, 3, cfg.num_frames, cfg.image_size, cfg.image_size, device=device, dtype=dtype)

    def step(model=model, x=x) -> None:
        with torch.inference_mode():
            model.encode_video(x)

    sec = timed(step, iters, max(2, iters // 4), device)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    flops = timesformer_flops(cfg)
    return {
        "clips_per_s": batch_clips / sec,
        "img_per_s": batch_clips * cfg.num_frames / sec,
        "gflops_per_clip": flops / 1e9,
        "gflops_per_img": flops / cfg.num_frames / 1e9,
    }


def build(family: str, d: int, layers: int, heads: int, mlp: int, patch: int, cfg_image: int, proj: int):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    if family == "clip":
        cls = CLIPVisionModelWithProjection
        config = CLIPVisionConfig(
            hidden_size=d,
            intermediate_size=mlp,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            patch_size=patch,
            image_size=cfg_image,
            projection_dim=proj,
            hidden_act="quick_gelu",
        )
    else:
        cls = Dinov2Model
        config = Dinov2Config(
            hidden_size=d,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            mlp_ratio=mlp // d,
            patch_size=patch,
            image_size=cfg_image,
        )
    try:
        return cls._from_config(config, attn_implementation="sdpa")
    except (AttributeError, TypeError, ValueError):
        return cls(config)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, iters: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def matmul_tflops(n: int, iters: int, device: torch.device, dtype: torch.dtype) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sec = timed(lambda: a @ b, iters, max(3, iters // 5), device)
    return 2 * n**3 / sec / 1e12


def bench_model(name: str, cfg: tuple, batch: int, iters: int, device: torch.device, modes: list[str]) -> dict:
    family, d, layers, heads, mlp, patch, image, cfg_image, proj = cfg
    model = build(family, d, layers, heads, mlp, patch, cfg_image, proj).eval().requires_grad_(False)
    pixels = torch.randn(batch, 3, image, image, device=device)
    result: dict[str, Any] = {"flops_per_img_G": vit_flops(d, layers, mlp, patch, image, proj) / 1e9, "img_per_s": {}}
    for mode in modes:
        low = torch.bfloat16 if device.type == "cuda" else torch.float32
        weights = low if mode == "bf16" else torch.float32
        model.to(device=device, dtype=weights)
        x = pixels.to(weights)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if mode == "autocast" and device.type == "cuda" else None

        def step(model=model, x=x, amp=amp) -> None:
            with torch.inference_mode():
                if amp is None:
                    model(pixel_values=x)
                else:
                    with amp:
                        model(pixel_values=x)

        sec = timed(step, iters, max(2, iters // 4), device)
        result["img_per_s"][mode] = batch / sec
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def bench_preprocess(batch: int, iters: int, device: torch.device, spec_name: str, size: int) -> dict:
    import dataclasses

    from xmic.extract.preprocess import preprocess, preprocess_crops
    from xmic.registry import get_encoder_spec

    spec = get_encoder_spec(spec_name)
    spec = dataclasses.replace(spec, image_size=size, resize=round(size * spec.resize / spec.image_size))
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (batch, 256, 456, 3), dtype=torch.uint8, generator=gen).to(device)
    xy = torch.rand(batch, 2, generator=gen) * 0.6
    boxes = torch.cat([xy, xy + 0.1 + torch.rand(batch, 2, generator=gen) * 0.3], dim=1)
    boxes[::4] = float("nan")  # a quarter of the frames without a hand box
    full = timed(lambda: preprocess(frames, spec), iters, 2, device)
    crops = timed(lambda: preprocess_crops(frames, boxes, spec), max(1, iters // 4), 1, device)
    return {"frames": "456x256", "full_img_per_s": batch / full, "crops_img_per_s": batch / crops}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--matmul", type=int, default=8192, help="size n of the bf16 n^3 matmul")
    ap.add_argument("--modes", default="bf16,autocast", help="comma list of bf16 (bf16 weights), autocast")
    names = [*REAL, "lavila-tsf-l14"]
    ap.add_argument("--models", default=",".join(names), help="comma list of " + ", ".join(names))
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, runs on the CPU; numbers are meaningless")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)

    if not torch.cuda.is_available() and not args.smoke:
        print(
            "gpu_encoders.py: no CUDA device (torch.cuda.is_available() is False); this benchmark measures GPU "
            "throughput. Run it on a GPU host, or pass --smoke for a tiny CPU run that only checks the script.",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    configs = SMOKE if args.smoke else REAL
    batch, iters = (4, 2) if args.smoke else (args.batch, args.iters)
    n = 256 if args.smoke else args.matmul
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True

    tflops = matmul_tflops(
        n, 5 if args.smoke else 50, device, torch.bfloat16 if device.type == "cuda" else torch.float32
    )
    import transformers

    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)",
        "smoke": args.smoke,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "batch": batch,
        "matmul": {"n": n, "dtype": "bf16" if device.type == "cuda" else "fp32", "tflops": tflops},
        "models": {},
    }
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for name in [m.strip() for m in args.models.split(",") if m.strip() and m.strip() != "lavila-tsf-l14"]:
        if name not in configs:
            ap.error(f"unknown model {name!r}; choose from {', '.join(configs)}")
        r = bench_model(name, configs[name], batch, iters, device, modes)
        bound = tflops * 1e12 / (r["flops_per_img_G"] * 1e9)
        r["bound_img_per_s"] = bound
        r["share_of_bound"] = {m: v / bound for m, v in r["img_per_s"].items()}
        report["models"][name] = r
    if "lavila-tsf-l14" in args.models:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        r = bench_lavila(lavila_config(args.smoke), max(1, batch // 4), iters, device, dtype)
        r["bound_img_per_s"] = tflops * 1e12 / (r["gflops_per_img"] * 1e9)
        r["share_of_bound"] = {"bf16": r["img_per_s"] / r["bound_img_per_s"]}
        report["models"]["lavila-tsf-l14"] = r
    report["preprocess"] = bench_preprocess(batch, iters, device, "clip-vit-b16", 64 if args.smoke else 224)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
