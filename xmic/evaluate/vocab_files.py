"""Read a class vocabulary from the file each dataset ships, whatever the dataset.

- EPIC-KITCHENS-100 ``EPIC_100_{noun,verb}_classes.csv``: header ``id,key,instances,category`` (only
  ``id`` and ``key`` are needed), 0-based ids.
- Ego4D FHO ``fho_lta_taxonomy.json``: ``{"verbs": [...], "nouns": [...]}``, label = list position.
- EGTEA Gaze+ ``verb_idx.txt`` / ``noun_idx.txt``: lines ``<name> <1-based idx>``; ids become 0-based.

Ids must be exactly ``0 .. K-1`` once sorted (they index logit columns); a malformed file raises
:class:`ValueError` naming the file and the row or line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from xmic.classnames import ego4d_names, egtea_names, epic_names

Kind = Literal["noun", "verb"]
KINDS = ("noun", "verb")


@dataclass(frozen=True)
class Vocab:
    """One class vocabulary in label order.

    Attributes:
        source: ``"epic"``, ``"ego4d"`` or ``"egtea"``.
        raw: class names as the file writes them, ``raw[i]`` is class ``ids[i]``.
        prompt: prompt names (see :mod:`xmic.classnames`), unique within the vocabulary.
        ids: 0-based label ids, ``ids == list(range(len(raw)))``.
        kind: ``"noun"`` or ``"verb"``.
        path: the file it was read from (``""`` when built in memory).
    """

    source: str
    raw: list[str]
    prompt: list[str]
    ids: list[int]
    kind: str = "noun"
    path: str = ""

    def __len__(self) -> int:
        return len(self.ids)


def read_vocab(path: str | Path, kind: Kind) -> Vocab:
    """Read a vocabulary file, detecting its format from the suffix and contents.

    Args:
        path: an EPIC class CSV (``.csv``), the Ego4D taxonomy (``.json``) or an EGTEA idx file (``.txt``).
        kind: ``"noun"`` or ``"verb"``; picks the list of the Ego4D taxonomy, informational otherwise.

    Returns:
        The :class:`Vocab`, classes in id order.

    Raises:
        ValueError: unknown format, or a malformed file (the message names the file and row/line).
        FileNotFoundError: the file does not exist.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'noun' or 'verb', got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_epic_csv(path, kind)
    if suffix == ".json":
        return _read_ego4d_json(path, kind)
    if suffix == ".txt":
        return _read_egtea_idx(path, kind)
    raise ValueError(
        f"{path}: unknown vocabulary format {suffix!r} (expected an EPIC class .csv, the Ego4D taxonomy .json "
        "or an EGTEA idx .txt)"
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err


def _check_contiguous(path: Path, ids: list[int], base: int = 0) -> None:
    """``ids`` (0-based) must be ``0..K-1``; ``base`` is how the file counts (1 for EGTEA) for the message."""
    missing = [i + base for i in sorted(set(range(len(ids))) - set(ids))]
    if missing:
        raise ValueError(
            f"{path}: class ids must be {base}..{len(ids) - 1 + base} without gaps; missing {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}"
        )


def _check_unique_prompts(path: Path, prompts: list[str], where: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        if prompt in seen:
            raise ValueError(f"{path}: {where[i]}: prompt name {prompt!r} repeats the one of {where[seen[prompt]]}")
        seen[prompt] = i


def _read_epic_csv(path: Path, kind: str) -> Vocab:
    reader = csv.reader(_read_text(path).splitlines())
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty file, expected an EPIC class CSV with header 'id,key,...'")
    columns = [c.strip() for c in header]
    for needed in ("id", "key"):
        if needed not in columns:
            raise ValueError(f"{path}: line 1: missing column {needed!r} (header is {','.join(columns)!r})")
    id_col, key_col = columns.index("id"), columns.index("key")
    by_id: dict[int, tuple[int, str]] = {}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) <= max(id_col, key_col):
            raise ValueError(f"{path}: line {line_no}: {len(row)} fields, the header has {len(columns)}")
        text_id, key = row[id_col].strip(), row[key_col].strip()
        try:
            class_id = int(text_id)
        except ValueError:
            raise ValueError(f"{path}: line {line_no}: id {text_id!r} is not an integer") from None
        if not key:
            raise ValueError(f"{path}: line {line_no}: empty key for id {class_id}")
        if class_id in by_id:
            raise ValueError(f"{path}: line {line_no}: duplicate id {class_id} (first on line {by_id[class_id][0]})")
        by_id[class_id] = (line_no, key)
    if not by_id:
        raise ValueError(f"{path}: no class rows after the header")
    ids = sorted(by_id)
    _check_contiguous(path, ids)
    pairs = epic_names([by_id[i][1] for i in ids])
    _check_unique_prompts(path, [p for _, p in pairs], [f"line {by_id[i][0]}" for i in ids])
    return Vocab("epic", [r for r, _ in pairs], [p for _, p in pairs], ids, kind, str(path))


def _read_ego4d_json(path: Path, kind: str) -> Vocab:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    key = f"{kind}s"
    if not isinstance(data, dict) or key not in data:
        found = ", ".join(map(repr, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: not an Ego4D taxonomy, expected a {key!r} list (found {found})")
    names = data[key]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{path}: {key!r} must be a non-empty list of class names")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{path}: {key}[{i}] is {name!r}, expected a non-empty class name")
    raw = [name.strip() for name in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(raw):
        if name in seen:
            raise ValueError(f"{path}: {key}[{i}] {name!r} repeats {key}[{seen[name]}]")
        seen[name] = i
    pairs = ego4d_names(raw)
    return Vocab("ego4d", raw, [p for _, p in pairs], list(range(len(raw))), kind, str(path))


def _read_egtea_idx(path: Path, kind: str) -> Vocab:
    by_id: dict[int, tuple[int, str]] = {}
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{path}: line {line_no}: expected '<name> <index>', got {line.strip()!r}")
        name, text_idx = parts
        try:
            idx = int(text_idx)
        except ValueError:
            raise ValueError(f"{path}: line {line_no}: index {text_idx!r} is not an integer") from None
        if idx < 1:
            raise ValueError(f"{path}: line {line_no}: index {idx} is not 1-based (must be >= 1)")
        class_id = idx - 1
        if class_id in by_id:
            raise ValueError(f"{path}: line {line_no}: duplicate index {idx} (first on line {by_id[class_id][0]})")
        by_id[class_id] = (line_no, name)
    if not by_id:
        raise ValueError(f"{path}: no '<name> <index>' lines")
    ids = sorted(by_id)
    _check_contiguous(path, ids, base=1)
    pairs = egtea_names([by_id[i][1] for i in ids])
    _check_unique_prompts(path, [p for _, p in pairs], [f"line {by_id[i][0]}" for i in ids])
    return Vocab("egtea", [r for r, _ in pairs], [p for _, p in pairs], ids, kind, str(path))
