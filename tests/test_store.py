"""The feature store: writer, reader, verify and export on both backends (small: T=4, D=8, 22 rows)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from xmic.cache import layout
from xmic.cache.backend import Backend, detect_format
from xmic.cache.errors import StoreError, StoreSpecError
from xmic.cache.reader import StoreReader, list_datasets
from xmic.cache.schema import (
    HAND_SOURCE_DETECTED,
    HAND_SOURCE_INTERPOLATED,
    HAND_SOURCE_NAMES,
    HAND_SOURCE_NONE,
    PROMPT_TEMPLATES,
    ROW_FAILED,
    ROW_OK,
    ROW_PENDING,
    EncoderSpec,
    StoreSpec,
)
from xmic.cache.synthetic import write_random_store
from xmic.cache.verify import export_store, store_info, verify_store
from xmic.cache.writer import StoreWriter, write_failed_jsonl

N, T, CHUNK = 22, 4, 5  # 5 chunks, the last one with 2 rows
DIMS = {"clip-vit-b16": 8, "dinov2-vitb14": 6}
FORMATS = ["zarr", "h5"]


def enc(name: str, dim: int, **kw) -> EncoderSpec:
    family = "dinov2" if name.startswith("dino") else "clip"
    base = EncoderSpec(name, family, f"test/{name}", dim, 224, 224, "bicubic", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    return dataclasses.replace(base, **kw)


def make_spec(dataset: str = "epic", dims: dict[str, int] = DIMS, **kw) -> StoreSpec:
    encoders = {name: enc(name, d) for name, d in dims.items()}
    return StoreSpec(dataset=dataset, num_frames=T, encoders=encoders, chunk_rows=CHUNK, **kw)


def make_segments(n: int = N, prefix: str = "P01") -> dict[str, np.ndarray]:
    return {
        "segment_id": np.array([f"{prefix}_{i:03d}_é" for i in range(n)]),  # non-ASCII on purpose
        "video_id": np.array([f"{prefix}_{i // 6:02d}" for i in range(n)]),
        "start_frame": np.arange(n) * 100,
        "stop_frame": np.arange(n) * 100 + 50,
        "fps": np.full(n, 50.0),
        "verb": np.arange(n) % 3,
        "noun": np.where(np.arange(n) % 7 == 6, -1, np.arange(n) % 4),
        "split": np.array(["train" if i % 4 else "validation" for i in range(n)]),
    }


VOCAB = {"verb": ["take", "put", "open"], "noun": ["chopping board", "knife", "tap", "cup"]}


def store_path(tmp_path, fmt: str, name: str = "cache"):
    return tmp_path / (f"{name}.h5" if fmt == "h5" else f"{name}.zarr")


def chunk_data(spec: StoreSpec, rows: slice, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n = rows.stop - rows.start
    box = rng.random((n, T, 4), dtype=np.float32)
    box[0, 1] = np.nan  # a frame without a hand box
    return {
        "frame_index": rng.integers(0, 10_000, (n, T)).astype(np.int32),
        "hand_box": box,
        "features": {
            name: {v: rng.standard_normal((n, T, e.dim)).astype(np.float32) for v in ("full", "hand")}
            for name, e in spec.encoders.items()
        },
        "row_status": np.full(n, ROW_OK, np.uint8),
    }


def write_chunks(writer: StoreWriter, chunks, seed: int = 0) -> dict[int, dict]:
    written = {}
    for c in chunks:
        data = chunk_data(writer.spec, writer.chunk_slice(c), seed + c)
        writer.write_chunk(c, **data)
        written[c] = data
    return written


def assemble(written: dict[int, dict], key, writer: StoreWriter) -> np.ndarray:
    return np.concatenate([key(written[c]) for c in range(writer.n_chunks)])


@pytest.fixture(params=FORMATS)
def fmt(request) -> str:
    return request.param


def test_detect_format(tmp_path):
    assert detect_format(tmp_path / "x.h5") == "h5"
    assert detect_format(tmp_path / "x.HDF5") == "h5"
    assert detect_format(tmp_path / "x") == "zarr"
    assert detect_format(tmp_path / "x.h5", "zarr") == "zarr"
    (tmp_path / "not.h5").write_text("hello")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        detect_format(tmp_path / "not.h5")


def test_round_trip(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    spec, segs = make_spec(), make_segments()
    w = StoreWriter.create(path, spec, segs, VOCAB, fmt=fmt)
    assert (w.n_rows, w.n_chunks, w.fmt) == (N, 5, fmt)
    written = write_chunks(w, [3, 0, 4, 2, 1])
    text = np.random.default_rng(9).standard_normal((3, 8)).astype(np.float32)
    w.write_text("clip-vit-b16", "epic", "verb", "Image of a {}", text)
    w.write_text("clip-vit-b16", "epic", "verb", "{}", text * 2)

    r = StoreReader(path)
    assert r.dataset == "epic" and r.fmt == fmt and r.n_rows == N
    assert r.spec.to_json() == spec.to_json()
    for col, values in segs.items():
        got = r.segments[col]
        np.testing.assert_array_equal(got, values)
        assert (got.dtype.kind == "U") == (values.dtype.kind == "U")
    assert r.segments["segment_id"][5] == "P01_005_é"
    assert r.vocab == VOCAB
    np.testing.assert_array_equal(r.frame_index, assemble(written, lambda d: d["frame_index"], w))
    np.testing.assert_array_equal(r.hand_box, assemble(written, lambda d: d["hand_box"], w))  # NaN == NaN here
    assert np.isnan(r.hand_box[0, 1]).all()
    for name in DIMS:
        for view in ("full", "hand"):
            feats = r.load_features(name, view)
            want = assemble(written, lambda d, n=name, v=view: d["features"][n][v], w).astype(np.float16)
            assert feats.dtype == torch.float16 and feats.shape == (N, T, DIMS[name])
            np.testing.assert_array_equal(feats.numpy(), want)
    rows = np.array([21, 0, 7, 7, 13])
    np.testing.assert_array_equal(
        r.load_features("clip-vit-b16", "hand", rows=rows).numpy(),
        r.load_features("clip-vit-b16", "hand").numpy()[rows],
    )
    np.testing.assert_array_equal(r.row_status, np.full(N, ROW_OK))
    np.testing.assert_array_equal(r.done, np.ones(5))
    assert r.complete() and w.pending_chunks() == []
    assert r.failures() == []
    emb = r.load_text("clip-vit-b16", "verb", "Image of a {}")
    assert emb.dtype == torch.float32 and torch.equal(emb, torch.from_numpy(text))
    assert torch.equal(r.load_text("clip-vit-b16", "verb"), torch.from_numpy(text * 2))
    assert r.text_templates("clip-vit-b16", "verb") == ["{}", "Image of a {}"]
    assert r.text_templates("clip-vit-b16", "noun") == []
    with pytest.raises(StoreError, match="stored templates"):
        r.load_text("clip-vit-b16", "verb", "A photo of a {}")
    with pytest.raises(StoreError, match="clip-vit-l14.*holds: clip-vit-b16, dinov2-vitb14"):
        r.load_features("clip-vit-l14", "full")
    assert verify_store(path).ok


def test_unwritten_rows_never_look_valid(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    write_chunks(w, [1])
    r = StoreReader(path)
    status = r.row_status
    assert (status[5:10] == ROW_OK).all() and (np.delete(status, range(5, 10)) == ROW_PENDING).all()
    np.testing.assert_array_equal(r.done, [0, 1, 0, 0, 0])
    feats = r.load_features("clip-vit-b16", "full").numpy()
    assert np.isnan(feats[:5]).all() and np.isfinite(feats[5:10]).all()
    assert (r.frame_index[:5] == -1).all()
    assert not r.complete()
    np.testing.assert_array_equal(r.ok_rows(), np.arange(5, 10))


def test_resume_writes_only_pending_chunks(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    write_chunks(w, [0, 2])
    # A rerun: another config, another code version and another weights folder are fine to resume with.
    spec2 = make_spec(config={"batch_size": 7}, xmic_version="9.9")
    spec2.encoders["clip-vit-b16"] = dataclasses.replace(spec2.encoders["clip-vit-b16"], source="/elsewhere")
    w2 = StoreWriter.create(path, spec2, make_segments(), VOCAB)
    assert w2.pending_chunks() == [1, 3, 4]
    assert w2.spec.xmic_version == ""  # the stored spec is kept
    write_chunks(w2, w2.pending_chunks())
    assert StoreReader(path).complete()
    assert verify_store(path).ok


def test_recreate_with_other_spec_raises(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    other = make_spec(dims={"clip-vit-l14": 8, "dinov2-vitb14": 6})
    with pytest.raises(StoreSpecError) as info:
        StoreWriter.create(path, other, make_segments(), VOCAB)
    msg = str(info.value)
    assert "clip-vit-b16" in msg and "clip-vit-l14" in msg and str(path) in msg
    with pytest.raises(StoreSpecError, match=r"num_frames: store has 4; the new spec has 8"):
        StoreWriter.create(path, dataclasses.replace(make_spec(), num_frames=8), make_segments(), VOCAB)
    segs = make_segments()
    segs["stop_frame"][13] += 1
    with pytest.raises(StoreSpecError, match=r"segments/stop_frame: row 13"):
        StoreWriter.create(path, make_spec(), segs, VOCAB)
    # overwrite=True discards the old group
    w = StoreWriter.create(path, other, make_segments(), VOCAB, overwrite=True)
    assert list(w.spec.encoders) == ["clip-vit-l14", "dinov2-vitb14"]


def test_check_spec(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    spec = make_spec(hands="epic-hoa")
    StoreWriter.create(path, spec, make_segments(), VOCAB)
    r = StoreReader(path)
    r.check_spec(
        {
            "num_frames": T,
            "encoders": {"clip-vit-b16": spec.encoders["clip-vit-b16"].identity()},
            "dataset": "epic",
            "hands": "epic-hoa",
        }
    )
    r.check_spec({"encoders": {"clip-vit-b16": dataclasses.replace(spec.encoders["clip-vit-b16"], source="/x")}})
    l14 = enc("clip-vit-l14", 768)
    with pytest.raises(StoreSpecError) as info:
        r.check_spec({"encoders": {"clip-vit-l14": l14.identity()}, "num_frames": 16, "hands": "yolo"})
    msg = str(info.value)
    assert "store was extracted with encoder clip-vit-b16" in msg and "the run asks for clip-vit-l14" in msg
    assert "num_frames: store has 4; the run asks for 16" in msg
    assert 'hands: store has "epic-hoa"; the run asks for "yolo"' in msg
    assert str(path) in msg
    changed = dataclasses.replace(spec.encoders["clip-vit-b16"], image_size=336)
    with pytest.raises(StoreSpecError, match="differs in image_size"):
        r.check_spec({"encoders": {"clip-vit-b16": changed.identity()}})
    with pytest.raises(ValueError, match="unknown fields"):
        r.check_spec({"frames": 4})


def test_verify_names_unflagged_chunk(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    write_chunks(w, [0, 1, 3, 4])
    report = verify_store(path)
    assert not report.ok
    assert any("chunk 2 (rows 10-14) not flagged done" in p for p in report.problems), report.problems
    write_chunks(w, [2])
    assert verify_store(path).ok


def test_verify_catches_nan_in_ok_row(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    write_chunks(w, [0, 1, 3, 4])
    data = chunk_data(w.spec, w.chunk_slice(2), 5)
    data["features"]["dinov2-vitb14"]["hand"][2, 3, 1] = np.nan
    w.write_chunk(2, **data)
    report = verify_store(path)
    assert not report.ok
    assert report.problems == [
        "dataset epic: epic/features/dinov2-vitb14/hand has NaN/inf features in 1 ok rows: 12 (P01_012_é) "
        "(chunks 2: missing or damaged)"
    ]
    assert report.damaged == {"epic": [2]}


def test_verify_pending_rows_and_bad_text(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    write_chunks(w, range(5))
    w.write_text("clip-vit-b16", "epic", "noun", "{}", np.zeros((4, 8), np.float32))
    with Backend(path).session("a") as s:
        s.write("epic/row_status", slice(3, 4), np.array([ROW_PENDING], np.uint8))
        s.create_array("text/clip-vit-b16/epic/verb/class", (2, 8), "float32", data=np.zeros((2, 8), np.float32))
    problems = verify_store(path).problems
    assert any("1 rows of done chunks are still pending: 3 (P01_003_é)" in p for p in problems), problems
    assert any(
        "text array text/clip-vit-b16/epic/verb/class has shape (2, 8), expected (3, 8)" in p for p in problems
    ), problems


def test_failed_rows_listed_with_reasons(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    for c in reversed(range(5)):
        data = chunk_data(w.spec, w.chunk_slice(c), c)
        failures = None
        if c in (1, 3):
            row = w.chunk_slice(c).start + 1
            data["row_status"][1] = ROW_FAILED
            failures = [{"row": row, "reason": f"cannot decode chunk {c}", "file": f"v{c}.mp4"}]
        w.write_chunk(c, **data, failures=failures)
    r = StoreReader(path)
    recs = r.failures()
    assert [x["row"] for x in recs] == [6, 16]
    assert recs[0] == {
        "row": 6,
        "segment_id": "P01_006_é",
        "video_id": "P01_01",
        "reason": "cannot decode chunk 1",
        "file": "v1.mp4",
    }
    report = verify_store(path)
    assert not report.ok
    assert [x["reason"] for x in report.failed_rows] == ["cannot decode chunk 1", "cannot decode chunk 3"]
    assert "dataset epic: row 16 failed (segment P01_016_é, video P01_02): cannot decode chunk 3" in report.problems
    out = tmp_path / "failed.jsonl"
    assert write_failed_jsonl(r, out) == 2
    assert [json.loads(line)["row"] for line in out.read_text().splitlines()] == [6, 16]
    # Rewriting chunk 1 without failures removes its record.
    w.write_chunk(1, **chunk_data(w.spec, w.chunk_slice(1), 1))
    assert [x["row"] for x in StoreReader(path).failures()] == [16]


def test_failure_records_must_match_row_status(tmp_path):
    w = StoreWriter.create(tmp_path / "c.zarr", make_spec(), make_segments(), VOCAB)
    data = chunk_data(w.spec, w.chunk_slice(0), 0)
    data["row_status"][2] = ROW_FAILED
    with pytest.raises(ValueError, match=r"failed without record \[2\]"):
        w.write_chunk(0, **data)
    with pytest.raises(ValueError, match="outside chunk rows 0..4"):
        w.write_chunk(0, **data, failures=[{"row": 7, "reason": "x"}])
    with pytest.raises(ValueError, match="at least 'row' and 'reason'"):
        w.write_chunk(0, **data, failures=[{"row": 2}])
    assert w.pending_chunks() == [0, 1, 2, 3, 4]  # nothing was written


def test_shape_and_dtype_validation(tmp_path):
    w = StoreWriter.create(tmp_path / "c.zarr", make_spec(), make_segments(), VOCAB)
    good = chunk_data(w.spec, w.chunk_slice(4), 0)  # the short last chunk: 2 rows
    bad = dict(good, features={k: dict(v) for k, v in good["features"].items()})
    bad["features"]["clip-vit-b16"]["full"] = np.zeros((2, T, 9), np.float32)
    with pytest.raises(
        ValueError,
        match=r"features\['clip-vit-b16'\]\['full'\]: expected shape \(2, 4, 8\), "
        r"given \(2, 4, 9\)",
    ):
        w.write_chunk(4, **bad)
    with pytest.raises(ValueError, match=r"frame_index: expected shape \(2, 4\), given \(5, 4\)"):
        w.write_chunk(4, **dict(good, frame_index=np.zeros((5, T), np.int32)))
    with pytest.raises(ValueError, match="hand_box: expected a floating array"):
        w.write_chunk(4, **dict(good, hand_box=np.zeros((2, T, 4), np.int64)))
    with pytest.raises(ValueError, match="features missing for encoder 'dinov2-vitb14'"):
        w.write_chunk(4, **dict(good, features={"clip-vit-b16": good["features"]["clip-vit-b16"]}))
    with pytest.raises(ValueError, match="lacks view 'hand'"):
        w.write_chunk(4, **dict(good, features={**good["features"], "clip-vit-b16": {"full": np.zeros((2, T, 8))}}))
    with pytest.raises(ValueError, match="row_status of chunk 4 must be"):
        w.write_chunk(4, **dict(good, row_status=np.zeros(2, np.uint8)))
    with pytest.raises(IndexError, match="chunk 5 out of range"):
        w.write_chunk(5, **good)
    with pytest.raises(ValueError, match=r"expected \(3, D\) for the epic verb vocabulary"):
        w.write_text("clip-vit-b16", "epic", "verb", "{}", np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="expected width 8"):
        w.write_text("clip-vit-b16", "epic", "verb", "{}", np.zeros((3, 5), np.float32))
    # torch input (bf16 on the way from a GPU) is accepted
    tdata = dict(
        good,
        features={
            n: {v: torch.from_numpy(a).bfloat16() for v, a in views.items()} for n, views in good["features"].items()
        },
    )
    w.write_chunk(4, **tdata)
    assert w.pending_chunks() == [0, 1, 2, 3]


def test_segment_and_vocab_validation(tmp_path):
    segs = make_segments()
    del segs["fps"]
    with pytest.raises(ValueError, match=r"missing segment columns \['fps'\]"):
        StoreWriter.create(tmp_path / "a.zarr", make_spec(), segs, VOCAB)
    segs = make_segments()
    segs["verb"][9] = 3
    with pytest.raises(ValueError, match=r"row 9 \(segment P01_009_é\) has verb 3 but the verb vocabulary has 3"):
        StoreWriter.create(tmp_path / "a.zarr", make_spec(), segs, VOCAB)
    segs = make_segments()
    segs["segment_id"][4] = segs["segment_id"][1]
    with pytest.raises(ValueError, match=r"appears in rows \[1, 4\]"):
        StoreWriter.create(tmp_path / "a.zarr", make_spec(), segs, VOCAB)
    segs = make_segments()
    segs["video_id"] = segs["video_id"].astype(object)
    segs["video_id"][2] = None
    with pytest.raises(ValueError, match="column 'video_id' row 2 is None"):
        StoreWriter.create(tmp_path / "a.zarr", make_spec(), segs, VOCAB)


def test_export_zarr_to_h5_reads_identically(tmp_path):
    src = tmp_path / "c.zarr"
    w = StoreWriter.create(src, make_spec(), make_segments(), VOCAB)
    write_chunks(w, [4, 1, 0, 2])  # chunk 3 left pending: the export must keep that too
    data = chunk_data(w.spec, w.chunk_slice(3), 3)
    data["row_status"][0] = ROW_FAILED
    w.write_chunk(3, **data, failures=[{"row": 15, "reason": "unreadable"}])
    w.write_text("clip-vit-b16", "epic", "noun", "Video of a {}", np.ones((4, 8), np.float32))
    out = export_store(src, tmp_path / "c.h5", block_bytes=256)  # tiny blocks: several per array
    a, b = StoreReader(src), StoreReader(out)
    assert b.fmt == "h5" and b.spec.to_json() == a.spec.to_json()
    for col in a.segments:
        np.testing.assert_array_equal(a.segments[col], b.segments[col])
    assert a.vocab == b.vocab
    for prop in ("frame_index", "hand_box", "row_status", "done"):
        np.testing.assert_array_equal(getattr(a, prop), getattr(b, prop))
    for name in DIMS:
        for view in ("full", "hand"):
            assert torch.equal(a.load_features(name, view).nan_to_num(7), b.load_features(name, view).nan_to_num(7))
    assert a.failures() == b.failures() and len(b.failures()) == 1
    assert torch.equal(
        a.load_text("clip-vit-b16", "noun", "Video of a {}"), b.load_text("clip-vit-b16", "noun", "Video of a {}")
    )
    assert b.text_templates("clip-vit-b16", "noun") == ["Video of a {}"]
    with pytest.raises(StoreError, match="exists"):
        export_store(src, out)


def test_two_writers_on_one_zarr_store(tmp_path):
    path = tmp_path / "shared.zarr"
    spec = make_spec(dims={"clip-vit-b16": 8})
    segs = make_segments(n=53)  # 11 chunks
    first = StoreWriter.create(path, spec, segs, VOCAB)
    second = StoreWriter.open(path, "epic")  # as another process (rank) would
    assert second.pending_chunks() == list(range(11))

    def run(writer: StoreWriter, rank: int) -> dict[int, dict]:
        mine = [c for c in writer.pending_chunks() if c % 2 == rank]
        out = {}
        for c in mine:
            data = chunk_data(writer.spec, writer.chunk_slice(c), c)
            if c in (3, 4):
                data["row_status"][0] = ROW_FAILED
                writer.write_chunk(c, **data, failures=[{"row": writer.chunk_slice(c).start, "reason": f"r{c}"}])
            else:
                writer.write_chunk(c, **data)
            out[c] = data
        return out

    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(run, [first, second], [0, 1]))
    written = parts[0] | parts[1]
    r = StoreReader(path)
    assert r.complete()
    want = np.concatenate([written[c]["features"]["clip-vit-b16"]["full"] for c in range(11)]).astype(np.float16)
    np.testing.assert_array_equal(r.load_features("clip-vit-b16", "full").numpy(), want)
    assert [(x["row"], x["reason"]) for x in r.failures()] == [(15, "r3"), (20, "r4")]
    report = verify_store(path)
    assert [p for p in report.problems if "failed" not in p] == []


def test_several_datasets_in_one_store(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w1 = StoreWriter.create(path, make_spec("epic"), make_segments(), VOCAB)
    w2 = StoreWriter.create(path, make_spec("ego4d"), make_segments(12, "clip"), VOCAB)
    write_chunks(w1, range(5))
    write_chunks(w2, range(3))
    w2.write_text("clip-vit-b16", "ego4d", "noun", "{}", np.full((4, 8), 3.0, np.float32))
    assert list_datasets(path) == ["ego4d", "epic"]
    with pytest.raises(StoreError, match=r"2 dataset groups \(ego4d, epic\)"):
        StoreReader(path)
    with pytest.raises(StoreError, match="no dataset group 'egtea'"):
        StoreReader(path, "egtea")
    epic = StoreReader(path, "epic")
    assert epic.n_rows == N and StoreReader(path, "ego4d").n_rows == 12
    assert float(epic.load_text("clip-vit-b16", "noun", dataset="ego4d")[0, 0]) == 3.0
    info = store_info(path)
    assert info["format"] == fmt and set(info["datasets"]) == {"ego4d", "epic"}
    assert info["datasets"]["ego4d"]["chunks"] == {"done": 3, "total": 3}
    assert info["text"]["clip-vit-b16"]["ego4d"]["noun"] == {"classes": 4, "dim": 8, "templates": ["{}"]}
    assert verify_store(path).ok


def test_synthetic_store_is_complete_and_informative(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    verbs = np.arange(40) % 5
    write_random_store(
        path,
        n=40,
        num_frames=T,
        encoders={"clip-vit-b16": 16, "dinov2-vitb14": 12},
        verbs=verbs,
        chunk_rows=16,
        fmt=fmt,
        noise=0.5,
    )
    assert verify_store(path).ok
    r = StoreReader(path, "synth")
    np.testing.assert_array_equal(r.segments["verb"], verbs)
    assert r.spec.encoders["clip-vit-b16"].model_id == "openai/clip-vit-base-patch16"
    assert r.spec.encoders["dinov2-vitb14"].dim == 12
    assert r.text_templates("clip-vit-b16", "verb") == list(PROMPT_TEMPLATES)
    assert r.text_templates("dinov2-vitb14", "verb") == []
    video = r.load_features("clip-vit-b16", "full").float().mean(1)
    pred = (video @ r.load_text("clip-vit-b16", "verb", "Video of a {}").T).argmax(1).numpy()
    assert (pred == verbs).mean() > 0.5  # chance is 0.2
    given = {
        "clip-vit-b16": {v: np.full((40, T, 16), 0.5, np.float32) for v in ("full", "hand")},
        "dinov2-vitb14": {v: np.zeros((40, T, 12), np.float32) for v in ("full", "hand")},
    }
    write_random_store(
        path,
        n=40,
        num_frames=T,
        encoders={"clip-vit-b16": 16, "dinov2-vitb14": 12},
        features=given,
        chunk_rows=16,
        fmt=fmt,
    )
    assert (StoreReader(path).load_features("clip-vit-b16", "hand") == 0.5).all()


def test_missing_store_and_interrupted_group(tmp_path):
    with pytest.raises(StoreError, match="no feature store"):
        StoreReader(tmp_path / "absent.zarr")
    report = verify_store(tmp_path / "absent.zarr")
    assert not report.ok and "no feature store" in report.problems[0]
    path = tmp_path / "c.zarr"
    with Backend(path).session("a") as s:
        s.require_group("epic/segments")
    with pytest.raises(StoreSpecError, match="exists without a spec"):
        StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    assert "epic" not in list_datasets(path)
    assert any("has no 'xmic' spec attribute" in p for p in verify_store(path).problems)
    assert layout.failed_key("epic", 3) == "epic/failed/000003"


CHILD_WRITER = """
import sys
import numpy as np
from xmic.cache.writer import StoreWriter

path, rank = sys.argv[1], int(sys.argv[2])
w = StoreWriter.open(path, "epic")
for c in w.pending_chunks():
    if c % 2 == rank:
        n = w.chunk_slice(c).stop - w.chunk_slice(c).start
        feats = {k: {v: np.full((n, 4, e.dim), c, np.float32) for v in ("full", "hand")} for k, e in w.spec.encoders.items()}
        w.write_chunk(c, frame_index=np.zeros((n, 4), np.int32), hand_box=np.zeros((n, 4, 4), np.float32),
                      features=feats, row_status=np.ones(n, np.uint8))
"""


def test_two_processes_on_one_zarr_store(tmp_path):
    path = tmp_path / "shared.zarr"
    StoreWriter.create(path, make_spec(), make_segments(n=60), VOCAB)  # rank 0 creates, then both write
    script = tmp_path / "child.py"
    script.write_text(CHILD_WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(rank)]) for rank in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    r = StoreReader(path)
    assert r.complete() and verify_store(path).ok
    feats = r.load_features("dinov2-vitb14", "hand").numpy()
    np.testing.assert_array_equal(feats[:, 0, 0], np.arange(60) // CHUNK)


def test_reserved_names_rejected(tmp_path):
    with pytest.raises(ValueError, match="'text' cannot name a dataset"):
        StoreWriter.create(tmp_path / "c.zarr", make_spec("text"), make_segments(), VOCAB)
    with pytest.raises(ValueError, match="'a/b' cannot name"):
        StoreWriter.create(tmp_path / "c.zarr", make_spec(dims={"a/b": 4}), make_segments(), VOCAB)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_features_onto_gpu(tmp_path):
    path = write_random_store(tmp_path / "g.zarr", n=300, num_frames=T, encoders={"clip-vit-b16": 64}, chunk_rows=64)
    r = StoreReader(path)
    gpu = r.load_features("clip-vit-b16", "full", device="cuda")
    assert gpu.is_cuda and gpu.dtype == torch.float16 and gpu.shape == (300, T, 64)
    assert torch.equal(gpu.cpu(), r.load_features("clip-vit-b16", "full"))
    rows = torch.randperm(300)[:50].numpy()
    assert torch.equal(r.load_features("clip-vit-b16", "full", device="cuda", rows=rows).cpu(), gpu.cpu()[rows])


def test_temp_files_of_a_killed_write_are_noted_not_warned(tmp_path):
    import warnings

    path = write_random_store(tmp_path / "s.zarr", n=8, num_frames=2, encoders={"clip-vit-b16": 4})
    (path / f"zarr.{'0' * 32}.partial").write_bytes(b"{")  # as zarr names the temp file of zarr.json
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list_datasets(path) == ["synth"]
        report = verify_store(path)
    assert [str(w.message) for w in caught] == []
    assert report.ok and len(report.notes) == 1 and "1 temporary files" in report.notes[0]
    assert report.summary().startswith("OK\nnote: 1 temporary files of an interrupted write")


# ------------------------------------------------------------------------------- hand_source: where boxes came from


def sourced_chunk(spec: StoreSpec, rows: slice, seed: int) -> dict:
    """A chunk whose boxes are detected, interpolated (every third slot with a box) or absent (NaN)."""
    data = chunk_data(spec, rows, seed)
    n = rows.stop - rows.start
    src = np.where(np.isnan(data["hand_box"]).any(-1), HAND_SOURCE_NONE, HAND_SOURCE_DETECTED).astype(np.uint8)
    src[(np.arange(n * T).reshape(n, T) % 3 == 2) & (src == HAND_SOURCE_DETECTED)] = HAND_SOURCE_INTERPOLATED
    return {**data, "hand_source": src}


def test_hand_source_round_trip_and_info(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB, fmt=fmt)
    written = {}
    for c in (2, 0, 1):  # chunks 3 and 4 not extracted yet
        written[c] = sourced_chunk(w.spec, w.chunk_slice(c), c)
        w.write_chunk(c, **written[c])
    r = StoreReader(path)
    assert r.has_hand_source
    src = r.hand_source
    assert src.dtype == np.uint8 and src.shape == (N, T)
    want = np.concatenate([written[c]["hand_source"] for c in range(3)])
    np.testing.assert_array_equal(src[:15], want)
    assert (src[15:] == HAND_SOURCE_NONE).all()  # unwritten rows read as "no box", like their NaN boxes
    assert src[0, 1] == HAND_SOURCE_NONE and np.isnan(r.hand_box[0, 1]).all()
    np.testing.assert_array_equal(r.read_hand_source(slice(5, 10)), want[5:10])
    for c in (3, 4):
        w.write_chunk(c, **chunk_data(w.spec, w.chunk_slice(c), c))  # no hand_source: none/detected from the boxes
    src = StoreReader(path).hand_source
    assert set(np.unique(src[15:]).tolist()) == {HAND_SOURCE_NONE, HAND_SOURCE_DETECTED}
    assert verify_store(path).ok
    info = store_info(path)["datasets"]["epic"]["hand_boxes"]
    assert info["recorded"] and info["slots"] == N * T
    for code, name in HAND_SOURCE_NAMES.items():
        assert info[name] == int((src == code).sum()) and info[f"{name}_share"] == pytest.approx(info[name] / (N * T))
    assert info["interpolated"] > 0
    from click.testing import CliRunner

    from xmic.cache.cli import cache as cache_cli

    res = CliRunner().invoke(cache_cli, ["info", str(path)])
    assert res.exit_code == 0 and "hand boxes detected" in res.output and "interpolated" in res.output, res.output


def test_hand_source_is_checked_against_codes_and_boxes(tmp_path):
    w = StoreWriter.create(store_path(tmp_path, "zarr"), make_spec(), make_segments(), VOCAB)
    data = sourced_chunk(w.spec, w.chunk_slice(0), 0)
    bad = data["hand_source"].copy()
    bad[1, 1] = 7
    with pytest.raises(ValueError, match="code 7 at row 1 slot 1"):
        w.write_chunk(0, **dict(data, hand_source=bad))
    bad = data["hand_source"].copy()
    bad[0, 1] = HAND_SOURCE_DETECTED  # slot (0, 1) has no box
    with pytest.raises(ValueError, match="disagrees with hand_box at row 0 slot 1"):
        w.write_chunk(0, **dict(data, hand_source=bad))
    with pytest.raises(ValueError, match="hand_source: expected shape"):
        w.write_chunk(0, **dict(data, hand_source=data["hand_source"][:, :2]))
    assert w.pending_chunks() == [0, 1, 2, 3, 4]


def test_old_store_without_hand_source_still_reads_resumes_and_verifies(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB, fmt=fmt)
    write_chunks(w, [0, 1])
    with Backend(path).session("a") as s:  # a store made before the array existed
        s.delete("epic/hand_source")
    w = StoreWriter.create(path, make_spec(), make_segments(), VOCAB, fmt=fmt)  # resume: writes no hand_source
    for c in (2, 3, 4):
        w.write_chunk(c, **sourced_chunk(w.spec, w.chunk_slice(c), c))
    r = StoreReader(path)
    assert not r.has_hand_source and r.hand_source is None
    derived = r.read_hand_source(derive=True)
    np.testing.assert_array_equal(derived == HAND_SOURCE_NONE, np.isnan(r.hand_box).any(-1))
    assert set(np.unique(derived).tolist()) <= {HAND_SOURCE_NONE, HAND_SOURCE_DETECTED}
    report = verify_store(path)
    assert report.ok, report.summary()
    info = store_info(path)["datasets"]["epic"]["hand_boxes"]
    assert not info["recorded"] and info["interpolated"] is None and info["slots"] == N * T
    assert info["none"] == int(np.isnan(r.hand_box).any(-1).sum())
