"""The X-MIC paper's printed numbers (Kukleva et al., CVPR 2024, Tables 1-7), shipped with the package.

``paper_tables.csv`` beside this module holds every printed cell of the seven tables, one per line:
``table,row,method,target,train,eval,metric,value`` (value in percent, as printed; 396 cells). It was typed in
from the paper and checked against the paper's own harmonic means (two printed hm values disagree with their
pairs by a rounding slip of the paper: Table 3 ZS CLIP verbs, Table 5 LaViLa X-MIC verbs; shown as printed).

Each table is declared once here (:data:`DECLARATIONS`: title, notes); its rows, row order, columns and column
order come from the CSV, so a rebuilt table has exactly the paper's shape. A column is a :class:`Column`,
keyed ``"[<part>:]<target>|<train>><test>|<metric>"``:

- ``target`` noun / verb; ``train`` the dataset trained on; ``test`` the dataset evaluated (for ``hm`` the
  cross dataset); logical dataset names ``epic`` / ``ego4d`` / ``egtea``;
- ``metric``: ``top1``; ``hm`` (harmonic mean of within-dataset and cross-dataset top-1); ``shared`` /
  ``novel`` (Table 2: the cross test set restricted to classes shared with / new to the training vocabulary,
  each subset classified among its own classes); ``sn-hm`` (Table 2's harmonic mean of shared and novel,
  printed as "hm" in the paper);
- ``part``: only where one printed row holds two methods (Table 7: ``ZS`` and ``X-MIC`` columns per prompt).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

CITATION = "Kukleva et al., CVPR 2024, arXiv:2403.19811"
PAPER_URL = "https://arxiv.org/abs/2403.19811"
DATA_FILE = Path(__file__).with_name("paper_tables.csv")
TARGETS = ("noun", "verb")
METRICS = ("top1", "hm", "shared", "novel", "sn-hm")
DATASET_LABELS = {"epic": "Epic", "ego4d": "Ego4D", "egtea": "EGTEA"}
METRIC_LABELS = {"hm": "hm", "shared": "shared", "novel": "novel", "sn-hm": "hm (shared, novel)"}
#: Table 7 prints a zero-shot and an X-MIC block per prompt: the CSV's method -> the column part.
TABLE7_PARTS = {"ZS CLIP": "ZS", "X-MIC": "X-MIC"}
NOT_TYPED_IN = "Paper numbers: none for this table."


@dataclass(frozen=True)
class Column:
    """One column of a paper table: what was trained, what was tested, which number (and, in Table 7, which block)."""

    target: str  # "noun" | "verb"
    train: str  # logical dataset trained on
    test: str  # logical dataset tested on (for "hm": the cross dataset)
    metric: str  # one of METRICS
    part: str | None = None  # Table 7: "ZS" | "X-MIC"

    @property
    def key(self) -> str:
        prefix = f"{self.part}:" if self.part else ""
        return f"{prefix}{self.target}|{self.train}>{self.test}|{self.metric}"

    @property
    def label(self) -> str:
        """Human-readable, e.g. "nouns · Ego4D → Epic · hm" or "ZS · verbs · Ego4D → Ego4D"."""
        train, test = DATASET_LABELS.get(self.train, self.train), DATASET_LABELS.get(self.test, self.test)
        suffix = "" if self.metric == "top1" else f" · {METRIC_LABELS[self.metric]}"
        prefix = f"{self.part} · " if self.part else ""
        return f"{prefix}{self.target}s · {train} → {test}{suffix}"


def parse_column(key: str) -> Column:
    """``"noun|ego4d>epic|top1"`` or ``"ZS:verb|ego4d>epic|top1"`` -> :class:`Column`; a clear ValueError otherwise."""
    part, sep, rest = key.rpartition(":")
    try:
        target, pair, metric = rest.split("|")
        train, test = pair.split(">")
    except ValueError:
        raise ValueError(f"column key {key!r} is not of the form '[<part>:]<target>|<train>><test>|<metric>'") from None
    if target not in TARGETS or metric not in METRICS or not train or not test or (sep and not part):
        raise ValueError(f"column key {key!r}: target must be one of {TARGETS}, metric one of {METRICS}")
    return Column(target, train, test, metric, part or None)


@dataclass
class PaperTable:
    """One table of the paper: its columns (keys, see :class:`Column`) and rows of printed numbers (percent)."""

    number: int
    title: str
    columns: list[str]
    rows: dict[str, dict[str, float | None]]
    notes: str = ""
    source: str = ""  # e.g. "Kukleva et al., CVPR 2024, arXiv:2403.19811, Table 1"
    numbers_from: str = ""  # a typed-in file laid over the built-in numbers (see xmic.evaluate.paper_file)

    def value(self, row: str, column: str) -> float | None:
        return self.rows.get(row, {}).get(column)

    def missing(self) -> list[tuple[str, str]]:
        """(row, column) pairs without a paper number."""
        return [(r, c) for r, values in self.rows.items() for c in self.columns if values.get(c) is None]

    def status(self) -> str:
        """One sentence on how many of the paper's cells are shown, and from where."""
        total = len(self.rows) * len(self.columns)
        filled = total - len(self.missing())
        if filled == 0:
            return NOT_TYPED_IN
        origin = f"{self.numbers_from} laid over {self.source}" if self.numbers_from else self.source
        if filled == total:
            return f"Paper numbers: all {total} cells, from {origin}."
        return f"Paper numbers: {filled} of {total} cells, from {origin}; '–' where the paper prints none."


@dataclass(frozen=True)
class PaperCell:
    """One printed cell as the CSV states it (``method`` is the method that produced it)."""

    table: int
    row: str
    method: str
    target: str
    train: str
    eval: str
    metric: str
    value: float


def cell_column(cell: PaperCell) -> Column:
    """The rebuilt table's column that answers ``cell``.

    Table 2's "hm" is the harmonic mean of shared and novel (``sn-hm``); Table 7's cells go to the ZS or X-MIC
    block of their row; every other cell's column is its (target, train, eval, metric) as stated.
    """
    metric = "sn-hm" if cell.table == 2 and cell.metric == "hm" else cell.metric
    part = TABLE7_PARTS[cell.method] if cell.table == 7 else None
    return Column(cell.target, cell.train, cell.eval, metric, part)


def read_cells(path: Path = DATA_FILE) -> list[PaperCell]:
    """Every cell of a ``table,row,method,target,train,eval,metric,value`` CSV, in file order."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return [
            PaperCell(
                int(r["table"]),
                r["row"],
                r["method"],
                r["target"],
                r["train"],
                r["eval"],
                r["metric"],
                float(r["value"]),
            )
            for r in csv.DictReader(handle)
        ]


@dataclass(frozen=True)
class TableDeclaration:
    """What the CSV does not say about a table: its title and a note on how the rebuild reads it."""

    title: str
    notes: str


DECLARATIONS: dict[int, TableDeclaration] = {
    1: TableDeclaration(
        "Within- and cross-dataset top-1 %, Ego4D ⇄ Epic-Kitchens",
        "Each row is trained on Ego4D (left block) and on Epic (right block), nouns and verbs separately; within = "
        "the training dataset's own validation set, cross = zero-shot on the other dataset with its full "
        "vocabulary, hm = harmonic mean of the two. X-MIC conditions on CLIP features, X-MIC+DINO on DINOv2.",
    ),
    2: TableDeclaration(
        "Shared and novel classes of the cross-dataset test set (top-1 %)",
        "The cross test set split by whether the ground-truth class also exists in the training vocabulary "
        "(shared) or not (novel), each subset classified among its own classes; hm (shared, novel) is their "
        "harmonic mean.",
    ),
    3: TableDeclaration(
        "Trained on Ego4D: Ego4D and zero-shot EGTEA Gaze+ (top-1 %)",
        "EGTEA's three test splits together with EGTEA's full vocabulary; hm of Ego4D and EGTEA. The paper's "
        "Ego4D column differs from Table 1 for some rows; each table is compared with its own numbers.",
    ),
    4: TableDeclaration(
        "Conditioning views of the ego-spatio-temporal attention: full frame (F), hand crop (H), both (F+H)",
        "X-MIC (CLIP ViT-B/16 as both encoders) trained on Ego4D, evaluated on Ego4D and Epic.",
    ),
    5: TableDeclaration(
        "Backbones: CLIP ViT-B/16, CLIP ViT-L/14, LaViLa ViT-L/14 — zero-shot and X-MIC",
        "Trained on Ego4D. X-MIC here has no DINO: the backbone is both the classified/text encoder and the "
        "conditioning encoder.",
    ),
    6: TableDeclaration(
        "Feature normalisation (nouns)",
        "n1: l2-norm of the conditioning features before the adapter (default); n2: l2-norm of the X-MIC vector "
        "before its sum with the text features; n3: l2-norm of the frozen text features before that sum. The "
        "sum is always l2-normalised. X-MIC trained on Ego4D, nouns only.",
    ),
    7: TableDeclaration(
        "Prompts of the frozen text encoder: zero-shot and X-MIC",
        "<class> is the class name; the prompts are the paper's, including its 'Egocentric image a <class>'. "
        "Trained on Ego4D; ZS is zero-shot CLIP with the same prompt.",
    ),
}


def build_tables(cells: list[PaperCell]) -> dict[int, PaperTable]:
    """The paper's tables from its cells: rows and columns in the order they first appear, values filled in."""
    tables: dict[int, PaperTable] = {}
    for number, decl in DECLARATIONS.items():
        mine = [c for c in cells if c.table == number]
        rows: dict[str, dict[str, float | None]] = {}
        columns: list[str] = []
        for cell in mine:
            key = cell_column(cell).key
            if key not in columns:
                columns.append(key)
            rows.setdefault(cell.row, {})[key] = cell.value
        for values in rows.values():
            for key in columns:
                values.setdefault(key, None)
        source = f"{CITATION}, Table {number}"
        tables[number] = PaperTable(number, decl.title, columns, rows, decl.notes, source)
    return tables


PAPER_TABLES: dict[int, PaperTable] = build_tables(read_cells())
