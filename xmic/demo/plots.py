"""The demo's bar chart: within / cross / hm top-1 per method, one panel per target and training direction.

Whiskers are the 95 % interval over test clips, the dashed line is chance, a row ending in "(reference)" is
hatched, and each panel's y axis ends just above its largest interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xmic.demo.results import METRICS
from xmic.evaluate.table_plot import tick_label
from xmic.evaluate.tables import DEMO_TITLE
from xmic.report.plots import pyplot_or_none

COLOURS = {"within": "#4c72b0", "cross": "#dd8452", "hm": "#55a868"}


def save_method_bars(methods: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Grouped bars of :func:`xmic.demo.results.method_table` output.

    Args:
        methods: ``{row: {target: {direction: {"within", "cross", "hm"}}}}`` in percent.
        path: PNG file (parent created).
        title: Figure title (the line "synthetic demo data, ..." is added under it).

    Returns:
        ``path``, or None when matplotlib is missing.
    """
    plt = pyplot_or_none()
    if plt is None:
        return None
    import numpy as np

    rows = list(methods)
    panels = sorted({(t, d) for r in rows for t, ds in methods[r].items() for d in ds})
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(7.0, 1.0 * len(rows) + 2), 2.6 * len(panels)), squeeze=False)
    x = np.arange(len(rows))
    width = 0.8 / len(METRICS)
    for ax, (target, direction) in zip(axes[:, 0], panels, strict=True):
        tops, chance = [1.0], None
        for m, metric in enumerate(METRICS):
            found = [methods[r].get(target, {}).get(direction, {}) for r in rows]
            heights = [f.get(metric) or 0.0 for f in found]
            cis = [f.get(f"{metric}_ci95") or [h, h] for f, h in zip(found, heights, strict=True)]
            errors = [
                [h - lo for h, (lo, _) in zip(heights, cis, strict=True)],
                [hi - h for h, (_, hi) in zip(heights, cis, strict=True)],
            ]
            bars = ax.bar(
                x + (m - 1) * width, heights, width, label=metric, color=COLOURS[metric], yerr=errors, capsize=1.5
            )
            for bar, row in zip(bars, rows, strict=True):
                if row.endswith("(reference)"):
                    bar.set_hatch("//")
            tops += [hi for _, hi in cis]
            chance = chance or next((f["chance"] for f in found if f.get("chance")), None)
        if chance is not None:
            ax.axhline(chance, color="black", linestyle="--", linewidth=0.8, label=f"chance {chance:.1f}")
        ax.set_xticks(x, [tick_label(r) for r in rows], fontsize=7)
        ax.set_ylim(0, min(100.0, 1.15 * max(tops + [chance or 0.0])))
        ax.set_ylabel("top-1 %")
        ax.set_title(f"{target}s · train {direction.replace('>', ' → test ')}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=4, fontsize=7, loc="upper left")
    heading = f"{title}\n{DEMO_TITLE}; whiskers: 95 % interval over test clips" if title else DEMO_TITLE
    fig.suptitle(heading, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
