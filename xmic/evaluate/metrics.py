"""Classification metrics: top-1, class-mean top-1, harmonic mean, and the restricted classifier.

Accuracies are fractions in [0, 1]. Inputs may be torch tensors (any device) or numpy arrays:
``logits`` is ``(N, K)``, ``labels`` is ``(N,)`` of integer class ids in ``[0, K)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch


def _as_inputs(logits: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels, device=logits.device)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, K), got shape {tuple(logits.shape)}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must be (N,) with N = {logits.shape[0]}, got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    labels = labels.long()
    if labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= logits.shape[1]:
            bad = low if low < 0 else high
            raise ValueError(f"label {bad} is outside the {logits.shape[1]} classes of the logits")
    return logits, labels


def _top1_from_predictions(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predictions == labels).double().mean())


def _class_mean_from_predictions(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    correct = (predictions == labels).double()
    present, inverse = torch.unique(labels, return_inverse=True)
    hits = torch.zeros(present.numel(), dtype=torch.float64, device=labels.device).index_add_(0, inverse, correct)
    counts = torch.bincount(inverse, minlength=present.numel()).double()
    return float((hits / counts).mean())


def top1(logits: Any, labels: Any) -> float:
    """Fraction of rows whose highest logit is the label.

    Args:
        logits: ``(N, K)`` scores, N >= 1.
        labels: ``(N,)`` class ids in ``[0, K)``.
    """
    logits, labels = _as_inputs(logits, labels)
    if labels.numel() == 0:
        raise ValueError("top1 of zero rows is undefined")
    return _top1_from_predictions(logits.argmax(dim=1), labels)


def class_mean_top1(logits: Any, labels: Any, num_classes: int | None = None) -> float:
    """Mean over the classes present in ``labels`` of the per-class recall (top-1 within the class).

    Args:
        logits: ``(N, K)`` scores, N >= 1.
        labels: ``(N,)`` class ids in ``[0, K)``.
        num_classes: when given, must equal K (a check; classes absent from ``labels`` never count).
    """
    logits, labels = _as_inputs(logits, labels)
    if num_classes is not None and num_classes != logits.shape[1]:
        raise ValueError(f"num_classes={num_classes} but the logits have {logits.shape[1]} classes")
    if labels.numel() == 0:
        raise ValueError("class-mean top1 of zero rows is undefined")
    return _class_mean_from_predictions(logits.argmax(dim=1), labels)


def harmonic_mean(a: float, b: float) -> float:
    """``2ab / (a + b)``; 0 when either is 0 (or negative)."""
    a, b = float(a), float(b)
    if a <= 0 or b <= 0:
        return 0.0
    return 2 * a * b / (a + b)


def _allowed_index(allowed: Sequence[int], num_classes: int, device: torch.device) -> torch.Tensor:
    index = torch.as_tensor(list(allowed), dtype=torch.long, device=device)
    if index.numel() == 0:
        raise ValueError("the allowed classes are empty")
    if int(index.min()) < 0 or int(index.max()) >= num_classes:
        raise ValueError(f"allowed classes must lie in [0, {num_classes}), got {sorted(set(index.tolist()))}")
    if torch.unique(index).numel() != index.numel():
        raise ValueError("the allowed classes repeat an id")
    return index


def restricted_predictions(logits: Any, allowed: Sequence[int]) -> torch.Tensor:
    """Arg-max over the ``allowed`` columns only, as ids of the full vocabulary.

    Args:
        logits: ``(N, K)`` scores.
        allowed: distinct class ids in ``[0, K)``; ties go to the one listed first.

    Returns:
        ``(N,)`` int64 predicted class ids, each in ``allowed``.
    """
    logits = torch.as_tensor(logits)
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, K), got shape {tuple(logits.shape)}")
    index = _allowed_index(allowed, logits.shape[1], logits.device)
    return index[logits.index_select(1, index).argmax(dim=1)]


def subset_accuracy(logits: Any, labels: Any, classes: Sequence[int]) -> dict[str, float | int]:
    """Accuracy on the rows whose label is in ``classes``, classified among ``classes`` only.

    This is the paper's Table 2 protocol for the shared and the novel subsets.

    Args:
        logits: ``(N, K)`` scores over the full vocabulary.
        labels: ``(N,)`` class ids in ``[0, K)``.
        classes: distinct class ids of the subset.

    Returns:
        ``{"top1": float, "class_mean": float, "n": int}``; n is the number of kept rows, and both
        accuracies are NaN when no row (or no class) is kept.
    """
    logits, labels = _as_inputs(logits, labels)
    if len(classes) == 0:
        return {"top1": math.nan, "class_mean": math.nan, "n": 0}
    index = _allowed_index(classes, logits.shape[1], logits.device)
    keep = torch.isin(labels, index)
    n = int(keep.sum())
    if n == 0:
        return {"top1": math.nan, "class_mean": math.nan, "n": 0}
    predictions = restricted_predictions(logits[keep], index.tolist())
    kept = labels[keep]
    return {
        "top1": _top1_from_predictions(predictions, kept),
        "class_mean": _class_mean_from_predictions(predictions, kept),
        "n": n,
    }
