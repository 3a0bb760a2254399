"""The demo numbers the README and docs/demo.md quote are those of docs/demo-results.json, rendered by
xmic.demo.cited."""

from __future__ import annotations

import json
from pathlib import Path

from xmic.demo.cited import README_ROWS, REFERENCE, hm_table, provenance

ROOT = Path(__file__).resolve().parents[1]
QUOTED = ROOT / "docs" / "demo-results.json"


def _scores(hm: float, ci: tuple[float, float], chance: float) -> dict:
    return {"hm": hm, "hm_ci95": list(ci), "chance": chance}


def test_hm_table_cells_come_from_the_right_row_target_and_direction() -> None:
    directions = ("synth-ego4d>synth-epic", "synth-epic>synth-ego4d")
    results = {
        "methods": {
            "X-MIC": {t: {d: _scores(40.0 + i + 10 * j, (30.0, 50.0), c) for j, d in enumerate(directions)}
                      for i, (t, c) in enumerate((("noun", 10.0), ("verb", 12.5)))},
            "ZS CLIP": {"noun": {directions[0]: _scores(21.84, (16.77, 26.41), 10.0)}},
        },
        "reference_zero_shot_hand_crop": {"verb": {directions[1]: _scores(18.7, (14.6, 22.4), 12.5)}},
    }  # fmt: skip
    lines = hm_table(results, README_ROWS)
    assert lines[0] == "| row | nouns Ego4D→Epic | verbs Ego4D→Epic | nouns Epic→Ego4D | verbs Epic→Ego4D |"
    assert lines[2] == "| ZS CLIP | 21.8 [16.8, 26.4] | – | – | – |"
    assert lines[3] == f"| {REFERENCE} | – | – | – | 18.7 [14.6, 22.4] |"
    assert lines[4] == "| X-MIC | 40.0 [30.0, 50.0] | 41.0 [30.0, 50.0] | 50.0 [30.0, 50.0] | 51.0 [30.0, 50.0] |"
    assert lines[5] == "| chance | 10.0 | 12.5 | 10.0 | 12.5 |"
    assert len(lines) == 6  # CLIP-Adapter, absent from the results, gets no row


def test_readme_and_demo_doc_quote_the_kept_results() -> None:
    results = json.loads(QUOTED.read_text())
    readme, doc = (ROOT / "README.md").read_text(), (ROOT / "docs" / "demo.md").read_text()
    assert "\n".join(hm_table(results, README_ROWS)) in readme
    assert "\n".join(hm_table(results)) in doc
    assert provenance(results) in doc and results["machine"]["cpu"] in provenance(results)
