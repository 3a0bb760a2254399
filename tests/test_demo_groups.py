"""`xmic reproduce --demo`: missing demo groups are generated and extracted with encoders matching the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.cache.reader import StoreReader, list_datasets
from xmic.demo.groups import ensure_demo_groups
from xmic.evaluate.reproduce_cli import reproduce_cmd

QUIET = {"progress": False, "echo": lambda _m: None}


def table_cells(md: str, row: str, target: str = "nouns") -> list[str]:
    """The 'ours' cells of one row of a reproduce Markdown table, for one target."""
    lines = [line.split("|") for line in md.splitlines() if line.startswith(f"| {row} |")]
    return [cells[4].strip() for cells in lines if cells[2].strip().startswith(target)]


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
        assert set(reader.spec.encoders) == {"clip-vit-b16", "dinov2-vits14"}
        counts = manifest["datasets"][name]["counts"]
        assert len(reader.segments["segment_id"]) == sum(c["segments"] for c in counts.values())
    assert (root / "models" / "clip-vit-b16" / "config.json").is_file()
    stamp = (root / "models" / "clip-vit-b16" / "model.safetensors").stat().st_mtime_ns
    assert ensure_demo_groups(fresh, ["epic", "ego4d"], quick=True, **QUIET) == []  # nothing missing: nothing done
    assert (root / "models" / "clip-vit-b16" / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="no demo dataset kinetics"):
        ensure_demo_groups(fresh, ["kinetics"], **QUIET)


def test_table5_runs_the_dinov2_row_on_the_demo(fresh: Path, tmp_path: Path) -> None:
    out = tmp_path / "t5"
    args = ["--table", "5", "--cache", str(fresh), "--out", str(out), "--demo", "--demo-quick", "--epochs", "1"]
    result = CliRunner().invoke(reproduce_cmd, [*args, "--targets", "noun", "--quiet"])
    assert result.exit_code == 0, result.output
    md = (out / "table5.md").read_text()
    for row in ("CLIP ViT-B/16", "DINOv2 ViT-B/14"):
        cells = table_cells(md, row)
        assert len(cells) == 6 and all(c.endswith("(n=1)") for c in cells), (row, cells)
    record = json.loads((out / "table5.json").read_text())
    assert all("dinov2-vits14" in r["encoders"] for r in record["rows"]["DINOv2 ViT-B/14"]["results"])
    assert all("dinov2-vits14" not in r["encoders"] for r in record["rows"]["CLIP ViT-B/16"]["results"])


def test_demo_store_is_extended_with_egtea_and_table3_runs(demo: Path, tmp_path: Path) -> None:
    """After `xmic demo` (no DINOv2): Table 3 builds synth-egtea with the demo's models and CLIP only."""
    root = tmp_path / "demo"
    shutil.copytree(demo, root)
    stamp = (root / "models" / "clip-vit-b16" / "model.safetensors").stat().st_mtime_ns

    out = tmp_path / "t3"
    args = ["--table", "3", "--cache", str(root / "cache"), "--out", str(out), "--demo", "--demo-quick"]
    result = CliRunner().invoke(reproduce_cmd, [*args, "--epochs", "1", "--rows", "zero-shot,xmic", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "demo: built groups synth-egtea" in result.output
    egtea = StoreReader(root / "cache", "synth-egtea")
    assert set(egtea.spec.encoders) == {"clip-vit-b16"}  # as the demo's groups: no DINOv2
    ego4d = StoreReader(root / "cache", "synth-ego4d").spec.encoders["clip-vit-b16"]
    new = egtea.spec.encoders["clip-vit-b16"]
    assert (new.dim, new.image_size, new.model_id) == (ego4d.dim, ego4d.image_size, ego4d.model_id)
    assert Path(new.source) == root / "models" / "clip-vit-b16"  # the copied demo's models, not retrained
    assert (root / "models" / "clip-vit-b16" / "model.safetensors").stat().st_mtime_ns == stamp  # models reused
    assert (root / "data-egtea" / "manifest.json").is_file() and (root / "data" / "manifest.json").is_file()
    md = (out / "table3.md").read_text()
    for row in ("Zero-shot CLIP", "X-MIC"):
        cells = table_cells(md, row, "nouns") + table_cells(md, row, "verbs")
        assert len(cells) == 2 and all(c.endswith("(n=1)") for c in cells), (row, cells)

    # a later `xmic demo` into the same folder clears the extra benchmark instead of refusing the folder
    from xmic.demo.pipeline import prepare_out

    prepare_out(root)
    assert not (root / "data-egtea").exists() and not (root / "cache").exists()


def test_demo_quick_needs_demo(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        reproduce_cmd, ["--table", "1", "--cache", str(tmp_path / "c"), "--demo-quick", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "--demo-quick goes with --demo" in result.output
