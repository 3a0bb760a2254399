"""The run declarations of the paper's seven tables: which runs fill each printed row, in which directions.

A :class:`TableSpec` lists run configurations (:class:`RowSpec`: a row key as printed, the method, its
:class:`~xmic.adapt.config.TrainConfig` overrides) and the training directions (train A, test A and B) a table
needs; :data:`TABLE_SPECS` holds the seven. Their rows and columns match :mod:`xmic.evaluate.paper_numbers`
(a test checks it against the paper's cells).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xmic.evaluate import paper_numbers as pn
from xmic.evaluate.reproduce_data import ReproduceError


class TableSpecError(ReproduceError):
    """A row that a table does not have."""


@dataclass(frozen=True)
class RowSpec:
    """One run configuration of a table row: ``key`` as printed in the paper, the method and its overrides.

    ``part`` names the block of the row's columns this configuration answers when one printed row holds two
    methods (Table 7: "ZS" and "X-MIC"); ``encoder`` pins the backbone (the classified/text encoder and, for
    X-MIC, the conditioning encoder too: Table 5's "X-MIC without DINO"); ``unavailable`` says why the row can
    never run with this version of xmic.
    """

    key: str
    method: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    needs_dino: bool = False
    part: str | None = None
    encoder: str | None = None
    unavailable: str | None = None

    @property
    def label(self) -> str:
        """The row key, with the block for a row that holds two (``"<class> · ZS"``)."""
        return f"{self.key} · {self.part}" if self.part else self.key


@dataclass(frozen=True)
class TableSpec:
    """The run configurations of a table, its directions ((train dataset, test datasets), logical names) and
    the targets it reports (Table 6: nouns only)."""

    number: int
    rows: tuple[RowSpec, ...]
    directions: tuple[tuple[str, tuple[str, ...]], ...]
    targets: tuple[str, ...] = ("noun", "verb")

    @property
    def keys(self) -> list[str]:
        """Row keys in order, each once."""
        return list(dict.fromkeys(r.key for r in self.rows))


#: CLIP ViT-B/16, the paper's backbone wherever a table does not name another.
DEFAULT_CLIP = "clip-vit-b16"
METHOD_ROWS = (
    RowSpec("ZS CLIP", "zero-shot"),
    RowSpec("CoOp", "coop"),
    RowSpec("Co-CoOp", "cocoop"),
    RowSpec("CLIP-Adapter", "clip-adapter"),
    RowSpec("CLIP-Adapter*", "clip-adapter-star"),
    RowSpec("A5", "a5"),
    RowSpec("Vita-CLIP", "vita-clip"),
    RowSpec("X-MIC", "xmic"),
    RowSpec("X-MIC+DINO", "xmic", needs_dino=True),
)
BOTH = (("ego4d", ("ego4d", "epic")), ("epic", ("epic", "ego4d")))
#: The ablation protocol of Tables 4-7: train on Ego4D, evaluate on Ego4D and Epic-Kitchens.
EGO4D_TO_EPIC = (("ego4d", ("ego4d", "epic")),)
VIEW_ROWS = ("F", "H", "F+H")
#: Table 6's rows as printed -> (n1, n2, n3) with the paper's meanings (see xmic.adapt.xmic_model).
NORM_ROWS = {
    "n1": (True, False, False),
    "none": (False, False, False),
    "n2,n3": (False, True, True),
    "n1,n2,n3": (True, True, True),
    "n1,n2": (True, True, False),
    "n1,n3": (True, False, True),
}
#: Table 5's backbones -> registry entries (LaViLa: the TimeSformer-L/14 dual encoder pre-trained on Ego4D).
BACKBONES = {"CLIP ViT-B/16": "clip-vit-b16", "CLIP ViT-L/14": "clip-vit-l14", "LaViLa ViT-L/14": "lavila-tsf-l14"}


def prompt_template(row: str) -> str:
    """Table 7's printed prompt -> the store's template: ``"Image of a <class>"`` -> ``"Image of a {}"``."""
    return row.replace("<class>", "{}")


def _backbone_rows() -> tuple[RowSpec, ...]:
    rows = []
    for name, encoder in BACKBONES.items():
        rows.append(RowSpec(f"{name} | ZS", "zero-shot", encoder=encoder))
        rows.append(RowSpec(f"{name} | X-MIC", "xmic", encoder=encoder))
    return tuple(rows)


def _prompt_rows() -> tuple[RowSpec, ...]:
    rows = []
    for prompt in pn.PAPER_TABLES[7].rows:
        overrides = {"template": prompt_template(prompt)}
        rows.append(RowSpec(prompt, "zero-shot", overrides, part="ZS"))
        rows.append(RowSpec(prompt, "xmic", overrides, part="X-MIC"))
    return tuple(rows)


TABLE_SPECS: dict[int, TableSpec] = {
    1: TableSpec(1, METHOD_ROWS, BOTH),
    2: TableSpec(2, METHOD_ROWS, BOTH),
    3: TableSpec(3, tuple(r for r in METHOD_ROWS if not r.needs_dino), (("ego4d", ("ego4d", "egtea")),)),
    4: TableSpec(4, tuple(RowSpec(v, "xmic", {"views": v}) for v in VIEW_ROWS), EGO4D_TO_EPIC),
    5: TableSpec(5, _backbone_rows(), EGO4D_TO_EPIC),
    6: TableSpec(
        6,
        tuple(RowSpec(k, "xmic", dict(zip(("n1", "n2", "n3"), v, strict=True))) for k, v in NORM_ROWS.items()),
        EGO4D_TO_EPIC,
        targets=("noun",),
    ),
    7: TableSpec(7, _prompt_rows(), EGO4D_TO_EPIC),
}


def select_rows(spec: TableSpec, wanted: tuple[str, ...] | None) -> tuple[RowSpec, ...]:
    """The run configurations whose row key, label or method is in ``wanted`` (all when ``wanted`` is empty)."""
    if not wanted:
        return spec.rows
    names = {w.strip().lower() for w in wanted if w.strip()}

    def names_of(r: RowSpec) -> set[str]:
        return {r.key.lower(), r.label.lower(), r.method}

    rows = tuple(r for r in spec.rows if names & names_of(r))
    unknown = sorted(names - set().union(*(names_of(r) for r in spec.rows)))
    if unknown or not rows:
        choices = ", ".join(f"{r.label!r} ({r.method})" for r in spec.rows)
        raise TableSpecError(f"table {spec.number} has no row {', '.join(unknown) or wanted}; its rows: {choices}")
    return rows


def merge_skipped(spec: TableSpec, rows: tuple[RowSpec, ...], skipped: dict[str, str]) -> dict[str, str]:
    """Skip reasons keyed by row, or by ``"row · part"`` when only one block of a two-block row is not run."""
    out: dict[str, str] = {}
    for key in dict.fromkeys(r.key for r in rows):
        mine = [r for r in rows if r.key == key]
        reasons = {r.label: skipped[r.label] for r in mine if r.label in skipped}
        if len(reasons) == len(mine) and len(set(reasons.values())) == 1:
            out[key] = next(iter(reasons.values()))
        else:
            out.update(reasons)
    return out


def blocks_not_run(key: str, skipped: Mapping[str, str]) -> dict[str, str]:
    return {label: reason for label, reason in skipped.items() if label.startswith(f"{key} · ")}
