"""The X-MIC paper's reported numbers, typed in: Kukleva et al., CVPR 2024, arXiv:2403.19811, Tables 1-7.

Every value is a top-1 accuracy (or a harmonic mean of two) in percent, as printed in the paper. A value that
could not be read from the paper is ``None`` and renders as "–"; nothing here is estimated or copied from
another source.

Status of the numbers: the stored copy of the paper that the project's look-up tools reach
(https://arxiv.org/html/2403.19811v1) returns only the first page of text (title, abstract, start of the
introduction); the tables were not reachable, and the authors' repository (github.com/annusha/xmic) publishes
code and class splits but no result tables. Every number below is therefore ``None`` until someone types it in
from the paper, row by row: the structure (rows, columns, their meaning) is what :mod:`xmic.evaluate.reproduce`
runs and is fixed here; the values are the only thing missing. Without editing this file, a person with the PDF
can type them into a CSV (``xmic paper-numbers template FILE``) that :mod:`xmic.evaluate.paper_file` lays over
these tables (``xmic reproduce --paper-numbers FILE``).

Column keys are ``"<target>|<train>><test>|<metric>"`` with target ``noun``/``verb``, logical dataset names
``epic``/``ego4d``/``egtea`` and metric ``top1`` (accuracy on the test dataset), ``hm`` (harmonic mean of the
within-dataset and this cross-dataset top-1), ``shared`` / ``novel`` (Table 2's subsets of the cross test set,
each classified among its own classes). :func:`parse_column` turns a key into a :class:`Column`.
"""

from __future__ import annotations

from dataclasses import dataclass

from xmic.cache.schema import PROMPT_TEMPLATES

CITATION = "Kukleva et al., CVPR 2024, arXiv:2403.19811"
PAPER_URL = "https://arxiv.org/abs/2403.19811"
TARGETS = ("noun", "verb")
METRICS = ("top1", "hm", "shared", "novel")
DATASET_LABELS = {"epic": "Epic", "ego4d": "Ego4D", "egtea": "EGTEA"}
NOT_TYPED_IN = (
    "Paper numbers not typed in: the paper's tables were not reachable from this project's stored copy of "
    "arXiv:2403.19811 (only its first page), so every paper cell shows '–'. Fill them in from the PDF with "
    "`xmic paper-numbers template FILE`, then pass `--paper-numbers FILE` (make: PAPER_NUMBERS=FILE)."
)


@dataclass(frozen=True)
class Column:
    """One column of a paper table: what was trained, what was tested, which number."""

    target: str  # "noun" | "verb"
    train: str  # logical dataset trained on
    test: str  # logical dataset tested on (for "hm": the cross dataset)
    metric: str  # one of METRICS

    @property
    def key(self) -> str:
        return f"{self.target}|{self.train}>{self.test}|{self.metric}"

    @property
    def label(self) -> str:
        """Human-readable, e.g. "nouns · Ego4D → Epic" or "verbs · Ego4D → Epic · hm"."""
        train, test = DATASET_LABELS.get(self.train, self.train), DATASET_LABELS.get(self.test, self.test)
        suffix = "" if self.metric == "top1" else f" · {self.metric}"
        return f"{self.target}s · {train} → {test}{suffix}"


def parse_column(key: str) -> Column:
    """``"noun|ego4d>epic|top1"`` -> :class:`Column`; a clear ValueError for anything else."""
    try:
        target, pair, metric = key.split("|")
        train, test = pair.split(">")
    except ValueError:
        raise ValueError(f"column key {key!r} is not of the form '<target>|<train>><test>|<metric>'") from None
    if target not in TARGETS or metric not in METRICS or not train or not test:
        raise ValueError(f"column key {key!r}: target must be one of {TARGETS}, metric one of {METRICS}")
    return Column(target, train, test, metric)


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
        """One sentence on how many of the paper's cells are filled in, and from where."""
        total = len(self.rows) * len(self.columns)
        filled = total - len(self.missing())
        if filled == 0:
            return NOT_TYPED_IN
        origin = self.numbers_from or "xmic/evaluate/paper_numbers.py"
        if filled == total:
            return f"Paper numbers: all {total} cells typed in, from {origin}."
        return f"Paper numbers: {filled} of {total} cells typed in, from {origin}; '–' where missing."


def cross_columns(directions: tuple[tuple[str, str], ...], metrics: tuple[str, ...]) -> list[str]:
    """Column keys per target, per (train, cross test) direction: within top-1, cross top-1, hm, or the metrics."""
    out = []
    for target in TARGETS:
        for train, test in directions:
            for metric in metrics:
                if metric == "within":
                    out.append(Column(target, train, train, "top1").key)
                else:
                    out.append(Column(target, train, test, metric).key)
    return out


def _blank(rows: list[str], columns: list[str]) -> dict[str, dict[str, float | None]]:
    return {row: dict.fromkeys(columns) for row in rows}


BOTH_DIRECTIONS = (("ego4d", "epic"), ("epic", "ego4d"))
WITHIN_CROSS_HM = ("within", "top1", "hm")
TABLE1_COLUMNS = cross_columns(BOTH_DIRECTIONS, WITHIN_CROSS_HM)
TABLE2_COLUMNS = cross_columns(BOTH_DIRECTIONS, ("shared", "novel"))
TABLE3_COLUMNS = cross_columns((("ego4d", "egtea"),), ("top1",))

#: Row keys of the comparison tables, in the order the reproduction runs them.
METHOD_ROWS = [
    "Zero-shot CLIP",
    "CLIP-Adapter",
    "CLIP-Adapter*",
    "CoOp",
    "Co-CoOp",
    "Vita-CLIP",
    "A5",
    "X-MIC",
    "X-MIC+DINO",
]
VIEW_ROWS = ["F", "H", "F+H"]
BACKBONE_ROWS = ["CLIP ViT-B/16", "DINOv2 ViT-B/14"]
NORM_ROWS = ["none", "n1", "n3", "n1+n3", "n1+n2+n3"]
TEMPLATE_ROWS = list(PROMPT_TEMPLATES)


def _table(number: int, title: str, rows: list[str], columns: list[str], notes: str) -> PaperTable:
    source = f"{CITATION}, Table {number}"
    return PaperTable(number, title, list(columns), _blank(rows, columns), notes, source)


PAPER_TABLES: dict[int, PaperTable] = {
    1: _table(
        1,
        "Cross-dataset generalisation, Ego4D ⇄ Epic-Kitchens (top-1 %, within / cross / harmonic mean)",
        METHOD_ROWS,
        TABLE1_COLUMNS,
        "Train on one dataset, test on its own validation set (within) and zero-shot on the other (cross), nouns "
        "and verbs separately; hm = harmonic mean of within and cross. X-MIC+DINO conditions on DINOv2 features.",
    ),
    2: _table(
        2,
        "Shared and novel classes of the cross-dataset test set (top-1 %)",
        METHOD_ROWS,
        TABLE2_COLUMNS,
        "The cross test set split by whether the ground-truth class also exists in the training vocabulary "
        "(shared) or not (novel); each subset classified among its own classes.",
    ),
    3: _table(
        3,
        "Trained on Ego4D, zero-shot on EGTEA Gaze+ (top-1 %)",
        METHOD_ROWS,
        TABLE3_COLUMNS,
        "EGTEA's three test splits together, with EGTEA's full vocabulary.",
    ),
    4: _table(
        4,
        "Ablation: conditioning views — full frame (F), hand crop (H), both (F+H)",
        VIEW_ROWS,
        TABLE1_COLUMNS,
        "X-MIC with the conditioning views of each row.",
    ),
    5: _table(
        5,
        "Ablation: second (conditioning) visual encoder",
        BACKBONE_ROWS,
        TABLE1_COLUMNS,
        "X-MIC conditioned on CLIP ViT-B/16 or DINOv2 features; the classified view stays CLIP.",
    ),
    6: _table(
        6,
        "Ablation: normalisations n1 / n2 / n3",
        NORM_ROWS,
        TABLE1_COLUMNS,
        "n1: l2-normalise the conditioning features before the adapter; n2: l2-normalise the frozen class-text "
        "embeddings before adding the X-MIC vector; n3: l2-normalise the adapted classifier (text + X-MIC vector). "
        "Meanings as implemented in xmic.adapt.xmic_model; the paper's exact row set is not verified.",
    ),
    7: _table(
        7,
        "Ablation: prompt template of the class-text embeddings",
        TEMPLATE_ROWS,
        TABLE1_COLUMNS,
        "'{}' is the class name. Templates as in xmic.cache.schema.PROMPT_TEMPLATES; the paper's exact wording "
        "of the six templates is not verified.",
    ),
}
