"""Shared and novel classes between two vocabularies (the paper's Table 2).

The target test set is divided by its ground-truth class: *shared* classes also exist in the training
vocabulary, *novel* ones do not, and each subset is classified among its own classes only
(:func:`xmic.evaluate.metrics.subset_accuracy`).

Two ways to get the shared classes:

- ``rule="exact"``: prompt names equal after :func:`~xmic.classnames.normalise_name`.
- the authors' split files (one class name per line, e.g. ``epic_ego_common_exact_noun.txt``). Their
  ``epic_ego_*`` files list EPIC classes by prompt name ("chopping board", "turn on"); their
  ``ego_epic_*`` files list Ego4D classes by raw taxonomy name ("bag_(bag,_grocery,...)",
  "nut_(food)"). :func:`split_from_file` accepts either form for any vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from xmic.classnames import ego4d_names, egtea_prompt, epic_prompt, normalise_name
from xmic.evaluate.vocab_files import Vocab

RULES = ("exact",)


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown sharing rule {rule!r}; known: {', '.join(RULES)}")


def shared_classes(vocab: Vocab, other: Vocab | Iterable[str], rule: str = "exact") -> list[int]:
    """Ids of ``vocab`` whose prompt name also names a class of ``other``.

    Args:
        vocab: the vocabulary to split (usually the target / test dataset's).
        other: the other vocabulary (usually the training dataset's), or its prompt names.
        rule: ``"exact"``: equal after :func:`~xmic.classnames.normalise_name`.

    Returns:
        Class ids of ``vocab`` in increasing order.
    """
    _check_rule(rule)
    names = other.prompt if isinstance(other, Vocab) else list(other)
    wanted = {normalise_name(name) for name in names}
    return [i for i, prompt in zip(vocab.ids, vocab.prompt, strict=True) if normalise_name(prompt) in wanted]


def novel_classes(vocab: Vocab, other: Vocab | Iterable[str], rule: str = "exact") -> list[int]:
    """Ids of ``vocab`` not in :func:`shared_classes` (increasing order)."""
    shared = set(shared_classes(vocab, other, rule))
    return [i for i in vocab.ids if i not in shared]


def read_split_file(path: str | Path) -> list[str]:
    """Class names of a split file in the authors' format: one name per line.

    Lines are stripped, blank lines skipped; names are returned as written (raw or prompt form,
    see :func:`split_from_file`), in file order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not UTF-8 text or holds no names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err})") from err
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names (expected one name per line)")
    return names


def _candidate_prompts(name: str, source: str) -> list[str]:
    """Prompt forms a split-file name may stand for, most specific first."""
    forms = [name]
    if source == "epic" or ":" in name:
        forms.append(epic_prompt(name))
    if source == "ego4d" or "(" in name:
        forms.append(ego4d_names([name])[0][1])
    if source == "egtea":
        forms.append(egtea_prompt(name))
    return forms


def split_from_file(vocab: Vocab | Sequence[str], names: Iterable[str], origin: str | Path = "") -> list[int]:
    """Ids of ``vocab`` listed in ``names`` (from :func:`read_split_file`).

    A name matches a class when it equals its raw name, or when it equals its prompt name after
    :func:`~xmic.classnames.normalise_name` -- directly or once read as a raw name of the vocabulary's
    source ("board:chopping", "bag_(bag,_grocery)", "Cut/Slice"). So the authors' ``epic_ego_*`` (EPIC
    prompt names, ``_`` for spaces) and ``ego_epic_*`` (raw Ego4D names) files both work.

    Args:
        vocab: a :class:`Vocab`, or plain class names in label order (they serve as raw and prompt names).
        names: the class names to look up.
        origin: where ``names`` came from, for the error message.

    Returns:
        Class ids in increasing order, without repeats.

    Raises:
        ValueError: a name matches no class (every such name is listed), or two classes.
    """
    if not isinstance(vocab, Vocab):
        labels = list(vocab)
        vocab = Vocab("names", labels, labels, list(range(len(labels))))
    by_raw = {raw: i for i, raw in zip(vocab.ids, vocab.raw, strict=True)}
    by_prompt: dict[str, list[int]] = {}
    for i, prompt in zip(vocab.ids, vocab.prompt, strict=True):
        by_prompt.setdefault(normalise_name(prompt), []).append(i)
    found: set[int] = set()
    unknown: list[str] = []
    for name in names:
        name = name.strip()
        if name in by_raw:
            found.add(by_raw[name])
            continue
        hits: list[int] = []
        for form in _candidate_prompts(name, vocab.source):
            hits = by_prompt.get(normalise_name(form), [])
            if hits:
                break
        if len(hits) > 1:
            raise ValueError(f"{origin or 'split'}: {name!r} matches several classes {hits}")
        if hits:
            found.add(hits[0])
        else:
            unknown.append(name)
    if unknown:
        where = f"{origin}: " if origin else ""
        shown = ", ".join(map(repr, unknown[:20])) + (" ..." if len(unknown) > 20 else "")
        if vocab.source == "names":
            desc = f"the {len(vocab)} given class names"
        else:
            desc = f"the {vocab.source} {vocab.kind} vocabulary{' ' + vocab.path if vocab.path else ''}"
        raise ValueError(f"{where}{len(unknown)} name(s) match no class of {desc}: {shown}")
    return sorted(found)
