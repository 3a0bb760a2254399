"""Frames for the methods that run the frozen visual encoder themselves (Vita-CLIP), from the store's frame cache.

A :class:`FrameBank` has the interface of :class:`xmic.adapt.data.FeatureBank` (``rows``, ``labels``, ``failed``,
``store_frames``, ``batch(rows, slots)``), so the trainer and the evaluator run Vita-CLIP like every other method.
Its batches hold the encoder's normalised pixels in ``cls`` (``(B, T, 3, S, S)``) and no conditioning views. The
frames stay JPEG-compressed in the store (67,217 EPIC clips x 48 slots do not fit in memory); a batch decodes only
its own images (:meth:`xmic.cache.reader.StoreReader.load_frames`). When the whole cache is small (the demo), it is
decoded once and held in memory, and batches are indexed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from xmic.adapt.base import FeatureBatch
from xmic.cache.schema import EncoderSpec

#: Decode the whole frame cache into memory when it holds at most this many bytes (uint8).
IN_MEMORY_BYTES = 1 << 30
#: Clips per evaluation batch (each clip is T full encoder passes).
EVAL_BATCH = 32


@dataclass
class FrameBank:
    """The frame cache of one dataset group's classified encoder, read batch by batch.

    Attributes:
        reader: The open ``StoreReader``.
        encoder: Whose frame cache (the run's classified CLIP encoder).
        spec: That encoder's spec (mean / std for the normalisation).
        labels: (N,) int64 labels of the target (``-1`` where unknown), on ``device``.
        rows: (M,) int64 usable rows, on ``device``.
        store_frames: T, slots per clip in the store.
        device: Where batches go.
        frames: (N, T, 3, S, S) uint8 on ``device`` when the cache was small enough to hold, else None.
        failed: rows of the requested split left out because their extraction failed.
    """

    reader: Any
    encoder: str
    spec: EncoderSpec
    labels: torch.Tensor
    rows: torch.Tensor
    store_frames: int
    device: torch.device
    frames: torch.Tensor | None = None
    failed: int = 0
    eval_batch_size: int = EVAL_BATCH

    def batch(self, rows: torch.Tensor, slots: torch.Tensor, dtype: torch.dtype = torch.float32) -> FeatureBatch:
        """``rows`` (B,), ``slots`` (B, T) -> FeatureBatch(cls=(B, T, 3, S, S) normalised pixels, cond=(B, T, 0, 0))."""
        from xmic.extract.preprocess import normalize_uint8

        if self.frames is not None:
            images = self.frames[rows[:, None], slots]
        else:
            images = self.reader.load_frames(
                self.encoder, rows.cpu().numpy(), slots.cpu().numpy(), device=self.device
            )  # (B, T, 3, S, S) uint8
        pixels = normalize_uint8(images, self.spec).to(dtype)
        b, t = slots.shape
        return FeatureBatch(cls=pixels, cond=pixels.new_zeros((b, t, 0, 0)))


def load_frame_bank(
    reader: Any, *, target: str, encoder: str, splits: tuple[str, ...] | None, device: Any
) -> FrameBank:
    """The frame cache of ``encoder`` in ``reader``'s group for the rows of ``splits`` (status ok, label known).

    Raises:
        StoreError: the group has no frame cache of ``encoder``; the message gives the ``xmic extract
            ... --frames-cache`` command that writes one.
    """
    from xmic.adapt.data import check_store_rows

    encoder = reader.frames_encoder(encoder)
    device = torch.device(device)
    labels_np, rows_np, failed = check_store_rows(reader, target, splits)
    spec = reader.spec
    size = spec.encoders[encoder].image_size
    frames = None
    if reader.n_rows * spec.num_frames * 3 * size * size <= IN_MEMORY_BYTES:
        frames = reader.load_frames(encoder, device=device)
    return FrameBank(
        reader=reader,
        encoder=encoder,
        spec=spec.encoders[encoder],
        labels=torch.from_numpy(labels_np).to(device),
        rows=torch.from_numpy(rows_np).to(device),
        store_frames=spec.num_frames,
        device=device,
        frames=frames,
        failed=failed,
    )
