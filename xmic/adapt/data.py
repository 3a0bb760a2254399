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
    :func:`xmic.sampling.pick_bin_slots`. (Synthetic stores may hold an even ``k``; the first of the middle
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
        """Gather B rows and their slots: ``rows`` (B,), ``slots`` (B, T) -> FeatureBatch.

        Each stored array is gathered once per batch (X-MIC's classified hand view is also a conditioning view),
        as ``index_select`` of the (B*T) frame rows of the array seen as (N*T_s, D).
        """
        b, t = slots.shape
        frames = (rows[:, None] * self.store_frames + slots).reshape(-1)  # (B*T,) rows of the (N*T_s, D) view
        taken: dict[int, torch.Tensor] = {}

        def take(arr: torch.Tensor) -> torch.Tensor:
            if id(arr) not in taken:
                flat = arr.reshape(-1, arr.shape[-1])
                taken[id(arr)] = flat.index_select(0, frames).to(dtype).view(b, t, -1)
            return taken[id(arr)]

        return FeatureBatch(cls=take(self.cls), cond=torch.stack([take(v) for v in self.cond], dim=2))


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
        StoreError: chunks are not extracted yet; a row of a done chunk reads as pending (its ``row_status`` chunk
            is lost); a used row has NaN/inf features (a lost or damaged feature chunk). The message names the rows
            and chunks and says how to recompute them.
    """
    labels_np, rows_np, failed = check_store_rows(reader, target, splits)
    cache: dict[tuple[str, str], torch.Tensor] = {}

    def get(enc: str, view: str) -> torch.Tensor:
        if (enc, view) not in cache:
            cache[(enc, view)] = reader.load_features(enc, view, device=device)
        return cache[(enc, view)]

    cls = get(encoder, classified_view)
    cond = [get(second_encoder, v) for v in cond_views(views)]
    for (enc, view), arr in cache.items():
        _check_finite(reader, arr, rows_np, f"features/{enc}/{view}")
    rows = torch.from_numpy(rows_np).to(device)
    return FeatureBank(cls=cls, cond=cond, labels=torch.from_numpy(labels_np).to(device), rows=rows, failed=failed)


def check_store_rows(reader, target: str, splits: tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray, int]:
    """The labels of every row, the usable rows of ``splits`` and how many of them failed extraction.

    Returns:
        ``(labels (N,) int64, rows (M,) int64 with status ok, a known label and a split in ``splits``, failed)``.

    Raises:
        StoreSpecError / StoreError: as :func:`load_bank` says.
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
    labels_np = np.asarray(reader.segments[target], dtype=np.int64)
    status = np.asarray(reader.row_status)
    _check_row_status(reader, status)
    in_split = np.ones(status.shape, dtype=bool)
    if splits is not None:
        in_split = np.isin(np.asarray(reader.segments["split"]).astype(str), list(splits))
    keep = in_split & (status == ROW_OK) & (labels_np >= 0)
    failed = int(np.count_nonzero(in_split & (status == ROW_FAILED)))
    return labels_np, np.flatnonzero(keep), failed


def _repair_hint(reader) -> str:
    return (
        f"run `xmic cache verify {reader.path}` to list the damaged chunks, `xmic cache verify {reader.path} "
        "--reset-damaged` to mark them not done, then re-run the same `xmic extract` command (it recomputes them)"
    )


def _chunk_list(rows: np.ndarray, chunk_rows: int) -> str:
    chunks = sorted({int(r) // chunk_rows for r in rows})
    return ", ".join(map(str, chunks[:10])) + (f", … ({len(chunks)} chunks)" if len(chunks) > 10 else "")


def _row_list(reader, rows: np.ndarray) -> str:
    ids = np.asarray(reader.segments["segment_id"])
    shown = ", ".join(f"{int(r)} ({ids[r]})" for r in rows[:5])
    return shown + (f", … {rows.size - 5} more" if rows.size > 5 else "")


def _check_row_status(reader, status: np.ndarray) -> None:
    """Every row of a (done) chunk is ok or failed; pending there means the chunk's ``row_status`` object is gone."""
    bad = np.flatnonzero((status != ROW_OK) & (status != ROW_FAILED))
    if bad.size:
        raise StoreError(
            f"{reader.path} / {reader.dataset}: row_status of {bad.size} rows of done chunks is neither ok nor failed "
            f"(rows {_row_list(reader, bad)}; chunks {_chunk_list(bad, reader.spec.chunk_rows)}): the chunk is "
            f"missing or damaged, and training would silently leave those rows out; {_repair_hint(reader)}"
        )


def _check_finite(reader, arr: torch.Tensor, rows: np.ndarray, name: str, step: int = 4096) -> None:
    """StoreError naming rows and chunks when ``arr[rows]`` holds NaN/inf (checked ``step`` rows at a time)."""
    bad = []
    idx = torch.from_numpy(rows).to(arr.device)
    for start in range(0, idx.numel(), step):
        part = idx[start : start + step]
        finite = torch.isfinite(arr[part]).flatten(1).all(dim=1)
        if not bool(finite.all()):
            bad.append(part[~finite].cpu().numpy())
    if bad:
        rows_bad = np.concatenate(bad)
        raise StoreError(
            f"{reader.path} / {reader.dataset}: {name} has NaN/inf values in {rows_bad.size} rows this run uses "
            f"(rows {_row_list(reader, rows_bad)}; chunks {_chunk_list(rows_bad, reader.spec.chunk_rows)}): a "
            f"feature chunk is missing or damaged; {_repair_hint(reader)}"
        )
