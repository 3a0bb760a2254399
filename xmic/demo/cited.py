"""The demo's numbers as the README and docs/demo.md quote them, rendered from a ``results.json``.

The quoted run's ``results.json`` is kept as ``docs/demo-results.json``; ``python -m xmic.demo.cited FILE`` prints
the tables the README and docs/demo.md carry, and a test checks that they are what that file says.

Tables are cross-dataset hm (top-1 %), one cell ``value [95 % interval]`` per target and training direction.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xmic.demo.groups import REFERENCE_ROW as REFERENCE

#: (target, train group, test group) of the four columns, in Table 1's order.
COLUMNS = (
    ("noun", "synth-ego4d", "synth-epic"),
    ("verb", "synth-ego4d", "synth-epic"),
    ("noun", "synth-epic", "synth-ego4d"),
    ("verb", "synth-epic", "synth-ego4d"),
)
LABELS = {"synth-ego4d": "Ego4D", "synth-epic": "Epic"}
#: The README's rows: the frozen model, the view X-MIC classifies, the closest adapter baseline, X-MIC.
README_ROWS = ("ZS CLIP", REFERENCE, "CLIP-Adapter", "X-MIC")
ALL_ROWS = ("ZS CLIP", REFERENCE, "CoOp", "Co-CoOp", "CLIP-Adapter", "CLIP-Adapter*", "A5", "X-MIC")


def _scores(results: Mapping[str, Any], row: str, target: str, direction: str) -> Mapping[str, Any] | None:
    source = results.get("reference_zero_shot_hand_crop", {}) if row == REFERENCE else results["methods"].get(row, {})
    return source.get(target, {}).get(direction)


def _cell(scores: Mapping[str, Any] | None) -> str:
    if scores is None or scores.get("hm") is None:
        return "–"
    ci = scores.get("hm_ci95")
    return f"{scores['hm']:.1f}" + ("" if ci is None else f" [{ci[0]:.1f}, {ci[1]:.1f}]")


def hm_table(results: Mapping[str, Any], rows: Sequence[str] = ALL_ROWS) -> list[str]:
    """Markdown lines: ``rows`` (those the run has) x the four hm columns, then chance."""
    head = [f"{t}s {LABELS[a]}→{LABELS[b]}" for t, a, b in COLUMNS]
    lines = ["| row | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for row in rows:
        cells = [_scores(results, row, t, f"{a}>{b}") for t, a, b in COLUMNS]
        if all(c is None for c in cells):
            continue
        lines.append(f"| {row} | " + " | ".join(_cell(c) for c in cells) + " |")
    chance = [_scores(results, "X-MIC", t, f"{a}>{b}") or {} for t, a, b in COLUMNS]
    lines.append("| chance | " + " | ".join(f"{c.get('chance', float('nan')):.1f}" for c in chance) + " |")
    return lines


def provenance(results: Mapping[str, Any]) -> str:
    """One sentence: how the run was made and on what machine."""
    demo, machine = results["demo"], results.get("machine", {})
    where = ", ".join(
        str(v)
        for v in (machine.get("cpu"), f"{machine.get('cores')} cores" if machine.get("cores") else None,
                  f"torch {machine['torch']}" if machine.get("torch") else None,
                  f"ATen CPU capability {machine['cpu_capability']}" if machine.get("cpu_capability") else None)
        if v
    )  # fmt: skip
    return f"`xmic demo` (seed {demo['seed']}, scale {demo['scale']}, {demo['epochs']} epochs)" + (
        f" on {where}" if where else ""
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m xmic.demo.cited RESULTS_JSON")
    results = json.loads(Path(args[0]).read_text())
    print(provenance(results) + "\n")
    print("README:\n" + "\n".join(hm_table(results, README_ROWS)) + "\n")
    print("docs/demo.md:\n" + "\n".join(hm_table(results)))


if __name__ == "__main__":
    main()
