"""Stage one's frame cache (``xmic extract ... --frames-cache``): the classified CLIP encoder's input frames.

For every slot of every row the full frame is resized and centre-cropped exactly as the encoder's preprocessing
does (:func:`xmic.extract.preprocess.preprocess_uint8`, on the encoder's device) and kept as uint8 until the chunk
is written with its other arrays (:mod:`xmic.cache.frames` stores it). A chunk's frames stay in host memory until
then: ``chunk_rows x T x S x S x 3`` bytes (at 224 px and T = 48, 7.2 MB per row; ``--chunk-rows`` bounds it).

Refusals, before any model is loaded or frame decoded: an HDF5 store (no image codec there), a missing codec
(imagecodecs, the ``frames`` extra), an ``--encoder`` that is not a CLIP, and a store group whose frame cache does
not match the request (none where one is asked for, or one where none is asked for, or another quality).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xmic.cache import frames as store_frames
from xmic.cache.errors import StoreError, StoreSpecError


def check_request(config: Any) -> None:
    """Refuse what a ``--frames-cache`` run cannot do (nothing to check without the flag).

    Raises:
        StoreError: HDF5 store, or imagecodecs missing (one line naming the extra).
        ValueError: ``--encoder`` is not a CLIP encoder, or the quality is out of range.
    """
    from xmic.cache.backend import detect_format
    from xmic.registry import get_encoder_spec

    if not config.frames_cache:
        return
    if detect_format(config.cache, config.fmt) == "h5":
        raise StoreError(
            "--frames-cache needs a Zarr store: an HDF5 file has no well-kept image codec (JPEG) to store frames "
            "with; drop --format h5 (or the .h5 suffix of --cache), or drop --frames-cache"
        )
    family = get_encoder_spec(config.encoder).family
    if family != "clip":
        raise ValueError(
            f"--frames-cache stores the input frames of the classified CLIP encoder (--encoder) for Vita-CLIP; "
            f"--encoder {config.encoder} is a {family} encoder"
        )
    store_frames.frame_spec(1, config.frames_quality)  # the quality's range
    store_frames.require_codec()


def frames_spec(config: Any, encoders: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``StoreSpec.frames`` of this run: ``{--encoder: frame_spec(its image_size, --frames-quality)}`` or ``{}``."""
    if not config.frames_cache:
        return {}
    enc = encoders[config.encoder]
    return {config.encoder: store_frames.frame_spec(enc.spec.image_size, config.frames_quality)}


def check_existing(config: Any) -> None:
    """Refuse to resume a store group whose frame cache differs from what ``config`` asks (unless ``--overwrite``).

    A group made without a frame cache cannot gain one in place: the frames of its done chunks were never kept,
    so every chunk would be decoded again; that is a re-extraction, said with ``--overwrite``. The message gives
    the command.
    """
    from xmic.cache import layout
    from xmic.cache.backend import Backend
    from xmic.cache.reader import _reextract_command

    if config.overwrite or not Path(config.cache).exists():
        return
    try:
        with Backend(config.cache, config.fmt).session("r") as s:
            if not s.is_group(config.dataset) or layout.SPEC_ATTR not in s.get_attrs(config.dataset):
                return
            stored = layout.read_spec(s, config.dataset, str(config.cache))
    except StoreError:
        return  # not a store this run can resume: StoreWriter.create says why
    have = stored.frames
    where = f"store {config.cache}, dataset group {config.dataset!r}"
    if config.frames_cache and not have:
        cmd = _reextract_command(stored, str(config.cache), config.dataset, frames_cache=True)
        raise StoreSpecError(
            f"{where} was extracted without a frame cache; --frames-cache cannot be added to it in place (the "
            "frames of its done chunks were never kept, so every chunk is decoded again): re-extract the group, "
            f"features included, with --overwrite:\n  {cmd}"
        )
    if not config.frames_cache and have:
        quality = next(iter(have.values())).get("quality")
        extra = "" if quality == store_frames.DEFAULT_QUALITY else f" --frames-quality {quality}"
        raise StoreSpecError(
            f"{where} has a frame cache ({', '.join(sorted(have))}); resuming it without one would leave the frames "
            f"of the remaining chunks unwritten: add --frames-cache{extra} to the command (or --overwrite to "
            "re-extract the group without it)"
        )
    if config.frames_cache:
        encoder, fs = next(iter(have.items()))
        if encoder != config.encoder or fs.get("quality") != config.frames_quality:
            raise StoreSpecError(
                f"{where} has a frame cache of {encoder} at JPEG quality {fs.get('quality')}; this run asks for "
                f"{config.encoder} at quality {config.frames_quality}: resume with --encoder {encoder} "
                f"--frames-quality {fs.get('quality')}, or --overwrite to re-extract the group"
            )


def crop_frames(enc: Any, frames: np.ndarray) -> np.ndarray:
    """The encoder's uint8 input of every slot: ``(n, T, H, W, 3)`` decoded frames -> ``(n, T, S, S, 3)``.

    Runs :func:`~xmic.extract.preprocess.preprocess_uint8` on the encoder's device in batches of its batch size.
    """
    import torch

    from xmic.extract.preprocess import preprocess_uint8

    n, t = frames.shape[:2]
    flat = frames.reshape(n * t, *frames.shape[2:])
    size = enc.spec.image_size
    out = np.empty((n * t, size, size, 3), np.uint8)
    step = max(1, int(enc.batch_size))
    with torch.inference_mode():
        for i in range(0, len(flat), step):
            crop = preprocess_uint8(flat[i : i + step], enc.spec, enc.device)
            out[i : i + step] = crop.permute(0, 2, 3, 1).cpu().numpy()
    return out.reshape(n, t, size, size, 3)
