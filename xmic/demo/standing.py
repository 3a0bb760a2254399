"""Where X-MIC stands against the controls in the demo's table: above or below each of them per headline column,
and whether the gap is larger than the test clips' noise (the two 95 % intervals apart) or within it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xmic.demo.groups import REFERENCE_ROW
from xmic.evaluate.tables import Summary, headline_columns, md_text, parse_column, short_label

#: The rows X-MIC is set against in the demo: zero-shot CLIP (the frozen model), CLIP-Adapter (the adapter
#: baseline closest to X-MIC's head), and zero-shot CLIP on the hand crop (the view X-MIC classifies).
AGAINST = ("ZS CLIP", "CLIP-Adapter", REFERENCE_ROW)


@dataclass(frozen=True)
class Gap:
    """``best`` minus ``other`` in one column (percentage points) and whether their intervals are apart."""

    diff: float
    apart: bool | None  # None: an interval is missing

    def text(self) -> str:
        side = "above" if self.diff > 0 else "below" if self.diff < 0 else "level"
        noise = "" if self.apart is None else ", intervals apart" if self.apart else ", within the noise"
        return f"{side} ({self.diff:+.1f}{noise})"


def gap(best: Summary | None, other: Summary | None) -> Gap | None:
    """The :class:`Gap` of two cells; None when either was not measured."""
    if best is None or other is None:
        return None
    apart = None
    if best.ci is not None and other.ci is not None:
        apart = best.ci[0] > other.ci[1] or other.ci[0] > best.ci[1]
    return Gap(best.mean - other.mean, apart)


def standing(
    columns: Sequence[str],
    summaries: Mapping[str, Mapping[str, Summary | None]],
    best: str = "X-MIC",
    against: Sequence[str] = AGAINST,
) -> dict[str, dict[str, Gap | None]]:
    """``{other: {column: Gap}}`` of ``best`` against each row of ``against`` that the summaries hold."""
    mine = summaries.get(best, {})
    return {
        other: {c: gap(mine.get(c), summaries[other].get(c)) for c in columns}
        for other in against
        if other in summaries
    }


def standing_lines(
    table, summaries: Mapping[str, Mapping[str, Summary | None]], best: str = "X-MIC", against: Sequence[str] = AGAINST
) -> list[str]:
    """Markdown: a paragraph and a grid, one row per control, one column per headline column of ``table``."""
    columns = headline_columns(table)
    gaps = standing(columns, summaries, best, against)
    if best not in summaries or not gaps:
        return []
    lines = [
        f"Where {best} stands (this run; hm, {best} minus the row, in points; *intervals apart*: the two 95 % "
        "intervals over test clips do not overlap; *within the noise*: they do):",
        "",
        "| against | " + " | ".join(short_label(parse_column(c)) for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for other, cells in gaps.items():
        lines.append(
            f"| {md_text(other)} | " + " | ".join("–" if g is None else g.text() for g in cells.values()) + " |"
        )
    return lines + [""]


def standing_record(
    table, summaries: Mapping[str, Mapping[str, Summary | None]], best: str = "X-MIC", against: Sequence[str] = AGAINST
) -> dict[str, dict[str, dict[str, float | bool | None] | None]]:
    """:func:`standing` as JSON-able values keyed by the grid's column labels (``results.json``'s ``standing``)."""
    columns = headline_columns(table)
    return {
        other: {
            short_label(parse_column(c)): None if g is None else {"diff": round(g.diff, 2), "intervals_apart": g.apart}
            for c, g in cells.items()
        }
        for other, cells in standing(columns, summaries, best, against).items()
    }
