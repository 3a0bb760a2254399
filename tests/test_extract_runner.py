"""`xmic extract` end to end on tiny datasets in the real Ego4D, EPIC and EGTEA layouts, with tiny encoders."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import shared_path
from tolerance import assert_close_scaled

from xmic.bench.extract import write_ego4d_dataset, write_tiny_encoders
from xmic.cache.reader import StoreReader
from xmic.cache.schema import ROW_FAILED, ROW_OK
from xmic.cache.verify import verify_store
from xmic.cli import main
from xmic.extract.decode import decode_all_then_index
from xmic.extract.encoders import load_encoder
from xmic.extract.extract_cli import extract
from xmic.extract.runner import ExtractConfig, run_extraction
from xmic.sampling import slot_frames_batch
from xmic.synth.video import index_frame, write_test_video

T = 4
CLIPS = {"clipA": 48, "clipB": 40, "clipC": 36}
SEGMENTS = {
    "clipA": [(0, 11), (8, 23), (30, 47)],
    "clipB": [(2, 17), (20, 39)],
    "clipC": [(0, 35)],
    "clipMissing": [(0, 20)],
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("extract")
    root = write_ego4d_dataset(tmp / "ego4d", CLIPS, SEGMENTS)
    write_ego4d_dataset(root, {}, {"clipC": [(5, 20)]}, split="val", first_action=10)
    models = write_tiny_encoders(tmp / "models", ("clip-vit-b16", "dinov2-vitb14", "clip-vit-l14"))
    return {"tmp": tmp, "root": root, "models": models}


def make_config(data: dict[str, Path], cache: Path, **kw) -> ExtractConfig:
    base = ExtractConfig(
        dataset="ego4d",
        root=data["root"],
        splits=("train", "val"),
        cache=cache,
        encoder="clip-vit-b16",
        second_encoder="dinov2-vitb14",
        model_dir=data["models"],
        num_frames=T,
        workers=0,
        device="cpu",
        chunk_rows=3,
        decode_size=None,
        progress=False,
        skip_bad=True,  # clipMissing has no video: its row is recorded as failed
    )
    return replace(base, **kw)


def test_missing_media_stops_the_run_unless_skip_bad(data: dict[str, Path]) -> None:
    cache = data["tmp"] / "strict.zarr"
    with pytest.raises(FileNotFoundError, match=r"1 rows .* have no media under .*: 1 videos \(clipMissing\)") as err:
        run_extraction(make_config(data, cache, skip_bad=False), echo=lambda _: None)
    assert "pass --skip-bad" in str(err.value) and "fho_lta_train.json" in str(err.value)
    assert "(looked for v2/clips/clipMissing.mp4, v1/clips/clipMissing.mp4, clips/clipMissing.mp4, " in str(err.value)
    assert f"clipMissing.mp4 under {data['root']})" in str(err.value)  # the paths searched, not only the id
    assert not cache.exists()  # refused before the store is created
    args = ["--dataset", "ego4d", "--root", str(data["root"]), "--split", "train,val", "--cache", str(cache)]
    args += ["--hands", "none"]
    result = CliRunner().invoke(extract, [*args, "--model-dir", str(data["models"]), "--workers", "0"])
    assert result.exit_code == 1 and "clipMissing" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def none_store(data: dict[str, Path]) -> tuple[Path, object]:
    cache = data["tmp"] / "none.zarr"
    report = run_extraction(make_config(data, cache), echo=lambda _: None)
    return cache, report


def _rows(reader: StoreReader, video: str) -> np.ndarray:
    return np.flatnonzero(reader.segments["video_id"] == video)


def _close(stored: np.ndarray, ref: np.ndarray) -> None:
    """fp16 store vs float32 reference: equal to fp16 rounding of the largest value (plus float32 kernel order)."""
    assert_close_scaled(stored.astype(np.float32), ref, k=2, dtype=torch.float16)


def test_none_hands_end_to_end(data: dict[str, Path], none_store: tuple[Path, object]) -> None:
    cache, report = none_store
    assert (report.rows_ok, report.rows_failed, report.chunks_written) == (7, 1, 3)
    assert set(report.shares) == {"decode", "hands", "encode", "write"}
    assert sum(report.shares.values()) == pytest.approx(1.0)
    verdict = verify_store(cache)
    assert len(verdict.problems) == 1 and "clipMissing" in verdict.problems[0]
    assert verdict.failed_rows[0]["reason"] == "media of video clipMissing not found (video)"

    reader = StoreReader(cache, "ego4d")
    seg = reader.segments
    assert reader.n_rows == 8 and list(np.unique(seg["split"], return_counts=True)[1]) == [7, 1]
    assert list(seg["video_id"]) == sorted(seg["video_id"])  # one group, rows sorted by video
    spec = reader.spec
    assert sorted(spec.encoders) == ["clip-vit-b16", "dinov2-vitb14"] and spec.num_frames == T
    assert spec.sampling == "uniform-bins:4x1" and spec.hands == "none" and spec.xmic_version
    taxonomy = data["root"] / "v2" / "annotations" / "fho_lta_taxonomy.json"
    assert spec.annotations["fho_lta_taxonomy.json"] == hashlib.sha256(taxonomy.read_bytes()).hexdigest()
    assert set(spec.annotations) == {"fho_lta_train.json", "fho_lta_val.json", "fho_lta_taxonomy.json"}

    status, fi = reader.row_status, reader.frame_index
    ok = status == ROW_OK
    expected = slot_frames_batch(seg["start_frame"], seg["stop_frame"], T, T)
    np.testing.assert_array_equal(fi[ok], expected[ok])
    bad = _rows(reader, "clipMissing")
    assert status[bad].tolist() == [ROW_FAILED] and (fi[bad] == -1).all()
    assert np.isnan(reader.hand_box).all()
    encoders = {n: load_encoder(n, data["models"], "cpu") for n in spec.encoders}
    for name, enc in encoders.items():
        full = reader.load_features_numpy(name, "full")
        hand = reader.load_features_numpy(name, "hand")
        assert full.shape == (8, T, enc.dim) and full.dtype == np.float16
        assert np.isnan(full[bad]).all() and np.isnan(hand[bad]).all()  # never zeros for a failed row
        np.testing.assert_array_equal(hand[ok], full[ok])  # no box: the hand view is the full frame
        for row in np.flatnonzero(ok):
            path = data["root"] / "v2" / "clips" / f"{seg['video_id'][row]}.mp4"
            frames = decode_all_then_index(path, [fi[row]])[0]  # independent decode: every frame, by count
            _close(full[row], enc.encode_images(frames).numpy())
    assert not np.allclose(full[0], full[1], atol=1e-2)  # features depend on the frames
    clip = encoders["clip-vit-b16"]
    from xmic.extract.text import text_embeddings

    for target in ("verb", "noun"):
        ref = text_embeddings(clip, reader.vocab[target], ["Image of a {}"])["Image of a {}"]
        assert_close_scaled(reader.load_text("clip-vit-b16", target, "Image of a {}").numpy(), ref, k=256)
        assert len(reader.text_templates("clip-vit-b16", target)) == 6
    assert reader.text_templates("dinov2-vitb14", "verb") == []


def test_given_hands_crop_the_box_and_fall_back_to_full_frame(data: dict[str, Path]) -> None:
    from xmic.extract.hands.given import write_given_boxes

    boxes_dir = data["tmp"] / "boxes"
    fa = slot_frames_batch(np.array([0, 8, 30]), np.array([11, 23, 47]), T, T)
    box = [0.25, 0.1, 0.75, 0.6]
    given = {int(f): [box] for f in fa[:, ::2].ravel()}  # slots 0 and 2 of each clipA row have a box
    write_given_boxes(boxes_dir, "clipA", given)
    write_given_boxes(boxes_dir, "clipB", {})  # no box in any frame; clipC has no file at all
    cache = data["tmp"] / "given.zarr"
    cfg = make_config(data, cache, second_encoder=None, hands="given", hand_options={"hand_boxes": str(boxes_dir)})
    report = run_extraction(cfg, echo=lambda _: None)
    reader = StoreReader(cache, "ego4d")
    status = reader.row_status
    rows_c = _rows(reader, "clipC")
    assert (status[rows_c] == ROW_FAILED).all() and report.rows_failed == len(rows_c) + 1
    reasons = {f["row"]: f["reason"] for f in verify_store(cache).failed_rows}
    assert all("hand boxes" in reasons[r] and "no boxes for video clipC" in reasons[r] for r in rows_c)

    enc = load_encoder("clip-vit-b16", data["models"], "cpu")
    full, hand = (reader.load_features_numpy("clip-vit-b16", v) for v in ("full", "hand"))
    hb, fi = reader.hand_box, reader.frame_index
    rows_a = _rows(reader, "clipA")
    np.testing.assert_array_equal(fi[rows_a], fa)
    has = np.isin(fa, list(given))  # rows overlap: a frame boxed for one row is boxed for all
    assert has[:, ::2].all() and not has.all()
    np.testing.assert_allclose(hb[rows_a][has], np.tile(box, (has.sum(), 1)), atol=1e-7)
    assert np.isnan(hb[rows_a][~has]).all() and np.isnan(hb[_rows(reader, "clipB")]).all()
    for k, row in enumerate(rows_a):
        frames = decode_all_then_index(data["root"] / "v2" / "clips" / "clipA.mp4", [fa[k]])[0]
        crops = enc.encode_crops(frames[has[k]], np.tile(np.float32(box), (has[k].sum(), 1))).numpy()
        _close(hand[row][has[k]], crops)
        np.testing.assert_array_equal(hand[row][~has[k]], full[row][~has[k]])  # NaN box: the full frame
        assert not np.allclose(hand[row][has[k]], full[row][has[k]], atol=1e-2)  # the crop is not the full frame


def test_dry_run_lists_missing_videos_and_decodes_nothing(
    data: dict[str, Path], none_store: tuple[Path, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    import xmic.extract.decode as decode
    import xmic.extract.encoders as encoders
    import xmic.extract.pipeline as pipeline

    def boom(*args, **kwargs):
        raise AssertionError("a dry run must not decode or load models")

    monkeypatch.setattr(decode.VideoFrameReader, "__init__", boom)
    monkeypatch.setattr(pipeline, "decode_chunk", boom)
    monkeypatch.setattr(encoders, "load_encoder", boom)
    cache = data["tmp"] / "dry.zarr"
    ann = data["tmp"] / "dry-annotations"  # the same annotations plus one bad row, given with --annotations
    ann.mkdir()
    src = data["root"] / "v2" / "annotations"
    for name in ("fho_lta_taxonomy.json", "fho_lta_val.json"):
        (ann / name).write_text((src / name).read_text())
    train = json.loads((src / "fho_lta_train.json").read_text())
    bad = {"clip_uid": "clipA", "action_idx": 99, "action_clip_start_sec": 2.0, "action_clip_end_sec": 1.0}
    train["clips"].append({**bad, "verb_label": 0, "noun_label": 0})
    (ann / "fho_lta_train.json").write_text(json.dumps(train))
    args = ["--dataset", "ego4d", "--root", str(data["root"]), "--split", "train,val", "--cache", str(cache)]
    args += ["--model-dir", str(data["models"]), "--frames", str(T), "--chunk-rows", "3", "--dry-run", "--json"]
    args += ["--annotations", str(ann), "--skip-bad", "--hands", "none"]
    result = CliRunner().invoke(extract, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "split train: 7 segments, 4 videos (3 found, 1 missing), 1 rows skipped" in out
    assert "skipped: " in out and "clips[7]: action_clip_end_sec 1.0 <= action_clip_start_sec 2.0" in out
    assert "missing videos: clipMissing" in out and "split val: 1 segments" in out
    assert "(clipMissing: looked for v2/clips/clipMissing.mp4, v1/clips/clipMissing.mp4, " in out
    assert "store absent" in out and "rank 0/1 would compute 3" in out
    assert f"weights: {data['models'] / 'clip-vit-b16'}" in out
    info = json.loads(out.strip().splitlines()[-1])["dry_run"]
    assert info["splits"]["train"]["missing_videos"] == ["clipMissing"] and info["chunks_total"] == 3
    assert not cache.exists()
    done_args = [a if a != str(cache) else str(none_store[0]) for a in args]
    out = CliRunner().invoke(extract, done_args).output
    assert "3 already done" in out and "would compute 0" in out


def test_dry_run_without_weights_exits_1_naming_them(
    data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run that would stop for missing weights says so and exits 1, after describing everything else."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("XMIC_MODEL_DIR", raising=False)
    args = ["--dataset", "ego4d", "--root", str(data["root"]), "--split", "train", "--cache", str(tmp_path / "c")]
    args += ["--model-dir", str(tmp_path / "no-models"), "--second-encoder", "dinov2-vitb14", "--frames", str(T)]
    result = CliRunner().invoke(main, ["extract", *args, "--dry-run", "--hands", "none", "--skip-bad"])
    assert result.exit_code == 1, result.output
    assert "encoder clip-vit-b16: D=512, full + hand views, T=4; weights: NOT FOUND" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: dry run: weights of clip-vit-b16, dinov2-vitb14 not found, so the run would stop")
    assert "`xmic models`" in last
    found = CliRunner().invoke(main, ["extract", *args[:-6], "--model-dir", str(data["models"]), "--frames", str(T),
                                      "--dry-run", "--hands", "none", "--skip-bad"])  # fmt: skip
    assert found.exit_code == 0, found.output


def test_rerun_resumes_nothing_and_another_encoder_is_refused(
    data: dict[str, Path], none_store: tuple[Path, object]
) -> None:
    cache = none_store[0]
    before = StoreReader(cache, "ego4d").load_features_numpy("clip-vit-b16", "full")
    report = run_extraction(make_config(data, cache), echo=lambda _: None)
    assert (report.chunks_pending, report.chunks_written) == (0, 0)
    np.testing.assert_array_equal(StoreReader(cache, "ego4d").load_features_numpy("clip-vit-b16", "full"), before)
    args = ["--dataset", "ego4d", "--root", str(data["root"]), "--split", "train,val", "--cache", str(cache)]
    args += ["--model-dir", str(data["models"]), "--frames", str(T), "--encoder", "clip-vit-l14"]
    args += [
        "--second-encoder",
        "dinov2-vitb14",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--decode-size",
        "0",
        "--skip-bad",
        "--hands",
        "none",
    ]
    result = CliRunner().invoke(extract, args)
    assert result.exit_code == 1
    assert "already holds dataset 'ego4d' made differently" in result.output
    assert "clip-vit-l14" in result.output and "Traceback" not in result.output


def _write_epic(root: Path) -> None:
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "EPIC_100_verb_classes.csv").write_text("id,key,instances,category\n0,take,[],retrieve\n1,put,[],leave\n")
    (ann / "EPIC_100_noun_classes.csv").write_text(
        "id,key,instances,category\n0,tap,[],appliances\n1,board:chopping,[],x\n"
    )
    header = "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,"
    header += "start_frame,stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes\n"
    rows = [("P01_01_0", "P01_01", 3, 40), ("P01_01_1", "P01_01", 50, 90), ("P01_02_0", "P01_02", 1, 12)]
    lines = [
        f"{nid},P01,{vid},00:00:00.00,00:00:00.00,00:00:01.00,{a},{b},take tap,take,0,tap,0,['tap'],[0]\n"
        for nid, vid, a, b in rows
    ]
    (ann / "EPIC_100_train.csv").write_text(header + "".join(lines))
    write_test_video(root / "P01" / "videos" / "P01_01.MP4", 48, 64, 48, fps=30, gop=8)  # annotations at 60 fps
    from PIL import Image

    folder = root / "P01" / "rgb_frames" / "P01_02"
    folder.mkdir(parents=True)
    for n in range(1, 16):
        Image.fromarray(index_frame(n, 64, 48)).save(folder / f"frame_{n:010d}.jpg", quality=95)


def test_epic_frame_folders_and_60fps_annotations_on_a_30fps_video(data: dict[str, Path]) -> None:
    root = data["tmp"] / "epic"
    _write_epic(root)
    cache = data["tmp"] / "epic.zarr"
    cfg = make_config(data, cache, dataset="epic", root=root, splits=("train",), second_encoder=None)
    report = run_extraction(cfg, echo=lambda _: None)
    assert report.rows_failed == 0
    reader = StoreReader(cache, "epic")
    seg, fi = reader.segments, reader.frame_index
    np.testing.assert_array_equal(fi, slot_frames_batch(seg["start_frame"], seg["stop_frame"], T, T))
    assert reader.vocab["noun"] == ["tap", "chopping board"]
    enc = load_encoder("clip-vit-b16", data["models"], "cpu")
    full = reader.load_features_numpy("clip-vit-b16", "full").astype(np.float32)
    from PIL import Image

    folder = root / "P01" / "rgb_frames" / "P01_02"
    (row,) = np.flatnonzero(seg["video_id"] == "P01_02")

    def files(numbers: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(Image.open(folder / f"frame_{int(n):010d}.jpg").convert("RGB")) for n in numbers])

    _close(full[row], enc.encode_images(files(fi[row])).numpy())  # annotation frame N reads frame_N.jpg
    off_by_one = enc.encode_images(files(fi[row] + 1)).numpy()
    assert np.abs(full[row] - off_by_one).max() > 1e-2
    video = root / "P01" / "videos" / "P01_01.MP4"
    for row in np.flatnonzero(seg["video_id"] == "P01_01"):
        # EPIC frame N is at time (N - 1) / 60 s: 60 fps annotation -> 30 fps video, by time
        native = np.floor((fi[row] - 1) * 30 / 60 + 0.5).astype(np.int64)
        _close(full[row], enc.encode_images(decode_all_then_index(video, [native])[0]).numpy())


def test_egtea_stop_frame_is_clamped_to_the_clip(data: dict[str, Path]) -> None:
    root = data["tmp"] / "egtea"
    ann = root / "action_annotation"
    ann.mkdir(parents=True)
    (ann / "verb_idx.txt").write_text("Take 1\nPut 2\n")
    (ann / "noun_idx.txt").write_text("Bowl 1\nCutting board 2\n")
    long_clip = "OP01-R01-PastaSalad-1000-5000-F000024-F000120"  # the name says 97 frames; the file has 30
    short_clip = "OP01-R01-PastaSalad-6000-7000-F000144-F000163"
    (ann / "train_split1.txt").write_text(f"{long_clip} 1 1 2\n{short_clip} 2 2 1\n")
    for clip, n in ((long_clip, 30), (short_clip, 20)):
        write_test_video(root / "cropped_clips" / "OP01-R01-PastaSalad" / f"{clip}.mp4", n, 64, 48, fps=24, gop=8)
    cache = data["tmp"] / "egtea.zarr"
    cfg = make_config(data, cache, dataset="egtea", root=root, splits=("train",), second_encoder=None, num_frames=8)
    report = run_extraction(cfg, echo=lambda _: None)
    assert report.rows_failed == 0
    reader = StoreReader(cache, "egtea")
    fi = reader.frame_index
    rows = {c: int(np.flatnonzero(reader.segments["video_id"] == c)[0]) for c in (long_clip, short_clip)}
    np.testing.assert_array_equal(fi[rows[long_clip]], slot_frames_batch(np.array([0]), np.array([29]), 8, 8)[0])
    np.testing.assert_array_equal(fi[rows[short_clip]], slot_frames_batch(np.array([0]), np.array([19]), 8, 8)[0])


@pytest.mark.slow
def test_real_clip_features_match_an_independent_decode(data: dict[str, Path], tmp_path: Path) -> None:
    import av

    from xmic.extract.decode import probe_video

    clips = sorted(shared_path("realdata", "media").rglob("*.mp4"))
    if not clips:
        pytest.skip("no *.mp4 under realdata/media")
    info = probe_video(clips[0])
    n = min(info.n_frames, 120)  # near the start: the independent path decodes from frame 0
    root = tmp_path / "real"
    (root / "v2" / "clips").mkdir(parents=True)
    (root / "v2" / "clips" / "real0.mp4").symlink_to(clips[0].resolve())
    write_ego4d_dataset(root, {}, {"real0": [(0, n // 2), (n // 3, n - 1)]})
    cache = tmp_path / "real.zarr"
    cfg = make_config(data, cache, root=root, splits=("train",), second_encoder=None, decode_size=None)
    assert run_extraction(cfg, echo=lambda _: None).rows_failed == 0
    reader = StoreReader(cache, "ego4d")
    native = np.floor(reader.frame_index * info.fps / 30 + 0.5).astype(np.int64)  # Ego4D annotations: 30 fps
    wanted, kept = set(native.ravel().tolist()), {}
    with av.open(str(clips[0])) as container:
        for i, frame in enumerate(container.decode(video=0)):  # frames counted in decode output order
            if i in wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
            if i >= max(wanted):
                break
    enc = load_encoder("clip-vit-b16", data["models"], "cpu")
    full = reader.load_features_numpy("clip-vit-b16", "full")
    for row in range(reader.n_rows):
        _close(full[row], enc.encode_images(np.stack([kept[i] for i in native[row]])).numpy())


def test_store_records_the_ego4d_center_window(data: dict[str, Path], none_store: tuple[Path, object]) -> None:
    spec = StoreReader(none_store[0], "ego4d").spec
    assert spec.config["center_sec"] == 4.0  # the default for ego4d, recorded as resolved
    assert make_config(data, none_store[0], center_sec=0).as_record()["center_sec"] is None  # the whole window
    assert make_config(data, none_store[0], center_sec=2.5).as_record()["center_sec"] == 2.5


def _old_layout_store(data: dict[str, Path], cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store as an older xmic wrote it: 32 slots, rule uniform-bins:16x2 (two candidates per bin, no centre)."""
    import xmic.extract.runner as runner

    with monkeypatch.context() as m:
        m.setattr(runner, "check_bin_centres", lambda *a: None)  # today's runner refuses to write this layout
        run_extraction(make_config(data, cache, num_frames=32, second_encoder=None), echo=lambda _: None)
    spec = StoreReader(cache, "ego4d").spec
    assert (spec.num_frames, spec.sampling) == (32, "uniform-bins:16x2")


def test_old_layout_store_is_refused_by_stage_two_and_re_extracted(
    data: dict[str, Path], none_store: tuple[Path, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xmic.adapt.config import TrainConfig
    from xmic.adapt.data import load_bank
    from xmic.adapt.trainer import train
    from xmic.cache.errors import StoreSpecError
    from xmic.cli import main

    cache = tmp_path / "old.zarr"
    _old_layout_store(data, cache, monkeypatch)
    reader = StoreReader(cache, "ego4d")
    opts = dict(target="verb", encoder="clip-vit-b16", second_encoder="clip-vit-b16", views="F+H")
    with pytest.raises(StoreSpecError) as err:
        load_bank(reader, classified_view="full", splits=None, **opts)
    message = str(err.value)
    assert f"store {cache}, dataset group 'ego4d'" in message and "'uniform-bins:16x2'" in message
    assert "no candidate at a bin's centre" in message and "Re-extract it with the current `xmic extract`" in message
    assert f"xmic extract --dataset ego4d --root {data['root']} --split train,val --cache {cache}" in message
    assert message.rstrip().endswith("--overwrite")
    # stage two from the command line: train and evaluate say the same, no traceback
    args = ["train", "--cache", str(cache), "--dataset", "ego4d", "--method", "zero-shot", "--device", "cpu"]
    res = CliRunner().invoke(main, [*args, "--quiet", "--out", str(tmp_path / "r0")])
    assert res.exit_code == 1 and "'uniform-bins:16x2'" in res.output and "Traceback" not in res.output
    run = tmp_path / "zs"
    train(TrainConfig(dataset="ego4d", method="zero-shot", frames=T, device="cpu"), none_store[0], run, progress=False)
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--cache", str(cache), "--device", "cpu"])
    assert res.exit_code == 1 and "Re-extract it with the current `xmic extract`" in res.output, res.output
    # a plain re-run cannot resume it; --overwrite re-extracts it in the current layout
    with pytest.raises(StoreSpecError, match=r"num_frames: store has 32; the new spec has 48"):
        run_extraction(make_config(data, cache, num_frames=48, second_encoder=None), echo=lambda _: None)
    run_extraction(make_config(data, cache, num_frames=48, second_encoder=None, overwrite=True), echo=lambda _: None)
    fresh = StoreReader(cache, "ego4d")
    assert (fresh.spec.num_frames, fresh.spec.sampling) == (48, "uniform-bins:16x3")
    bank = load_bank(fresh, classified_view="full", splits=None, **opts)
    assert bank.store_frames == 48


def test_a_layout_without_bin_centres_is_not_extracted(data: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "refused.zarr"
    args = ["--dataset", "ego4d", "--root", str(data["root"]), "--split", "train", "--cache", str(cache)]
    args += ["--model-dir", str(data["models"]), "--frames", "32", "--hands", "none", "--skip-bad"]
    result = CliRunner().invoke(extract, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "32 frames in 16 bins give 2 candidates per bin, none at a bin's centre" in result.output
    assert not cache.exists()
