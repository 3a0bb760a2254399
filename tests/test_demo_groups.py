"""`xmic reproduce --demo`: missing demo groups are generated and extracted with encoders matching the store."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.cache.reader import StoreReader, list_datasets
from xmic.demo.groups import ensure_demo_groups
from xmic.evaluate.reproduce_cli import reproduce_cmd

QUIET = {"progress": False, "echo": lambda _m: None}


def table_cells(md: str, row: str, target: str = "nouns") -> list[str]:
    """The 'ours' cells of one row of a reproduce Markdown table, for one target (``|`` in ``row`` as printed)."""
    escaped = row.replace("|", "\\|")
    lines = [re.split(r"(?<!\\)\|", line) for line in md.splitlines() if line.startswith(f"| {escaped} |")]
    return [cells[3].strip() for cells in lines if cells[2].strip().startswith(target)]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A store built from nothing by ensure_demo_groups: epic and ego4d, quick."""
    cache = tmp_path_factory.mktemp("fresh") / "cache"
    built = ensure_demo_groups(cache, ["epic", "ego4d"], quick=True, **QUIET)
    assert built == ["synth-epic", "synth-ego4d"]
    return cache


def test_fresh_store_gets_generated_groups_with_both_encoders(fresh: Path) -> None:
    root = fresh.parent
    assert sorted(list_datasets(fresh)) == ["synth-ego4d", "synth-epic"]
    manifest = json.loads((root / "data" / "manifest.json").read_text())
    for name in ("epic", "ego4d"):
        reader = StoreReader(fresh, f"synth-{name}")
        assert set(reader.spec.encoders) == {"demo-clip", "demo-dinov2", "demo-lavila"}
        counts = manifest["datasets"][name]["counts"]
        assert len(reader.segments["segment_id"]) == sum(c["segments"] for c in counts.values())
    assert (root / "models" / "demo-clip" / "config.json").is_file()
    stamp = (root / "models" / "demo-clip" / "model.safetensors").stat().st_mtime_ns
    assert ensure_demo_groups(fresh, ["epic", "ego4d"], quick=True, **QUIET) == []  # nothing missing: nothing done
    assert (root / "models" / "demo-clip" / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="no demo dataset kinetics"):
        ensure_demo_groups(fresh, ["kinetics"], **QUIET)


def test_demo_groups_use_the_bin_centre_layout_and_old_ones_are_rebuilt(fresh: Path, tmp_path: Path) -> None:
    from xmic.cache import layout
    from xmic.cache.backend import Backend
    from xmic.demo.store import DEMO_NUM_FRAMES

    for group in ("synth-epic", "synth-ego4d"):
        spec = StoreReader(fresh, group).spec
        assert (spec.num_frames, spec.sampling) == (DEMO_NUM_FRAMES, "uniform-bins:16x1") == (16, "uniform-bins:16x1")
    root = tmp_path / "copy"
    shutil.copytree(fresh.parent, root)
    cache = root / "cache"
    with Backend(cache).session("a") as s:  # make synth-ego4d look like an older xmic's group
        spec = layout.read_spec(s, "synth-ego4d", str(cache))
        spec.sampling, spec.num_frames = "uniform-bins:16x2", 32
        s.set_attrs("synth-ego4d", {layout.SPEC_ATTR: spec.to_json()})
    lines: list[str] = []
    built = ensure_demo_groups(cache, ["epic", "ego4d"], quick=True, progress=False, echo=lines.append)
    assert built == ["synth-ego4d"]
    assert any("synth-ego4d was written by an older xmic" in line for line in lines)
    assert StoreReader(cache, "synth-ego4d").spec.sampling == "uniform-bins:16x1"


def test_table5_runs_the_b16_and_lavila_rows_and_says_why_not_l14(fresh: Path, tmp_path: Path) -> None:
    out = tmp_path / "t5"
    args = ["--table", "5", "--cache", str(fresh), "--out", str(out), "--demo", "--demo-quick", "--epochs", "1"]
    result = CliRunner().invoke(reproduce_cmd, [*args, "--targets", "noun", "--quiet"])
    assert result.exit_code == 0, result.output
    md = (out / "table5.md").read_text()
    for row in ("CLIP ViT-B/16 | ZS", "CLIP ViT-B/16 | X-MIC", "LaViLa ViT-L/14 | ZS", "LaViLa ViT-L/14 | X-MIC"):
        cells = table_cells(md, row)
        assert len(cells) == 3 and all(c.endswith("(n=1)") for c in cells), (row, cells)
    for row in ("CLIP ViT-L/14 | ZS", "CLIP ViT-L/14 | X-MIC"):
        assert table_cells(md, row) == ["not run"] * 3
    assert "not comparable with the paper)" in md.splitlines()[0] and "**Quick run**" in md
    assert re.search(r"^\| CLIP ViT-B/16 \\\| X-MIC \| nouns · Ego4D → Epic · hm \| .* \| 21\.06 \|$", md, re.M)
    assert "CLIP ViT-B/16 rows use demo-clip as a stand-in" in md
    assert "LaViLa ViT-L/14 rows use demo-lavila as a stand-in" in md
    record = json.loads((out / "table5.json").read_text())
    assert "needs clip-vit-l14 features" in record["rows"]["CLIP ViT-L/14 | X-MIC"]["reason"]
    xmic = record["rows"]["CLIP ViT-B/16 | X-MIC"]["results"]
    assert all(set(r["encoders"]) == {"demo-clip"} for r in xmic)  # no DINO: the backbone conditions itself
    lavila = record["rows"]["LaViLa ViT-L/14 | X-MIC"]["results"]
    assert lavila and all(set(r["encoders"]) == {"demo-lavila"} for r in lavila)


def test_demo_store_is_extended_with_egtea_and_table3_runs(demo: Path, tmp_path: Path) -> None:
    """After `xmic demo` (no DINOv2): Table 3 builds synth-egtea with the demo's models and CLIP only."""
    root = tmp_path / "demo"
    shutil.copytree(demo, root)
    stamp = (root / "models" / "demo-clip" / "model.safetensors").stat().st_mtime_ns

    out = tmp_path / "t3"
    args = ["--table", "3", "--cache", str(root / "cache"), "--out", str(out), "--demo", "--demo-quick"]
    result = CliRunner().invoke(reproduce_cmd, [*args, "--epochs", "1", "--rows", "zero-shot,xmic", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "demo: built groups synth-egtea" in result.output
    egtea = StoreReader(root / "cache", "synth-egtea")
    assert set(egtea.spec.encoders) == {"demo-clip", "demo-lavila"}  # as the demo's groups: no DINOv2
    ego4d = StoreReader(root / "cache", "synth-ego4d").spec.encoders["demo-clip"]
    new = egtea.spec.encoders["demo-clip"]
    assert (new.dim, new.image_size, new.model_id) == (ego4d.dim, ego4d.image_size, ego4d.model_id)
    assert Path(new.source) == root / "models" / "demo-clip"  # the copied demo's models, not retrained
    assert (root / "models" / "demo-clip" / "model.safetensors").stat().st_mtime_ns == stamp  # models reused
    assert (root / "data-egtea" / "manifest.json").is_file() and (root / "data" / "manifest.json").is_file()
    md = (out / "table3.md").read_text()
    for row in ("ZS CLIP", "X-MIC"):
        cells = table_cells(md, row, "nouns") + table_cells(md, row, "verbs")
        assert len(cells) == 6 and all(c.endswith("(n=1)") for c in cells), (row, cells)  # E4D, EGTEA, hm

    # a later `xmic demo` into the same folder clears the extra benchmark instead of refusing the folder
    from xmic.demo.pipeline import prepare_out

    prepare_out(root)
    assert not (root / "data-egtea").exists() and not (root / "cache").exists()


def test_demo_quick_needs_demo(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        reproduce_cmd, ["--table", "1", "--cache", str(tmp_path / "c"), "--demo-quick", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "--demo-quick goes with --demo" in result.output


def test_table1_runs_vita_clip_on_the_demo_frame_cache(fresh: Path, tmp_path: Path) -> None:
    out = tmp_path / "t1"
    args = ["--table", "1", "--cache", str(fresh), "--out", str(out), "--demo", "--demo-quick", "--epochs", "1"]
    result = CliRunner().invoke(reproduce_cmd, [*args, "--targets", "noun", "--rows", "vita-clip", "--quiet"])
    assert result.exit_code == 0, result.output
    cells = table_cells((out / "table1.md").read_text(), "Vita-CLIP")
    assert len(cells) == 6 and all(c.endswith("(n=1)") for c in cells), cells
    record = json.loads((out / "table1.json").read_text())
    runs = record["rows"]["Vita-CLIP"]["results"]
    assert len(runs) == 2 and all(set(r["encoders"]) == {"demo-clip"} for r in runs)
