"""The rebuilt tables have exactly the paper's shape: every printed cell of ../shared/paper/tables.csv has one slot.

The slots are read back from the Markdown a rebuild writes (no results: every "ours" is "–"), so the test checks
what a user sees, not only the declarations. The shipped numbers must equal the shared file's.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from xmic.evaluate import paper_numbers as pn
from xmic.evaluate.reproduce import TABLE_SPECS
from xmic.evaluate.tables import render_markdown

SHARED_TABLES = Path(__file__).resolve().parents[2] / "shared" / "paper" / "tables.csv"
LABELS = {"ego4d": "Ego4D", "epic": "Epic", "egtea": "EGTEA"}
LINE = re.compile(
    r"^\| (?P<row>.+?) \| (?P<label>[^|]+) \| (?P<paper>[\d.]+|–) \| (?P<ours>[^|]+) \| (?P<delta>[^|]+) \|$"
)


def shared_cells() -> list[dict[str, str]]:
    if not SHARED_TABLES.is_file():
        pytest.skip(
            f"the paper's cells are not here ({SHARED_TABLES} is absent: ../shared is not laid beside the repo)"
        )
    with SHARED_TABLES.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_label(cell: dict[str, str]) -> str:
    """The column label a user reads for ``cell``, spelled out here independently of the package's mapping."""
    block = {"ZS CLIP": "ZS · ", "X-MIC": "X-MIC · "}[cell["method"]] if cell["table"] == "7" else ""
    metric = cell["metric"]
    if cell["table"] == "2" and metric == "hm":
        suffix = " · hm (shared, novel)"
    else:
        suffix = "" if metric == "top1" else f" · {metric}"
    return f"{block}{cell['target']}s · {LABELS[cell['train']]} → {LABELS[cell['eval']]}{suffix}"


def rendered_slots(number: int) -> list[tuple[str, str, str]]:
    """(row, column label, paper value) of every line of the rebuilt table's cell list."""
    md = render_markdown(pn.PAPER_TABLES[number], {})
    slots = []
    for line in md.splitlines():
        match = LINE.match(line)
        if match and match["row"] != "row":
            row = re.sub(r"\\([<>|])", r"\1", match["row"])  # the Markdown escapes undone
            slots.append((row, match["label"], match["paper"]))
    return slots


@pytest.mark.parametrize("number", range(1, 8))
def test_every_paper_cell_has_exactly_one_slot_and_no_table_has_more(number):
    cells = [c for c in shared_cells() if c["table"] == str(number)]
    assert cells, f"table {number} has no cells in {SHARED_TABLES}"
    slots = rendered_slots(number)
    counts = Counter((row, label) for row, label, _ in slots)
    assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]
    values = {(row, label): paper for row, label, paper in slots}
    for cell in cells:
        key = (cell["row"], expected_label(cell))
        assert key in values, f"table {number}: no slot for {key}"
        assert values[key] == f"{float(cell['value']):.2f}", key
    assert len(slots) == len(cells), f"table {number} has {len(slots) - len(cells)} slots the paper does not print"
    paper_rows = list(dict.fromkeys(c["row"] for c in cells))
    assert list(dict.fromkeys(row for row, _, _ in slots)) == paper_rows  # the printed row order


@pytest.mark.parametrize("number", range(1, 8))
def test_runs_of_each_table_cover_its_columns_and_nothing_else(number):
    table, spec = pn.PAPER_TABLES[number], TABLE_SPECS[number]
    assert spec.keys == list(table.rows)
    columns = [pn.parse_column(c) for c in table.columns]
    needed = {(c.train, c.test) for c in columns if c.metric != "hm"}
    needed |= {(c.train, c.train) for c in columns if c.metric == "hm"}
    directions = {(train, test) for train, tests in spec.directions for test in tests}
    assert needed <= directions
    # no training direction or cross test set the paper does not print (Table 2 also evaluates within, unshown)
    assert all(train == test for train, test in directions - needed)
    assert {t for t, _ in directions} == {c.train for c in columns}
    assert set(spec.targets) == {c.target for c in columns}
    assert {r.part for r in spec.rows} == {c.part for c in columns}


def test_the_shipped_numbers_are_the_papers():
    shipped = [c for c in pn.read_cells()]
    shared = shared_cells()
    assert len(shipped) == len(shared) == 396
    for mine, theirs in zip(shipped, shared, strict=True):
        assert (str(mine.table), mine.row, mine.method, mine.target, mine.train, mine.eval, mine.metric) == (
            theirs["table"],
            theirs["row"],
            theirs["method"],
            theirs["target"],
            theirs["train"],
            theirs["eval"],
            theirs["metric"],
        )
        assert mine.value == float(theirs["value"])


def test_the_papers_harmonic_means_agree_with_their_pairs_but_for_two_printing_slips():
    """An independent check of the shipped numbers: each printed hm against 2ab/(a+b) of its printed pair."""
    cells = pn.read_cells()
    value = {(c.table, c.row, c.method, c.target, c.train, c.eval, c.metric): c.value for c in cells}
    off = []
    for c in cells:
        if c.metric != "hm":
            continue
        if c.table == 2:
            a, b = (value[(c.table, c.row, c.method, c.target, c.train, c.eval, m)] for m in ("shared", "novel"))
        else:
            a = value[(c.table, c.row, c.method, c.target, c.train, c.train, "top1")]
            b = value[(c.table, c.row, c.method, c.target, c.train, c.eval, "top1")]
        if abs(2 * a * b / (a + b) - c.value) > 0.02:
            off.append((c.table, c.row, c.target))
    assert off == [(3, "ZS CLIP", "verb"), (5, "LaViLa ViT-L/14 | X-MIC", "verb")]
