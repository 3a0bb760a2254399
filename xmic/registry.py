"""Registry of frozen encoders: each name resolves to a model id, its preprocessing and its width.

Pure data (no torch, no transformers): stage two reads it to check a store's spec.
"""

from __future__ import annotations

from xmic.cache.schema import EncoderSpec

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENCODERS: dict[str, EncoderSpec] = {
    "clip-vit-b16": EncoderSpec(
        "clip-vit-b16", "clip", "openai/clip-vit-base-patch16", 512, 224, 224, "bicubic", CLIP_MEAN, CLIP_STD
    ),
    "clip-vit-l14": EncoderSpec(
        "clip-vit-l14", "clip", "openai/clip-vit-large-patch14", 768, 224, 224, "bicubic", CLIP_MEAN, CLIP_STD
    ),
    "dinov2-vits14": EncoderSpec(
        "dinov2-vits14", "dinov2", "facebook/dinov2-small", 384, 224, 256, "bicubic", IMAGENET_MEAN, IMAGENET_STD
    ),
    "dinov2-vitb14": EncoderSpec(
        "dinov2-vitb14", "dinov2", "facebook/dinov2-base", 768, 224, 256, "bicubic", IMAGENET_MEAN, IMAGENET_STD
    ),
    "dinov2-vitl14": EncoderSpec(
        "dinov2-vitl14", "dinov2", "facebook/dinov2-large", 1024, 224, 256, "bicubic", IMAGENET_MEAN, IMAGENET_STD
    ),
    # The demo's tiny encoders, written by `xmic demo` into <out>/models/<name> (no hub id: nothing to download).
    "demo-clip": EncoderSpec("demo-clip", "clip", "xmic-demo/demo-clip", 64, 64, 64, "bicubic", CLIP_MEAN, CLIP_STD),
    "demo-dinov2": EncoderSpec(
        "demo-dinov2", "dinov2", "xmic-demo/demo-dinov2", 32, 28, 32, "bicubic", IMAGENET_MEAN, IMAGENET_STD
    ),
}
#: Registry entries whose weights only `xmic demo` writes (model ids under this prefix are not on the hub).
DEMO_MODEL_PREFIX = "xmic-demo/"
DEMO_CLIP = "demo-clip"
DEMO_DINO = "demo-dinov2"


def get_encoder_spec(name: str) -> EncoderSpec:
    """The registry entry ``name``; a clear error listing the known names otherwise."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}") from None
