"""Everything a report says about one run: config, last training epoch, evaluation, per-row predictions.

The evaluation comes from the run folder when it holds one (``eval.json`` written by ``xmic evaluate``, else
the newest ``eval-*.json`` written by ``xmic reproduce``); otherwise it is computed here from the store.
Per-class accuracy and the confusion matrix always come from :func:`xmic.report.predictions.predict_run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xmic.report.predictions import DatasetPredictions, predict_dataset

EVAL_FILE = "eval.json"
REPRODUCE_EVAL_GLOB = "eval-*.json"


@dataclass
class RunSummary:
    """One run, ready to render.

    Attributes:
        run_dir: The run folder.
        config: ``config.json`` as a dict.
        meta: ``run.json`` as a dict (vocabulary, encoders, store).
        last_epoch: The last row of ``metrics.jsonl`` (None for runs without training, e.g. zero-shot).
        evaluation: An :func:`xmic.evaluate.evaluator.evaluate_run` dict.
        evaluation_source: Where it came from (a file name, or "computed from <store>").
        predictions: Per dataset group.
        figures: Dataset group -> confusion-matrix PNG path (filled by the renderer).
    """

    run_dir: Path
    config: dict[str, Any]
    meta: dict[str, Any]
    last_epoch: dict[str, Any] | None
    evaluation: dict[str, Any]
    evaluation_source: str
    predictions: list[DatasetPredictions]
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name


def stored_evaluation(run_dir: Path) -> tuple[dict[str, Any], str] | None:
    """``(evaluation, file name)`` of the run's own ``eval.json`` or newest ``eval-*.json``; None when absent."""
    candidates = [run_dir / EVAL_FILE] if (run_dir / EVAL_FILE).is_file() else []
    if not candidates:
        candidates = sorted(run_dir.glob(REPRODUCE_EVAL_GLOB), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable evaluation JSON ({exc})") from None
        if isinstance(data, dict) and "datasets" in data:
            return data, path.name
    return None


def summarize_run(
    run_dir: str | Path,
    cache: str | Path | None = None,
    datasets: list[str] | None = None,
    *,
    device: str = "cpu",
    readers: dict | None = None,
) -> RunSummary:
    """Load a run, find or compute its evaluation, and classify the evaluation rows of every dataset.

    Args:
        run_dir: The run folder.
        cache: The store; default the one in ``run.json``.
        datasets: Dataset groups; default those of the stored evaluation, else every group of the store.
        device: Torch device.
        readers: A dict the caller keeps over the summaries of many runs of one finished store, so that its arrays
            are read once (:func:`~xmic.cache.reader.shared_reader`).

    Raises:
        FileNotFoundError: not a run folder, or its store is gone and no ``cache`` was given.
    """
    from xmic.adapt.run_io import load_run, read_metrics
    from xmic.cache.reader import list_datasets, shared_reader
    from xmic.evaluate.evaluator import evaluate_run
    from xmic.report.predictions import evaluation_splits

    run_dir = Path(run_dir)
    model, cfg, meta = load_run(run_dir, device=device)
    store = Path(cache) if cache is not None else Path(meta["store"]["path"])
    if not store.exists():
        raise FileNotFoundError(
            f"{run_dir}: its store {store} (from run.json) is not there; pass --cache with the store it was trained on"
        )
    stored = stored_evaluation(run_dir)
    names = datasets or (list(stored[0]["datasets"]) if stored else list_datasets(store))
    kept = readers
    readers = [shared_reader(kept, store, n) for n in names]
    splits = tuple(sorted({s for r in readers for s in evaluation_splits(r)}))
    if stored is not None and (datasets is None or set(datasets) <= set(stored[0]["datasets"])):
        evaluation, source = stored
    else:
        evaluation = evaluate_run(run_dir, store, names, device=device, eval_splits=splits, readers=kept)
        source = f"computed from {store}"
    predictions = [predict_dataset(model, cfg, meta, r, splits=splits, device=device) for r in readers]
    predictions.sort(key=lambda p: p.kind != "within")  # the training dataset first
    metrics = read_metrics(run_dir)
    return RunSummary(
        run_dir=run_dir,
        config=cfg.to_dict(),
        meta=meta,
        last_epoch=metrics[-1] if metrics else meta.get("final"),
        evaluation=evaluation,
        evaluation_source=source,
        predictions=predictions,
    )
