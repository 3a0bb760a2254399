"""Registry of frozen encoders: each name resolves to a model id, its preprocessing and its width.

Pure data (no torch, no transformers): stage two reads it to check a store's spec.
"""

from __future__ import annotations

from xmic.cache.schema import EncoderSpec

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: LaViLa's normalisation of its OpenAI-initialised models (``eval_zeroshot.py``: 108.33, 116.75, 104.09 / 68.50,
#: 66.63, 70.32 on the 0-255 scale; its first channel's mean differs from CLIP's 122.77), here on the 0-1 scale.
LAVILA_MEAN = (108.3272985 / 255, 116.7460125 / 255, 104.09373615000001 / 255)
LAVILA_STD = (68.5005327 / 255, 66.6321579 / 255, 70.32316305 / 255)
#: Where LaViLa's released dual encoders are (the model zoo of facebookresearch/LaViLa, docs/MODEL_ZOO.md).
LAVILA_ZOO = "https://dl.fbaipublicfiles.com/lavila/checkpoints/dual_encoders/ego4d/"

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
    # LaViLa's Ego4D dual encoders (TimeSformer visual tower, 4-frame clips, 256-wide joint space), from their
    # released .pth files (model id "lavila/<file>": not a hub id; xmic.weights.find_lavila_checkpoint).
    "lavila-tsf-l14": EncoderSpec(
        "lavila-tsf-l14",
        "lavila",
        "lavila/clip_openai_timesformer_large.narrator_rephraser.ep_0003.md5sum_c89337.pth",
        256,
        224,
        224,
        "bilinear",
        LAVILA_MEAN,
        LAVILA_STD,
        clip_frames=4,
    ),
    "lavila-tsf-b16": EncoderSpec(
        "lavila-tsf-b16",
        "lavila",
        "lavila/clip_openai_timesformer_base.narrator_rephraser.ep_0005.md5sum_d73a9c.pth",
        256,
        224,
        224,
        "bilinear",
        LAVILA_MEAN,
        LAVILA_STD,
        clip_frames=4,
    ),
    # The demo's tiny encoders, written by `xmic demo` into <out>/models/<name> (no hub id: nothing to download).
    "demo-clip": EncoderSpec("demo-clip", "clip", "xmic-demo/demo-clip", 64, 64, 64, "bicubic", CLIP_MEAN, CLIP_STD),
    "demo-dinov2": EncoderSpec(
        "demo-dinov2", "dinov2", "xmic-demo/demo-dinov2", 32, 28, 32, "bicubic", IMAGENET_MEAN, IMAGENET_STD
    ),
    "demo-lavila": EncoderSpec(
        "demo-lavila",
        "lavila",
        "xmic-demo/demo-lavila.pth",
        64,
        32,
        32,
        "bilinear",
        LAVILA_MEAN,
        LAVILA_STD,
        clip_frames=4,
    ),
}
#: Registry entries whose weights only `xmic demo` writes (model ids under this prefix are not on the hub).
DEMO_MODEL_PREFIX = "xmic-demo/"
#: Families with a text tower (the store holds their prompt embeddings; they can be the classified encoder), in
#: the order a store's default classified encoder is chosen.
TEXT_FAMILIES = ("clip", "lavila")


def text_encoders(encoders: dict[str, EncoderSpec]) -> list[str]:
    """The names of ``encoders`` that have a text tower: CLIP ones first, then LaViLa, each sorted by name."""
    ranked = [(TEXT_FAMILIES.index(e.family), n) for n, e in encoders.items() if e.family in TEXT_FAMILIES]
    return [n for _, n in sorted(ranked)]


DEMO_CLIP = "demo-clip"
DEMO_DINO = "demo-dinov2"
DEMO_LAVILA = "demo-lavila"


def get_encoder_spec(name: str) -> EncoderSpec:
    """The registry entry ``name``; a clear error listing the known names otherwise."""
    try:
        return ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}") from None
