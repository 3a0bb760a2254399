"""The demo's numbers as one JSON-able dict, and the lines that compare X-MIC with the baselines.

``methods[row][target]["<train>><test>"] = {"within", "cross", "hm", ...}`` in percent top-1, one entry per
training direction (train on A: within = A's validation set, cross = B's, zero-shot with B's vocabulary), with
``"<metric>_ci95"``: the 95 % bootstrap interval over test clips (:mod:`xmic.evaluate.intervals`), and chance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xmic.evaluate.intervals import bootstrap_interval

METRICS = ("within", "cross", "hm")


def _pct(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return 100.0 * float(value)


def direction_scores(result: Mapping[str, Any]) -> tuple[str, dict[str, float | None]]:
    """``("<train>><test>", {"within", "cross", "hm", class-mean and shared/novel extras})`` of one evaluation.

    Args:
        result: An :func:`xmic.evaluate.evaluator.evaluate_run` dict with one within and one cross dataset.
    """
    datasets = result["datasets"]
    within = next(r for r in datasets.values() if r["kind"] == "within")
    cross_name, cross = next((n, r) for n, r in datasets.items() if r["kind"] == "cross")
    scores = {
        "within": _pct(within["top1"]),
        "cross": _pct(cross["top1"]),
        "hm": _pct(result.get("hm", {}).get(cross_name)),
        "within_class_mean": _pct(within.get("class_mean_top1")),
        "cross_class_mean": _pct(cross.get("class_mean_top1")),
        "cross_shared": _pct(cross.get("shared", {}).get("top1")),
        "cross_novel": _pct(cross.get("novel", {}).get("top1")),
        "n_within": within.get("n"),
        "n_cross": cross.get("n"),
    }
    parts = {"within": [within], "cross": [cross], "hm": [within, cross]}
    for metric, sets in parts.items():
        interval = bootstrap_interval([(r.get("top1"), r.get("n")) for r in sets])
        scores[f"{metric}_ci95"] = None if interval is None else [round(v, 2) for v in interval]
    scores["chance"] = _pct(1.0 / cross["classes"]) if cross.get("classes") else None
    return f"{result['train_dataset']}>{cross_name}", scores


def method_table(results_by_row: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``{row: {target: {direction: scores}}}`` from reproduce's results (one seed per direction)."""
    table: dict[str, dict[str, Any]] = {}
    for row, results in results_by_row.items():
        for result in results:
            direction, scores = direction_scores(result)
            table.setdefault(row, {}).setdefault(result["target"], {})[direction] = scores
    return table


def training_table(results_by_row: Mapping[str, Iterable[Mapping[str, Any]]], last: int = 3) -> dict[str, Any]:
    """``{row: {target: {direction: {"train_top1", "loss"}}}}``: the last ``last`` epochs of every trained run, train
    top-1 in percent (from the run's metrics.jsonl; rows that train nothing, such as zero-shot, are left out)."""
    from xmic.adapt.run_io import read_metrics

    table: dict[str, Any] = {}
    for row, results in results_by_row.items():
        for result in results:
            rows = [r for r in read_metrics(result["run"]) if "train_top1" in r][-last:]
            if not rows:
                continue
            direction, _ = direction_scores(result)
            table.setdefault(row, {}).setdefault(result["target"], {})[direction] = {
                "epochs": [r["epoch"] for r in rows],
                "train_top1": [round(100.0 * r["train_top1"], 2) for r in rows],
                "loss": [round(r["loss"], 4) for r in rows],
            }
    return table


def xmic_vector_stats(run: str | Path, cache: str | Path, readers: dict | None = None) -> dict[str, float]:
    """What an X-MIC run's vector does to its classifier, on its own training clips (centre frames of each bin).

    Returns ``{"a_v_norm", "text_norm", "a_v_spread", "classifier_cosine"}``: the mean norm of ``a_v`` and of the
    class texts ``t_k``, the mean distance of ``a_v`` from its mean over the clips, and the mean cosine between two
    classes' adapted classifiers ``l2norm(t_k + alpha a_v)`` of a clip (1 = every class scored alike).
    ``readers``: kept over many runs of the finished store (:func:`~xmic.cache.reader.shared_reader`).
    """
    import torch

    from xmic.adapt.data import frame_slots, load_bank
    from xmic.adapt.run_io import load_run
    from xmic.cache.reader import shared_reader

    model, cfg, meta = load_run(Path(run))
    reader = shared_reader(readers, cache, meta["train_dataset"])
    bank = load_bank(
        reader, target=cfg.target, encoder=cfg.encoder, second_encoder=cfg.second_encoder, views=cfg.views,
        classified_view=cfg.classified_view, splits=(cfg.train_split,),
    )  # fmt: skip
    text = reader.load_text(cfg.encoder, cfg.target, cfg.template).float()
    slots = frame_slots(bank.rows.numel(), bank.store_frames, cfg.frames, train=False, generator=None, device="cpu")
    with torch.no_grad():
        a_v = model.instance_vector(bank.batch(bank.rows, slots).cond)
        weights = model.adapted_text(a_v, text)  # (B, K, D), unit rows
        k = weights.shape[1]
        cos = torch.einsum("bkd,bjd->bkj", weights, weights)
        off = (cos.sum(dim=(1, 2)) - k) / (k * (k - 1))
    return {
        "a_v_norm": round(float(a_v.norm(dim=1).mean()), 3),
        "text_norm": round(float(text.norm(dim=1).mean()), 3),
        "a_v_spread": round(float((a_v - a_v.mean(0)).norm(dim=1).mean()), 3),
        "classifier_cosine": round(float(off.mean()), 4),
    }


def xmic_vector_table(
    results_by_row: Mapping[str, Iterable[Mapping[str, Any]]], cache: str | Path, readers: dict | None = None
) -> dict[str, Any]:
    """``{target: {direction: xmic_vector_stats}}`` of the X-MIC row's runs (``readers``: as that takes)."""
    table: dict[str, Any] = {}
    for result in results_by_row.get("X-MIC", []):
        direction, _ = direction_scores(result)
        table.setdefault(result["target"], {})[direction] = xmic_vector_stats(result["run"], cache, readers)
    return table


def xmic_vector_lines(table: Mapping[str, Any]) -> list[str]:
    """One line per (target, direction) of :func:`xmic_vector_table`."""
    return [
        f"  {target}s {d}: |a_v| {s['a_v_norm']:.1f} vs |t_k| {s['text_norm']:.1f}, a_v's spread over clips "
        f"{s['a_v_spread']:.2f}, cosine between two classes' classifiers {s['classifier_cosine']:.3f}"
        for target, directions in sorted(table.items())
        for d, s in sorted(directions.items())
    ]


def training_lines(training: Mapping[str, Any], rows: Sequence[str]) -> list[str]:
    """One line per (row, target): train top-1 (%) of the last epochs in each direction."""
    lines = []
    for row in rows:
        for target, directions in sorted(training.get(row, {}).items()):
            parts = [
                f"{d}: " + " ".join(f"{v:.0f}" for v in t["train_top1"]) + f" (loss {t['loss'][-1]:.2f})"
                for d, t in sorted(directions.items())
            ]
            lines.append(f"  {row} {target}s  " + "; ".join(parts))
    return lines


def compare_lines(methods: Mapping[str, Any], best: str = "X-MIC", against: Sequence[str] = ()) -> list[str]:
    """One line per (target, direction): the cross-dataset hm of ``best`` next to each of ``against``.

    Ends with a count of the cases where ``best`` is above all of them.
    """
    if best not in methods:
        return [f"{best} was not run: no comparison"]
    lines, wins, cases = [], 0, 0
    for target, directions in sorted(methods[best].items()):
        for direction, scores in sorted(directions.items()):
            mine = scores.get("hm")
            others = {a: methods.get(a, {}).get(target, {}).get(direction, {}).get("hm") for a in against}
            parts = ", ".join(f"{a} {_fmt(v)}" for a, v in others.items())
            known = [v for v in others.values() if v is not None]
            cases += 1
            above = mine is not None and bool(known) and all(mine > v for v in known)
            wins += above
            lines.append(f"  {target}s {direction}: {best} hm {_fmt(mine)} vs {parts}{'  <- best' if above else ''}")
    lines.append(f"{best} has the highest cross-dataset hm in {wins} of {cases} cases (vs {', '.join(against)})")
    return lines


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
