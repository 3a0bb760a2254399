"""A paper table next to our numbers, as Markdown: paper | ours (mean ± std over seeds, n) | Δ.

Input: a :class:`~xmic.evaluate.paper_numbers.PaperTable` and, per row key, the list of result dicts of
:func:`xmic.evaluate.evaluator.evaluate_run` (one per trained run: every target, direction and seed of that
row). Each result answers the columns whose target and training dataset it matches; the values of all seeds
of one (row, column) are summarised as mean ± sample standard deviation. Accuracies in results are fractions;
the table shows percent with two decimals, and "–" where a number is missing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xmic.evaluate.metrics import harmonic_mean
from xmic.evaluate.paper_numbers import DATASET_LABELS, Column, PaperTable, parse_column

MISSING = "–"
HM_METRICS = ("hm", "sn-hm")
HEADLINE_METRIC = {"hm": "hm", "sn-hm": "hm of shared and novel"}


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof 1; None for one value) of ``n`` values, in percent."""

    mean: float
    std: float | None
    n: int


def summarize(values: Sequence[float]) -> Summary | None:
    """Mean ± sample std of ``values`` (NaN values are ignored); None when nothing is left."""
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not kept:
        return None
    std = statistics.stdev(kept) if len(kept) > 1 else None
    return Summary(statistics.fmean(kept), std, len(kept))


def column_value(result: Mapping[str, Any], column: Column, datasets: Mapping[str, str] | None = None) -> float | None:
    """What one evaluation says for ``column``, in percent; None when the run does not answer that column.

    Args:
        result: an :func:`~xmic.evaluate.evaluator.evaluate_run` dict (``target``, ``train_dataset``,
            ``datasets[name]["top1"]``, ``["shared"]["top1"]``, ``["novel"]["top1"]``, ``hm[name]``).
        column: the column; its dataset names are logical ("epic") and ``datasets`` maps them to the store
            groups the result names (default: the same names).
    """
    datasets = datasets or {}
    if result.get("target") != column.target:
        return None
    if column.part is not None and result.get("part") != column.part:
        return None
    if result.get("train_dataset") != datasets.get(column.train, column.train):
        return None
    test = datasets.get(column.test, column.test)
    scores = result.get("datasets", {}).get(test)
    if column.metric == "hm":
        value = result.get("hm", {}).get(test)
    elif scores is None:
        value = None
    elif column.metric == "top1":
        value = scores.get("top1")
    elif column.metric == "sn-hm":
        shared, novel = (scores.get(name, {}).get("top1") for name in ("shared", "novel"))
        value = None if shared is None or novel is None else harmonic_mean(shared, novel)
    else:
        value = scores.get(column.metric, {}).get("top1")
    if value is None or math.isnan(value):
        return None
    return 100.0 * float(value)


def collect(
    table: PaperTable, results_by_row: Mapping[str, Sequence[Mapping[str, Any]]], datasets: Mapping[str, str] | None
) -> dict[str, dict[str, Summary | None]]:
    """Per row and column of ``table``: the summary over every result of that row that answers the column."""
    out: dict[str, dict[str, Summary | None]] = {}
    for row in table.rows:
        results = results_by_row.get(row, [])
        out[row] = {}
        for key in table.columns:
            column = parse_column(key)
            values = [column_value(r, column, datasets) for r in results]
            out[row][key] = summarize([v for v in values if v is not None])
    return out


def fmt_paper(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def fmt_ours(summary: Summary | None) -> str:
    if summary is None:
        return MISSING
    if summary.std is None:
        return f"{summary.mean:.2f} (n={summary.n})"
    return f"{summary.mean:.2f} ± {summary.std:.2f} (n={summary.n})"


def fmt_delta(paper: float | None, summary: Summary | None) -> str:
    if paper is None or summary is None:
        return MISSING
    return f"{summary.mean - paper:+.2f}"


def _encoder_label(name: str, identity: Mapping[str, Any]) -> str:
    return f"{name} ({identity.get('model_id', '?')}, D={identity.get('dim', '?')})"


def provenance(results_by_row: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[str]]:
    """The presets, encoders, stores and seeds that produced the results (sorted, each listed once)."""
    presets, encoders, stores, seeds = set(), set(), set(), set()
    for results in results_by_row.values():
        for r in results:
            presets.add(str(r.get("preset", "?")))
            stores.add(str(r.get("store", "?")))
            encoders.update(_encoder_label(n, i) for n, i in r.get("encoders", {}).items())
            if r.get("seed") is not None:
                seeds.add(int(r["seed"]))
    return {
        "preset": sorted(presets),
        "encoders": sorted(encoders),
        "store": sorted(stores),
        "seeds": [str(s) for s in sorted(seeds)],
    }


def header(table: PaperTable, results_by_row: Mapping[str, Sequence[Mapping[str, Any]]], extra: Sequence[str]) -> str:
    """Title, the paper source, and which preset, encoders and store produced our numbers."""
    prov = provenance(results_by_row)

    def joined(key: str) -> str:
        return ", ".join(prov[key]) or MISSING

    lines = [
        f"## Table {table.number} — {table.title}",
        "",
        f"Paper: {table.source}.",
        f"Ours: preset {joined('preset')} · encoders {joined('encoders')} · store {joined('store')} · "
        f"seeds {joined('seeds')}.",
    ]
    lines += list(extra)
    return "\n".join(lines)


def headline_columns(table: PaperTable) -> list[str]:
    """The columns of the at-a-glance grid: the harmonic means where the table has them, else every column."""
    hm = [key for key in table.columns if parse_column(key).metric in HM_METRICS]
    return hm or list(table.columns)


def short_label(column: Column) -> str:
    """ "nouns Ego4D→Epic" (+ " shared"/" novel"); the grid's header names the metric of hm columns."""
    train, test = (DATASET_LABELS.get(d, d) for d in (column.train, column.test))
    suffix = f" {column.metric}" if column.metric in ("shared", "novel") else ""
    prefix = f"{column.part} " if column.part else ""
    return f"{prefix}{column.target}s {train}→{test}{suffix}"


def md_text(text: str) -> str:
    """``text`` for a Markdown cell: Table 7's ``<class>`` not read as HTML, Table 5's ``|`` not as a cell border."""
    return text.replace("<", "\\<").replace(">", "\\>").replace("|", "\\|")


def skip_reason(skipped: Mapping[str, str], row: str, column: Column) -> str | None:
    """Why the cell (``row``, ``column``) was not run: the whole row's reason, or its block's (``"row · part"``)."""
    if row in skipped:
        return skipped[row]
    return skipped.get(f"{row} · {column.part}") if column.part else None


def render_grid(
    table: PaperTable, summaries: Mapping[str, Mapping[str, Summary | None]], skipped: Mapping[str, str]
) -> list[str]:
    """Rows × headline columns, each cell "ours" or "ours (paper)", means over seeds; Markdown lines."""
    columns = headline_columns(table)
    metric = HEADLINE_METRIC.get(parse_column(columns[0]).metric, "top-1")
    lines = [
        f"At a glance ({metric} %, ours, the paper's number in brackets):",
        "",
        "| row | " + " | ".join(short_label(parse_column(c)) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in table.rows:
        cells = []
        for key in columns:
            summary, paper = summaries[row][key], table.value(row, key)
            not_run = skip_reason(skipped, row, parse_column(key)) is not None
            ours = "not run" if not_run else MISSING if summary is None else f"{summary.mean:.2f}"
            cells.append(ours if paper is None else f"{ours} ({paper:.2f})")
        lines.append(f"| {md_text(row)} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(
    table: PaperTable,
    results_by_row: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    datasets: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
    extra_header: Sequence[str] = (),
    summaries: Mapping[str, Mapping[str, Summary | None]] | None = None,
) -> str:
    """The Markdown of ``table``: one line per (row, column) with paper, ours (mean ± std, n) and Δ = ours − paper.

    Args:
        table: the paper's table.
        results_by_row: row key -> evaluation results of that row (all targets, directions and seeds).
        datasets: logical dataset name -> store group name used by the results.
        skipped: row key -> why the row was not run; its lines say "not run" and the reason is listed below.
        extra_header: more lines for the header (e.g. overrides that depart from the paper's protocol).
        summaries: :func:`collect` of the same table and results, when the caller has it already.
    """
    skipped = skipped or {}
    summaries = summaries if summaries is not None else collect(table, results_by_row, datasets)
    lines = [
        header(table, results_by_row, extra_header),
        "",
        *render_grid(table, summaries, skipped),
        "",
        "| row | column | paper | ours (mean ± std, n) | Δ |",
        "|---|---|---:|---:|---:|",
    ]
    for row in table.rows:
        for key in table.columns:
            paper = table.value(row, key)
            column = parse_column(key)
            label = column.label
            if skip_reason(skipped, row, column) is not None:
                ours, delta = "not run", MISSING
            else:
                ours, delta = fmt_ours(summaries[row][key]), fmt_delta(paper, summaries[row][key])
            lines.append(f"| {md_text(row)} | {label} | {fmt_paper(paper)} | {ours} | {delta} |")
    if skipped:
        lines += ["", "Not run:"]
        lines += [f"- **{md_text(row)}**: {reason}" for row, reason in skipped.items()]
    if table.notes:
        lines += ["", f"Notes: {table.notes}"]
    lines += ["", table.status()]
    return "\n".join(lines) + "\n"
