"""The paper's numbers typed into a CSV: template, validation with file and line, and the overlay on the tables."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.cli import main
from xmic.evaluate import paper_numbers as pn
from xmic.evaluate.paper_file import (
    HEADER,
    PaperFileError,
    load_paper_table,
    read_paper_file,
    with_numbers,
    write_template,
)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]], header=HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_template_lists_every_cell_of_the_chosen_tables(tmp_path):
    path = tmp_path / "paper.csv"
    count = write_template(path, [1, 3])
    rows = read_rows(path)
    t1, t3 = pn.PAPER_TABLES[1], pn.PAPER_TABLES[3]
    assert count == len(rows) == len(t1.rows) * len(t1.columns) + len(t3.rows) * len(t3.columns)
    assert {(int(r["table"]), r["row"], r["column"]) for r in rows if r["table"] == "1"} == {
        (1, row, col) for row in t1.rows for col in t1.columns
    }
    first = rows[0]
    assert first["value"] == "5.89" and first["label"] == pn.parse_column(first["column"]).label  # the shipped number
    cells = read_paper_file(path)
    assert len(cells) == count and all(pn.PAPER_TABLES[c.table].value(c.row, c.column) == c.value for c in cells)


def test_filled_cells_are_read_and_laid_over_the_table(tmp_path):
    path = tmp_path / "paper.csv"
    write_template(path, [1])
    rows = read_rows(path)
    typed = {("X-MIC", "noun|ego4d>epic|hm"): "23.4", ("ZS CLIP", "verb|epic>epic|top1"): "12.5 %"}
    for row in rows:
        row["value"] = typed.get((row["row"], row["column"]), "")
        if row["value"]:
            row["source"] = "p. 6"
    write_rows(path, rows)

    cells = read_paper_file(path)
    assert {(c.row, c.column): c.value for c in cells} == {
        ("X-MIC", "noun|ego4d>epic|hm"): 23.4,
        ("ZS CLIP", "verb|epic>epic|top1"): 12.5,
    }
    assert {c.source for c in cells} == {"p. 6"}
    table = load_paper_table(1, path)
    assert table.value("X-MIC", "noun|ego4d>epic|hm") == 23.4
    assert table.value("X-MIC", "noun|epic>ego4d|hm") == 17.57  # blank in the file: the shipped number stays
    assert pn.PAPER_TABLES[1].value("X-MIC", "noun|ego4d>epic|hm") == 21.06  # the built-in table is untouched
    assert table.status() == f"Paper numbers: all 108 cells, from {path} laid over {pn.CITATION}, Table 1."
    assert load_paper_table(2, path) is pn.PAPER_TABLES[2]  # no cells of table 2 in the file
    assert with_numbers(pn.PAPER_TABLES[1], [], "x") is pn.PAPER_TABLES[1]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"table": "8", "row": "X-MIC", "column": "noun|ego4d>epic|hm", "value": "1"}, "table '8' is not one of"),
        ({"table": "1", "row": "X-MIX", "column": "noun|ego4d>epic|hm", "value": "1"}, "has no row 'X-MIX'"),
        ({"table": "1", "row": "X-MIC", "column": "noun|ego4d>egtea|hm", "value": "1"}, "has no column"),
        ({"table": "1", "row": "X-MIC", "column": "noun|ego4d>epic|hm", "value": "abc"}, "'abc' is not a number"),
        ({"table": "1", "row": "X-MIC", "column": "noun|ego4d>epic|hm", "value": "0.5e3"}, "not a percentage"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path, row, message):
    good = {"table": "1", "row": "CoOp", "column": "noun|ego4d>epic|hm", "value": "20"}
    path = write_rows(tmp_path / "bad.csv", [good, row])
    with pytest.raises(PaperFileError, match=message) as err:
        read_paper_file(path)
    assert str(err.value).startswith(f"{path}, line 3:")


def test_repeated_cell_and_missing_header_are_refused(tmp_path):
    cell = {"table": "1", "row": "CoOp", "column": "noun|ego4d>epic|hm", "value": "20"}
    path = write_rows(tmp_path / "twice.csv", [cell, {**cell, "value": "21"}])
    with pytest.raises(PaperFileError, match=r"line 3: .*repeats line 2"):
        read_paper_file(path)
    path = write_rows(tmp_path / "nohead.csv", [cell], header=("table", "row", "column"))
    with pytest.raises(PaperFileError, match=r"line 1: header lacks value"):
        read_paper_file(path)
    with pytest.raises(PaperFileError, match="xmic paper-numbers template"):
        read_paper_file(tmp_path / "absent.csv")


def test_cli_template_check_and_overwrite_guard(tmp_path):
    runner = CliRunner()
    path = tmp_path / "paper.csv"
    out = runner.invoke(main, ["paper-numbers", "template", str(path), "--table", "4"])
    assert out.exit_code == 0, out.output
    t4 = pn.PAPER_TABLES[4]
    assert f"wrote {len(t4.rows) * len(t4.columns)} cells" in out.output
    again = runner.invoke(main, ["paper-numbers", "template", str(path)])
    assert again.exit_code == 1 and "--force" in again.output

    rows = read_rows(path)
    rows[0]["value"] = "31.0"
    write_rows(path, rows)
    checked = runner.invoke(main, ["paper-numbers", "check", str(path)])
    assert checked.exit_code == 0, checked.output
    n4 = len(t4.rows) * len(t4.columns)
    assert f"| 4 | {n4} | {n4} | 1 |" in checked.output  # the template holds the shipped numbers; one changed
    assert "| 1 | 0 | 108 | 0 |" in checked.output

    rows[1]["value"] = "x"
    write_rows(path, rows)
    bad = runner.invoke(main, ["paper-numbers", "check", str(path)])
    assert bad.exit_code == 1 and f"{path}, line 3" in bad.output
