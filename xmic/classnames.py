"""Class names as prompts, normalised the way the X-MIC authors did it.

Every ``*_names`` function takes the raw class names of one vocabulary in label order and returns
``(raw_name, prompt_name)`` pairs in the same order.

- EPIC-KITCHENS-100 ``key`` column: the ``:``-separated parts are reversed and ``-`` becomes a space,
  ``"board:chopping"`` -> ``"chopping board"``, ``"turn-on"`` -> ``"turn on"``,
  ``"machine:sous:vide"`` -> ``"vide sous machine"`` (the authors reversed every part; this order is
  what their split files contain).
- Ego4D FHO taxonomy: everything from the first ``(`` on is dropped and ``_`` becomes a space,
  ``"bag_(bag,_grocery,...)"`` -> ``"bag"``, ``"baking_soda"`` -> ``"baking soda"``. Names that would
  collide after that are kept apart, see :func:`ego4d_names`.
- EGTEA Gaze+ ``verb_idx.txt`` / ``noun_idx.txt``: lower case, ``_`` and ``/`` become spaces,
  ``"Cut/Slice"`` -> ``"cut slice"``, ``"Cutting_board"`` -> ``"cutting board"``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

#: Ego4D taxonomy entries whose base names collide ("nut", "bat", "chip", "pot"). The prompts are the
#: ones the authors' code produced (``_fix_classes`` in their Ego4D loader, ``_`` read as a space), so
#: "nut_(food)" keeps the bare "nut" and matches EPIC's "nut" exactly, while the others get a word of
#: their qualifier. ``chip_(wood'_metal),`` (sic) is a real taxonomy entry.
EGO4D_COLLISION_PROMPTS: dict[str, str] = {
    "nut_(food)": "nut",
    "nut_(tool)": "nut tool",
    "bat_(sports)": "bat sports",
    "bat_(tool)": "bat tool",
    "chip_(wood'_metal),": "chip wood",
    "chip_(wood,_metal)": "chip metal",
    "pot_(planter)": "planter",
}

_SPACES = re.compile(r"\s+")


def _squash(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def normalise_name(name: str) -> str:
    """The comparison form of any class name: lower case, ``_ - /`` as spaces, single spaces.

    ``normalise_name("Chopping_Board") == normalise_name("chopping board") == "chopping board"``.
    """
    return _squash(re.sub(r"[_\-/]", " ", name).lower())


def epic_prompt(key: str) -> str:
    """Prompt for one EPIC-100 ``key``: ``:`` parts reversed, ``-`` and ``_`` as spaces."""
    parts = [p for p in key.strip().split(":") if p]
    return _squash(" ".join(reversed(parts)).replace("-", " ").replace("_", " "))


def epic_names(keys: Sequence[str]) -> list[tuple[str, str]]:
    """``(key, prompt)`` pairs for EPIC-100 class keys given in id order."""
    return [(key, epic_prompt(key)) for key in keys]


def ego4d_base_prompt(raw: str) -> str:
    """Ego4D name without the parenthesised synonyms, ``_`` as spaces (no collision handling)."""
    return _squash(raw.split("(", 1)[0].replace("_", " "))


def _ego4d_qualifier(raw: str) -> str:
    """First item inside the first parentheses of an Ego4D name, or ``""``."""
    match = re.search(r"\(([^)]*)\)?", raw)
    if match is None:
        return ""
    return _squash(match.group(1).split(",", 1)[0].replace("_", " "))


def ego4d_names(raw_names: Sequence[str]) -> list[tuple[str, str]]:
    """``(raw, prompt)`` pairs for Ego4D FHO taxonomy names given in label order.

    Prompts are unique. The known collisions of the FHO taxonomy use the authors' names
    (:data:`EGO4D_COLLISION_PROMPTS`). Any other group of names that would share a prompt keeps the
    bare prompt for members without a qualifier and appends the first qualifier word in parentheses
    to the others (``"x_(food)"``, ``"x_(tool)"`` -> ``"x (food)"``, ``"x (tool)"``); if that still
    collides, later members (in label order) get `` 2``, `` 3``, ... appended.
    """
    prompts = [EGO4D_COLLISION_PROMPTS.get(raw) or ego4d_base_prompt(raw) for raw in raw_names]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, prompt in enumerate(prompts):
        groups[prompt].append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        for i in members:
            qualifier = _ego4d_qualifier(raw_names[i])
            if qualifier:
                prompts[i] = f"{prompts[i]} ({qualifier})"
    planned = set(prompts)
    used: set[str] = set()
    for i, prompt in enumerate(prompts):
        if prompt in used:
            n = 2
            while f"{prompt} {n}" in used or f"{prompt} {n}" in planned:
                n += 1
            prompts[i] = f"{prompt} {n}"
        used.add(prompts[i])
    return list(zip(raw_names, prompts, strict=True))


def egtea_prompt(name: str) -> str:
    """Prompt for one EGTEA Gaze+ class name: lower case, ``_`` and ``/`` as spaces."""
    return _squash(name.replace("_", " ").replace("/", " ").lower())


def egtea_names(names: Sequence[str]) -> list[tuple[str, str]]:
    """``(name, prompt)`` pairs for EGTEA Gaze+ class names given in id order."""
    return [(name, egtea_prompt(name)) for name in names]


def epic_prompt_name(key: str) -> str:
    """Prompt name of one EPIC class key (alias of ``epic_prompt`` used by the dataset readers)."""
    return epic_prompt(key)


def ego4d_prompt_names(raw_names: Sequence[str]) -> list[str]:
    """Prompt names of a whole Ego4D taxonomy list, collisions kept apart, in label order."""
    return [prompt for _, prompt in ego4d_names(raw_names)]


def egtea_prompt_name(raw: str) -> str:
    """Prompt name of one EGTEA class (alias of ``egtea_prompt``)."""
    return egtea_prompt(raw)
