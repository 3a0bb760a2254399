"""Batched image preprocessing on the device, matching the models' own image processors.

The Hugging Face CLIP and DINOv2 processors resize the shortest side (the long side becomes
``int(resize * long / short)``), resample with PIL back to uint8, centre-crop ``image_size`` at
``((H - S) // 2, (W - S) // 2)``, scale to [0, 1] and normalise. This module does the same on whole
batches of tensors: torch's antialiased bicubic/bilinear kernels are PIL's, and the result is integer levels
like PIL's uint8 output, so features agree with the processor path to cosine > 0.999. On the CPU the resize runs
torch's uint8 kernel, which rounds and clamps after each of its two separable passes as PIL does (it matches PIL to
a level in a few pixels of a thousand, and is several times faster than float); elsewhere, and for "nearest", it
runs in float and the result is rounded once.

Hand crops: ``boxes`` are normalised xyxy per frame, NaN meaning "no box, use the full frame"; a box
covers the pixels ``floor(x0 * W) : ceil(x1 * W)`` (and likewise in y).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from xmic.cache.schema import EncoderSpec

_MODES = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest"}


def _as_tensor(a: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A tensor sharing a numpy array's memory (copied only when read-only, e.g. ``np.asarray(PIL image)``)."""
    if not isinstance(a, np.ndarray):
        return a
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def as_uint8_batch(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A uint8 batch as a channels-first tensor view.

    Args:
        images: uint8 ``(B, H, W, 3)`` (channels last, assumed whenever the last axis is 3) or ``(B, 3, H, W)``;
            a numpy array or a tensor on any device.

    Returns:
        ``(B, 3, H, W)`` uint8 tensor on the input's device (a view where possible).
    """
    x = _as_tensor(images)
    if x.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (0..255), got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"images must be (B, H, W, 3) or (B, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] == 3:
        return x.permute(0, 3, 1, 2)
    if x.shape[1] == 3:
        return x
    raise ValueError(f"images must have 3 channels first or last, got shape {tuple(x.shape)}")


def resized_shape(height: int, width: int, shortest: int) -> tuple[int, int]:
    """``(h, w)`` after resizing the shortest side to ``shortest`` the way the HF processors round it."""
    if width <= height:
        return int(shortest * height / width), shortest
    return shortest, int(shortest * width / height)


def resize_shortest(
    x: torch.Tensor, shortest: int, interpolation: str = "bicubic", quantize: bool = True
) -> torch.Tensor:
    """Resize a float batch so that its shortest side is ``shortest``.

    Args:
        x: ``(B, C, H, W)`` float pixels in 0..255.
        shortest: Target length of the shorter side.
        interpolation: "bicubic", "bilinear" or "nearest" (antialiased except nearest).
        quantize: Clamp to 0..255 and round, like a resize that returns uint8 (the PIL processors do).

    Returns:
        ``(B, C, h, w)`` float pixels.
    """
    if interpolation not in _MODES:
        raise ValueError(f"unknown interpolation {interpolation!r}; use one of {sorted(_MODES)}")
    size = resized_shape(x.shape[-2], x.shape[-1], shortest)
    if size == tuple(x.shape[-2:]):
        return x
    mode = _MODES[interpolation]
    aa = mode != "nearest"
    y = F.interpolate(x, size=size, mode=mode, antialias=aa, align_corners=False if aa else None)
    if quantize:
        y = y.clamp_(0, 255).round_()
    return y


def uint8_kernel(device: torch.device, interpolation: str) -> bool:
    """Whether :func:`resize_levels` resizes uint8 directly: antialiased bicubic/bilinear on the CPU."""
    return device.type == "cpu" and interpolation in ("bicubic", "bilinear")


def resize_levels(x: torch.Tensor, shortest: int, interpolation: str = "bicubic") -> torch.Tensor:
    """Resize uint8 pixels so that the shortest side is ``shortest``, as integer levels (what PIL returns).

    On the CPU with bicubic/bilinear, torch's uint8 kernel (rounds and clamps after each separable pass, as PIL);
    otherwise :func:`resize_shortest` in float, rounded.

    Args:
        x: ``(B, 3, H, W)`` uint8 (any memory layout; the NHWC view of decoded frames is the fast one).
        shortest: Target length of the shorter side.
        interpolation: "bicubic", "bilinear" or "nearest".

    Returns:
        ``(B, 3, h, w)``: uint8 from the uint8 kernel, else float32 holding integers in 0..255.
    """
    if not uint8_kernel(x.device, interpolation):
        return resize_shortest(x.float(), shortest, interpolation)
    size = resized_shape(x.shape[-2], x.shape[-1], shortest)
    if size == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=size, mode=_MODES[interpolation], antialias=True, align_corners=False)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop ``(..., H, W)`` to ``(..., size, size)`` with the processors' offsets ``(H - size) // 2``."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot centre-crop {size}x{size} from {h}x{w}; resize must be at least image_size")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


@functools.lru_cache(maxsize=32)
def _mean_std(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, C, 1, 1)`` float32 mean and std on ``device``, made once per spec and device."""
    as_t = lambda v: torch.tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1)  # noqa: E731
    return as_t(mean), as_t(std)


def _normalize(x: torch.Tensor, spec: EncoderSpec) -> torch.Tensor:
    """``(B, C, S, S)`` levels 0..255 (uint8 or float) -> float32 ``(x / 255 - mean) / std``."""
    mean, std = _mean_std(tuple(spec.mean), tuple(spec.std), x.device)
    y = x.to(torch.float32, memory_format=torch.contiguous_format)
    if y is x:  # already float32 and contiguous: not written in place
        y = y.clone()
    return y.div_(255.0).sub_(mean).div_(std)


def _check_spec(spec: EncoderSpec) -> None:
    if spec.resize < spec.image_size:
        raise ValueError(f"encoder {spec.name}: resize {spec.resize} is smaller than image_size {spec.image_size}")


def _prepare_chw(x: torch.Tensor, spec: EncoderSpec) -> torch.Tensor:
    """``(B, 3, H, W)`` uint8 (already on the device) -> ``(B, 3, S, S)`` normalised float32."""
    y = resize_levels(x, spec.resize, spec.interpolation)
    return _normalize(center_crop(y, spec.image_size), spec)


def preprocess(
    images: torch.Tensor | np.ndarray, spec: EncoderSpec, device: str | torch.device | None = None
) -> torch.Tensor:
    """Resize, centre-crop and normalise a batch of frames as the encoder's image processor would.

    Args:
        images: uint8 ``(B, H, W, 3)`` or ``(B, 3, H, W)``.
        spec: The encoder's preprocessing (resize, image_size, interpolation, mean, std).
        device: Where to compute (default: where ``images`` is).

    Returns:
        ``(B, 3, S, S)`` float32 on ``device``, ``S = spec.image_size``.
    """
    _check_spec(spec)
    x = as_uint8_batch(images)
    if device is not None:
        x = x.to(device, non_blocking=True)
    return _prepare_chw(x, spec)


def preprocess_uint8(
    images: torch.Tensor | np.ndarray, spec: EncoderSpec, device: str | torch.device | None = None
) -> torch.Tensor:
    """The encoder's input before normalisation: resized and centre-cropped like :func:`preprocess`, as uint8.

    :func:`preprocess` is exactly ``normalize_uint8`` of this (its resize already rounds to integer levels), so these
    images are what the frame cache (:mod:`xmic.cache.frames`) stores.

    Args:
        images: uint8 ``(B, H, W, 3)`` or ``(B, 3, H, W)``.
        spec: The encoder's preprocessing (resize, image_size, interpolation).
        device: Where to compute (default: where ``images`` is).

    Returns:
        ``(B, 3, S, S)`` uint8 on ``device``.
    """
    _check_spec(spec)
    x = as_uint8_batch(images)
    if device is not None:
        x = x.to(device, non_blocking=True)
    y = resize_levels(x, spec.resize, spec.interpolation)
    return center_crop(y, spec.image_size).to(torch.uint8, memory_format=torch.contiguous_format)


def normalize_uint8(images: torch.Tensor, spec: EncoderSpec) -> torch.Tensor:
    """uint8 ``(..., 3, S, S)`` images (e.g. from the frame cache) -> the encoder's normalised float32 pixels."""
    if images.dtype != torch.uint8 or images.dim() < 3 or images.shape[-3] != 3:
        raise ValueError(f"images must be uint8 (..., 3, S, S), got {images.dtype} {tuple(images.shape)}")
    lead = images.shape[:-3]
    x = _normalize(images.reshape(-1, *images.shape[-3:]), spec)
    return x.reshape(*lead, *x.shape[1:])


def box_pixels(box: np.ndarray | torch.Tensor, height: int, width: int) -> tuple[int, int, int, int] | None:
    """Pixel bounds ``(x0, y0, x1, y1)`` (end-exclusive) of a normalised xyxy box, or None for a NaN box.

    Raises:
        ValueError: the box has ``x1 <= x0`` or ``y1 <= y0``, or lies outside the frame.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if any(math.isnan(v) for v in (x0, y0, x1, y1)):
        return None
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"empty box {[x0, y0, x1, y1]} (need x0 < x1 and y0 < y1)")
    if x1 <= 0 or y1 <= 0 or x0 >= 1 or y0 >= 1:
        raise ValueError(f"box {[x0, y0, x1, y1]} lies outside the frame (normalised coordinates are in [0, 1])")
    px0 = min(max(math.floor(x0 * width), 0), width - 1)
    py0 = min(max(math.floor(y0 * height), 0), height - 1)
    px1 = min(max(math.ceil(x1 * width), px0 + 1), width)
    py1 = min(max(math.ceil(y1 * height), py0 + 1), height)
    return px0, py0, px1, py1


def crop_boxes(frames: torch.Tensor | np.ndarray, boxes: torch.Tensor | np.ndarray) -> list[torch.Tensor]:
    """Cut each frame's box out of it (a view, no copy); a NaN box gives the whole frame.

    Args:
        frames: uint8 ``(B, H, W, 3)``.
        boxes: ``(B, 4)`` normalised xyxy, NaN = no box.

    Returns:
        B tensors ``(h_i, w_i, 3)`` uint8, each ``frames[i, y0:y1, x0:x1]``.

    Raises:
        ValueError: shapes disagree, or a box is empty or outside the frame (the message names its row).
    """
    x = _as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (B, H, W, 3), got shape {tuple(x.shape)}")
    b = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float64)
    if b.shape != (x.shape[0], 4):
        raise ValueError(f"boxes must be ({x.shape[0]}, 4) for {x.shape[0]} frames, got {b.shape}")
    height, width = x.shape[1], x.shape[2]
    crops = []
    for i in range(x.shape[0]):
        try:
            px = box_pixels(b[i], height, width)
        except ValueError as err:
            raise ValueError(f"hand box of row {i}: {err}") from None
        crops.append(x[i] if px is None else x[i, px[1] : px[3], px[0] : px[2]])
    return crops


def preprocess_crops(
    frames: torch.Tensor | np.ndarray,
    boxes: torch.Tensor | np.ndarray,
    spec: EncoderSpec,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Crop each frame's box (NaN = full frame), then preprocess every crop like :func:`preprocess`.

    Frames go to the device once; crops of equal size (all the box-less frames, for instance) are resized
    together.

    Args:
        frames: uint8 ``(B, H, W, 3)``.
        boxes: ``(B, 4)`` normalised xyxy, NaN = no box.
        spec: The encoder's preprocessing.
        device: Where to compute (default: where ``frames`` is).

    Returns:
        ``(B, 3, S, S)`` float32 on ``device``.
    """
    _check_spec(spec)
    x = _as_tensor(frames)
    if device is not None:
        x = x.to(device, non_blocking=True)
    crops = crop_boxes(x, boxes)
    dtype = torch.uint8 if uint8_kernel(x.device, spec.interpolation) else torch.float32
    levels = torch.empty((len(crops), 3, spec.image_size, spec.image_size), dtype=dtype, device=x.device)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, c in enumerate(crops):
        groups.setdefault((c.shape[0], c.shape[1]), []).append(i)
    for idx in groups.values():
        batch = crops[idx[0]][None] if len(idx) == 1 else torch.stack([crops[i] for i in idx])
        resized = center_crop(
            resize_levels(batch.permute(0, 3, 1, 2), spec.resize, spec.interpolation), spec.image_size
        )
        if len(idx) == 1:
            levels[idx[0]] = resized[0]
        else:
            levels[idx] = resized
    return _normalize(levels, spec)
