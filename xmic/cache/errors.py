"""Errors raised by the feature store, and the wording of spec mismatches."""

from __future__ import annotations

import json
from typing import Any


class StoreError(Exception):
    """The store at a path is missing, malformed or lacks what was asked for."""


class StoreSpecError(StoreError, ValueError):
    """The spec recorded in a store differs from the one a writer or a training run asks for."""


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def describe_encoders(encoders: dict[str, dict[str, Any]]) -> str:
    """``{"clip-vit-b16": {...}}`` -> ``'clip-vit-b16 {...}'`` (several joined by ``', '``)."""
    if not encoders:
        return "(no encoders)"
    return ", ".join(f"{name} {_show(ident)}" for name, ident in sorted(encoders.items()))


def spec_differences(
    stored: dict[str, Any], asked: dict[str, Any], *, asked_label: str = "asked for", exact_encoders: bool = False
) -> list[str]:
    """One line per field whose values differ, naming both values.

    Args:
        stored: field -> value as the store records it (``encoders`` as ``{name: identity dict}``).
        asked: field -> value the caller wants; only its fields are compared.
        asked_label: how to name the second value ("the run asks for", "the new spec has").
        exact_encoders: also report encoders the store has and ``asked`` lacks (a run may use a subset;
            a writer resuming a store may not).

    Returns:
        Lines such as ``"num_frames: store has 32; asked for 16"``; empty when everything matches.
    """
    lines = []
    for key in sorted(asked):
        want = asked[key]
        have = stored.get(key)
        if key == "encoders":
            lines.extend(_encoder_differences(have or {}, want or {}, asked_label, exact_encoders))
        elif have != want:
            lines.append(f"{key}: store has {_show(have)}; {asked_label} {_show(want)}")
    return lines


def _encoder_differences(have: dict[str, Any], want: dict[str, Any], asked_label: str, exact: bool) -> list[str]:
    lines = []
    if exact:
        for name in sorted(set(have) - set(want)):
            lines.append(f"encoders: store has encoder {name} {_show(have[name])}; {asked_label} no such encoder")
    for name, ident in sorted(want.items()):
        if name not in have:
            lines.append(
                f"encoders: store was extracted with encoder {describe_encoders(have)}; "
                f"{asked_label} {name} {_show(ident)}"
            )
        elif have[name] != ident:
            fields = sorted(k for k in set(have[name]) | set(ident) if have[name].get(k) != ident.get(k))
            lines.append(
                f"encoders: store was extracted with encoder {name} {_show(have[name])}; "
                f"{asked_label} {name} {_show(ident)} (differs in {', '.join(fields)})"
            )
    return lines
