"""Device-side batching: slot sampling (temporal jitter) and the gather of rows and views."""

from __future__ import annotations

import torch

from xmic.adapt.data import FeatureBank, cond_views, frame_slots
from xmic.sampling import pick_bin_slots


def test_cond_views_order():
    assert cond_views("F+H") == ["hand", "full"]
    assert cond_views("H+F") == ["hand", "full"]
    assert cond_views("F") == ["full"] and cond_views("H") == ["hand"]


def test_training_slots_pick_one_candidate_per_bin():
    g = torch.Generator().manual_seed(0)
    slots = frame_slots(500, 32, 16, train=True, generator=g, device="cpu")
    assert slots.shape == (500, 16)
    bins = torch.arange(16)
    assert torch.equal(slots // 2, bins.expand(500, 16))  # slot s lies in bin s // 2
    # both candidates of every bin are used, roughly half the time each
    share = (slots % 2).float().mean(0)
    assert ((share > 0.4) & (share < 0.6)).all()


def test_training_draws_one_of_three_candidates_per_bin():
    """The default store layout (16 bins x 3): any of a bin's three candidates, each about a third of the time."""
    g = torch.Generator().manual_seed(0)
    slots = frame_slots(900, 48, 16, train=True, generator=g, device="cpu")
    assert torch.equal(slots // 3, torch.arange(16).expand(900, 16))
    for c in range(3):
        share = (slots % 3 == c).float().mean()
        assert 0.3 < share < 0.37


def test_eval_slots_are_fixed():
    a = frame_slots(3, 32, 16, train=False, generator=None, device="cpu")
    assert torch.equal(a, (torch.arange(16) * 2).expand(3, 16))
    b = frame_slots(3, 16, 16, train=True, generator=torch.Generator(), device="cpu")
    assert torch.equal(b, torch.arange(16).expand(3, 16))
    # three candidates per bin: the centre one, the same choice as the extraction side's pick_bin_slots
    c = frame_slots(2, 48, 16, train=False, generator=None, device="cpu")
    assert c[0].tolist() == list(range(1, 48, 3))
    assert c.numpy().tolist() == pick_bin_slots(2, num_frames=48, bins=16).tolist()


def test_bank_batch_gathers_rows_slots_and_views():
    n, ts, d = 6, 8, 3
    full = torch.arange(n * ts * d, dtype=torch.float16).reshape(n, ts, d)
    hand = -full
    bank = FeatureBank(cls=full, cond=[hand, full], labels=torch.arange(n), rows=torch.arange(n))
    rows = torch.tensor([4, 1])
    slots = torch.tensor([[0, 3, 5, 7], [1, 2, 4, 6]])
    batch = bank.batch(rows, slots)
    assert batch.cls.shape == (2, 4, d) and batch.cond.shape == (2, 4, 2, d)
    assert batch.cls.dtype == torch.float32
    for i, r in enumerate(rows.tolist()):
        for j, s in enumerate(slots[i].tolist()):
            assert torch.equal(batch.cls[i, j], full[r, s].float())
            assert torch.equal(batch.cond[i, j, 0], hand[r, s].float())
            assert torch.equal(batch.cond[i, j, 1], full[r, s].float())
