"""A store damaged on purpose (chunk deleted, bits flipped, chunk truncated) is caught, named and refused."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from xmic.adapt.config import TrainConfig
from xmic.adapt.trainer import NonFiniteLossError, train
from xmic.cache.backend import Backend
from xmic.cache.errors import StoreError, StoreSpecError
from xmic.cache.reader import StoreReader
from xmic.cache.schema import HAND_SOURCE_DETECTED, HAND_SOURCE_NONE, HAND_SOURCE_UNWRITTEN
from xmic.cache.synthetic import write_random_store
from xmic.cache.verify import verify_store
from xmic.cli import main

DS = "alpha"


def small_store(path: Path) -> Path:
    """48 rows in 6 chunks of 8 (chunks 0-3 train, 4-5 val), every array with checksums."""
    split = np.where(np.arange(48) < 32, "train", "val")
    return write_random_store(
        path, dataset=DS, n=48, num_frames=16, encoders={"clip-vit-b16": 32}, chunk_rows=8, seed=1, split=split
    )


def chunk_file(store: Path, key: str, chunk: int) -> Path:
    """The object of storage chunk ``chunk`` (first axis) of a Zarr v3 array."""
    where = store / key / "c" / str(chunk)
    if where.is_file():
        return where
    files = sorted(where.rglob("*"))
    files = [f for f in files if f.is_file()]
    assert files, f"no chunk object for {key} chunk {chunk}"
    return files[0]


def cfg() -> TrainConfig:
    return TrainConfig(dataset=DS, epochs=1, batch_size=16)


def test_every_array_has_a_checksum(tmp_path):
    for name in ("s.zarr", "s.h5"):
        path = small_store(tmp_path / name)
        with Backend(path).session("r") as s:
            infos = {k: s.info(k) for k in s.walk_arrays("")}
        # HDF5 cannot filter variable-length strings; everything else carries crc32c / fletcher32
        unprotected = [k for k, i in infos.items() if not i.checksum and not (name.endswith("h5") and i.dtype == "str")]
        assert unprotected == [], name
        assert not any("checksum" in n for n in verify_store(path).notes)


def test_deleted_feature_chunk_is_refused_by_train_and_evaluate(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    train(cfg(), path, tmp_path / "run", progress=False)
    for chunk in (2, 5):  # a partial copy lost one train and one val chunk
        chunk_file(path, f"{DS}/features/clip-vit-b16/full", chunk).unlink()
    with pytest.raises(StoreError) as err:
        train(cfg(), path, tmp_path / "run2", progress=False)
    msg = str(err.value)
    assert f"array {DS}/features/clip-vit-b16/full chunk 2 (and 1 more) is missing from the store" in msg
    assert "re-run the same `xmic extract` command" in msg
    assert not (tmp_path / "run2" / "model.safetensors").exists()
    res = CliRunner().invoke(main, ["evaluate", "--run", str(tmp_path / "run"), "--cache", str(path)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "features/clip-vit-b16/full chunk 2 (and 1 more) is missing" in res.output
    report = verify_store(path)
    assert not report.ok and report.damaged == {DS: [2, 5]}


def test_deleted_row_status_chunk_is_not_read_as_pending(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    chunk_file(path, f"{DS}/row_status", 3).unlink()
    with pytest.raises(StoreError, match=rf"array {DS}/row_status chunk 3 is missing from the store"):
        train(cfg(), path, tmp_path / "run", progress=False)
    report = verify_store(path, quick=True)
    assert any("still pending" in p for p in report.problems) and report.damaged == {DS: [3]}


def test_deleted_hand_box_chunk_is_not_read_as_no_box(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    reader = StoreReader(path, DS)
    assert np.isfinite(reader.hand_box).all()
    chunk_file(path, f"{DS}/hand_box", 1).unlink()
    with pytest.raises(StoreError, match=r"hand_box of 8 rows of done chunk\(s\) 1 reads as never written"):
        _ = reader.hand_box
    report = verify_store(path)
    assert any("hand_box has boxes that read as never written" in p for p in report.problems)
    assert report.damaged == {DS: [1]}


def test_deleted_hand_source_chunk_is_not_read_as_a_valid_code(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    reader = StoreReader(path, DS)
    assert (reader.hand_source == HAND_SOURCE_DETECTED).all()  # every synthetic slot has a box
    chunk_file(path, f"{DS}/hand_source", 2).unlink()
    with Backend(path).session("r") as s:
        assert (s.read(f"{DS}/hand_source", slice(16, 24)) == HAND_SOURCE_UNWRITTEN).all()
    with pytest.raises(StoreError, match=r"hand_source of 8 rows of done chunk\(s\) 2 holds no valid code"):
        _ = reader.hand_source
    report = verify_store(path)
    assert any(f"{DS}/hand_source has box sources that are no valid code" in p for p in report.problems)
    assert report.damaged == {DS: [2]}
    info = CliRunner().invoke(main, ["cache", "info", str(path)])
    assert info.exit_code == 0 and "128 slots hold no valid source code" in info.output, info.output
    res = CliRunner().invoke(main, ["cache", "verify", "--reset-damaged", str(path)])
    assert res.exit_code == 1 and "marked 1 damaged chunks not done" in res.output
    assert StoreReader(path, DS).done.tolist() == [1, 1, 0, 1, 1, 1]
    assert (StoreReader(path, DS).hand_source[16:24] == HAND_SOURCE_NONE).all()  # not done: no box yet


def test_hand_source_that_disagrees_with_its_boxes_is_named(tmp_path):
    path = small_store(tmp_path / "s.h5")
    with Backend(path).session("a") as s:  # a slot with a box recorded as "no box"
        s.write(f"{DS}/hand_source", slice(40, 41), np.zeros((1, 16), np.uint8))
    report = verify_store(path)
    assert any("hand_source has box sources" in p and "40 (" in p for p in report.problems), report.problems
    assert report.damaged == {DS: [5]}


def test_h5_fletcher32_catches_flipped_bits_in_hand_source(tmp_path):
    path = small_store(tmp_path / "s.h5")
    key = f"{DS}/hand_source"
    with h5py.File(path, "r") as f:
        offset = f[key].id.get_chunk_info(3).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 5)
        byte = fh.read(1)
        fh.seek(offset + 5)
        fh.write(bytes([byte[0] ^ 0x02]))
    report = verify_store(path)
    assert any(p.startswith(f"array {key} chunk 3: unreadable or checksum mismatch") for p in report.problems)
    assert report.damaged == {DS: [3]}


def test_unwritten_hand_boxes_still_read_as_nan(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    with Backend(path).session("a") as s:
        s.write(f"{DS}/done", slice(4, 5), np.zeros(1, np.uint8))
        s.write(f"{DS}/hand_box", slice(32, 40), np.full((8, 16, 4), -1.0, np.float32))
    box = StoreReader(path, DS).hand_box
    assert np.isnan(box[32:40]).all() and np.isfinite(box[:32]).all()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_flipped_or_truncated_chunk_is_named_by_verify(tmp_path, damage):
    path = small_store(tmp_path / "s.zarr")
    target = chunk_file(path, f"{DS}/features/clip-vit-b16/hand", 4)
    raw = bytearray(target.read_bytes())
    if damage == "flip":
        raw[100] ^= 0x40  # one bit of one fp16 value
        target.write_bytes(bytes(raw))
    else:
        target.write_bytes(bytes(raw[: len(raw) // 2]))
    res = CliRunner().invoke(main, ["cache", "verify", str(path)])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert f"array {DS}/features/clip-vit-b16/hand chunk 4: unreadable or checksum mismatch" in res.output
    assert "--reset-damaged" in res.output
    quick = CliRunner().invoke(main, ["cache", "verify", "--quick", str(path)])
    assert quick.exit_code == 0 and "were not read" in quick.output
    # the documented repair: un-flag the chunk, then a resume (here: the writer API) redoes only it
    res = CliRunner().invoke(main, ["cache", "verify", "--reset-damaged", str(path)])
    assert "marked 1 damaged chunks not done" in res.output
    assert StoreReader(path, DS).done.tolist() == [1, 1, 1, 1, 0, 1]


def test_corrupt_compressed_chunk_is_named(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    target = chunk_file(path, f"{DS}/frame_index", 0)
    target.write_bytes(b"\x00" * 4 + target.read_bytes()[4:])  # zstd magic gone
    report = verify_store(path)
    assert any(p.startswith(f"array {DS}/frame_index chunk 0: unreadable") for p in report.problems)


def test_h5_fletcher32_catches_flipped_bits(tmp_path):
    path = small_store(tmp_path / "s.h5")
    key = f"{DS}/features/clip-vit-b16/full"
    with h5py.File(path, "r") as f:
        ds = f[key]
        offset = ds.id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 10)
        byte = fh.read(1)
        fh.seek(offset + 10)
        fh.write(bytes([byte[0] ^ 0x01]))
    report = verify_store(path)
    assert any(p.startswith(f"array {key} chunk 1: unreadable or checksum mismatch") for p in report.problems)
    assert report.damaged == {DS: [1]}


def test_store_without_checksums_reads_and_verify_says_so(tmp_path):
    """A store written before checksums existed: still readable; verify notes what it cannot check."""
    import zarr

    path = small_store(tmp_path / "s.zarr")
    old = zarr.open_group(str(tmp_path / "old.zarr"), mode="w")
    src = zarr.open_group(str(path), mode="r")
    key = f"{DS}/features/clip-vit-b16/full"
    arr = src[key]
    dst = old.create_array("x", shape=arr.shape, chunks=arr.chunks, dtype=arr.dtype, compressors=None)
    dst[...] = arr[...]
    with Backend(tmp_path / "old.zarr").session("r") as s:
        assert not s.info("x").checksum
    report = verify_store(tmp_path / "old.zarr")
    assert any("carry no checksum" in n for n in report.notes)


def test_non_finite_loss_stops_training(tmp_path, monkeypatch):
    path = small_store(tmp_path / "s.zarr")
    real = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss became NaN/inf in \d+ of \d+ steps of epoch 1"):
        train(cfg(), path, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_nan_text_embeddings_are_refused(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    key = f"text/clip-vit-b16/{DS}/{cfg().target}/class"
    with Backend(path).session("a") as s:
        bad = s.read(key)
        bad[0, 0] = np.nan
        s.write(key, ..., bad)
    with pytest.raises(StoreError, match=f"text array {key} has NaN/inf"):
        train(cfg(), path, tmp_path / "run", progress=False)


def test_verify_json_free_of_tracebacks_on_missing_metadata(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    (path / DS / "hand_box" / "zarr.json").write_text(json.dumps({"broken": True}))
    res = CliRunner().invoke(main, ["cache", "verify", str(path)])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output


def test_bit_flipped_run_weights_are_refused_naming_the_file(tmp_path):
    path = small_store(tmp_path / "s.zarr")
    run = tmp_path / "run"
    train(cfg(), path, run, progress=False)
    meta = json.loads((run / "run.json").read_text())
    ckpt = run / "model.safetensors"
    assert len(meta["checkpoint_sha256"]) == 64
    raw = bytearray(ckpt.read_bytes())
    raw[-3] ^= 0x10  # one bit of one weight: still parses, would evaluate at chance
    ckpt.write_bytes(bytes(raw))
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--cache", str(path)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{ckpt} is damaged or was replaced" in res.output.replace("\n", "")


def test_evaluate_refuses_a_store_from_other_weights(tmp_path):
    import dataclasses

    from xmic.cache.layout import SPEC_ATTR

    path = small_store(tmp_path / "s.zarr")
    run = tmp_path / "run"
    train(cfg(), path, run, progress=False)
    reader = StoreReader(path, DS)
    spec = reader.spec
    encs = {n: dataclasses.replace(e, weights_sha256="a" * 64) for n, e in spec.encoders.items()}
    with Backend(path).session("a") as s:
        s.set_attrs(DS, {SPEC_ATTR: dataclasses.replace(spec, encoders=encs).to_json()})
    train(cfg(), path, tmp_path / "run_a", progress=False)  # a run made before hashes: any store is fine
    other = dataclasses.replace(
        spec, encoders={n: dataclasses.replace(e, weights_sha256="b" * 64) for n, e in encs.items()}
    )
    with Backend(path).session("a") as s:
        s.set_attrs(DS, {SPEC_ATTR: other.to_json()})
    res = CliRunner().invoke(main, ["evaluate", "--run", str(tmp_path / "run_a"), "--cache", str(path)])
    assert res.exit_code == 1 and "aaaaaaaa" in res.output and "bbbbbbbb" in res.output, res.output
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--cache", str(path)])
    assert res.exit_code == 0, res.output


def test_prompt_learning_refuses_text_weights_other_than_the_stores(tmp_path, monkeypatch):
    import dataclasses

    import xmic.cache.synthetic as synthetic
    from xmic.cache.hashing import weights_sha256
    from xmic.demo.tiny_models import make_tiny_clip

    ours = make_tiny_clip(tmp_path / "ours", dim=32)
    other = make_tiny_clip(tmp_path / "other", dim=32, seed=7)
    real = synthetic.synthetic_encoder_spec
    monkeypatch.setattr(
        synthetic,
        "synthetic_encoder_spec",
        lambda n, d: dataclasses.replace(real(n, d), source=str(ours), weights_sha256=weights_sha256(ours)),
    )
    path = small_store(tmp_path / "s.zarr")
    coop = dataclasses.replace(cfg(), method="coop", text_model_dir=str(other))
    with pytest.raises(StoreSpecError, match=r"the CLIP weights in .*other.* are not those the store was extracted"):
        train(coop, path, tmp_path / "run", progress=False)
    train(dataclasses.replace(coop, text_model_dir=None), path, tmp_path / "run", progress=False)


def test_a_zarr_chunk_equal_to_the_fill_value_is_written_after_reopening(tmp_path):
    """Zarr keeps write_empty_chunks only while an array is open; every write of ours must still store the chunk,
    or a legitimately fill-valued chunk would look lost (and verify would call it damage)."""
    from xmic.cache.backend import Backend

    backend = Backend(tmp_path / "s.zarr", "zarr")
    with backend.session("a") as s:
        s.create_array("g/x", (4, 3), "int32", chunks=(1, 3), fill_value=7)
    with backend.session("a") as s:  # a new session opens the array again, as every write_chunk does
        s.write("g/x", slice(2, 3), np.full((1, 3), 7, np.int32))
        s.write("g/x", slice(0, 1), np.zeros((1, 3), np.int32))
    chunks = sorted(p.name for p in (tmp_path / "s.zarr" / "g" / "x" / "c").iterdir())
    assert chunks == ["0", "2"]
