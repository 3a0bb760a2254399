"""A rebuilt paper table as a PNG: the at-a-glance grid drawn as grouped bars, the paper's numbers as markers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from xmic.evaluate.paper_numbers import PaperTable, parse_column
from xmic.evaluate.tables import HEADLINE_METRIC, Summary, headline_columns, short_label
from xmic.report.plots import pyplot_or_none

BAR_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def save_table_bars(
    table: PaperTable,
    summaries: Mapping[str, Mapping[str, Summary | None]],
    path: str | Path,
    skipped: Mapping[str, str] | None = None,
) -> Path | None:
    """Grouped bars, one group per row of ``table`` and one bar per headline column (hm, else every column).

    Bar = our mean over seeds, whisker = its standard deviation, black diamond = the paper's number where typed
    in. Rows not run get no bars and "not run" under their name.

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
    ax.set_title(f"Table {table.number}: ours (bars, ± std over seeds); paper ◆", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
