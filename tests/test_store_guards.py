"""Every array of the store is guarded: a missing or damaged chunk of class texts, frame cache or features is named
by `verify`, refused by `train` / `evaluate` / `export` in one line, and repaired by the same `xmic extract`; failed
rows are retried; a resume compares every option that changes what is stored; HDF5 on a full disk leaves no file."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import tiny_clip_extract_config

from xmic.cache.backend import Backend
from xmic.cache.errors import StoreSpecError
from xmic.cache.guard import StoreDamageError
from xmic.cache.reader import StoreReader
from xmic.cache.verify import reset_damaged, verify_store
from xmic.cli import main
from xmic.extract.runner import ExtractConfig, run_extraction
from xmic.synth import KITCHEN_C, generate
from xmic.synth.generate import Sizes

REPO = Path(__file__).resolve().parents[1]
TINY = Sizes(train=3, val=3, segments_per_video=(2, 4), segment_seconds=(0.5, 1.0), gap_seconds=(0.2, 0.5))
ENC = "clip-vit-b16"
DS = "egtea"
TEXT_KEY = f"text/{ENC}/{DS}/noun/class"
FEAT_KEY = f"{DS}/features/{ENC}/full"
FRAMES_KEY = f"{DS}/frames/{ENC}/full"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("guards")
    generate(tmp / "gen", seed=0, sizes=TINY, workers=0, datasets=(DS,))
    return {"tmp": tmp, "root": tmp / "gen" / DS}


def config(data: dict[str, Path], cache: Path, **kw) -> ExtractConfig:
    words = {w for n in KITCHEN_C.verbs + KITCHEN_C.nouns for w in n.split()}
    base = tiny_clip_extract_config(data["tmp"], DS, data["root"], ("train", "test"), words, chunk_rows=2)
    return dataclasses.replace(base, cache=cache, **kw)


def extract_args(data: dict[str, Path], cache: Path, *more: str) -> list[str]:
    """The `xmic extract` command line of :func:`config` (without a frame cache); writes the tiny CLIP it names."""
    config(data, cache)
    return [
        "extract", "--dataset", DS, "--root", str(data["root"]), "--split", "train,test", "--cache", str(cache),
        "--model-dir", str(data["tmp"] / "models"), "--hands", "none", "--frames", "8", "--workers", "0",
        "--device", "cpu", "--decode-size", "0", "--chunk-rows", "2", "--no-progress", *more,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(data: dict[str, Path]) -> Path:
    """An uninterrupted run with a frame cache."""
    pytest.importorskip("imagecodecs")
    cfg = config(data, data["tmp"] / "reference.zarr", frames_cache=True)
    report = run_extraction(cfg, echo=quiet)
    assert report.rows_failed == 0 and report.n_chunks >= 3
    return cfg.cache


def copy_of(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "store.zarr"
    shutil.copytree(reference, out)
    return out


def arrays(path: Path) -> dict[str, np.ndarray]:
    with Backend(path).session("r") as s:
        return {k: s.read(k) for k in s.walk_arrays("")}


def assert_same(path: Path, reference: Path) -> None:
    got, want = arrays(path), arrays(reference)
    assert sorted(got) == sorted(want)
    for key in want:
        if key.startswith("text/"):  # re-embedded alone, not in one batch with the other templates: fp32 rounding
            atol = 16 * np.finfo(np.float32).eps * float(np.abs(want[key]).max())
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=atol, err_msg=key)
        else:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def chunk_object(store: Path, key: str, chunk: int) -> Path:
    files = sorted(f for f in (store / key / "c" / str(chunk)).rglob("*") if f.is_file())
    if (store / key / "c" / str(chunk)).is_file():
        return store / key / "c" / str(chunk)
    assert files, f"no chunk object of {key} chunk {chunk}"
    return files[0]


def train_args(cache: Path, out: Path, method: str = "xmic") -> list[str]:
    return ["train", "--cache", str(cache), "--dataset", DS, "--method", method, "--epochs", "1", "--batch-size",
            "4", "--device", "cpu", "--quiet", "--out", str(out)]  # fmt: skip


def train_run(cache: Path, out: Path) -> Path:
    """A one-epoch X-MIC run on the store's train split (EGTEA's is named ``train_split1``)."""
    from xmic.adapt.config import TrainConfig
    from xmic.adapt.trainer import train

    cfg = TrainConfig(dataset=DS, train_split="train_split1", epochs=1, batch_size=4, frames=8)
    train(cfg, cache, out, progress=False)
    return out


def one_line_error(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip() and "it/s]" not in ln]  # transformers' loading bar
    assert "Traceback" not in output and "Task was destroyed" not in output, output
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def test_writes_go_through_the_libraries_with_their_checksums(
    data: dict[str, Path], reference: Path, tmp_path: Path
) -> None:
    """Every stored array carries the library's checksum codec and reads back through the library alone."""
    import zarr

    root = zarr.open_group(str(reference), mode="r")
    feats = root[FEAT_KEY]
    assert [type(c).__name__ for c in feats.compressors] == ["Crc32cCodec"]
    np.testing.assert_array_equal(np.asarray(feats[...]), StoreReader(reference, DS).load_features_numpy(ENC, "full"))
    h5 = tmp_path / "store.h5"
    report = run_extraction(config(data, h5, fmt="h5"), echo=quiet)
    assert report.rows_failed == 0
    import h5py

    with h5py.File(h5, "r") as f:
        assert f[FEAT_KEY].fletcher32 and f[f"{DS}/hand_box"].fletcher32
        np.testing.assert_array_equal(f[FEAT_KEY][...], np.asarray(feats[...]))
    assert verify_store(h5).ok


def test_missing_frame_shard_is_refused_everywhere_and_extract_restores_it(
    data: dict[str, Path], reference: Path, tmp_path: Path
) -> None:
    store = copy_of(reference, tmp_path)
    chunk_object(store, FRAMES_KEY, 1).unlink()  # would read as black frames
    report = verify_store(store)
    assert not report.ok and report.damaged == {DS: [1]}
    assert any(p.startswith(f"array {FRAMES_KEY} chunk 1: missing from the store") for p in report.problems)
    with pytest.raises(
        StoreDamageError, match=rf"array {FRAMES_KEY} chunk 1 is missing .*re-run the same `xmic extract`"
    ):
        StoreReader(store, DS).load_frames(ENC, rows=np.array([2]))
    res = CliRunner().invoke(main, train_args(store, tmp_path / "run", "vita-clip"))
    assert res.exit_code == 1 and f"array {FRAMES_KEY} chunk 1 is missing" in one_line_error(res.output)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    out = tmp_path / "copy.zarr"
    res = CliRunner().invoke(main, ["cache", "export", str(store), "--to", str(out)])
    assert res.exit_code == 1 and FRAMES_KEY in one_line_error(res.output)
    assert not out.exists() and not list(tmp_path.glob(".copy.zarr.*"))  # nothing blocks the retry
    run_extraction(config(data, store, frames_cache=True), echo=quiet)  # the same command repairs it
    assert verify_store(store).ok
    assert_same(store, reference)


def test_missing_class_text_chunk_is_damage_and_extract_rewrites_it(
    data: dict[str, Path], reference: Path, tmp_path: Path
) -> None:
    store = copy_of(reference, tmp_path)
    run = train_run(store, tmp_path / "run")
    chunk_object(store, TEXT_KEY, 0).unlink()  # would read as all-zero class texts
    report = verify_store(store)
    assert not report.ok and any(p.startswith(f"array {TEXT_KEY} chunk 0: missing") for p in report.problems)
    with pytest.raises(StoreDamageError, match=rf"array {TEXT_KEY} chunk 0 is missing"):
        train_run(store, tmp_path / "run2")
    assert not (tmp_path / "run2" / "model.safetensors").exists()
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--cache", str(store)])
    line = one_line_error(res.output)
    assert res.exit_code == 1 and f"array {TEXT_KEY} chunk 0 is missing" in line and "xmic extract" in line
    run_extraction(config(data, store, frames_cache=True), echo=quiet)
    assert verify_store(store).ok
    assert_same(store, reference)


def test_checksum_failures_are_one_line_and_export_leaves_nothing(
    data: dict[str, Path], reference: Path, tmp_path: Path
) -> None:
    store = copy_of(reference, tmp_path)
    run = train_run(store, tmp_path / "run")
    obj = chunk_object(store, FEAT_KEY, 2)
    raw = bytearray(obj.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    obj.write_bytes(bytes(raw))
    res = CliRunner().invoke(main, train_args(store, tmp_path / "run2"))
    line = one_line_error(res.output)
    assert res.exit_code == 1 and f"array {FEAT_KEY} chunk 2 fails its checksum" in line and "--reset-damaged" in line
    assert not (tmp_path / "run2" / "model.safetensors").exists()
    proc = subprocess.run(  # a process of its own: zarr's event loop would print leftover tasks at its exit
        [sys.executable, "-m", "xmic.cli", "evaluate", "--run", str(run), "--cache", str(store)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    line = one_line_error(proc.stdout + proc.stderr)
    assert proc.returncode == 1 and f"array {FEAT_KEY} chunk 2 fails its checksum" in line and "--reset-damaged" in line
    out = tmp_path / "copy.h5"
    res = CliRunner().invoke(main, ["cache", "export", str(store), "--to", str(out)])
    assert res.exit_code == 1 and f"array {FEAT_KEY} chunk 2 fails its checksum" in one_line_error(res.output)
    assert not out.exists() and not list(tmp_path.glob(".copy.h5.*"))
    report = verify_store(store)
    assert report.damaged == {DS: [2]} and reset_damaged(store, report.damaged) == 1
    run_extraction(config(data, store, frames_cache=True), echo=quiet)
    assert_same(store, reference)
    res = CliRunner().invoke(main, ["cache", "export", str(store), "--to", str(out)])
    assert res.exit_code == 0, res.output
    assert verify_store(out).ok


def test_failed_rows_are_retried_and_the_exit_status_counts_them(data: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "egtea"
    shutil.copytree(data["root"], root)
    clip = sorted(root.rglob("*.mp4"))[0]
    good = clip.read_bytes()
    clip.write_bytes(b"not a video")
    cache = tmp_path / "store.zarr"
    args = extract_args({**data, "root": root}, cache)
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 3 and "re-run the same command (it retries the failed rows)" in first.output, first.output
    failed = StoreReader(cache, DS).failures()
    assert failed
    again = CliRunner().invoke(main, args)  # media not fixed yet: still exit 3, the rows are still failed
    assert again.exit_code == 3, again.output
    clip.write_bytes(good)
    fixed = CliRunner().invoke(main, args)
    assert fixed.exit_code == 0, fixed.output
    reader = StoreReader(cache, DS)
    assert reader.failures() == [] and (reader.row_status == 1).all()
    assert verify_store(cache).ok


def test_resume_refuses_any_option_that_changes_what_is_stored(data: dict[str, Path], tmp_path: Path) -> None:
    from xmic.extract.resume import RUN_FIELDS, STORED_FIELDS

    declared = set(STORED_FIELDS) | set(RUN_FIELDS)
    fields = {f.name for f in dataclasses.fields(ExtractConfig)}
    assert fields == declared and not set(STORED_FIELDS) & set(RUN_FIELDS)  # a new option must be declared

    cache = tmp_path / "store.zarr"
    base = extract_args(data, cache)
    first = CliRunner().invoke(main, base)
    assert first.exit_code == 0, first.output
    with Backend(cache).session("a") as s:  # as if killed before its last chunk
        s.write(f"{DS}/done", slice(1, 2), np.zeros(1, np.uint8))
    before = arrays(cache)
    res = CliRunner().invoke(main, [*base, "--decode-size", "32"])
    line = one_line_error(res.output)
    assert res.exit_code == 1 and "--decode-size: store has null, given 32" in line and "--overwrite" in line
    after = arrays(cache)
    assert sorted(after) == sorted(before)
    for key in before:  # nothing was written
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


def test_resume_compares_hand_options_and_the_hand_box_content(data: dict[str, Path], tmp_path: Path) -> None:
    from xmic.extract.resume import check_resume, stored_options

    boxes = tmp_path / "boxes"
    boxes.mkdir()
    (boxes / "a.json").write_text("[]")
    cfg = config(data, tmp_path / "s.zarr", hands="given", hand_options={"hand_boxes": str(boxes)})
    stored = {"stored_options": stored_options(cfg)}
    check_resume(stored, stored_options(cfg), "s")  # the same options resume
    (boxes / "a.json").write_text("[[0, 0, 1, 1]]")
    with pytest.raises(
        StoreSpecError, match=r"--hand-boxes content: store has \"[0-9a-f]{64}\", given \"[0-9a-f]{64}\""
    ):
        check_resume(stored, stored_options(cfg), "s")
    other = dataclasses.replace(cfg, hand_options={"hand_boxes": str(boxes), "hand_missing": "full"})
    with pytest.raises(StoreSpecError, match=r"\(--hand-missing: store has \"full\", given \"error\"\)"):
        check_resume({"stored_options": stored_options(other)}, stored_options(cfg), "s")
    mp = dataclasses.replace(cfg, hands="mediapipe", hand_options={"hand_gap": 5})
    opts = stored_options(mp)
    assert {"--hand-margin", "--hand-min-conf", "--hand-mode", "--hand-gap"} <= set(opts) and opts["--hand-gap"] == 5


def mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0  # fmt: skip


def test_hdf5_on_a_full_disk_leaves_no_file_and_a_damaged_file_is_named(data: dict[str, Path], tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "160k"):
        pytest.skip("needs root and a tmpfs mount to fill a disk (mount -t tmpfs -o size=160k tmpfs DIR)")
    try:
        cache = disk / "store.h5"
        args = extract_args(data, cache, "--format", "h5")
        proc = subprocess.run(
            [sys.executable, "-m", "xmic.cli", *args], capture_output=True, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out  # never a segfault (-11) nor a bug report (70)
        assert "is the disk full?" in out and "Traceback" not in out, out
        assert not list(disk.glob(".store.h5.*"))  # no temporary file left
        if cache.exists():  # what the failed write left: named in one line, never a traceback
            res = CliRunner().invoke(main, ["cache", "verify", str(cache)])
            assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)  # space freed
        res = CliRunner().invoke(main, args)
        if res.exit_code == 1:  # the file no longer opens: --overwrite sets it aside
            assert "cannot be opened" in res.output and "--overwrite" in res.output, res.output
            res = CliRunner().invoke(main, [*args, "--overwrite"])
        assert res.exit_code == 0, res.output
        assert verify_store(cache).ok
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    damaged = tmp_path / "damaged.h5"
    assert CliRunner().invoke(main, extract_args(data, damaged, "--format", "h5")).exit_code == 0
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # what a failed later write can leave
    for args in (["cache", "verify", str(damaged)], ["cache", "info", str(damaged)], extract_args(data, damaged)):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 1 and "cannot be opened" in res.output and "Traceback" not in res.output, res.output
    res = CliRunner().invoke(main, [*extract_args(data, damaged, "--format", "h5"), "--overwrite"])
    assert res.exit_code == 0 and "renamed it to" in res.output, res.output
    assert verify_store(damaged).ok and len(list(tmp_path.glob("damaged.h5.damaged-*"))) == 1
