"""The whole-chunk write path of the backends: the same bytes and checksums the storage libraries write themselves,
used by every array of ``StoreWriter.write_chunk``, with the done flag last."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import zarr
from test_store import VOCAB, chunk_data, make_segments, make_spec, store_path

from xmic.cache import backend as backend_mod
from xmic.cache.backend import Backend, fletcher32
from xmic.cache.reader import StoreReader
from xmic.cache.schema import ROW_FAILED
from xmic.cache.verify import verify_store
from xmic.cache.writer import StoreWriter

FORMATS = ["zarr", "h5"]


def fletcher32_as_hdf5_loops(data: bytes) -> int:
    """``H5_checksum_fletcher32`` (HDF5 src/H5checksum.c) line by line: big-endian words, folded every 360."""
    left, s1, s2, i = len(data) // 2, 0, 0, 0
    while left:
        t = min(left, 360)
        left -= t
        for _ in range(t):
            s1 += (data[i] << 8) | data[i + 1]
            i += 2
            s2 += s1
        s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    if len(data) % 2:
        s1 += data[i] << 8
        s2 += s1
        s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    return (s2 << 16) | s1


# sizes in bytes: empty, odd, one fold block, around the direct/columns switch (65536 words), whole and partial
# rows of 65535 words, and a tail of one byte
SIZES = [0, 1, 2, 3, 720, 721, 9999, 2 * 65535, 2 * 65536 - 1, 2 * 65536, 2 * 65536 + 1, 4 * 65535 + 7, 6 * 65535]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["random", "zeros", "ones", "half_zero", "last_byte"])
def test_fletcher32_equals_hdf5s_loop(size, kind):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    if kind == "zeros":
        data[:] = 0
    elif kind == "ones":
        data[:] = 0xFF  # every word 0xffff: sums are multiples of 65535 but not 0
    elif kind == "half_zero":
        data[: size // 2] = 0
    elif kind == "last_byte" and size:
        data[:] = 0
        data[-1] = 1
    assert fletcher32(data.tobytes()) == fletcher32_as_hdf5_loops(data.tobytes())
    assert fletcher32(data) == fletcher32(data.tobytes())


@pytest.mark.parametrize(
    ("shape", "dtype"), [((170, 48, 64), "f2"), ((7, 3), "i4"), ((5,), "u1"), ((3, 4, 4), "f4"), ((9,), "f8")]
)
def test_fletcher32_equals_what_hdf5s_filter_stores(tmp_path, shape, dtype):
    rng = np.random.default_rng(0)
    data = (rng.standard_normal(shape) * 1000).astype(dtype)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("x", data=data, chunks=shape, fletcher32=True)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        mask, raw = f["x"].id.read_direct_chunk((0,) * len(shape))
    assert mask == 0 and raw[:-4] == data.tobytes()
    assert int.from_bytes(raw[-4:], "little") == fletcher32(data)


def _spy(monkeypatch, owner, name) -> list:
    calls: list = []
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def _fast_path_calls(monkeypatch, fmt: str) -> list:
    if fmt == "zarr":
        return _spy(monkeypatch, backend_mod._ZarrChunks, "write")
    return _spy(monkeypatch, backend_mod.H5Session, "_write_chunk")


ARRAYS = {  # key: shape, dtype, chunks, fill (the kinds of arrays a dataset group has)
    "features": ((22, 4, 8), "float16", (5, 4, 8), np.nan),  # raw + checksum; the last chunk has 2 of 5 rows
    "frame_index": ((22, 4), "int32", (5, 4), -1),  # zstd + checksum in Zarr
    "done": ((5,), "uint8", (1,), 0),
}


def _chunk_values(shape: tuple[int, ...], dtype: str, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, *shape[1:])) * 100).astype(dtype)


def _stored_chunks(path, fmt: str, key: str) -> dict:
    """Every stored chunk of ``key`` as its raw bytes on disk (Zarr objects, HDF5 chunk records with filter mask)."""
    if fmt == "zarr":
        root = path / key
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "zarr.json"
        }
    with h5py.File(path, "r") as f:
        ds = f[key]
        out = {}
        for i in range(ds.id.get_num_chunks()):
            info = ds.id.get_chunk_info(i)
            out[info.chunk_offset] = ds.id.read_direct_chunk(info.chunk_offset)
        return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_chunk_writes_store_the_librarys_own_bytes(tmp_path, fmt, monkeypatch):
    """Each chunk written through the backend's whole-chunk path is byte for byte what Zarr / h5py store for the same
    write (same chunk keys, checksum, zstd frame, edge chunk padded with the fill value), and reads back checked."""
    ours, theirs = store_path(tmp_path, fmt, "ours"), store_path(tmp_path, fmt, "theirs")
    for path in (ours, theirs):
        with Backend(path, fmt).session("a") as s:
            for key, (shape, dtype, chunks, fill) in ARRAYS.items():
                s.create_array(key, shape, dtype, chunks, fill)
    calls = _fast_path_calls(monkeypatch, fmt)
    written = {}
    backend = Backend(ours, fmt)
    for key, (shape, dtype, chunks, _) in ARRAYS.items():
        for start in range(0, shape[0], chunks[0]):
            sel = slice(start, min(start + chunks[0], shape[0]))
            value = _chunk_values(shape, dtype, sel.stop - sel.start, seed=start)
            written[key, start] = value
            with backend.session("a", lazy=True) as s:
                s.write(key, sel, value)
            if fmt == "zarr":  # the library's own write of the same chunk
                zarr.open_group(str(theirs), mode="a")[key].with_config({"write_empty_chunks": True})[sel] = value
            else:
                with h5py.File(theirs, "a") as f:
                    f[key][sel] = value
    assert len(calls) == sum(-(-shape[0] // chunks[0]) for shape, _, chunks, _ in ARRAYS.values())
    for key, (shape, _, chunks, _) in ARRAYS.items():
        mine = _stored_chunks(ours, fmt, key)
        assert mine == _stored_chunks(theirs, fmt, key), key
        assert len(mine) == -(-shape[0] // chunks[0])
        with Backend(ours, fmt).session("r") as s:  # the libraries check every checksum on read
            got = s.read(key)
            assert s.info(key).checksum
        want = np.concatenate([written[key, start] for start in range(0, shape[0], chunks[0])])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_chunk_writes_every_array_whole_and_the_done_flag_last(tmp_path, fmt, monkeypatch):
    path = store_path(tmp_path, fmt)
    writer = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    order: list[tuple[str, int | None]] = []  # (array, the value of a done flag)
    original = backend_mod.ZarrSession.write if fmt == "zarr" else backend_mod.H5Session.write

    def recording(self, key, sel, value):
        name = key.split("/", 2)[2] if "/features/" in key else key.rsplit("/", 1)[-1]
        order.append((name, int(value[0]) if name == "done" else None))
        return original(self, key, sel, value)

    monkeypatch.setattr(backend_mod.ZarrSession if fmt == "zarr" else backend_mod.H5Session, "write", recording)
    calls = _fast_path_calls(monkeypatch, fmt)

    def no_generic_write(*args, **kwargs):
        raise AssertionError("a whole chunk went through the library's generic write")

    monkeypatch.setattr(zarr.Array, "__setitem__", no_generic_write)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", no_generic_write)
    data = chunk_data(writer.spec, writer.chunk_slice(4), seed=4)  # the edge chunk (2 of 5 rows)
    writer.write_chunk(4, **data)
    keys = [k for k, _ in order]
    assert keys[0] == "done" and keys[-1] == "done" and order[0][1] == 0 and order[-1][1] == 1
    assert sorted(keys[1:-1]) == sorted(
        ["frame_index", "hand_box", "hand_source", "row_status"]
        + [f"{e}/{v}" for e in writer.spec.encoders for v in ("full", "hand")]
    )
    assert len(calls) == len(order)  # every array of the chunk took the whole-chunk path
    monkeypatch.undo()
    r = StoreReader(path)
    assert r.done.tolist() == [0, 0, 0, 0, 1]
    np.testing.assert_array_equal(r.frame_index[20:], data["frame_index"])
    np.testing.assert_array_equal(r.hand_box[20:], data["hand_box"])
    full = data["features"]["clip-vit-b16"]["full"].astype(np.float16)
    np.testing.assert_array_equal(r.load_features_numpy("clip-vit-b16", "full")[20:], full)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_write_that_fails_mid_chunk_leaves_it_pending_and_a_rerun_completes_it(tmp_path, fmt, monkeypatch):
    path = store_path(tmp_path, fmt)
    writer = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    for c in range(writer.n_chunks):
        writer.write_chunk(c, **chunk_data(writer.spec, writer.chunk_slice(c), seed=c))
    assert StoreReader(path).complete()
    cls = backend_mod.ZarrSession if fmt == "zarr" else backend_mod.H5Session
    original = cls.write

    def dies_on_hand(self, key, sel, value):
        if key.endswith("dinov2-vitb14/hand"):
            raise OSError("disk full")
        return original(self, key, sel, value)

    monkeypatch.setattr(cls, "write", dies_on_hand)
    new = chunk_data(writer.spec, writer.chunk_slice(2), seed=99)  # rewriting a finished chunk un-flags it first
    with pytest.raises(OSError, match="disk full"):
        writer.write_chunk(2, **new)
    monkeypatch.undo()
    again = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    assert again.pending_chunks() == [2]
    assert not verify_store(path).ok
    if fmt == "zarr":
        assert not list(path.rglob("*.partial"))  # a failed write removes its temp file
    again.write_chunk(2, **new)
    r = StoreReader(path)
    assert r.complete() and verify_store(path).ok
    want = new["features"]["dinov2-vitb14"]["hand"].astype(np.float16)
    np.testing.assert_array_equal(r.load_features_numpy("dinov2-vitb14", "hand")[10:15], want)


def test_zarr_arrays_the_fast_path_does_not_know_go_through_zarr(tmp_path, monkeypatch):
    """No checksum codec, or another compressor: zarr writes the chunk. A '.' chunk key separator is followed."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    path = tmp_path / "s.zarr"
    root = zarr.open_group(str(path), mode="w")
    root.create_array("plain", shape=(6, 2), chunks=(3, 2), dtype="int32", compressors=None)
    root.create_array("blosc", shape=(6, 2), chunks=(3, 2), dtype="int32", compressors=[BloscCodec(), Crc32cCodec()])
    root.create_array(
        "dots",
        shape=(6, 2),
        chunks=(3, 2),
        dtype="int32",
        compressors=[Crc32cCodec()],
        chunk_key_encoding={"name": "default", "separator": "."},
    )
    calls = _fast_path_calls(monkeypatch, "zarr")
    value = np.arange(6, dtype=np.int32).reshape(3, 2)
    with Backend(path).session("a", lazy=True) as s:
        for key in ("plain", "blosc", "dots"):
            s.write(key, slice(3, 6), value)
    assert len(calls) == 1 and (path / "dots" / "c.1.0").is_file()
    with Backend(path).session("r") as s:
        for key in ("plain", "blosc", "dots"):
            np.testing.assert_array_equal(s.read(key)[3:], value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_array_made_again_under_the_same_key_is_written_as_it_now_is(tmp_path, fmt):
    """What the whole-chunk path knows of an array is dropped when the array is made again, here or elsewhere."""
    path = store_path(tmp_path, fmt)
    backend = Backend(path, fmt)
    with backend.session("a") as s:
        s.create_array("g/x", (4, 3), "int32", (2, 3), -1)
        s.write("g/x", slice(0, 2), np.ones((2, 3), np.int32))
        s.create_array("g/x", (6, 2), "float32", (3, 2), np.nan)  # same session, other shape and dtype
        s.write("g/x", slice(3, 6), np.full((3, 2), 0.5, np.float32))
    with Backend(path, fmt).session("a") as other:  # as another process would
        other.create_array("g/x", (2, 5), "uint8", (1, 5), 0)
    with backend.session("a", lazy=True) as s:
        s.write("g/x", slice(1, 2), np.full((1, 5), 9, np.uint8))
    with backend.session("r") as s:
        np.testing.assert_array_equal(s.read("g/x"), [[0] * 5, [9] * 5])
        assert s.info("g/x").dtype == "uint8"


def _write_store(path, seed: int = 0) -> None:
    writer = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    for c in range(writer.n_chunks):
        data = chunk_data(writer.spec, writer.chunk_slice(c), seed + c)
        failures = None
        if c == 1:
            data["row_status"][0] = ROW_FAILED
            failures = [{"row": writer.chunk_slice(c).start, "reason": "decode error"}]
        writer.write_chunk(c, **data, failures=failures)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_store_is_byte_identical_with_and_without_the_whole_chunk_path(tmp_path, fmt, monkeypatch):
    fast = store_path(tmp_path, fmt, "fast")
    _write_store(fast)
    monkeypatch.setattr(backend_mod, "_whole_chunk", lambda *a: None)  # every write through zarr / h5py
    slow = store_path(tmp_path, fmt, "library")
    _write_store(slow)
    if fmt == "zarr":
        files = {p.relative_to(fast): p.read_bytes() for p in sorted(fast.rglob("*")) if p.is_file()}
        assert files == {p.relative_to(slow): p.read_bytes() for p in sorted(slow.rglob("*")) if p.is_file()}
    else:
        assert fast.read_bytes() == slow.read_bytes()
