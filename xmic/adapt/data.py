"""Cached features held whole on the device; batches are indexed there, never read clip by clip.

The store keeps ``T_s`` slots per segment (``bins`` equal bins × ``per_bin`` candidates, by default 16 × 3 with the
middle candidate at the bin's centre frame). Training picks one random candidate per bin (temporal jitter);
evaluation picks the centre candidate of every bin, the authors' uniform sampling. :func:`load_bank` refuses a
store extracted without centre candidates (an even ``per_bin``, the old ``uniform-bins:16x2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xmic.adapt.base import FeatureBatch
from xmic.cache.errors import StoreError
from xmic.cache.schema import ROW_FAILED, ROW_OK

VIEW_LETTERS = {"F": "full", "H": "hand"}


def cond_views(views: str) -> list[str]:
    """``"F+H"`` -> ``["hand", "full"]``; ``"F"`` -> ``["full"]``; ``"H"`` -> ``["hand"]``."""
    letters = views.split("+")
    return [VIEW_LETTERS[x] for x in sorted(letters, key=lambda x: x != "H")]


def frame_slots(
    batch: int, store_frames: int, frames: int, *, train: bool, generator: torch.Generator | None, device
) -> torch.Tensor:
    """Slot indices into the ``store_frames`` cached slots, one per bin: (B, frames) int64.

    Training draws one candidate per bin at random; evaluation takes candidate ``(k - 1) // 2`` of the ``k`` in
    every bin, the bin's centre frame for the odd ``k`` extraction writes (1 of the default 3), as
    :func:`xmic.extract.sampling.pick_bin_slots`. (Synthetic stores may hold an even ``k``; the first of the middle
    two is taken there.)
    ``generator`` must live on ``device``.
    """
    if store_frames % frames:
        raise ValueError(f"the store holds {store_frames} frames per clip, not a multiple of {frames}")
    per_bin = store_frames // frames
    base = torch.arange(frames, device=device) * per_bin
    if not train or per_bin == 1:
        return (base + (per_bin - 1) // 2).expand(batch, frames)
    offset = torch.randint(per_bin, (batch, frames), generator=generator, device=device)
    return base + offset


@dataclass
class FeatureBank:
    """Features of one dataset group, whole, on one device.

    Attributes:
        cls: (N, T_s, D) float16 classified-view CLIP features.
        cond: list of V tensors (N, T_s, Dc) float16, the conditioning views in order.
        labels: (N,) int64 labels of the target (``-1`` where unknown).
        rows: (M,) int64 indices of the usable rows (status ok, label known, in the requested split).
        failed: rows of the requested split left out because their extraction failed (``xmic cache verify``
            lists them with the reasons).
    """

    cls: torch.Tensor
    cond: list[torch.Tensor]
    labels: torch.Tensor
    rows: torch.Tensor
    failed: int = 0

    @property
    def store_frames(self) -> int:
        return self.cls.shape[1]

    def batch(self, rows: torch.Tensor, slots: torch.Tensor, dtype: torch.dtype = torch.float32) -> FeatureBatch:
        """Gather B rows and their slots: ``rows`` (B,), ``slots`` (B, T) -> FeatureBatch."""
        r = rows[:, None]
        cls = self.cls[r, slots].to(dtype)
        cond = torch.stack([v[r, slots] for v in self.cond], dim=2).to(dtype)
        return FeatureBatch(cls=cls, cond=cond)


def load_bank(
    reader,
    *,
    target: str,
    encoder: str,
    second_encoder: str,
    views: str,
    classified_view: str,
    splits: tuple[str, ...] | None,
    device: str | torch.device = "cpu",
) -> FeatureBank:
    """Read the needed feature arrays of ``reader`` once (each (encoder, view) at most once) onto ``device``.

    Args:
        reader: an open ``xmic.cache.reader.StoreReader``.
        splits: keep rows whose ``split`` column is one of these; ``None`` keeps every split.

    Raises:
        StoreSpecError: the store's frames hold no bin centres (extracted with an even number of candidates per
            bin, e.g. the old ``uniform-bins:16x2``); the message says how to re-extract it.
        StoreError: chunks are not extracted yet.
    """
    reader.check_bin_centres()
    done = np.asarray(reader.done)
    if not np.all(done == 1):
        missing = np.flatnonzero(done != 1)
        shown = ", ".join(map(str, missing[:10])) + (", …" if missing.size > 10 else "")
        raise StoreError(
            f"{reader.path} / {reader.dataset}: {missing.size} of {done.size} chunks are not extracted yet "
            f"(chunks {shown}); re-run the same `xmic extract` command to finish them (it resumes), then go on"
        )
    cache: dict[tuple[str, str], torch.Tensor] = {}

    def get(enc: str, view: str) -> torch.Tensor:
        if (enc, view) not in cache:
            cache[(enc, view)] = reader.load_features(enc, view, device=device)
        return cache[(enc, view)]

    cls = get(encoder, classified_view)
    cond = [get(second_encoder, v) for v in cond_views(views)]
    labels_np = np.asarray(reader.segments[target], dtype=np.int64)
    status = np.asarray(reader.row_status)
    in_split = np.ones(status.shape, dtype=bool)
    if splits is not None:
        in_split = np.isin(np.asarray(reader.segments["split"]).astype(str), list(splits))
    keep = in_split & (status == ROW_OK) & (labels_np >= 0)
    failed = int(np.count_nonzero(in_split & (status == ROW_FAILED)))
    rows = torch.from_numpy(np.flatnonzero(keep)).to(device)
    return FeatureBank(cls=cls, cond=cond, labels=torch.from_numpy(labels_np).to(device), rows=rows, failed=failed)
