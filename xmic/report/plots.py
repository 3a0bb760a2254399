"""PNG figures with matplotlib (the optional ``plots`` extra), imported only when a figure is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MISSING_MATPLOTLIB = "matplotlib is not installed (pip install 'xmic[plots]'); no PNG figures written"


def pyplot_or_none() -> Any:
    """``matplotlib.pyplot`` with the file-only Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def row_shares(cm: np.ndarray) -> np.ndarray:
    """``(K, K)`` counts -> each row divided by its sum (rows without samples stay 0)."""
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros(cm.shape, dtype=float), where=totals > 0)


def save_confusion_png(
    panels: Sequence[tuple[np.ndarray, Sequence[str], str]], path: str | Path, title: str
) -> Path | None:
    """Draw confusion matrices side by side (rows = true class, columns = predicted, shaded by row share).

    Args:
        panels: ``(cm (K, K) counts, K class names, subtitle)`` per panel, e.g. one per evaluated dataset.
        path: PNG file to write (parent created).
        title: Figure title.

    Returns:
        ``path``, or None when matplotlib is missing.
    """
    plt = pyplot_or_none()
    if plt is None:
        return None
    sides = [max(3.0, 0.4 * len(names) + 1.6) for _, names, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(sides) + 0.5, max(sides) + 0.6), squeeze=False)
    for ax, (cm, names, subtitle) in zip(axes[0], panels, strict=True):
        k = len(names)
        frac = row_shares(cm)
        ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(subtitle, fontsize=8)
        if k <= 25:
            for i, j in zip(*np.nonzero(cm), strict=True):
                colour = "white" if frac[i, j] > 0.6 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=6, color=colour)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.16, right=0.98, bottom=0.22, top=0.86, wspace=0.45)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
