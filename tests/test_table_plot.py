"""The table figure: one bar per (row, headline column), sized by our mean, paper numbers as markers."""

from __future__ import annotations

import pytest

from xmic.evaluate.paper_numbers import PaperTable
from xmic.evaluate.table_plot import save_table_bars
from xmic.evaluate.tables import Summary

plt = pytest.importorskip("matplotlib.pyplot")
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402


def test_bars_heights_errors_and_paper_markers(tmp_path, monkeypatch):
    cols = ["noun|epic>epic|top1", "noun|epic>ego4d|hm", "verb|epic>ego4d|hm"]
    rows = {"X-MIC": {cols[0]: 50.0, cols[1]: 30.0, cols[2]: None}, "A5": dict.fromkeys(cols)}
    table = PaperTable(1, "T", cols, rows, "", "S")
    summaries = {
        "X-MIC": {cols[0]: Summary(40.0, 1.0, 2), cols[1]: Summary(32.0, 2.0, 2), cols[2]: Summary(12.0, None, 1)},
        "A5": dict.fromkeys(cols),
    }
    drawn = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, path, **kw):
        ax = fig.axes[0]
        drawn["heights"] = sorted(round(p.get_height(), 3) for p in ax.patches)
        scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
        drawn["markers"] = [tuple(map(float, xy)) for c in scatter for xy in c.get_offsets()]
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        drawn["whiskers"] = sorted(round(float(seg[1][1] - seg[0][1]), 3) for c in lines for seg in c.get_segments())
        drawn["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        drawn["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        return real_savefig(fig, path, **kw)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    path = save_table_bars(table, summaries, tmp_path / "t.png", skipped={"A5": "no weights"})
    assert path.read_bytes()[:4] == b"\x89PNG"
    # hm columns only (the within column is in the Markdown table): X-MIC 32, 12; A5 not run -> 0-height bars
    assert drawn["heights"] == [0.0, 0.0, 12.0, 32.0]
    assert [round(y, 3) for _, y in drawn["markers"]] == [30.0]  # the one typed-in hm number
    assert drawn["whiskers"][-1] == 4.0  # ± 2.0 around X-MIC's 32; the others have no spread
    assert drawn["ticks"] == ["X-MIC", "A5\n(not run)"]
    assert drawn["legend"] == ["nouns Epic→Ego4D", "verbs Epic→Ego4D"]


def test_demo_bars_have_title_chance_intervals_and_scaled_axes(tmp_path, monkeypatch):
    from xmic.evaluate.tables import DEMO_TITLE

    cols = ["noun|epic>epic|top1", "noun|epic>ego4d|hm"]
    rows = {"X-MIC": {cols[0]: 50.0, cols[1]: 60.0}, "ZS (reference)": dict.fromkeys(cols)}
    table = PaperTable(1, "T", cols, rows, "", "S")
    summaries = {
        "X-MIC": {cols[0]: None, cols[1]: Summary(20.0, None, 1, (15.0, 26.0), 10.0)},
        "ZS (reference)": {cols[0]: None, cols[1]: Summary(12.0, None, 1, (8.0, 16.5), 10.0)},
    }
    drawn = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, path, **kw):
        ax = fig.axes[0]
        drawn["title"] = fig._suptitle.get_text()
        drawn["heights"] = [round(p.get_height(), 3) for p in ax.patches]
        drawn["hatches"] = [p.get_hatch() for p in ax.patches]
        drawn["chance"] = [tuple(line.get_ydata()) for line in ax.get_lines() if line.get_linestyle() == "--"]
        drawn["ylim"] = ax.get_ylim()
        drawn["markers"] = [c for c in ax.collections if isinstance(c, PathCollection)]
        drawn["whiskers"] = sorted(
            (round(float(s[0][1]), 3), round(float(s[1][1]), 3))
            for c in ax.collections
            if isinstance(c, LineCollection)
            for s in c.get_segments()
        )
        return real_savefig(fig, path, **kw)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    save_table_bars(table, summaries, tmp_path / "t.png", demo=True)
    assert DEMO_TITLE in drawn["title"] and "one seed" in drawn["title"] and "± std" not in drawn["title"]
    assert drawn["heights"] == [20.0, 12.0] and drawn["hatches"] == [None, "//"]
    assert drawn["chance"] == [(10.0, 10.0)] and not drawn["markers"]  # no paper markers on demo data
    assert drawn["whiskers"] == [(8.0, 16.5), (15.0, 26.0)]  # the intervals over test clips
    assert drawn["ylim"] == pytest.approx((0.0, 26.0 * 1.15))  # up to just above the largest interval
