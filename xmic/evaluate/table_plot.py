"""A rebuilt paper table as a PNG: the at-a-glance grid drawn as grouped bars, the paper's numbers as markers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from xmic.evaluate.paper_numbers import PaperTable, parse_column
from xmic.evaluate.tables import DEMO_TITLE, HEADLINE_METRIC, Summary, headline_columns, seeds_phrase, short_label
from xmic.report.plots import pyplot_or_none

BAR_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def save_table_bars(
    table: PaperTable,
    summaries: Mapping[str, Mapping[str, Summary | None]],
    path: str | Path,
    skipped: Mapping[str, str] | None = None,
    demo: bool = False,
) -> Path | None:
    """Grouped bars, one group per row of ``table`` and one bar per headline column (hm, else every column).

    Bar = our mean over seeds, whisker = its standard deviation, black diamond = the paper's number where typed
    in. Rows not run get no bars and "not run" under their name. With ``demo`` (:func:`save_demo_bars`): one panel
    per column, whiskers = the 95 % interval over test clips, a chance line, no paper markers, axes scaled to the
    data and the title saying the data are synthetic.

    Args:
        table: the paper table (rows, columns, paper numbers).
        summaries: ``{row: {column key: Summary or None}}`` as :func:`xmic.evaluate.tables.collect` returns.
        path: PNG file (parent created).
        skipped: rows not run.

    Returns:
        ``path``, or None when matplotlib is missing.
    """
    plt = pyplot_or_none()
    if plt is None:
        return None
    import numpy as np

    skipped = skipped or {}
    if demo:
        return save_demo_bars(table, summaries, path, skipped)
    rows, columns = list(table.rows), headline_columns(table)
    metric = HEADLINE_METRIC.get(parse_column(columns[0]).metric, "top-1")
    width = 0.8 / len(columns)
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(rows) * max(1, len(columns) / 3) + 2), 3.6))
    for i, key in enumerate(columns):
        offset = x + (i - (len(columns) - 1) / 2) * width
        found = [summaries.get(r, {}).get(key) for r in rows]
        means = [0.0 if s is None else s.mean for s in found]
        errors = [0.0 if s is None or s.std is None else s.std for s in found]
        colour = BAR_COLOURS[i % len(BAR_COLOURS)]
        spread = {"yerr": errors, "capsize": 2} if any(errors) else {}  # one seed: no whiskers at all
        ax.bar(offset, means, width, color=colour, label=short_label(parse_column(key)), **spread)
        papers = [
            (o, table.value(r, key)) for o, r in zip(offset, rows, strict=True) if table.value(r, key) is not None
        ]
        if papers:
            ax.scatter(*zip(*papers, strict=True), marker="D", s=14, color="black", zorder=3)
    labels = [f"{r}\n(not run)" if r in skipped else r for r in rows]
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"{metric} %")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=min(4, len(columns)), fontsize=7, loc="upper left")
    spread = seeds_phrase(summaries).replace("mean ± std", "± std")
    ax.set_title(f"Table {table.number}: ours (bars, {spread}); paper ◆", fontsize=9)
    return _save(plt, fig, path)


def tick_label(row: str, not_run: bool = False) -> str:
    """``row`` wrapped at 16 characters for an x tick, with "(not run)" under it when it was not run."""
    import textwrap

    return textwrap.fill(row, 16) + ("\n(not run)" if not_run else "")


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_demo_bars(
    table: PaperTable,
    summaries: Mapping[str, Mapping[str, Summary | None]],
    path: str | Path,
    skipped: Mapping[str, str] | None = None,
) -> Path | None:
    """One panel per headline column, one bar per row of ``table``, for results on the demo's data.

    Bar = our mean over seeds, whisker = the 95 % interval over test clips (``Summary.ci``), dashed line = chance;
    a row whose name ends in "(reference)" is hatched. The y axis runs from 0 to just above the largest interval,
    so small differences are visible; the paper's numbers (real video) are in the Markdown table only.

    Returns:
        ``path``, or None when matplotlib is missing.
    """
    plt = pyplot_or_none()
    if plt is None:
        return None
    import numpy as np

    skipped = skipped or {}
    rows, columns = list(table.rows), headline_columns(table)
    metric = HEADLINE_METRIC.get(parse_column(columns[0]).metric, "top-1")
    x = np.arange(len(rows))
    fig, axes = plt.subplots(
        len(columns), 1, figsize=(max(7.0, 0.75 * len(rows) + 2), 2.4 * len(columns) + 0.6), squeeze=False
    )
    for i, (ax, key) in enumerate(zip(axes[:, 0], columns, strict=True)):
        found = [None if r in skipped else summaries.get(r, {}).get(key) for r in rows]
        means = [0.0 if s is None else s.mean for s in found]
        low = [0.0 if s is None or s.ci is None else s.mean - s.ci[0] for s in found]
        high = [0.0 if s is None or s.ci is None else s.ci[1] - s.mean for s in found]
        bars = ax.bar(x, means, 0.7, color=BAR_COLOURS[i % len(BAR_COLOURS)], yerr=[low, high], capsize=2)
        for bar, row in zip(bars, rows, strict=True):
            if row.endswith("(reference)"):
                bar.set_hatch("//")
                bar.set_alpha(0.6)
        chance = next((s.chance for s in found if s is not None and s.chance is not None), None)
        if chance is not None:
            ax.axhline(chance, color="black", linestyle="--", linewidth=0.8, label=f"chance {chance:.1f}")
            ax.legend(fontsize=7, loc="upper right")
        top = max([s.ci[1] if s.ci else s.mean for s in found if s is not None] + [chance or 0.0, 1.0])
        ax.set_ylim(0, min(100.0, top * 1.15))
        ax.set_ylabel(f"{metric} %", fontsize=8)
        ax.set_title(short_label(parse_column(key)), fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xticks(x, [tick_label(r, r in skipped) for r in rows], fontsize=7)
    fig.suptitle(
        f"Table {table.number} on {DEMO_TITLE}\nbars: {seeds_phrase(summaries)}; whiskers: 95 % interval over "
        "test clips; dashed: chance",
        fontsize=9,
    )
    return _save(plt, fig, path)
