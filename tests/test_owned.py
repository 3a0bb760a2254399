"""Commands that clear an output delete only what xmic wrote, and refuse naming the first file they did not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.cache.synthetic import write_random_store
from xmic.cli import main
from xmic.demo.pipeline import prepare_out, written
from xmic.owned import MANIFEST, ForeignFileError, read_manifest, writing


def fake_demo(out: Path) -> None:
    """A demo folder as `xmic demo` leaves it, written through the same records (a store, a run, a table)."""
    with written(out, "cache"):
        write_random_store(out / "cache", dataset="synth-epic", n=8, num_frames=4, encoders={"clip-vit-b16": 8})
    with written(out, "runs", "table1.md"):
        (out / "runs" / "r").mkdir(parents=True)
        (out / "runs" / "r" / "run.json").write_text("{}")
        (out / "table1.md").write_text("| table |")


def test_the_issue_case_is_refused_and_nothing_is_deleted(tmp_path: Path) -> None:
    out = tmp_path / "D"
    (out / "data").mkdir(parents=True)
    (out / "data" / "p.txt").write_text("x")
    (out / "runs" / "r").mkdir(parents=True)
    (out / "runs" / "r" / "model.safetensors").write_bytes(b"weights")
    res = CliRunner().invoke(main, ["demo", "--quick", "--quiet", "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines() == [
        f"Error: {out / 'data' / 'p.txt'} and 1 more: not written by xmic, so the demo folder {out} is not cleared; "
        "move it out of the folder or give a new --out"
    ]
    assert (out / "data" / "p.txt").read_text() == "x"
    assert (out / "runs" / "r" / "model.safetensors").read_bytes() == b"weights"


def test_an_earlier_demo_is_cleared_but_not_a_file_added_to_it(tmp_path: Path) -> None:
    out = tmp_path / "D"
    fake_demo(out)
    shutil.copytree(out / "cache", out / "runs" / "copied-store")  # the user's copy, inside the demo's runs/
    with pytest.raises(ForeignFileError, match=r"runs/copied-store/\S+ and \d+ more: not written by xmic"):
        prepare_out(out)
    assert (out / "cache" / "zarr.json").is_file() and (out / "runs" / "copied-store" / "zarr.json").is_file()
    shutil.rmtree(out / "runs" / "copied-store")
    prepare_out(out)
    assert [p.name for p in out.iterdir()] == [MANIFEST] and read_manifest(out) == {"files": [], "writing": []}


def test_a_folder_a_stopped_demo_was_writing_counts_as_the_demo_s(tmp_path: Path) -> None:
    out = tmp_path / "D"
    fake_demo(out)
    with pytest.raises(KeyboardInterrupt), written(out, "models"):
        (out / "models" / "demo-clip").mkdir(parents=True)
        (out / "models" / "demo-clip" / "config.json").write_text("{}")
        raise KeyboardInterrupt
    assert read_manifest(out)["writing"] == ["models"]
    prepare_out(out)
    assert not (out / "models").exists() and not (out / "cache").exists()


def test_writing_into_a_folder_holding_a_foreign_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.txt").write_text("x")
    with (
        pytest.raises(ForeignFileError, match="p.txt: not written by xmic"),
        writing(tmp_path, ["data"], what="w", fix="f"),
    ):
        pass
    assert (tmp_path / "data" / "p.txt").read_text() == "x"


def test_export_overwrite_deletes_a_store_only(tmp_path: Path) -> None:
    src = write_random_store(tmp_path / "a.zarr", dataset="epic", n=8, num_frames=4, encoders={"clip-vit-b16": 8})
    to = tmp_path / "b.zarr"
    args = ["cache", "export", str(src), "--to", str(to)]
    assert CliRunner().invoke(main, args).exit_code == 0
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "exists; pass --overwrite to replace it" in res.output
    (to / "epic" / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, [*args, "--overwrite"])
    assert res.exit_code == 1 and f"{to / 'epic' / 'notes.txt'}: not written by xmic" in res.output, res.output
    assert (to / "epic" / "notes.txt").read_text() == "mine"
    (to / "epic" / "notes.txt").unlink()
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0
    home = tmp_path / "home"  # a folder that is not a store at all
    (home / "thesis").mkdir(parents=True)
    (home / "thesis" / "main.tex").write_text("x")
    res = CliRunner().invoke(main, ["cache", "export", str(src), "--to", str(home), "--overwrite"])
    assert res.exit_code == 1 and "main.tex: not written by xmic" in res.output
    assert (home / "thesis" / "main.tex").read_text() == "x"


def test_synth_overwrite_keeps_a_file_added_to_the_benchmark(tmp_path: Path) -> None:
    args = ["synth", "--out", str(tmp_path), "--scale", "0.02", "--datasets", "ego4d", "--annotations-only"]
    assert CliRunner().invoke(main, [*args, "--no-progress"]).exit_code == 0
    res = CliRunner().invoke(main, [*args, "--no-progress"])
    assert res.exit_code == 1 and "pass --overwrite" in res.output and "overwrite=True" not in res.output
    (tmp_path / "ego4d" / "my-notes.txt").write_text("mine")
    res = CliRunner().invoke(main, [*args, "--no-progress", "--overwrite"])
    assert res.exit_code == 1 and "my-notes.txt: not written by xmic" in res.output, res.output
    (tmp_path / "ego4d" / "my-notes.txt").unlink()
    assert CliRunner().invoke(main, [*args, "--no-progress", "--overwrite"]).exit_code == 0
    assert json.loads((tmp_path / "manifest.json").read_text())["datasets"]


def test_the_demo_never_deletes_a_group_of_another_store(tmp_path: Path) -> None:
    """`xmic reproduce --demo --cache S` extracts as group 'epic' first: a user's own 'epic' group stays."""
    from xmic.demo.store import extract_demo_store

    cache = write_random_store(tmp_path / "s.zarr", dataset="epic", n=8, num_frames=4, encoders={"clip-vit-b16": 8})
    with pytest.raises(ForeignFileError, match="so the group 'epic' of .* is not cleared"):
        extract_demo_store(tmp_path, {"datasets": {"epic": {}}}, cache, tmp_path, names=("epic",), echo=print)
    assert (cache / "epic" / "zarr.json").is_file()
