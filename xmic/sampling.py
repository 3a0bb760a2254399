"""Which source frames fill a segment's ``T`` slots (the store's ``frame_index``).

Rule ``uniform-bins:<bins>x<k>`` with ``T = bins * k``: the segment's frames ``start..stop`` (inclusive,
``L = stop - start + 1`` of them, frame ``i`` covering the time ``[i, i + 1)``) are cut into ``bins``
equal bins and each bin into ``k`` equal sub-bins; slot ``j`` takes the frame under the centre of
sub-bin ``j``::

    slot_frames[j] = start + floor((2 j + 1) * L / (2 T)),    j = 0 .. T-1

so slots ``b*k .. b*k + k-1`` lie inside bin ``b``, every slot lies in ``[start, stop]``, slots are
non-decreasing, and a segment shorter than ``T`` frames repeats frames.

For an odd ``k`` the middle candidate ``c = (k - 1) / 2`` of bin ``b`` is slot ``j = b k + c``, where
``2 j + 1 = k (2 b + 1)`` and ``2 T = k (2 bins)``; the ``k`` cancels and the slot is exactly the frame under
the bin's own centre, ``start + floor((2 b + 1) L / (2 bins))`` (the authors' uniform sampling; ``k = 1`` is
TSN's centre-of-segment sampling). An even ``k`` has no candidate there. The default is 16 bins x 3
candidates (``T = 48``): evaluation takes the centre candidate of every bin, training draws one of the three
per bin (:func:`pick_bin_slots`).

Pure numpy: stage two may import this module.
"""

from __future__ import annotations

import re

import numpy as np

DEFAULT_BINS = 16
#: Candidates per bin; odd, so that the middle one is the bin's centre frame.
DEFAULT_CANDIDATES = 3
DEFAULT_NUM_FRAMES = DEFAULT_BINS * DEFAULT_CANDIDATES  # 48
#: The rule the store records in its spec for the defaults (16 bins x 3 candidates).
SAMPLING_RULE = "uniform-bins:16x3"
#: Prefix of the rules this module writes (other rules, e.g. the synthetic stores' ``synthetic:<T>``, sample
#: no video).
RULE_PREFIX = "uniform-bins:"

_RULE_RE = re.compile(r"^uniform-bins:(\d+)x(\d+)$")


def sampling_rule(num_frames: int = DEFAULT_NUM_FRAMES, bins: int = DEFAULT_BINS) -> str:
    """The rule string for ``num_frames`` slots in ``bins`` bins, e.g. ``"uniform-bins:16x3"``."""
    per_bin = _per_bin(num_frames, bins)
    return f"uniform-bins:{bins}x{per_bin}"


def parse_sampling_rule(rule: str) -> tuple[int, int]:
    """``"uniform-bins:16x3"`` -> ``(bins, per_bin) = (16, 3)``; a clear error for any other rule."""
    match = _RULE_RE.match(rule)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ValueError(f"unknown sampling rule {rule!r}; expected 'uniform-bins:<bins>x<per_bin>'")
    return int(match.group(1)), int(match.group(2))


def centre_candidate(per_bin: int) -> int | None:
    """Which of a bin's ``per_bin`` candidates is the bin's centre frame: ``per_bin // 2`` when ``per_bin`` is odd,
    None when it is even (no candidate lies there)."""
    return per_bin // 2 if per_bin % 2 else None


def rule_lacks_bin_centres(rule: str) -> bool:
    """Whether ``rule`` is a ``uniform-bins`` rule with an even number of candidates per bin (e.g. the old default
    ``uniform-bins:16x2``): none of its slots is a bin's centre frame, so it cannot give the evaluation frames.
    Rules of another kind (``synthetic:<T>``) are not judged here."""
    if not rule.startswith(RULE_PREFIX):
        return False
    return centre_candidate(parse_sampling_rule(rule)[1]) is None


def check_bin_centres(num_frames: int, bins: int) -> None:
    """ValueError unless ``num_frames`` slots in ``bins`` bins put a candidate at every bin's centre (an odd count
    per bin)."""
    per_bin = _per_bin(num_frames, bins)
    if centre_candidate(per_bin) is None:
        odd = ", ".join(str(bins * k) for k in (1, 3, 5))
        raise ValueError(
            f"{num_frames} frames in {bins} bins give {per_bin} candidates per bin, none at a bin's centre; "
            f"evaluation takes every bin's centre frame, so use an odd number per bin (frames {odd}, ...)"
        )


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
            the fixed evaluation choice, candidate ``(k - 1) // 2`` of every bin: the bin's centre frame for
            an odd ``k`` (the default 3 gives candidate 1); an even ``k`` has no centre candidate.

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


def window_slots(bins: int, per_bin: int, clip_frames: int) -> np.ndarray:
    """The slots of every ``clip_frames``-frame clip a video encoder embeds: ``(W, clip_frames)`` int64.

    Clip ``w = g * per_bin + c`` is candidate ``c`` of the ``clip_frames`` consecutive bins ``g * clip_frames ..
    (g + 1) * clip_frames - 1``: with the default 16 bins and 4-frame clips, the evaluation slots (the bin centres)
    form LaViLa's 4 clips of 4 frames over 16 uniformly sampled frames. ``W = bins // clip_frames * per_bin``.

    Raises:
        ValueError: ``bins`` is not a multiple of ``clip_frames``.
    """
    if clip_frames < 1 or bins % clip_frames:
        raise ValueError(f"{bins} bins do not split into clips of {clip_frames} frames (bins must be a multiple)")
    groups = bins // clip_frames
    g, c, j = np.meshgrid(np.arange(groups), np.arange(per_bin), np.arange(clip_frames), indexing="ij")
    return ((g * clip_frames + j) * per_bin + c).reshape(groups * per_bin, clip_frames).astype(np.int64)


def slot_windows(bins: int, per_bin: int, clip_frames: int) -> np.ndarray:
    """Which clip of :func:`window_slots` each of the ``bins * per_bin`` slots belongs to: ``(T,)`` int64."""
    owner = np.empty(bins * per_bin, np.int64)
    for w, slots in enumerate(window_slots(bins, per_bin, clip_frames)):
        owner[slots] = w
    return owner
