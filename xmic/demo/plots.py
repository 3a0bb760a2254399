"""The demo's bar chart: within / cross / hm top-1 per method, one panel per target and training direction."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xmic.demo.results import METRICS
from xmic.report.plots import pyplot_or_none

COLOURS = {"within": "#4c72b0", "cross": "#dd8452", "hm": "#55a868"}


def save_method_bars(methods: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Grouped bars of :func:`xmic.demo.results.method_table` output.

    Args:
        methods: ``{row: {target: {direction: {"within", "cross", "hm"}}}}`` in percent.
        path: PNG file (parent created).
        title: Figure title.

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
        for m, metric in enumerate(METRICS):
            values = [methods[r].get(target, {}).get(direction, {}).get(metric) for r in rows]
            heights = [0.0 if v is None else v for v in values]
            ax.bar(x + (m - 1) * width, heights, width, label=metric, color=COLOURS[metric])
        ax.set_xticks(x, rows, fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel("top-1 %")
        ax.set_title(f"{target}s · train {direction.replace('>', ' → test ')}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(ncol=3, fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
