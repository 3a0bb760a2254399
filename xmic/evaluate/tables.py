"""A paper table next to our numbers, as Markdown: paper | ours (mean ± std over seeds, n) | Δ.

On the demo's data (:func:`is_demo`) there is no Δ: ours with a 95 % interval over test clips and chance, the
paper's numbers beside them as reference, and the title says the data are synthetic.

Input: a :class:`~xmic.evaluate.paper_numbers.PaperTable` and, per row key, the list of result dicts of
:func:`xmic.evaluate.evaluator.evaluate_run` (one per trained run: every target, direction and seed of that
row). Each result answers the columns whose target and training dataset it matches; the values of all seeds
of one (row, column) are summarised as mean ± sample standard deviation. Accuracies in results are fractions;
the table shows percent with two decimals, and "–" where a number is missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xmic.evaluate.metrics import harmonic_mean
from xmic.evaluate.paper_numbers import DATASET_LABELS, Column, PaperTable, parse_column

MISSING = "–"
#: In the title of every table and figure made from the demo's data.
DEMO_TITLE = "synthetic demo data, tiny encoders: not comparable with the paper"
HM_METRICS = ("hm", "sn-hm")
HEADLINE_METRIC = {"hm": "hm", "sn-hm": "hm of shared and novel"}


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof 1; None for one value) of ``n`` values, in percent.

    ``ci``: the 95 % bootstrap interval over test clips (:mod:`xmic.evaluate.intervals`); ``chance``: the top-1 of
    guessing uniformly among the column's classes. Both in percent, None where the results do not say.
    """

    mean: float
    std: float | None
    n: int
    ci: tuple[float, float] | None = None
    chance: float | None = None


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


def column_parts(
    result: Mapping[str, Any], column: Column, datasets: Mapping[str, str] | None = None
) -> list[tuple[float, int, int]] | None:
    """The test sets behind ``column``'s value: ``(top-1 fraction, clips, classes)`` each; two for hm (within,
    cross), one for top-1, shared and novel; None when the result does not answer the column or does not say."""
    if column_value(result, column, datasets) is None or column.metric == "sn-hm":
        return None
    datasets = datasets or {}
    scores = result.get("datasets", {}).get(datasets.get(column.test, column.test), {})
    if column.metric == "hm":
        within = next((r for r in result.get("datasets", {}).values() if r.get("kind") == "within"), None)
        sets = [within, scores] if within is not None else []
    elif column.metric == "top1":
        sets = [scores]
    else:
        sets = [scores.get(column.metric, {})]
    parts = [(s.get("top1"), s.get("n"), s.get("classes")) for s in sets]
    return parts if parts and all(None not in p for p in parts) else None


def _chance(parts: Sequence[tuple[float, int, int]]) -> float | None:
    if any(k <= 0 for _, _, k in parts):
        return None
    guesses = [100.0 / k for _, _, k in parts]
    return guesses[0] if len(guesses) == 1 else 2 * guesses[0] * guesses[1] / (guesses[0] + guesses[1])


def summarize_cell(
    results: Sequence[Mapping[str, Any]], column: Column, datasets: Mapping[str, str] | None = None
) -> Summary | None:
    """The :class:`Summary` of one cell: mean ± std over the results (seeds) answering ``column``, with the 95 %
    interval over test clips (:func:`~xmic.evaluate.intervals.seeds_interval` of the seeds' bootstrap intervals)
    and chance."""
    from xmic.evaluate.intervals import bootstrap_interval, seeds_interval

    summary = summarize([v for r in results if (v := column_value(r, column, datasets)) is not None])
    if summary is None:
        return None
    per_seed, chances = [], set()
    for r in results:
        parts = column_parts(r, column, datasets)
        if parts is None:
            continue
        ci = bootstrap_interval([(p, n) for p, n, _ in parts])
        if ci is not None:
            per_seed.append((column_value(r, column, datasets), ci))
        chances.add(_chance(parts))
    ci = seeds_interval(summary.mean, per_seed) if per_seed and len(per_seed) == summary.n else None
    chance = chances.pop() if len(chances) == 1 else None
    return dataclasses.replace(summary, ci=ci, chance=chance)


def collect(
    table: PaperTable, results_by_row: Mapping[str, Sequence[Mapping[str, Any]]], datasets: Mapping[str, str] | None
) -> dict[str, dict[str, Summary | None]]:
    """Per row and column of ``table``: the summary over every result of that row that answers the column."""
    out: dict[str, dict[str, Summary | None]] = {}
    for row in table.rows:
        results = results_by_row.get(row, [])
        out[row] = {key: summarize_cell(results, parse_column(key), datasets) for key in table.columns}
    return out


def is_demo(results_by_row: Mapping[str, Sequence[Mapping[str, Any]]]) -> bool:
    """Whether the results come from the demo's tiny encoders (model ids ``xmic-demo/...``)."""
    from xmic.registry import DEMO_MODEL_PREFIX

    return any(
        str(identity.get("model_id", "")).startswith(DEMO_MODEL_PREFIX)
        for results in results_by_row.values()
        for r in results
        for identity in r.get("encoders", {}).values()
    )


def fmt_paper(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def fmt_ours(summary: Summary | None) -> str:
    if summary is None:
        return MISSING
    if summary.std is None:
        return f"{summary.mean:.2f} (n={summary.n})"
    return f"{summary.mean:.2f} ± {summary.std:.2f} (n={summary.n})"


def fmt_interval(summary: Summary | None) -> str:
    return MISSING if summary is None or summary.ci is None else f"[{summary.ci[0]:.1f}, {summary.ci[1]:.1f}]"


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


def training_settings(results_by_row: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[str]]:
    """``{setting: sorted distinct values}`` of epochs, batch size, lr and warm-up over the runs' config.json."""
    from pathlib import Path

    keys = ("epochs", "batch_size", "lr", "warmup_epochs")
    seen: dict[str, set[str]] = {k: set() for k in keys}
    for results in results_by_row.values():
        for r in results:
            path = Path(str(r.get("run", ""))) / "config.json"
            if r.get("method") == "zero-shot" or not path.is_file():
                continue
            config = json.loads(path.read_text())
            for k in keys:
                if k in config:
                    seen[k].add(f"{config[k]:g}" if isinstance(config[k], float) else str(config[k]))
    return {k: sorted(v) for k, v in seen.items() if v}


def demo_training_line(results_by_row: Mapping[str, Sequence[Mapping[str, Any]]]) -> str | None:
    """The demo header's line on how every trained run was trained, and whether that is the demo's recipe."""
    from xmic.demo.groups import DEMO_BATCH, DEMO_EPOCHS

    found = training_settings(results_by_row)
    if not found:
        return None
    text = ", ".join(f"{k.replace('_', ' ')} {'/'.join(v)}" for k, v in found.items())
    epochs = [int(e) for e in found.get("epochs", [])]
    if epochs and max(epochs) < DEMO_EPOCHS:
        return (
            f"**Quick run**: trained with {text}, fewer epochs than the demo's {DEMO_EPOCHS}: the losses have not "
            f"flattened and the numbers say only that the code runs (`DEMO=1` trains like `xmic demo`)."
        )
    same = found.get("batch_size") == [str(DEMO_BATCH)] and epochs == [DEMO_EPOCHS]
    recipe = " (the recipe of `xmic demo`)" if same else ""
    return f"Every trained run: {text}{recipe}; its last-epoch loss is in its run folder's metrics.jsonl."


def header(
    table: PaperTable,
    results_by_row: Mapping[str, Sequence[Mapping[str, Any]]],
    extra: Sequence[str],
    demo: bool = False,
) -> str:
    """Title, the paper source, and which preset, encoders and store produced our numbers."""
    prov = provenance(results_by_row)

    def joined(key: str) -> str:
        return ", ".join(prov[key]) or MISSING

    title = f"## Table {table.number} — {table.title}" + (f" ({DEMO_TITLE})" if demo else "")
    lines = [
        title,
        "",
        f"Paper: {table.source}.",
        f"Ours: preset {joined('preset')} · encoders {joined('encoders')} · store {joined('store')} · "
        f"seeds {joined('seeds')}.",
    ]
    if demo and (line := demo_training_line(results_by_row)) is not None:
        lines.append(line)
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


def seeds_phrase(summaries: Mapping[str, Mapping[str, Summary | None]]) -> str:
    """ "mean ± std over N seeds" when a cell has N > 1 seeds, else "one seed"."""
    n = max((s.n for cells in summaries.values() for s in cells.values() if s is not None), default=1)
    return f"mean ± std over {n} seeds" if n > 1 else "one seed"


def render_grid(
    table: PaperTable,
    summaries: Mapping[str, Mapping[str, Summary | None]],
    skipped: Mapping[str, str],
    demo: bool = False,
) -> list[str]:
    """Rows × headline columns, each cell "ours" or "ours (paper)", means over seeds; Markdown lines.

    With ``demo``, a cell is "ours [95 % interval over test clips]" and the paper's numbers, for reference only,
    get a row of their own under each row that has them; a row marked "(reference)" is a control, not a method.
    """
    columns = headline_columns(table)
    metric = HEADLINE_METRIC.get(parse_column(columns[0]).metric, "top-1")
    if demo:
        return _demo_grid(table, summaries, skipped, columns, metric)
    lines = [
        f"At a glance ({metric} %, ours, the paper's number in brackets):",
        "",
        *_grid_header(columns),
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


def _grid_header(columns: Sequence[str]) -> list[str]:
    """The header and alignment lines of an at-a-glance grid over ``columns``."""
    return [
        "| row | " + " | ".join(short_label(parse_column(c)) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]


def _demo_grid(
    table: PaperTable,
    summaries: Mapping[str, Mapping[str, Summary | None]],
    skipped: Mapping[str, str],
    columns: Sequence[str],
    metric: str,
) -> list[str]:
    chance = [next((s.chance for r in table.rows if (s := summaries[r][c]) is not None), None) for c in columns]
    lines = [
        f"At a glance ({metric} %, {seeds_phrase(summaries)}, [95 % interval over test clips]; "
        "the paper's numbers below, on real video, for reference only):",
        "",
        *_grid_header(columns),
    ]
    for row in table.rows:
        cells = []
        for key in columns:
            summary = summaries[row][key]
            if skip_reason(skipped, row, parse_column(key)) is not None:
                cells.append("not run")
            elif summary is None:
                cells.append(MISSING)
            else:
                spread = "" if summary.std is None else f" ± {summary.std:.2f}"
                cells.append(f"{summary.mean:.2f}{spread} {fmt_interval(summary)}")
        lines.append(f"| {md_text(row)} | " + " | ".join(cells) + " |")
    lines.append("| chance | " + " | ".join(MISSING if c is None else f"{c:.2f}" for c in chance) + " |")
    for row in table.rows:
        papers = [table.value(row, key) for key in columns]
        if any(p is not None for p in papers):
            lines.append(f"| *paper: {md_text(row)}* | " + " | ".join(f"*{fmt_paper(p)}*" for p in papers) + " |")
    return lines


def render_markdown(
    table: PaperTable,
    results_by_row: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    datasets: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
    extra_header: Sequence[str] = (),
    summaries: Mapping[str, Mapping[str, Summary | None]] | None = None,
    demo: bool | None = None,
    after_grid: Sequence[str] = (),
) -> str:
    """The Markdown of ``table``: one line per (row, column) with paper, ours (mean ± std, n) and Δ = ours − paper.

    Args:
        table: the paper's table.
        results_by_row: row key -> evaluation results of that row (all targets, directions and seeds).
        datasets: logical dataset name -> store group name used by the results.
        skipped: row key -> why the row was not run; its lines say "not run" and the reason is listed below.
        extra_header: more lines for the header (e.g. overrides that depart from the paper's protocol).
        summaries: :func:`collect` of the same table and results, when the caller has it already.
        demo: results on the demo's data: the title says so, no Δ, intervals and chance instead (default: when
            an encoder of the results is one of the demo's, :func:`is_demo`).
        after_grid: more lines between the at-a-glance grid and the long table.
    """
    skipped = skipped or {}
    summaries = summaries if summaries is not None else collect(table, results_by_row, datasets)
    demo = is_demo(results_by_row) if demo is None else demo
    lines = [
        header(table, results_by_row, extra_header, demo),
        "",
        *render_grid(table, summaries, skipped, demo),
        "",
        *after_grid,
    ]
    if demo:
        lines += _demo_lines(table, summaries, skipped)
    else:
        lines += _paper_lines(table, summaries, skipped)
    if skipped:
        lines += ["", "Not run:"]
        lines += [f"- **{md_text(row)}**: {reason}" for row, reason in skipped.items()]
    if table.notes:
        lines += ["", f"Notes: {table.notes}"]
    lines += ["", table.status()]
    return "\n".join(lines) + "\n"


def _demo_lines(
    table: PaperTable, summaries: Mapping[str, Mapping[str, Summary | None]], skipped: Mapping[str, str]
) -> list[str]:
    """Every (row, column) of demo results: ours, its interval over test clips, chance, and the paper's number
    as reference (no Δ: the two are not measured on the same data)."""
    lines = [
        f"| row | column | ours ({seeds_phrase(summaries)}, n) | 95 % interval over test clips | chance | "
        "paper (real video, reference) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in table.rows:
        for key in table.columns:
            column, summary = parse_column(key), summaries[row][key]
            if skip_reason(skipped, row, column) is not None:
                ours, interval, chance = "not run", MISSING, MISSING
            else:
                ours, interval = fmt_ours(summary), fmt_interval(summary)
                chance = MISSING if summary is None or summary.chance is None else f"{summary.chance:.2f}"
            paper = fmt_paper(table.value(row, key))
            lines.append(f"| {md_text(row)} | {column.label} | {ours} | {interval} | {chance} | {paper} |")
    return lines


def _paper_lines(
    table: PaperTable, summaries: Mapping[str, Mapping[str, Summary | None]], skipped: Mapping[str, str]
) -> list[str]:
    lines = [
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
    return lines
