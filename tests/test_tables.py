"""Paper tables: typed-in structure, column keys, and the Markdown rendering against hand-computed numbers."""

from __future__ import annotations

import dataclasses
import math

import pytest

from xmic.cache.schema import PROMPT_TEMPLATES
from xmic.evaluate import paper_numbers as pn
from xmic.evaluate.paper_numbers import Column, PaperTable, parse_column
from xmic.evaluate.tables import (
    DEMO_TITLE,
    collect,
    column_value,
    fmt_delta,
    fmt_ours,
    render_markdown,
    summarize,
)


def result(target="noun", train="epic", seed=0, within=0.5, cross=0.2, hm=None, shared=0.4, novel=float("nan")):
    """A result dict shaped like evaluate_run's output (fractions)."""
    return {
        "method": "xmic",
        "target": target,
        "preset": "authors-code",
        "train_dataset": train,
        "encoders": {"clip-vit-b16": {"model_id": "openai/clip-vit-base-patch16", "dim": 512}},
        "store": "/data/cache.zarr",
        "seed": seed,
        "datasets": {
            train: {"top1": within, "kind": "within"},
            "ego4d": {"top1": cross, "kind": "cross", "shared": {"top1": shared}, "novel": {"top1": novel}},
        },
        "hm": {"ego4d": hm if hm is not None else 2 * within * cross / (within + cross)},
    }


def test_summarize_matches_hand_computed_mean_and_sample_std():
    s = summarize([40.0, 50.0, 60.0])
    assert s.mean == pytest.approx(50.0)
    assert s.std == pytest.approx(10.0)  # sqrt(((-10)^2 + 0 + 10^2) / 2)
    assert s.n == 3
    one = summarize([12.5, float("nan")])
    assert (one.mean, one.std, one.n) == (12.5, None, 1)
    assert summarize([]) is None
    assert summarize([float("nan")]) is None


def test_formatting_two_decimals_and_missing():
    assert fmt_ours(summarize([40.0, 50.0])) == "45.00 ± 7.07 (n=2)"
    assert fmt_ours(summarize([33.333])) == "33.33 (n=1)"
    assert fmt_ours(None) == "–"
    assert fmt_delta(40.0, summarize([45.0])) == "+5.00"
    assert fmt_delta(50.0, summarize([45.0])) == "-5.00"
    assert fmt_delta(None, summarize([45.0])) == "–"


def test_parse_column_round_trip_and_errors():
    col = parse_column("verb|ego4d>epic|hm")
    assert col == Column("verb", "ego4d", "epic", "hm")
    assert parse_column(col.key) == col
    assert col.label == "verbs · Ego4D → Epic · hm"
    with pytest.raises(ValueError, match="not of the form"):
        parse_column("noun-epic-top1")
    with pytest.raises(ValueError, match="metric one of"):
        parse_column("noun|epic>ego4d|top5")


def test_column_value_picks_the_right_number():
    r = result(within=0.5, cross=0.2, shared=0.4)
    assert column_value(r, Column("noun", "epic", "epic", "top1")) == pytest.approx(50.0)
    assert column_value(r, Column("noun", "epic", "ego4d", "top1")) == pytest.approx(20.0)
    assert column_value(r, Column("noun", "epic", "ego4d", "hm")) == pytest.approx(100 * 2 * 0.1 / 0.7)
    assert column_value(r, Column("noun", "epic", "ego4d", "shared")) == pytest.approx(40.0)
    assert column_value(r, Column("noun", "epic", "ego4d", "novel")) is None  # NaN: empty subset
    assert column_value(r, Column("verb", "epic", "ego4d", "top1")) is None  # other target
    assert column_value(r, Column("noun", "ego4d", "epic", "top1")) is None  # other training dataset
    mapped = result(train="synth-epic")
    mapped["datasets"]["synth-ego4d"] = mapped["datasets"].pop("ego4d")
    mapped["hm"] = {"synth-ego4d": 0.3}
    names = {"epic": "synth-epic", "ego4d": "synth-ego4d"}
    assert column_value(mapped, Column("noun", "epic", "ego4d", "hm"), names) == pytest.approx(30.0)
    assert column_value(mapped, Column("noun", "epic", "ego4d", "hm")) is None


def small_table() -> PaperTable:
    cols = ["noun|epic>epic|top1", "noun|epic>ego4d|hm"]
    return PaperTable(9, "Tiny", cols, {"X-MIC": {cols[0]: 47.5, cols[1]: None}, "A5": dict.fromkeys(cols)}, "n.", "S")


def test_render_markdown_known_output():
    results = {"X-MIC": [result(seed=0, within=0.40, hm=0.30), result(seed=1, within=0.50, hm=0.35)]}
    md = render_markdown(small_table(), results, skipped={"A5": "needs weights"}, extra_header=["Epochs: 1."])
    expected = (
        "## Table 9 — Tiny\n"
        "\n"
        "Paper: S.\n"
        "Ours: preset authors-code · encoders clip-vit-b16 (openai/clip-vit-base-patch16, D=512) · "
        "store /data/cache.zarr · seeds 0, 1.\n"
        "Epochs: 1.\n"
        "\n"
        "At a glance (hm %, ours, the paper's number in brackets):\n"
        "\n"
        "| row | nouns Epic→Ego4D |\n"
        "|---|---:|\n"
        "| X-MIC | 32.50 |\n"
        "| A5 | not run |\n"
        "\n"
        "| row | column | paper | ours (mean ± std, n) | Δ |\n"
        "|---|---|---:|---:|---:|\n"
        "| X-MIC | nouns · Epic → Epic | 47.50 | 45.00 ± 7.07 (n=2) | -2.50 |\n"
        "| X-MIC | nouns · Epic → Ego4D · hm | – | 32.50 ± 3.54 (n=2) | – |\n"
        "| A5 | nouns · Epic → Epic | – | not run | – |\n"
        "| A5 | nouns · Epic → Ego4D · hm | – | not run | – |\n"
        "\n"
        "Not run:\n"
        "- **A5**: needs weights\n"
        "\n"
        "Notes: n.\n"
        "\n"
        "Paper numbers: 1 of 4 cells, from S; '–' where the paper prints none.\n"
    )
    assert md == expected


def test_status_counts_cells_and_names_their_origin():
    table = small_table()
    empty = dataclasses.replace(table, rows={r: dict.fromkeys(table.columns) for r in table.rows})
    assert empty.status() == pn.NOT_TYPED_IN
    full = dataclasses.replace(
        table, rows={r: dict.fromkeys(table.columns, 1.0) for r in table.rows}, numbers_from="mine.csv"
    )
    assert full.status() == "Paper numbers: all 4 cells, from mine.csv laid over S."


def test_collect_ignores_results_of_other_columns():
    table = small_table()
    results = {"X-MIC": [result(target="verb", within=0.9), result(target="noun", within=0.1)]}
    got = collect(table, results, None)
    assert got["X-MIC"]["noun|epic>epic|top1"].mean == pytest.approx(10.0)
    assert got["X-MIC"]["noun|epic>epic|top1"].n == 1
    assert got["A5"]["noun|epic>epic|top1"] is None


def test_paper_tables_structure():
    assert sorted(pn.PAPER_TABLES) == [1, 2, 3, 4, 5, 6, 7]
    for number, table in pn.PAPER_TABLES.items():
        assert table.number == number
        assert table.source == f"Kukleva et al., CVPR 2024, arXiv:2403.19811, Table {number}"
        for key in table.columns:
            parse_column(key)
        for values in table.rows.values():
            assert set(values) == set(table.columns)
            assert all(v is None or (isinstance(v, float) and not math.isnan(v)) for v in values.values())
    t1 = pn.PAPER_TABLES[1]
    assert len(t1.columns) == 12  # 2 targets x 2 directions x (within, cross, hm)
    assert "noun|ego4d>epic|hm" in t1.columns and "verb|epic>epic|top1" in t1.columns
    assert list(t1.rows) == ["ZS CLIP", "CoOp", "Co-CoOp", "CLIP-Adapter", "CLIP-Adapter*", "A5", "Vita-CLIP"] + [
        "X-MIC",
        "X-MIC+DINO",
    ]
    assert t1.value("X-MIC", "noun|ego4d>epic|hm") == 21.06 and t1.value("X-MIC+DINO", "verb|epic>epic|top1") == 53.02
    assert {parse_column(c).metric for c in pn.PAPER_TABLES[2].columns} == {"shared", "novel", "sn-hm"}
    assert {parse_column(c).test for c in pn.PAPER_TABLES[3].columns} == {"ego4d", "egtea"}
    assert [t.replace("{}", "<class>") for t in PROMPT_TEMPLATES] == list(pn.PAPER_TABLES[7].rows)
    assert {parse_column(c).part for c in pn.PAPER_TABLES[7].columns} == {"ZS", "X-MIC"}
    assert all(parse_column(c).target == "noun" for c in pn.PAPER_TABLES[6].columns)


def test_grid_shows_paper_numbers_in_brackets_and_all_columns_without_hm():
    cols = ["noun|ego4d>egtea|top1", "verb|ego4d>egtea|top1"]
    table = PaperTable(3, "T3", cols, {"X-MIC": {cols[0]: 30.0, cols[1]: None}}, "", "S")
    results = {"X-MIC": [result(train="ego4d", cross=0.25, target=t) for t in ("noun", "verb")]}
    for r in results["X-MIC"]:
        r["datasets"]["egtea"] = r["datasets"].pop("ego4d")
    md = render_markdown(table, results)
    assert "At a glance (top-1 %, ours, the paper's number in brackets):" in md
    assert "| row | nouns Ego4D→EGTEA | verbs Ego4D→EGTEA |" in md
    assert "| X-MIC | 25.00 (30.00) | 25.00 |" in md


def test_column_value_of_table2_hm_and_table7_blocks():
    r = result(shared=0.4, novel=0.1)
    sn = column_value(r, Column("noun", "epic", "ego4d", "sn-hm"))
    assert sn == pytest.approx(100 * 2 * 0.4 * 0.1 / 0.5)  # 16.0
    assert column_value(result(shared=0.4), Column("noun", "epic", "ego4d", "sn-hm")) is None  # novel is NaN
    zs, xm = dict(result(within=0.3), part="ZS"), dict(result(within=0.6), part="X-MIC")
    col = Column("noun", "epic", "epic", "top1", part="X-MIC")
    assert column_value(zs, col) is None and column_value(xm, col) == pytest.approx(60.0)
    assert parse_column("X-MIC:noun|epic>epic|top1") == col and col.key == "X-MIC:noun|epic>epic|top1"
    assert col.label == "X-MIC · nouns · Epic → Epic"
    assert Column("verb", "ego4d", "epic", "sn-hm").label == "verbs · Ego4D → Epic · hm (shared, novel)"
    with pytest.raises(ValueError, match="metric one of"):
        parse_column(":noun|epic>epic|top1")


def test_table7_rows_keep_their_angle_brackets_in_markdown():
    def ego4d_run(part, within, cross):
        return {
            "target": "noun",
            "part": part,
            "train_dataset": "ego4d",
            "datasets": {"ego4d": {"top1": within}, "epic": {"top1": cross}},
            "hm": {"epic": 2 * within * cross / (within + cross)},
        }

    results = {"<class>": [ego4d_run("ZS", 0.1, 0.2), ego4d_run("X-MIC", 0.5, 0.3)]}
    md = render_markdown(pn.PAPER_TABLES[7], results)
    assert "| \\<class\\> | ZS · nouns · Ego4D → Ego4D | 5.89 | 10.00 (n=1) | +4.11 |" in md
    assert "| \\<class\\> | X-MIC · nouns · Ego4D → Ego4D | 33.54 | 50.00 (n=1) | +16.46 |" in md
    assert "| \\<class\\> | X-MIC · nouns · Ego4D → Epic · hm | 21.06 | 37.50 (n=1) | +16.44 |" in md
    assert "| <class> |" not in md


def demo_result(seed=0, within=0.5, cross=0.25, n=400, classes=10):
    r = result(seed=seed, within=within, cross=cross)
    r["encoders"] = {"demo-clip": {"model_id": "xmic-demo/demo-clip", "dim": 64}}
    for name in ("epic", "ego4d"):
        r["datasets"][name].update(n=n, classes=classes)
    return r


def test_bootstrap_interval_matches_the_binomial_spread():
    from xmic.evaluate.intervals import bootstrap_interval

    low, high = bootstrap_interval([(0.5, 400)])
    half = 100 * 1.96 * math.sqrt(0.25 / 400)  # normal approximation of the clips' bootstrap: 4.9 points
    assert low == pytest.approx(50 - half, abs=0.6) and high == pytest.approx(50 + half, abs=0.6), (low, high)
    assert bootstrap_interval([(1.0, 50)]) == (100.0, 100.0)  # every clip right: every resample too
    assert bootstrap_interval([(0.5, 0)]) is None
    hm_low, hm_high = bootstrap_interval([(0.5, 400), (0.25, 400)])
    assert hm_low < 100 * 2 * 0.5 * 0.25 / 0.75 < hm_high
    assert bootstrap_interval([(0.5, 400)]) == (low, high)  # fixed seed: the same interval every time


def test_render_markdown_on_demo_data_has_intervals_chance_and_no_delta():
    results = {"X-MIC": [demo_result(seed=0, within=0.40), demo_result(seed=1, within=0.50)]}
    table = small_table()
    summaries = collect(table, results, None)
    cell = summaries["X-MIC"]["noun|epic>epic|top1"]
    assert cell.mean == pytest.approx(45.0) and cell.chance == pytest.approx(10.0)
    assert cell.ci[0] < 45.0 < cell.ci[1] and 8.0 < cell.ci[1] - cell.ci[0] < 12.0, cell  # one seed's width
    md = render_markdown(table, results, skipped={"A5": "needs weights"})
    assert md.startswith(f"## Table 9 — Tiny ({DEMO_TITLE})\n") and "Δ" not in md
    assert "At a glance (hm %, mean ± std over 2 seeds, [95 % interval over test clips];" in md
    assert "| chance | 10.00 |" in md and "| *paper:" not in md  # the paper prints no hm for this row
    line = next(x for x in md.splitlines() if x.startswith("| X-MIC | nouns · Epic → Epic |"))
    ci = f"[{cell.ci[0]:.1f}, {cell.ci[1]:.1f}]"
    assert line == f"| X-MIC | nouns · Epic → Epic | 45.00 ± 7.07 (n=2) | {ci} | 10.00 | 47.50 |"
    assert "| A5 | nouns · Epic → Epic | not run | – | – | – |" in md
