"""Which source frames fill a segment's ``T`` slots (the store's ``frame_index``).

Rule ``uniform-bins:<bins>x<k>`` with ``T = bins * k``: the segment's frames ``start..stop`` (inclusive,
``L = stop - start + 1`` of them, frame ``i`` covering the time ``[i, i + 1)``) are cut into ``bins``
equal bins and each bin into ``k`` equal sub-bins; slot ``j`` takes the frame under the centre of
sub-bin ``j``::

    slot_frames[j] = start + floor((2 j + 1) * L / (2 T)),    j = 0 .. T-1

so slots ``b*k .. b*k + k-1`` lie inside bin ``b``, every slot lies in ``[start, stop]``, slots are
non-decreasing, and a segment shorter than ``T`` frames repeats frames. With ``k = 1`` this is the TSN
centre-of-segment sampling. Training later draws one of the ``k`` candidates of each bin
(:func:`pick_bin_slots` with a generator); evaluation takes a fixed candidate.

Pure numpy: stage two may import this module.
"""

from __future__ import annotations

import re

import numpy as np

DEFAULT_NUM_FRAMES = 32
DEFAULT_BINS = 16
#: The rule the store records in its spec for the defaults (16 bins x 2 candidates).
SAMPLING_RULE = "uniform-bins:16x2"

_RULE_RE = re.compile(r"^uniform-bins:(\d+)x(\d+)$")


def sampling_rule(num_frames: int = DEFAULT_NUM_FRAMES, bins: int = DEFAULT_BINS) -> str:
    """The rule string for ``num_frames`` slots in ``bins`` bins, e.g. ``"uniform-bins:16x2"``."""
    per_bin = _per_bin(num_frames, bins)
    return f"uniform-bins:{bins}x{per_bin}"


def parse_sampling_rule(rule: str) -> tuple[int, int]:
    """``"uniform-bins:16x2"`` -> ``(bins, per_bin) = (16, 2)``; a clear error for any other rule."""
    match = _RULE_RE.match(rule)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ValueError(f"unknown sampling rule {rule!r}; expected 'uniform-bins:<bins>x<per_bin>'")
    return int(match.group(1)), int(match.group(2))


def _per_bin(num_frames: int, bins: int) -> int:
    if bins < 1 or num_frames < 1 or num_frames % bins:
        raise ValueError(f"num_frames ({num_frames}) must be a positive multiple of bins ({bins})")
    return num_frames // bins


def slot_frames(start: int, stop: int, num_frames: int = DEFAULT_NUM_FRAMES, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Source frame of each slot of one segment.

    Args:
        start: First frame of the segment (0-based, inclusive).
        stop: Last frame of the segment (inclusive), ``stop >= start``.
        num_frames: Slots ``T`` (a multiple of ``bins``).
        bins: Equal temporal bins; each holds ``T // bins`` consecutive slots.

    Returns:
        ``(T,)`` int64 frame indices, non-decreasing, inside ``[start, stop]``.
    """
    return slot_frames_batch(np.array([start]), np.array([stop]), num_frames, bins)[0]


def slot_frames_batch(
    starts: np.ndarray, stops: np.ndarray, num_frames: int = DEFAULT_NUM_FRAMES, bins: int = DEFAULT_BINS
) -> np.ndarray:
    """:func:`slot_frames` for many segments at once.

    Args:
        starts: ``(N,)`` first frames (integers >= 0).
        stops: ``(N,)`` last frames (inclusive), ``stops >= starts``.
        num_frames: Slots ``T``.
        bins: Temporal bins.

    Returns:
        ``(N, T)`` int64 frame indices.

    Raises:
        ValueError: naming the first bad row (``stop < start``, negative or non-integer frames).
    """
    _per_bin(num_frames, bins)
    starts_arr, stops_arr = np.asarray(starts), np.asarray(stops)
    if starts_arr.ndim != 1 or starts_arr.shape != stops_arr.shape:
        raise ValueError(f"starts and stops must be 1-D of one length, got {starts_arr.shape} and {stops_arr.shape}")
    for name, arr in (("start", starts_arr), ("stop", stops_arr)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            not_int = ~np.isfinite(arr) | (arr != np.round(arr))
            if not_int.any():
                row = int(np.flatnonzero(not_int)[0])
                raise ValueError(f"row {row}: {name} frame {arr[row].item()!r} is not an integer")
    starts_i, stops_i = starts_arr.astype(np.int64), stops_arr.astype(np.int64)
    bad = np.flatnonzero((stops_i < starts_i) | (starts_i < 0))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"row {row}: bad segment start={starts_i[row]} stop={stops_i[row]} (need 0 <= start <= stop); "
            f"{bad.size} bad row(s) in all"
        )
    lengths = stops_i - starts_i + 1  # (N,)
    j = np.arange(num_frames, dtype=np.int64)  # (T,)
    return starts_i[:, None] + ((2 * j[None, :] + 1) * lengths[:, None]) // (2 * num_frames)


def pick_bin_slots(
    n: int,
    num_frames: int = DEFAULT_NUM_FRAMES,
    bins: int = DEFAULT_BINS,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Which stored slot to use in each bin: one candidate per bin for ``n`` segments.

    Args:
        n: Number of segments.
        num_frames: Stored slots ``T``.
        bins: Bins (frames used per segment).
        rng: Random generator for training (a random candidate per bin and segment); ``None`` gives
            the fixed evaluation choice, candidate ``(k - 1) // 2`` of every bin (the centre for odd ``k``).

    Returns:
        ``(n, bins)`` int64 slot positions in ``0 .. T-1``; index ``frame_index``/features with them.
    """
    per_bin = _per_bin(num_frames, bins)
    base = np.arange(bins, dtype=np.int64) * per_bin  # (bins,)
    if rng is None:
        offset = np.full((n, bins), (per_bin - 1) // 2, dtype=np.int64)
    else:
        offset = rng.integers(0, per_bin, size=(n, bins), dtype=np.int64)
    return base[None, :] + offset
