"""Frozen CLIP / DINOv2 encoders loaded from local files only, with batched on-device preprocessing.

Where the weights are looked for, and the error when they are not there, is :func:`xmic.weights.find_model_dir`
(a model folder, a folder of model folders, a hub cache, ``$XMIC_MODEL_DIR``, the local Hugging Face cache; nothing is
ever downloaded). LaViLa entries load through :mod:`xmic.extract.lavila_encoder`.

The effective :class:`EncoderSpec` comes from the loaded files, not from the registry alone: ``dim`` from the
model config (CLIP ``projection_dim``, DINOv2 ``hidden_size``), preprocessing from ``preprocessor_config.json``
when present, ``source`` = the directory loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmic.cache.hashing import weights_sha256
from xmic.cache.schema import EncoderSpec
from xmic.extract.preprocess import preprocess, preprocess_crops
from xmic.registry import get_encoder_spec
from xmic.weights import ModelNotFoundError, check_weight_files, find_model_dir

log = logging.getLogger(__name__)

_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def _processor_preprocessing(folder: Path, fallback: EncoderSpec) -> dict[str, Any]:
    """Preprocessing fields of the spec read from ``preprocessor_config.json``; ``fallback``'s when absent."""
    keys = ("image_size", "resize", "interpolation", "mean", "std")
    base = {k: getattr(fallback, k) for k in keys}
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return base
    cfg = json.loads(path.read_text())
    size, crop = cfg.get("size"), cfg.get("crop_size", cfg.get("size"))
    resize = size if isinstance(size, int) else (size or {}).get("shortest_edge")
    if isinstance(crop, dict):
        crop = crop.get("height") if crop.get("height") == crop.get("width") else None
    if cfg.get("do_center_crop") is False:
        crop = None
    resample = _PIL_RESAMPLE.get(cfg.get("resample", 3))
    if not isinstance(resize, int) or not isinstance(crop, int) or resample is None:
        warnings.warn(
            f"{path}: only 'shortest_edge' resize + square centre crop + nearest/bilinear/bicubic are reproduced on "
            f"the device; using the registry preprocessing of {fallback.name} instead",
            stacklevel=3,
        )
        return base
    mean = tuple(float(v) for v in cfg.get("image_mean", fallback.mean))
    std = tuple(float(v) for v in cfg.get("image_std", fallback.std))
    return dict(image_size=crop, resize=resize, interpolation=resample, mean=mean, std=std)


def _from_pretrained(cls: Any, folder: Path) -> Any:
    try:
        return cls.from_pretrained(folder, local_files_only=True, attn_implementation="sdpa")
    except (ValueError, ImportError, TypeError) as err:
        log.info("SDPA attention unavailable for %s (%s); using the default attention", folder, err)
        return cls.from_pretrained(folder, local_files_only=True)


class FrozenEncoder:
    """A frozen image (and for CLIP, text) encoder on one device.

    Attributes:
        model: The transformers module (eval mode, no gradients).
        device: Where it runs.
        batch_size: Images per forward pass in :meth:`encode_images` / :meth:`encode_crops`.
    """

    def __init__(self, model: Any, spec: EncoderSpec, kind: str, device: torch.device, batch_size: int) -> None:
        self.model = model
        self._spec = spec
        self.kind = kind  # "clip" (full CLIPModel), "clip_vision" (vision tower + projection) or "dinov2"
        self.device = device
        self.batch_size = batch_size
        self._tokenizer: Any = None

    @property
    def spec(self) -> EncoderSpec:
        """The effective spec (dimension and preprocessing of the loaded files, ``source`` = their folder)."""
        return self._spec

    @property
    def dim(self) -> int:
        return self._spec.dim

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.float16 if next(self.model.parameters()).dtype == torch.float16 else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)

    def _forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(b, 3, S, S)`` normalised pixels -> ``(b, D)`` float32 embeddings."""
        pixels = pixels.to(self.device, dtype=next(self.model.parameters()).dtype)
        with self._autocast():
            if self.kind == "clip":
                out = self.model.visual_projection(self.model.vision_model(pixel_values=pixels).pooler_output)
            elif self.kind == "clip_vision":
                out = self.model(pixel_values=pixels).image_embeds
            else:
                out = self.model(pixel_values=pixels).pooler_output  # CLS after the final layer norm
        return out.float()

    def _batched(self, n: int, step: Any, batch_size: int | None) -> torch.Tensor:
        bs = batch_size or self.batch_size
        with torch.inference_mode():
            outs = [step(slice(i, min(n, i + bs))) for i in range(0, n, bs)]
            if not outs:
                return torch.empty((0, self.dim), dtype=torch.float32)
            return torch.cat(outs).cpu()

    def encode_pixels(self, pixel_values: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Embed already preprocessed pixels (e.g. the output of the model's own image processor).

        Args:
            pixel_values: ``(B, 3, S, S)`` float, normalised.

        Returns:
            ``(B, D)`` float32 on the CPU.
        """
        return self._batched(len(pixel_values), lambda s: self._forward_images(pixel_values[s]), batch_size)

    def encode_images(self, images: torch.Tensor | np.ndarray, batch_size: int | None = None) -> torch.Tensor:
        """Embed whole frames: resize + centre crop + normalise on the device, then the frozen model.

        Args:
            images: uint8 ``(B, H, W, 3)`` or ``(B, 3, H, W)``, numpy or torch, any device.
            batch_size: Images per forward pass (default ``self.batch_size``).

        Returns:
            ``(B, D)`` float32 on the CPU (CLIP: post-projection image embeddings; DINOv2: final-norm CLS token).
        """
        step = lambda s: self._forward_images(preprocess(images[s], self._spec, self.device))  # noqa: E731
        return self._batched(len(images), step, batch_size)

    def encode_crops(
        self, frames: torch.Tensor | np.ndarray, boxes: torch.Tensor | np.ndarray, batch_size: int | None = None
    ) -> torch.Tensor:
        """Embed the box of each frame (hand crops; NaN box = the full frame).

        Args:
            frames: uint8 ``(B, H, W, 3)``.
            boxes: ``(B, 4)`` normalised xyxy, NaN = no box.

        Returns:
            ``(B, D)`` float32 on the CPU.
        """
        step = lambda s: self._forward_images(preprocess_crops(frames[s], boxes[s], self._spec, self.device))  # noqa: E731
        return self._batched(len(frames), step, batch_size)

    @property
    def tokenizer(self) -> Any:
        """The CLIP tokenizer saved with the model (loaded on first use)."""
        if self.kind != "clip":
            raise ValueError(f"encoder {self._spec.name} ({self.kind}) has no text tower")
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self._spec.source, local_files_only=True)
            except (OSError, ValueError) as err:
                raise ModelNotFoundError(
                    f"no usable tokenizer in {self._spec.source} (needs tokenizer.json, or vocab.json + merges.txt, "
                    f"as saved with {self._spec.model_id}): {err}"
                ) from err
        return self._tokenizer

    def encode_texts(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Embed prompts with the frozen CLIP text tower.

        Args:
            texts: C strings.

        Returns:
            ``(C, D)`` float32 on the CPU, post-projection, not normalised.
        """
        tok = self.tokenizer
        max_len = min(int(tok.model_max_length), int(self.model.config.text_config.max_position_embeddings))

        def step(s: slice) -> torch.Tensor:
            enc = tok(list(texts[s]), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            with self._autocast():
                return self.model.text_projection(self.model.text_model(**enc).pooler_output).float()

        return self._batched(len(texts), step, batch_size)


def load_encoder(
    name: str,
    model_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
) -> Any:
    """Load the registry encoder ``name`` from local files (see the module docstring for the lookup order).

    Args:
        name: Registry name, e.g. "clip-vit-b16", "dinov2-vitb14", "lavila-tsf-l14" (a
            :class:`~xmic.extract.lavila_encoder.LavilaEncoder` from LaViLa's released checkpoint).
        model_dir: A model folder in Hugging Face layout, a parent folder of such folders, or a hub cache.
        device: "cpu", "cuda", "cuda:1", ...
        dtype: Weight dtype (default float32; on CUDA the forward runs under bf16 autocast either way,
            fp16 autocast when the weights are float16).
        batch_size: Images per forward pass (default 256 on GPU, 64 on CPU).

    Raises:
        ModelNotFoundError: the weights are not on disk.
        LavilaCheckpointError: a LaViLa file whose keys or shapes are not LaViLa's.
        ValueError: the folder holds a model of another family than the registry entry.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    base = get_encoder_spec(name)
    dev = torch.device(device)
    if base.family == "lavila":
        from xmic.extract.lavila_encoder import load_lavila_encoder

        return load_lavila_encoder(base, model_dir, dev, dtype, batch_size)
    folder = find_model_dir(base, model_dir)
    from transformers import AutoConfig, CLIPModel, CLIPVisionModelWithProjection, Dinov2Model

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    kinds = {"clip": ("clip", CLIPModel), "clip_vision_model": ("clip_vision", CLIPVisionModelWithProjection)}
    kinds["dinov2"] = ("dinov2", Dinov2Model)
    if config.model_type not in kinds or not kinds[config.model_type][0].startswith(base.family):
        raise ValueError(
            f"{folder / 'config.json'} is a {config.model_type!r} model, but encoder {name!r} needs a {base.family} one"
        )
    kind, cls = kinds[config.model_type]
    check_weight_files(folder)
    model = _from_pretrained(cls, folder)
    scale = float(model.logit_scale.detach().float().exp()) if kind == "clip" else 0.0  # read before any bf16 cast
    model = model.to(device=dev, dtype=dtype or torch.float32).eval().requires_grad_(False)
    if kind == "dinov2":
        dim, fallback = int(config.hidden_size), base
    else:
        dim = int(config.projection_dim)
        vision = config.vision_config if kind == "clip" else config
        ratio = base.resize / base.image_size
        fallback = dataclasses.replace(base, image_size=vision.image_size, resize=round(vision.image_size * ratio))
    spec = dataclasses.replace(
        base,
        dim=dim,
        source=str(folder),
        weights_sha256=weights_sha256(folder),
        logit_scale=scale,
        **_processor_preprocessing(folder, fallback),
    )
    log.info("loaded %s from %s (D=%d, %s)", name, folder, dim, dev)
    return FrozenEncoder(model, spec, kind, dev, batch_size or (256 if dev.type == "cuda" else 64))
