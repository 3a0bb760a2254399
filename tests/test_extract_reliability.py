"""Extraction under failure: SIGKILL mid-run then resume, two ranks at once, bad videos among good ones."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xmic.bench.extract import write_ego4d_dataset, write_tiny_encoders
from xmic.cache.backend import Backend
from xmic.cache.cli import cache as cache_cli
from xmic.cache.layout import SPEC_ATTR
from xmic.cache.reader import StoreReader
from xmic.cache.schema import ROW_FAILED, ROW_OK, StoreSpec
from xmic.cache.tempfiles import stale_partial_files
from xmic.cache.verify import verify_store
from xmic.extract.launch import chunks_of_rank, default_device, discover_rank
from xmic.extract.runner import ExtractConfig, run_extraction

REPO = Path(__file__).resolve().parents[1]
CLIPS = {f"clip{i}": 30 for i in range(5)}
SEGMENTS = {uid: [(0, 13), (10, 29)] for uid in CLIPS}
CHUNK_ROWS = 2  # 10 rows -> 5 chunks
N_CHUNKS = 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("reliability")
    root = write_ego4d_dataset(tmp / "ego4d", CLIPS, SEGMENTS)
    models = write_tiny_encoders(tmp / "models", ("clip-vit-b16",))
    return {"tmp": tmp, "root": root, "models": models}


def config(data: dict[str, Path], cache: Path, **kw) -> ExtractConfig:
    base = ExtractConfig(
        dataset="ego4d",
        root=data["root"],
        cache=cache,
        model_dir=data["models"],
        num_frames=4,
        workers=0,
        device="cpu",
        chunk_rows=CHUNK_ROWS,
        decode_size=None,
        progress=False,
    )
    return replace(base, **kw)


@pytest.fixture(scope="module")
def reference(data: dict[str, Path]) -> Path:
    """An uninterrupted single-process run."""
    cache = data["tmp"] / "reference.zarr"
    run_extraction(config(data, cache), echo=lambda _: None)
    return cache


def store_contents(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Every array of the store, and the dataset's spec without the fields that name the store path."""
    with Backend(path).session("r") as s:
        arrays = {key: s.read(key) for key in s.walk_arrays("")}
        spec = json.loads(StoreSpec.from_json(s.get_attrs("ego4d")[SPEC_ATTR]).to_json())
    spec["config"].pop("cache")
    spec["config"].pop("workers")
    return arrays, spec


def assert_same_store(a: Path, b: Path) -> None:
    arrays_a, spec_a = store_contents(a)
    arrays_b, spec_b = store_contents(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for key, x in arrays_a.items():
        y = arrays_b[key]
        same = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y)
        assert same, f"array {key} differs"
    assert spec_a == spec_b


def done_flags(cache: Path) -> np.ndarray | None:
    try:
        return StoreReader(cache, "ego4d").done
    except Exception:  # not created yet, or caught mid-creation
        return None


def _env() -> dict[str, str]:
    path = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


KILL_SCRIPT = """
import sys, time
from xmic.extract.runner import ExtractConfig, run_extraction
cfg = ExtractConfig(dataset="ego4d", root=sys.argv[1], cache=sys.argv[2], model_dir=sys.argv[3], num_frames=4,
                    workers=0, device="cpu", chunk_rows=2, decode_size=None, progress=False)
run_extraction(cfg, echo=lambda _: None, on_chunk=lambda *a: time.sleep(0.4))
"""


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(data: dict[str, Path], reference: Path) -> None:
    cache = data["tmp"] / "killed.zarr"
    argv = [sys.executable, "-c", KILL_SCRIPT, str(data["root"]), str(cache), str(data["models"])]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            flags = done_flags(cache)
            if flags is not None and flags.sum() >= 1:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("no chunk was flagged done within 60 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    done_before = int(done_flags(cache).sum())
    assert 1 <= done_before < N_CHUNKS
    # what zarr leaves when the kill lands inside a write (planted, as the kill may fall between writes)
    planted = cache / "ego4d" / "row_status" / f"c.{'ab' * 16}.partial"
    planted.write_bytes(b"half a chunk")
    lookalike = cache / "ego4d" / "notes.partial"  # not zarr's temp-file pattern: left alone
    lookalike.write_bytes(b"")
    # another dataset's extraction may be writing into the same store now: its temporary files are not touched
    (cache / "epic" / "done").mkdir(parents=True)
    for group in (cache / "epic", cache / "epic" / "done"):  # Zarr groups, so that listing the store warns of nothing
        (group / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    theirs = cache / "epic" / "done" / f"c.{'cd' * 16}.partial"
    theirs.write_bytes(b"being written")
    interrupted = verify_store(cache)
    assert not interrupted.ok  # unfinished chunks are reported
    assert planted in stale_partial_files(cache) and lookalike not in stale_partial_files(cache)
    assert any("temporary files of an interrupted write" in n for n in interrupted.notes)
    lines: list[str] = []
    report = run_extraction(config(data, cache), echo=lines.append)
    assert report.chunks_pending == N_CHUNKS - done_before == report.chunks_written
    assert not planted.exists() and lookalike.exists() and stale_partial_files(cache) == [theirs]
    assert any(line.startswith("removed 1 ") and "interrupted write" in line for line in lines)
    lookalike.unlink()
    shutil.rmtree(cache / "epic")
    assert verify_store(cache).ok and verify_store(cache).notes == []
    assert_same_store(cache, reference)


def test_two_ranks_at_once_equal_one_process(data: dict[str, Path], reference: Path) -> None:
    cache = data["tmp"] / "ranks.zarr"
    common = [sys.executable, "-m", "xmic.extract.extract_cli", "--dataset", "ego4d", "--root", str(data["root"])]
    common += ["--cache", str(cache), "--model-dir", str(data["models"]), "--frames", "4", "--chunk-rows", "2"]
    common += ["--decode-size", "0", "--device", "cpu", "--no-progress", "--world-size", "2", "--json"]
    common += ["--hands", "none"]
    procs = [
        subprocess.Popen(common + ["--rank", str(r), "--workers", str(r)], env=_env(), stdout=subprocess.PIPE)
        for r in (0, 1)
    ]
    outs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    reports = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    assert [r["chunks_written"] for r in reports] == [3, 2]  # chunks 0, 2, 4 and 1, 3
    assert verify_store(cache).ok
    assert_same_store(cache, reference)


def test_bad_videos_fail_their_rows_and_the_rest_completes(data: dict[str, Path]) -> None:
    root = data["tmp"] / "bad"
    clips = {"good0": 30, "good1": 30, "short": 20}  # "bad" gets no video from the generator
    segs = {"good0": [(0, 13)], "good1": [(5, 25)], "short": [(0, 9), (5, 40)], "bad": [(0, 10)]}
    write_ego4d_dataset(root, clips, segs)
    (root / "v2" / "clips" / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    cache = data["tmp"] / "bad.zarr"
    report = run_extraction(config(data, cache, root=root, workers=1), echo=lambda _: None)
    assert (report.rows_ok, report.rows_failed) == (3, 2)
    reader = StoreReader(cache, "ego4d")
    ids, status = list(reader.segments["segment_id"]), reader.row_status
    assert [ids[i] for i in np.flatnonzero(status == ROW_OK)] == ["good0_0", "good1_0", "short_0"]
    failed = np.flatnonzero(status == ROW_FAILED)
    assert np.isnan(reader.load_features_numpy("clip-vit-b16", "full")[failed]).all()
    verdict = verify_store(cache)
    assert reader.complete() and not verdict.ok
    reasons = {r["segment_id"]: r["reason"] for r in verdict.failed_rows}
    assert sorted(reasons) == ["bad_0", "short_1"]
    assert "bad.mp4" in reasons["bad_0"] and "cannot open video" in reasons["bad_0"]
    assert "short.mp4: media shorter than the annotation" in reasons["short_1"]
    result = CliRunner().invoke(cache_cli, ["verify", str(cache)])
    assert result.exit_code != 0 and "short_1" in result.output and "shorter than the annotation" in result.output


def test_rank_discovery_and_chunk_assignment() -> None:
    assert discover_rank(env={}) == (0, 1)
    assert discover_rank(env={"SLURM_PROCID": "3", "SLURM_NTASKS": "4"}) == (3, 4)
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "3", "SLURM_NTASKS": "4"}
    assert discover_rank(env=torchrun) == (1, 2)
    assert discover_rank(0, 3, env=torchrun) == (0, 3)
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        discover_rank(2, 2, env={})
    with pytest.raises(ValueError, match="both --rank and --world-size"):
        discover_rank(1, None, env={})
    with pytest.raises(ValueError, match="not integers"):
        discover_rank(env={"RANK": "a", "WORLD_SIZE": "2"})
    assert chunks_of_rank(list(range(7)), 1, 3) == [1, 4]


def test_a_worker_error_reaches_the_main_process_with_its_traceback(tmp_path: Path) -> None:
    from PIL import Image

    from xmic.extract.launch import DecodePool
    from xmic.extract.pipeline import ChunkJob, DecodeSettings, VideoJob
    from xmic.synth.video import index_frame

    folder = tmp_path / "P01_01"
    folder.mkdir()
    Image.fromarray(index_frame(1, 64, 48)).save(folder / "frame_0000000001.jpg")
    video = VideoJob("P01_01", str(folder), "frames", 60.0, False, (0,), (1,), (1,))
    settings = DecodeSettings(num_frames=4, bins=4, interpolation="no-such-filter")
    with pytest.raises(RuntimeError, match=r"(?s)decode worker 0 failed on chunk 7.*unknown interpolation"):
        list(DecodePool([ChunkJob(7, 0, 1, (video,))], settings, workers=1))
    with pytest.raises(ValueError, match="unknown interpolation"):  # in-process: the error itself
        list(DecodePool([ChunkJob(7, 0, 1, (video,))], settings, workers=0))


def test_default_device_puts_one_rank_on_each_gpu() -> None:
    assert default_device(0, {"LOCAL_RANK": "3"}) == "cpu"
    assert default_device(4, {}) == "cuda:0"
    assert [default_device(4, {"LOCAL_RANK": str(r)}) for r in range(4)] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert default_device(2, {"SLURM_LOCALID": "3"}) == "cuda:1"  # more ranks than GPUs: wrapped
    assert default_device(8, {"LOCAL_RANK": "1", "SLURM_LOCALID": "5"}) == "cuda:1"  # torchrun's wins
    with pytest.raises(ValueError, match="LOCAL_RANK='x' is not an integer"):
        default_device(2, {"LOCAL_RANK": "x"})


def test_other_ranks_wait_for_rank_0_and_give_up_with_a_clear_error(tmp_path: Path) -> None:
    from xmic.extract.launch import open_store

    spec = StoreSpec(dataset="ego4d", num_frames=4, encoders={})
    with pytest.raises(TimeoutError, match="rank 1: group 'ego4d' .* did not appear within 0 s; is rank 0 running"):
        open_store(tmp_path / "none.zarr", spec, {}, {}, None, rank=1, timeout=0.3)
