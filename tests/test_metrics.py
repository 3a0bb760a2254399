"""Metrics: hand-computed examples and the restricted classifier against a brute-force loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xmic.evaluate.metrics import (
    class_mean_top1,
    harmonic_mean,
    restricted_predictions,
    subset_accuracy,
    top1,
)

# Full-vocabulary arg-max per row: 0, 1, 2, 2, 0, 2.
LOGITS = torch.tensor(
    [
        [2.0, 1.0, 0.0],  # label 0, right
        [0.0, 3.0, 1.0],  # label 1, right
        [1.0, 0.0, 2.0],  # label 1, wrong (2)
        [0.0, 1.0, 5.0],  # label 2, right
        [4.0, 0.0, 1.0],  # label 2, wrong (0); among {1, 2} it is 2, right
        [0.0, 0.0, 9.0],  # label 2, right
    ]
)
LABELS = torch.tensor([0, 1, 1, 2, 2, 2])


def test_top1_by_hand():
    assert top1(LOGITS, LABELS) == pytest.approx(4 / 6)


def test_class_mean_by_hand():
    # class 0: 1/1, class 1: 1/2, class 2: 2/3.
    assert class_mean_top1(LOGITS, LABELS) == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    assert class_mean_top1(LOGITS, LABELS, num_classes=3) == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)


def test_class_mean_ignores_absent_classes():
    # Rows 1..5 have no class 0: the mean of 1/2 and 2/3 only; counting class 0 as 0 would give 7/18.
    assert class_mean_top1(LOGITS[1:], LABELS[1:]) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_harmonic_mean_by_hand():
    assert harmonic_mean(0.6, 0.3) == pytest.approx(0.4)
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(0.5, 0.0) == 0.0
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_restricted_predictions_by_hand():
    assert restricted_predictions(LOGITS, [1, 2]).tolist() == [1, 1, 2, 2, 2, 2]
    assert restricted_predictions(LOGITS, [2, 0]).tolist() == [0, 2, 2, 2, 0, 2]
    assert restricted_predictions(LOGITS, [1]).tolist() == [1] * 6


def test_subset_accuracy_by_hand():
    # Rows with labels 1 or 2, classified among {1, 2}: right, wrong, right, right, right.
    shared = subset_accuracy(LOGITS, LABELS, [1, 2])
    assert shared["n"] == 5
    assert shared["top1"] == pytest.approx(4 / 5)
    assert shared["class_mean"] == pytest.approx((1 / 2 + 3 / 3) / 2)
    # The same rows scored over the full vocabulary would be 3/5: restriction matters.
    assert top1(LOGITS[1:], LABELS[1:]) == pytest.approx(3 / 5)
    novel = subset_accuracy(LOGITS, LABELS, [0])
    assert novel == {"top1": 1.0, "class_mean": 1.0, "n": 1}


def test_subset_accuracy_with_no_rows_or_classes():
    empty = subset_accuracy(LOGITS, LABELS, [])
    assert empty["n"] == 0 and math.isnan(empty["top1"]) and math.isnan(empty["class_mean"])
    logits = torch.zeros(2, 4)
    none_kept = subset_accuracy(logits, torch.tensor([0, 1]), [3])
    assert none_kept["n"] == 0 and math.isnan(none_kept["top1"])


def brute_force_restricted(logits: np.ndarray, allowed: list[int]) -> list[int]:
    out = []
    for row in range(logits.shape[0]):
        best = None
        for c in allowed:
            if best is None or logits[row, c] > logits[row, best]:
                best = c
        out.append(best)
    return out


def brute_force_subset(logits: np.ndarray, labels: np.ndarray, classes: list[int]) -> tuple[float, float, int]:
    rows = [r for r in range(len(labels)) if labels[r] in classes]
    preds = brute_force_restricted(logits[rows], classes)
    right = [int(p == labels[r]) for p, r in zip(preds, rows, strict=True)]
    per_class = {}
    for r, ok in zip(rows, right, strict=True):
        per_class.setdefault(int(labels[r]), []).append(ok)
    class_mean = sum(sum(v) / len(v) for v in per_class.values()) / len(per_class)
    return sum(right) / len(rows), class_mean, len(rows)


@pytest.mark.parametrize("seed", range(5))
def test_restricted_classifier_matches_brute_force(seed: int):
    rng = np.random.default_rng(seed)
    n, k = 40, 12
    # Small integers so that ties happen; both sides give a tie to the class listed first.
    logits = rng.integers(0, 4, size=(n, k)).astype(np.float32)
    labels = rng.integers(0, k, size=n)
    for _ in range(10):
        allowed = [int(c) for c in rng.permutation(k)[: rng.integers(1, k + 1)]]
        ours = restricted_predictions(torch.from_numpy(logits), allowed)
        assert ours.tolist() == brute_force_restricted(logits, allowed)
        if not np.isin(labels, allowed).any():
            continue
        got = subset_accuracy(torch.from_numpy(logits), torch.from_numpy(labels), allowed)
        want_top1, want_class_mean, want_n = brute_force_subset(logits, labels, allowed)
        assert got["n"] == want_n
        assert got["top1"] == pytest.approx(want_top1)
        assert got["class_mean"] == pytest.approx(want_class_mean)


def test_numpy_inputs_and_full_set_equals_subset_of_all_classes():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(30, 5)), rng.integers(0, 5, size=30)
    everything = subset_accuracy(logits, labels, list(range(5)))
    assert everything["top1"] == pytest.approx(top1(logits, labels))
    assert everything["class_mean"] == pytest.approx(class_mean_top1(logits, labels))
    assert everything["n"] == 30


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: top1(torch.zeros(3), torch.zeros(3, dtype=torch.long)), r"logits must be \(N, K\)"),
        (lambda: top1(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long)), r"labels must be \(N,\) with N = 3"),
        (lambda: top1(torch.zeros(2, 2), torch.tensor([0, 2])), "label 2 is outside the 2 classes"),
        (lambda: top1(torch.zeros(2, 2), torch.tensor([0.0, 1.0])), "integer class ids"),
        (lambda: top1(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), "zero rows"),
        (lambda: class_mean_top1(LOGITS, LABELS, num_classes=4), "num_classes=4 but the logits have 3"),
        (lambda: restricted_predictions(LOGITS, [0, 3]), r"allowed classes must lie in \[0, 3\)"),
        (lambda: restricted_predictions(LOGITS, [1, 1]), "repeat"),
        (lambda: restricted_predictions(LOGITS, []), "empty"),
    ],
)
def test_bad_inputs_raise(call, message: str):
    with pytest.raises(ValueError, match=message):
        call()
