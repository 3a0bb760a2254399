"""Frame sampling: T slots per segment, k candidates in each of the equal bins."""

from __future__ import annotations

from fractions import Fraction
from math import floor

import numpy as np
import pytest

from xmic.cache.schema import StoreSpec
from xmic.sampling import (
    DEFAULT_NUM_FRAMES,
    SAMPLING_RULE,
    centre_candidate,
    check_bin_centres,
    parse_sampling_rule,
    pick_bin_slots,
    rule_lacks_bin_centres,
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
    assert got.shape == (48,)
    for b in range(16):
        lo, hi = Fraction(start) + Fraction(length * b, 16), Fraction(start) + Fraction(length * (b + 1), 16)
        for j in (3 * b, 3 * b + 1, 3 * b + 2):
            assert lo - 1 < got[j] < hi, (b, j, got[j])  # frame under a point of bin b
    if length >= 48:
        assert len(set(got.tolist())) == 48


def bin_centre_frame(start: int, stop: int, b: int, bins: int = 16) -> int:
    """The frame under the centre of bin ``b``: start + floor((2b+1) L / (2 bins)), written independently."""
    length = stop - start + 1
    return start + floor(Fraction(2 * b + 1, 2 * bins) * length)


@pytest.mark.parametrize(("start", "stop"), SEGMENTS + [(0, 1), (9, 40), (250, 250 + 47), (3, 3 + 95)])
def test_evaluation_slot_is_the_bin_centre(start: int, stop: int) -> None:
    """The default layout's evaluation choice (the middle of 3 candidates) is each bin's own centre frame."""
    frames = slot_frames(start, stop)
    eval_slots = pick_bin_slots(1)[0]
    assert eval_slots.tolist() == [3 * b + 1 for b in range(16)]
    assert [int(frames[j]) for j in eval_slots] == [bin_centre_frame(start, stop, b) for b in range(16)]
    # the 16 evaluation frames are the 16-frame uniform (TSN centre) sampling of the segment
    assert frames[eval_slots].tolist() == slot_frames(start, stop, num_frames=16, bins=16).tolist()


def test_evaluation_slot_is_the_bin_centre_for_every_length() -> None:
    lengths = np.arange(1, 3001)
    frames = slot_frames_batch(np.full(lengths.size, 7), 7 + lengths - 1)  # (N, 48)
    centres = 7 + ((2 * np.arange(16)[None, :] + 1) * lengths[:, None]) // 32
    np.testing.assert_array_equal(frames[:, 1::3], centres)


def test_known_values() -> None:
    assert slot_frames(0, 95).tolist() == list(range(1, 96, 2))
    assert slot_frames(0, 47).tolist() == [(2 * j + 1) // 2 for j in range(48)] == list(range(48))
    assert slot_frames(0, 15).tolist() == [i // 3 for i in range(48)]  # short segment: each frame three times
    assert slot_frames(7, 7).tolist() == [7] * 48
    assert slot_frames(0, 31, num_frames=16, bins=16).tolist() == list(range(1, 32, 2))
    assert slot_frames(0, 63, num_frames=32, bins=16).tolist() == list(range(1, 64, 2))  # the old 16x2 layout


def test_batch_equals_rows() -> None:
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 10_000, size=200)
    stops = starts + rng.integers(0, 400, size=200)
    batch = slot_frames_batch(starts, stops)
    assert batch.shape == (200, 48)
    for i in range(200):
        np.testing.assert_array_equal(batch[i], slot_frames(int(starts[i]), int(stops[i])))
    assert slot_frames_batch(np.zeros(0, int), np.zeros(0, int)).shape == (0, 48)
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
    assert DEFAULT_NUM_FRAMES == 48
    assert SAMPLING_RULE == sampling_rule(48, 16) == sampling_rule() == "uniform-bins:16x3"
    assert StoreSpec("x", 48, {}).sampling == SAMPLING_RULE
    assert parse_sampling_rule(SAMPLING_RULE) == (16, 3)
    assert parse_sampling_rule(sampling_rule(32, 16)) == (16, 2)
    with pytest.raises(ValueError, match="unknown sampling rule"):
        parse_sampling_rule("random:16")


def test_rules_without_bin_centres() -> None:
    assert [centre_candidate(k) for k in (1, 2, 3, 4, 5)] == [0, None, 1, None, 2]
    assert rule_lacks_bin_centres("uniform-bins:16x2") and rule_lacks_bin_centres("uniform-bins:8x4")
    assert not rule_lacks_bin_centres(SAMPLING_RULE) and not rule_lacks_bin_centres("uniform-bins:16x1")
    assert not rule_lacks_bin_centres("synthetic:8")  # synthetic stores sample no video
    check_bin_centres(48, 16)
    check_bin_centres(4, 4)
    with pytest.raises(ValueError, match=r"32 frames in 16 bins give 2 candidates per bin, none at a bin's centre"):
        check_bin_centres(32, 16)


def test_pick_bin_slots() -> None:
    fixed = pick_bin_slots(5)
    assert fixed.shape == (5, 16)
    assert fixed.tolist() == [list(range(1, 48, 3))] * 5  # the centre of 3 candidates
    assert pick_bin_slots(2, num_frames=16, bins=16)[0].tolist() == list(range(16))
    drawn = pick_bin_slots(600, rng=np.random.default_rng(1))
    bins = np.arange(16) * 3
    offset = drawn - bins
    assert np.all((offset >= 0) & (offset <= 2))
    assert all(0.25 < np.mean(offset == c) < 0.42 for c in range(3))  # the three candidates equally often
    again = pick_bin_slots(600, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(drawn, again)
