"""Frame sampling: T slots per segment, k candidates in each of the equal bins."""

from __future__ import annotations

from fractions import Fraction
from math import floor

import numpy as np
import pytest

from xmic.cache.schema import StoreSpec
from xmic.extract.sampling import (
    SAMPLING_RULE,
    parse_sampling_rule,
    pick_bin_slots,
    sampling_rule,
    slot_frames,
    slot_frames_batch,
)


def reference_slots(start: int, stop: int, num_frames: int, bins: int) -> list[int]:
    """Centres of k equal sub-bins in each of ``bins`` equal bins, in exact rational arithmetic."""
    per_bin = num_frames // bins
    length = Fraction(stop - start + 1)
    out = []
    for b in range(bins):
        bin_lo = start + length * b / bins
        sub = length / bins / per_bin
        for c in range(per_bin):
            out.append(floor(bin_lo + sub * c + sub / 2))
    return out


SEGMENTS = [(0, 0), (5, 6), (0, 15), (3, 33), (100, 131), (100, 132), (0, 63), (17, 1000), (12345, 12345 + 299)]


@pytest.mark.parametrize(("start", "stop"), SEGMENTS)
@pytest.mark.parametrize(("num_frames", "bins"), [(32, 16), (16, 16), (48, 16), (8, 4)])
def test_matches_independent_formula(start: int, stop: int, num_frames: int, bins: int) -> None:
    got = slot_frames(start, stop, num_frames, bins)
    assert got.shape == (num_frames,)
    assert got.dtype == np.int64
    assert got.tolist() == reference_slots(start, stop, num_frames, bins)


@pytest.mark.parametrize(("start", "stop"), SEGMENTS)
def test_properties(start: int, stop: int) -> None:
    got = slot_frames(start, stop)
    length = stop - start + 1
    assert got.min() >= start and got.max() <= stop
    assert np.all(np.diff(got) >= 0)
    for b in range(16):
        lo, hi = Fraction(start) + Fraction(length * b, 16), Fraction(start) + Fraction(length * (b + 1), 16)
        for j in (2 * b, 2 * b + 1):
            assert lo - 1 < got[j] < hi, (b, j, got[j])  # frame under a point of bin b
    if length >= 32:
        assert len(set(got.tolist())) == 32


def test_known_values() -> None:
    assert slot_frames(0, 63).tolist() == list(range(1, 64, 2))
    assert slot_frames(0, 15).tolist() == [i // 2 for i in range(32)]  # short segment: each frame twice
    assert slot_frames(7, 7).tolist() == [7] * 32
    assert slot_frames(0, 31, num_frames=16, bins=16).tolist() == list(range(1, 32, 2))


def test_batch_equals_rows() -> None:
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 10_000, size=200)
    stops = starts + rng.integers(0, 400, size=200)
    batch = slot_frames_batch(starts, stops)
    assert batch.shape == (200, 32)
    for i in range(200):
        np.testing.assert_array_equal(batch[i], slot_frames(int(starts[i]), int(stops[i])))
    assert slot_frames_batch(np.zeros(0, int), np.zeros(0, int)).shape == (0, 32)
    np.testing.assert_array_equal(slot_frames_batch(np.array([3.0]), np.array([40.0]))[0], slot_frames(3, 40))


def test_bad_rows_are_named() -> None:
    with pytest.raises(ValueError, match=r"row 2: bad segment start=9 stop=4"):
        slot_frames_batch(np.array([0, 1, 9, 8]), np.array([5, 6, 4, 2]))
    with pytest.raises(ValueError, match=r"row 0: bad segment start=-1"):
        slot_frames(-1, 3)
    with pytest.raises(ValueError, match=r"row 1: stop frame 4.5 is not an integer"):
        slot_frames_batch(np.array([0.0, 1.0]), np.array([3.0, 4.5]))
    with pytest.raises(ValueError, match="multiple of bins"):
        slot_frames(0, 10, num_frames=30, bins=16)


def test_rule_strings() -> None:
    assert SAMPLING_RULE == sampling_rule(32, 16) == "uniform-bins:16x2"
    assert StoreSpec("x", 32, {}).sampling == SAMPLING_RULE
    assert parse_sampling_rule(SAMPLING_RULE) == (16, 2)
    assert parse_sampling_rule(sampling_rule(48, 16)) == (16, 3)
    with pytest.raises(ValueError, match="unknown sampling rule"):
        parse_sampling_rule("random:16")


def test_pick_bin_slots() -> None:
    fixed = pick_bin_slots(5)
    assert fixed.shape == (5, 16)
    assert fixed.tolist() == [list(range(0, 32, 2))] * 5
    assert pick_bin_slots(2, num_frames=48, bins=16)[0].tolist() == list(range(1, 48, 3))  # centre of 3
    drawn = pick_bin_slots(400, rng=np.random.default_rng(1))
    bins = np.arange(16) * 2
    assert np.all((drawn == bins) | (drawn == bins + 1))
    assert 0.4 < (drawn - bins).mean() < 0.6  # both candidates are drawn
    again = pick_bin_slots(400, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(drawn, again)
