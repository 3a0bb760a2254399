"""Per-segment predictions of a trained run on the store's evaluation rows, and what follows from them.

The evaluator (:mod:`xmic.evaluate.evaluator`) reports aggregate scores; a report needs the rows themselves:
per-class accuracy and the confusion matrix. :func:`predict_run` recomputes them the way the evaluator does
(same feature bank, same fixed evaluation frames, same class text), so its top-1 equals the evaluator's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ClassAccuracy:
    """Top-1 of the segments whose true class is ``name``; ``confused_with`` is the most frequent wrong answer."""

    index: int
    name: str
    n: int
    correct: int
    confused_with: str | None

    @property
    def top1(self) -> float:
        return self.correct / self.n if self.n else float("nan")


@dataclass
class DatasetPredictions:
    """One run's predictions on the evaluation rows of one dataset group.

    Attributes:
        dataset: The store's group.
        kind: ``"within"`` (the training dataset) or ``"cross"``.
        classes: The K class names the run chose among (the group's vocabulary).
        rows: ``(M,)`` store rows that were classified.
        segment_ids: M segment ids.
        labels: ``(M,)`` int64 true classes.
        preds: ``(M,)`` int64 top-1 predictions.
        splits: Evaluation splits used.
    """

    dataset: str
    kind: str
    classes: list[str]
    rows: np.ndarray
    segment_ids: list[str]
    labels: np.ndarray
    preds: np.ndarray
    splits: tuple[str, ...]

    @property
    def n(self) -> int:
        return int(self.labels.size)

    @property
    def top1(self) -> float:
        return float((self.labels == self.preds).mean()) if self.n else float("nan")

    def confusion(self) -> np.ndarray:
        """``(K, K)`` int64 counts: row = true class, column = predicted class; sums to ``n``."""
        k = len(self.classes)
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (self.labels, self.preds), 1)
        return cm

    def per_class(self) -> list[ClassAccuracy]:
        """One :class:`ClassAccuracy` per class of the vocabulary, in label order (``n = 0`` when absent)."""
        cm = self.confusion()
        out = []
        for k, name in enumerate(self.classes):
            wrong = cm[k].copy()
            wrong[k] = 0
            confused = self.classes[int(wrong.argmax())] if wrong.any() else None
            out.append(ClassAccuracy(k, name, int(cm[k].sum()), int(cm[k, k]), confused))
        return out


def evaluation_splits(reader: Any) -> tuple[str, ...]:
    """Every split of a dataset group whose name does not start with "train" (validation, val, test_split1...)."""
    splits = {str(s) for s in set(reader.segments["split"].tolist())}
    return tuple(sorted(s for s in splits if not s.startswith("train")))


def predict_dataset(model: Any, cfg: Any, meta: dict[str, Any], reader: Any, *, splits=None, device="cpu"):
    """:class:`DatasetPredictions` of a loaded run on one group (``splits`` default: :func:`evaluation_splits`)."""
    import torch

    from xmic.adapt.trainer import class_text
    from xmic.evaluate.evaluator import check_store_matches_run, predict_logits, run_bank

    check_store_matches_run(reader, meta)
    splits = tuple(splits) if splits else evaluation_splits(reader)
    dev = torch.device(device)
    bank = run_bank(reader, cfg, splits, dev)
    if bank.rows.numel() == 0:
        raise ValueError(f"no labelled rows in splits {', '.join(splits) or 'none'} of dataset {reader.dataset!r}")
    classes = class_text(reader, cfg.encoder, cfg.target, cfg.template, dev)
    logits = predict_logits(model, bank, classes, frames=cfg.frames)
    rows = bank.rows.cpu().numpy()
    return DatasetPredictions(
        dataset=reader.dataset,
        kind="within" if reader.spec.dataset == meta["train_dataset"] else "cross",
        classes=list(classes.names),
        rows=rows,
        segment_ids=[str(s) for s in reader.segments["segment_id"][rows]],
        labels=bank.labels[bank.rows].cpu().numpy().astype(np.int64),
        preds=logits.argmax(dim=1).cpu().numpy().astype(np.int64),
        splits=splits,
    )


def predict_run(
    run_dir: str | Path,
    cache: str | Path | None = None,
    datasets: list[str] | None = None,
    *,
    splits: tuple[str, ...] | None = None,
    device: str = "cpu",
) -> list[DatasetPredictions]:
    """Predictions of ``run_dir`` on every group of ``datasets``.

    Args:
        run_dir: A run folder (``config.json``, ``run.json``, checkpoint).
        cache: The store; default the one the run was trained from (``run.json``).
        datasets: Groups to classify; default every group of the store.
        splits: Evaluation splits; default each group's non-training splits.
        device: Torch device.
    """
    from xmic.adapt.run_io import load_run
    from xmic.cache.reader import StoreReader, list_datasets

    model, cfg, meta = load_run(Path(run_dir), device=device)
    cache = Path(cache) if cache is not None else Path(meta["store"]["path"])
    names = datasets or list_datasets(cache)
    return [predict_dataset(model, cfg, meta, StoreReader(cache, n), splits=splits, device=device) for n in names]
