"""Stage one's frame cache (``xmic extract --frames-cache``, issue 10): round trip, kill/resume, verify, refusals.

A small generated EGTEA test split is extracted with a tiny CLIP (32 px input) into chunks of 2 rows. The frames
read back are checked against the encoder's input computed here from the decoded source video with PIL (the
reference the device preprocessing reproduces), within JPEG quality 95's loss.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import decode_mp4, tiny_clip_extract_config

pytest.importorskip("imagecodecs")

from xmic.cache import frames as frame_cache  # noqa: E402
from xmic.cache.backend import Backend  # noqa: E402
from xmic.cache.errors import StoreError, StoreSpecError  # noqa: E402
from xmic.cache.reader import StoreReader  # noqa: E402
from xmic.cache.verify import reset_damaged, store_info, verify_store  # noqa: E402
from xmic.extract.runner import ExtractConfig, run_extraction  # noqa: E402
from xmic.synth import KITCHEN_C, generate  # noqa: E402
from xmic.synth.generate import Sizes  # noqa: E402
from xmic.synth.writers import egtea_clip_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = Sizes(train=3, val=3, segments_per_video=(2, 4), segment_seconds=(0.5, 1.0), gap_seconds=(0.2, 0.5))
CHUNK_ROWS = 2
ENCODER = "clip-vit-b16"
KEY = f"egtea/frames/{ENCODER}/full"
#: JPEG quality 95 (4:4:4) plus PIL's and torch's bicubic rounding (1-3 levels apart at a few pixels).
MAX_MEAN_ERROR = 3.0  # levels of 255 (measured 1.2 at 224 px, 1.8-2.1 at 64 px across libjpeg builds)
MIN_PSNR_DB = 35.0

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("frame_cache")
    generate(tmp / "gen", seed=0, sizes=TINY, workers=0, datasets=("egtea",))
    return {"tmp": tmp, "root": tmp / "gen" / "egtea"}


def config(data: dict[str, Path], cache: str, **kw) -> ExtractConfig:
    words = {w for n in KITCHEN_C.verbs + KITCHEN_C.nouns for w in n.split()}
    base = tiny_clip_extract_config(data["tmp"], "egtea", data["root"], ("train", "test"), words, chunk_rows=CHUNK_ROWS)
    return dataclasses.replace(base, cache=data["tmp"] / cache, **kw)


@pytest.fixture(scope="module")
def reference(data: dict[str, Path]) -> Path:
    """An uninterrupted run with a frame cache."""
    cfg = config(data, "reference.zarr", frames_cache=True)
    report = run_extraction(cfg, echo=quiet)
    assert report.rows_failed == 0 and report.chunks_written >= 3
    return cfg.cache


def pil_input(frames: np.ndarray, resize: int, size: int) -> np.ndarray:
    """The CLIP image processor's resize (shorter side, PIL bicubic, long side truncated) and centre crop."""
    from PIL import Image

    out = []
    for f in frames:
        im = Image.fromarray(f)
        w, h = im.size
        nw, nh = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
        im = im.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        out.append(np.asarray(im.crop((left, top, left + size, top + size))))
    return np.stack(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_uint8_crop_is_exactly_the_encoders_input() -> None:
    import torch

    from xmic.extract.preprocess import normalize_uint8, preprocess, preprocess_uint8
    from xmic.registry import get_encoder_spec

    spec = dataclasses.replace(get_encoder_spec(ENCODER), resize=40, image_size=32)
    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 70, 3), dtype=np.uint8)
    crop = preprocess_uint8(frames, spec)
    assert crop.dtype == torch.uint8 and crop.shape == (5, 3, 32, 32)
    assert torch.equal(normalize_uint8(crop, spec), preprocess(frames, spec))
    assert torch.equal(normalize_uint8(crop[None], spec)[0], preprocess(frames, spec))  # (B, T, 3, S, S) too


def test_round_trip_within_the_jpeg_loss(data: dict[str, Path], reference: Path) -> None:
    reader = StoreReader(reference)
    enc = reader.spec.encoders[ENCODER]
    assert reader.spec.frames == {ENCODER: frame_cache.frame_spec(enc.image_size, 95)}
    assert reader.has_frames() and reader.has_frames(ENCODER) and not reader.has_frames("dinov2-vitb14")
    stored = reader.load_frames_numpy()
    t, s = reader.spec.num_frames, enc.image_size
    assert stored.shape == (reader.n_rows, t, s, s, 3) and stored.dtype == np.uint8
    fi, videos = reader.frame_index, reader.segments["video_id"]
    for row in range(reader.n_rows):
        source, _ = decode_mp4(egtea_clip_path(data["root"], str(videos[row])))
        expected = pil_input(source[fi[row]], enc.resize, enc.image_size)
        err = np.abs(stored[row].astype(np.int16) - expected)
        assert err.mean() <= MAX_MEAN_ERROR, (row, err.mean())
        assert min(psnr(a, b) for a, b in zip(stored[row], expected, strict=True)) >= MIN_PSNR_DB
    # the reader: any rows, shared or per-row slots, channels first on a device
    rows = np.array([3, 0, 3])
    frames = reader.load_frames(rows=rows, slots=[1, 5])
    assert tuple(frames.shape) == (3, 2, 3, s, s) and str(frames.dtype) == "torch.uint8"
    assert np.array_equal(frames.permute(0, 1, 3, 4, 2).numpy(), stored[rows][:, [1, 5]])
    per_row = np.array([[0, 7], [2, 3], [6, 6]])
    got = reader.load_frames(rows=rows, slots=per_row, channels_last=True).numpy()
    assert np.array_equal(got, stored[rows[:, None], per_row])
    with pytest.raises(IndexError):
        reader.load_frames(rows=[0], slots=[t])
    # stored through zarr's codec pipeline: one shard per store chunk, one JPEG image + crc32c per inner chunk
    meta = json.loads((reference / KEY / "zarr.json").read_text())
    sharding = meta["codecs"][0]
    assert sharding["name"] == "sharding_indexed"
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [CHUNK_ROWS, t, s, s, 3]
    assert sharding["configuration"]["chunk_shape"] == [1, 1, s, s, 3]
    names = [c["name"] for c in sharding["configuration"]["codecs"]]
    assert names == [frame_cache.CODEC_NAME, "crc32c"]
    assert sharding["configuration"]["codecs"][0]["configuration"]["level"] == 95
    # xmic cache info: the codec and the bytes per clip
    info = store_info(reference)["datasets"]["egtea"]["frames"][ENCODER]
    assert info["codec"] == "jpeg" and info["quality"] == 95 and info["checksum"] is True
    assert info["rows_written"] == reader.n_rows and 0 < info["bytes_per_clip"] < t * s * s * 3
    from xmic.cache.cli import cache as cache_cli

    out = CliRunner().invoke(cache_cli, ["info", str(reference)])
    assert out.exit_code == 0, out.output
    assert f"frames     {ENCODER}" in out.output and "jpeg quality 95" in out.output and "per clip" in out.output


KILL_SCRIPT = """
import json, sys, time
from xmic.extract.runner import ExtractConfig, run_extraction
cfg = ExtractConfig(**json.loads(sys.argv[1]))
run_extraction(cfg, echo=lambda _: None, on_chunk=lambda *a: time.sleep(0.5))
"""


def _done(cache: Path) -> np.ndarray | None:
    try:
        return StoreReader(cache, "egtea").done
    except Exception:  # not created yet, or caught mid-creation
        return None


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with Backend(path).session("r") as s:
        return {key: s.read(key) for key in s.walk_arrays("egtea")}


def assert_same_arrays(a: Path, b: Path) -> None:
    x, y = _arrays(a), _arrays(b)
    assert sorted(x) == sorted(y) and KEY in x
    for key in x:
        assert np.array_equal(x[key], y[key], equal_nan=x[key].dtype.kind == "f"), f"array {key} differs"


def test_kill_then_resume_equals_an_uninterrupted_run(data: dict[str, Path], reference: Path) -> None:
    cfg = config(data, "killed.zarr", frames_cache=True)
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    argv = [sys.executable, "-c", KILL_SCRIPT, json.dumps(fields, default=str)]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            flags = _done(cfg.cache)
            if flags is not None and flags.sum() >= 1:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("no chunk was flagged done within 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    done = _done(cfg.cache)
    assert 1 <= done.sum() < len(done)
    assert not verify_store(cfg.cache).ok  # unfinished chunks
    report = run_extraction(cfg, echo=quiet)
    assert report.chunks_pending == report.chunks_written == len(done) - done.sum()
    assert verify_store(cfg.cache).ok
    assert_same_arrays(cfg.cache, reference)


def test_verify_reports_damaged_and_missing_frame_chunks(data: dict[str, Path], reference: Path) -> None:
    from xmic.cache.cli import cache as cache_cli

    cache = data["tmp"] / "damaged.zarr"
    shutil.copytree(reference, cache)
    shard = cache / KEY / "c" / "1" / "0" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # inside an image of chunk 1: its crc32c no longer matches
    shard.write_bytes(bytes(raw))
    (cache / KEY / "c" / "2" / "0" / "0" / "0" / "0").unlink()  # chunk 2's shard is gone: would read as black
    report = verify_store(cache)
    assert not report.ok and report.damaged == {"egtea": [1, 2]}
    assert any(p.startswith(f"array {KEY} chunk 1: unreadable or checksum mismatch") for p in report.problems)
    assert any(p.startswith(f"array {KEY} chunk 2: missing from the store") for p in report.problems)
    out = CliRunner().invoke(cache_cli, ["verify", str(cache)])
    assert out.exit_code != 0 and f"array {KEY} chunk 1" in out.output
    assert reset_damaged(cache, report.damaged) == 2
    run_extraction(config(data, "damaged.zarr", frames_cache=True), echo=quiet)
    assert verify_store(cache).ok
    assert_same_arrays(cache, reference)


def test_no_frame_cache_names_the_command_and_groups_do_not_change_kind(data: dict[str, Path], reference: Path) -> None:
    plain = config(data, "plain.zarr")
    run_extraction(plain, echo=quiet)
    reader = StoreReader(plain.cache)
    assert not reader.has_frames() and reader.spec.frames == {}
    assert "frames" not in json.loads(reader.spec.to_json())  # stores without one read as before
    with pytest.raises(StoreError) as err:
        reader.load_frames(rows=[0])
    msg = str(err.value)
    assert "no frame cache of clip-vit-b16" in msg
    assert f"xmic extract --dataset egtea --root {data['root']} --split train,test --cache {plain.cache}" in msg
    assert "--encoder clip-vit-b16" in msg and msg.endswith("--frames-cache --overwrite")
    # adding a frame cache to that group in place is refused with the same command; --overwrite re-extracts it
    with pytest.raises(StoreSpecError, match="without a frame cache") as err:
        run_extraction(dataclasses.replace(plain, frames_cache=True), echo=quiet)
    assert msg.splitlines()[-1] in str(err.value)
    # resuming a group that has one without --frames-cache (or at another quality) is refused too
    with pytest.raises(StoreSpecError, match="add --frames-cache to the command"):
        run_extraction(config(data, "reference.zarr"), echo=quiet)
    with pytest.raises(StoreSpecError, match="--frames-quality 95"):
        run_extraction(config(data, "reference.zarr", frames_cache=True, frames_quality=80), echo=quiet)
    assert verify_store(reference).ok


def test_refusals_before_any_work(data: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError, match="needs a Zarr store"):
        run_extraction(config(data, "store.h5", fmt="h5", frames_cache=True), echo=quiet)
    with pytest.raises(ValueError, match="dinov2 encoder"):
        run_extraction(config(data, "dino.zarr", encoder="dinov2-vitb14", frames_cache=True), echo=quiet)
    assert not (data["tmp"] / "store.h5").exists() and not (data["tmp"] / "dino.zarr").exists()
    from xmic.extract.extract_cli import extract

    cfg = config(data, "nocodec.zarr")
    args = ["--dataset", "egtea", "--root", str(data["root"]), "--split", "train,test", "--cache", str(cfg.cache)]
    args += ["--model-dir", str(cfg.model_dir), "--hands", "none", "--frames", "8", "--frames-cache", "--device", "cpu"]
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # as if the frames extra were not installed
    out = CliRunner().invoke(extract, args)
    assert out.exit_code == 1
    assert out.output.strip().splitlines() == [
        "Error: --frames-cache needs the JPEG codec of imagecodecs, which is not installed: "
        "pip install 'xmic[frames]' (the imagecodecs package)"
    ]
    assert not cfg.cache.exists()


def test_write_chunk_checks_the_frames(tmp_path: Path) -> None:
    from xmic.cache.schema import EncoderSpec, StoreSpec
    from xmic.cache.writer import StoreWriter

    enc = EncoderSpec(ENCODER, "clip", "x/y", 4, 8, 8, "bicubic", (0.5,) * 3, (0.5,) * 3)
    spec = StoreSpec("d", 2, {ENCODER: enc}, "uniform-bins:2x1", 2, frames={ENCODER: frame_cache.frame_spec(8)})
    segs = {
        "segment_id": ["a", "b", "c"],
        "video_id": ["v", "v", "v"],
        "start_frame": [0, 1, 2],
        "stop_frame": [5, 6, 7],
        "fps": [30.0] * 3,
        "verb": [0, 0, 0],
        "noun": [0, 0, 0],
        "split": ["train"] * 3,
    }
    writer = StoreWriter.create(tmp_path / "s.zarr", spec, segs, {"verb": ["cut"], "noun": ["pan"]})
    feats = {ENCODER: {v: np.zeros((2, 2, 4), np.float32) for v in ("full", "hand")}}
    common = dict(frame_index=np.zeros((2, 2), np.int32), hand_box=np.full((2, 2, 4), np.nan), features=feats)
    common["row_status"] = np.ones(2, np.uint8)
    with pytest.raises(ValueError, match="needs frames="):
        writer.write_chunk(0, **common)
    with pytest.raises(ValueError, match=r"expected uint8 \(2, 2, 8, 8, 3\)"):
        writer.write_chunk(0, **common, frames={ENCODER: np.zeros((2, 2, 8, 8, 3), np.float32)})
    image = np.random.default_rng(1).integers(0, 256, (2, 2, 8, 8, 3), dtype=np.uint8)
    writer.write_chunk(0, **common, frames={ENCODER: image})
    back = StoreReader(tmp_path / "s.zarr").load_frames_numpy(rows=[0, 1])
    assert back.shape == image.shape and np.abs(back.astype(int) - image).mean() < 40  # noise: JPEG's worst case
    with pytest.raises(StoreError, match="a Zarr store"):
        StoreWriter.create(tmp_path / "s.h5", spec, segs, {"verb": ["cut"], "noun": ["pan"]})


def test_size_benchmark_reports_bytes_per_clip(data: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    import importlib.util

    path = REPO / "benchmarks" / "frame_cache_size.py"
    spec = importlib.util.spec_from_file_location("frame_cache_size", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    video = next(data["root"].rglob("*.mp4"))  # a generated clip (128x96), standing in for the real sample
    out = bench.main(["--video", str(video), "--no-demo"])
    for size in ("64", "224"):
        r = out["real"][size]
        assert r["image_size"] == int(size) and 0 < r["bytes_per_clip"] < r["raw_bytes_per_clip"]
        assert r["mean_abs_error"] <= 3.0 and r["min_psnr_db"] >= 30.0
    assert out["epic100_train_bytes_224"] == out["real"]["224"]["bytes_per_clip"] * 67_217
    assert out["epic100_train_val_bytes_224"] == out["real"]["224"]["bytes_per_clip"] * (67_217 + 9_668)
    printed = capsys.readouterr().out
    assert "KiB per clip" in printed and "EPIC-100 at 224 px" in printed


def test_without_the_codec_verify_says_so_and_marks_no_damage(reference: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # a machine without the frames extra
    report = verify_store(reference)
    hint = "needs the JPEG codec of imagecodecs, which is not installed: pip install 'xmic[frames]'"
    assert report.problems == [f"array {KEY}: checking the frame cache {hint} (the imagecodecs package)"]
    assert report.damaged == {}
    assert store_info(reference)["datasets"]["egtea"]["frames"][ENCODER]["bytes_per_clip"] > 0
    with pytest.raises(StoreError, match=r"xmic\[frames\]"):
        StoreReader(reference).load_frames(rows=[0])
