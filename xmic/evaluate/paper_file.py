"""An override of the paper's numbers from a CSV a person edits, laid over the shipped tables of :mod:`paper_numbers`.

Format (UTF-8 CSV, one cell of one paper table per line, header required)::

    table,row,column,label,value,source
    1,X-MIC,noun|ego4d>epic|hm,nouns · Ego4D → Epic · hm,21.06,

``table`` is 1-7, ``row`` a row key of that table, ``column`` a column key (see
:class:`~xmic.evaluate.paper_numbers.Column`), ``value`` the printed percentage (a trailing "%" is allowed; blank
keeps the shipped number). ``label`` is for the person editing and is ignored; ``source`` is optional free text (e.g.
the page). :func:`write_template` writes every cell of the chosen tables valued with the shipped numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from xmic.evaluate import paper_numbers as pn

HEADER = ("table", "row", "column", "label", "value", "source")
REQUIRED = ("table", "row", "column", "value")


class PaperFileError(ValueError):
    """A paper-numbers file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class PaperCell:
    """One typed-in number: table, row key, column key, value in percent, and where it was read."""

    table: int
    row: str
    column: str
    value: float
    line: int
    source: str = ""


def write_template(path: Path, tables: Iterable[int] | None = None) -> int:
    """Write every (row, column) cell of ``tables`` (default: all) as a CSV to fill in; returns the cell count.

    Values already in :data:`~xmic.evaluate.paper_numbers.PAPER_TABLES` are written filled in.
    """
    numbers = sorted(pn.PAPER_TABLES) if tables is None else list(tables)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for number in numbers:
            table = pn.PAPER_TABLES[number]
            for row in table.rows:
                for key in table.columns:
                    value = table.value(row, key)
                    label = pn.parse_column(key).label
                    writer.writerow([number, row, key, label, "" if value is None else f"{value:g}", ""])
                    count += 1
    return count


def _parse_value(text: str, where: str) -> float | None:
    text = text.strip().removesuffix("%").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise PaperFileError(f"{where}: value {text!r} is not a number") from None
    if math.isnan(value) or not 0.0 <= value <= 100.0:
        raise PaperFileError(f"{where}: value {value} is not a percentage in [0, 100]")
    return value


def _parse_table(text: str, where: str) -> pn.PaperTable:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number not in pn.PAPER_TABLES:
        raise PaperFileError(f"{where}: table {text!r} is not one of {sorted(pn.PAPER_TABLES)}")
    return pn.PAPER_TABLES[number]


def read_paper_file(path: Path) -> list[PaperCell]:
    """The filled-in cells of ``path``; blank values are skipped. Every problem is a :class:`PaperFileError`.

    Checked: the header has the required columns; each table, row and column exists in the paper's table;
    each value is a percentage; no cell appears twice.
    """
    if not path.is_file():
        raise PaperFileError(f"{path}: no such file (write one with `xmic paper-numbers template {path}`)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
        if missing:
            raise PaperFileError(f"{path}, line 1: header lacks {', '.join(missing)} (expected {','.join(HEADER)})")
        cells: list[PaperCell] = []
        seen: dict[tuple[int, str, str], int] = {}
        for record in reader:
            line = reader.line_num
            where = f"{path}, line {line}"
            table = _parse_table((record["table"] or "").strip(), where)
            row, column = (record["row"] or "").strip(), (record["column"] or "").strip()
            if row not in table.rows:
                raise PaperFileError(f"{where}: table {table.number} has no row {row!r} (rows: {list(table.rows)})")
            if column not in table.columns:
                raise PaperFileError(f"{where}: table {table.number} has no column {column!r}")
            value = _parse_value(record["value"] or "", where)
            if value is None:
                continue
            key = (table.number, row, column)
            if key in seen:
                raise PaperFileError(
                    f"{where}: table {key[0]}, row {row!r}, column {column!r} repeats line {seen[key]}"
                )
            seen[key] = line
            cells.append(PaperCell(table.number, row, column, value, line, (record.get("source") or "").strip()))
    return cells


def with_numbers(table: pn.PaperTable, cells: Iterable[PaperCell], origin: str) -> pn.PaperTable:
    """A copy of ``table`` with the cells of its number filled in, and ``numbers_from`` naming ``origin``."""
    rows = {row: dict(values) for row, values in table.rows.items()}
    filled = 0
    for cell in cells:
        if cell.table == table.number:
            rows[cell.row][cell.column] = cell.value
            filled += 1
    if not filled:
        return table
    return dataclasses.replace(table, rows=rows, numbers_from=origin)


def load_paper_table(number: int, path: Path | None) -> pn.PaperTable:
    """Table ``number`` of the paper, with the numbers of ``path`` laid over it when a file is given."""
    table = pn.PAPER_TABLES[number]
    if path is None:
        return table
    return with_numbers(table, read_paper_file(path), str(path))
