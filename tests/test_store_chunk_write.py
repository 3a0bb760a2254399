"""The whole-chunk write path of the backends: the same bytes and checksums the storage libraries write themselves,
used by every array of ``StoreWriter.write_chunk``, with the done flag last."""

from __future__ import annotations

import threading
import time

import google_crc32c
import h5py
import numpy as np
import pytest
import zarr
from test_store import DIMS, VOCAB, T, chunk_data, make_segments, make_spec, store_path

from xmic.cache import backend as backend_mod
from xmic.cache.backend import Backend, fletcher32
from xmic.cache.reader import StoreReader
from xmic.cache.schema import ROW_FAILED
from xmic.cache.verify import verify_store
from xmic.cache.writer import StoreWriter

FORMATS = ["zarr", "h5"]


@pytest.fixture(autouse=True)
def _zarr_checksums_on_threads(monkeypatch):
    """Every raw Zarr chunk of these (small) tests has its checksum computed on a write thread, as large ones do."""
    monkeypatch.setattr(backend_mod, "ZARR_CRC_THREAD_BYTES", 0)


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
        return _spy(monkeypatch, backend_mod._ZarrChunks, "put")
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


def _array_name(key: str) -> str:
    return key.split("/", 2)[2] if "/features/" in key else key.rsplit("/", 1)[-1]


def _row_arrays(s, rows: slice) -> dict[str, np.ndarray]:
    """Every array of group ``epic`` that a chunk writes, at ``rows``, as session ``s`` reads it now."""
    keys = [k for k in s.walk_arrays("epic") if "/segments/" not in k and "/vocab/" not in k]
    return {_array_name(k): s.read(k, rows) for k in keys if _array_name(k) != "done"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_chunk_writes_every_array_whole_and_the_done_flag_last(tmp_path, fmt, monkeypatch):
    path = store_path(tmp_path, fmt)
    writer = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    rows = writer.chunk_slice(4)  # the edge chunk (2 of 5 rows)
    data = chunk_data(writer.spec, rows, seed=4)
    order: list[tuple[str, int | None]] = []  # (array, the value of a done flag)
    seen_at_done: dict[str, np.ndarray] = {}
    cls = backend_mod.ZarrSession if fmt == "zarr" else backend_mod.H5Session
    original, original_many = cls.write, cls.write_many

    def recording(self, key, sel, value):
        name = _array_name(key)
        order.append((name, int(value[0]) if name == "done" else None))
        if name == "done" and value[0] == 1:  # what a reader would find the moment the chunk is flagged done
            seen_at_done.update(_row_arrays(self, rows))
        return original(self, key, sel, value)

    def recording_many(self, writes):
        order.extend((_array_name(key), None) for key, _, _ in writes)
        return original_many(self, writes)

    monkeypatch.setattr(cls, "write", recording)
    if "write_many" in cls.__dict__:  # else Session.write_many: one write after another
        monkeypatch.setattr(cls, "write_many", recording_many)
    # the checksums computed on the write threads take a while: the done flag must still wait for all of them
    name = "_crc32c" if fmt == "zarr" else "fletcher32"
    threaded = getattr(backend_mod, name)
    monkeypatch.setattr(
        backend_mod, name, lambda data: (time.sleep(0.02 if _on_write_threads() else 0), threaded(data))[1]
    )
    calls = _fast_path_calls(monkeypatch, fmt)

    def no_generic_write(*args, **kwargs):
        raise AssertionError("a whole chunk went through the library's generic write")

    monkeypatch.setattr(zarr.Array, "__setitem__", no_generic_write)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", no_generic_write)
    writer.write_chunk(4, **data)
    keys = [k for k, _ in order]
    assert keys[0] == "done" and keys[-1] == "done" and order[0][1] == 0 and order[-1][1] == 1
    assert sorted(keys[1:-1]) == sorted(
        ["frame_index", "hand_box", "hand_source", "row_status"]
        + [f"{e}/{v}" for e in writer.spec.encoders for v in ("full", "hand")]
    )
    assert len(calls) == len(order)  # every array of the chunk took the whole-chunk path
    monkeypatch.undo()
    # every array was complete on disk before the done flag was written, though several were written at once
    with Backend(path, fmt).session("r") as s:
        final = _row_arrays(s, rows)
    assert len(final) == 8
    assert sorted(seen_at_done) == sorted(final)
    for name, arr in final.items():
        np.testing.assert_array_equal(seen_at_done[name], arr, err_msg=name)
    r = StoreReader(path)
    assert r.done.tolist() == [0, 0, 0, 0, 1]
    np.testing.assert_array_equal(r.frame_index[20:], data["frame_index"])
    np.testing.assert_array_equal(r.hand_box[20:], data["hand_box"])
    for enc in writer.spec.encoders:
        for view in ("full", "hand"):
            want = data["features"][enc][view].astype(np.float16)
            np.testing.assert_array_equal(r.load_features_numpy(enc, view)[20:], want)


def _write_all(path, seed: int = 0) -> StoreWriter:
    writer = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    for c in range(writer.n_chunks):
        writer.write_chunk(c, **chunk_data(writer.spec, writer.chunk_slice(c), seed=seed + c))
    assert StoreReader(path).complete()
    return writer


def _fails_on_dinov2_hand(monkeypatch, fmt: str, exc: BaseException) -> None:
    """The whole-chunk write of ``features/dinov2-vitb14/hand`` raises ``exc``."""
    if fmt == "zarr":
        original = backend_mod._ZarrChunks.put

        def dies(self, array_dir, index, data, pool=None):
            if array_dir.endswith("dinov2-vitb14/hand"):
                raise exc
            return original(self, array_dir, index, data, pool)

        monkeypatch.setattr(backend_mod._ZarrChunks, "put", dies)
    else:
        original = backend_mod.H5Session._write_chunk

        def dies(self, dsid, index, arr, checksum=None):
            if h5py.h5i.get_name(dsid).endswith(b"dinov2-vitb14/hand"):
                raise exc
            return original(self, dsid, index, arr, checksum)

        monkeypatch.setattr(backend_mod.H5Session, "_write_chunk", dies)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_write_that_fails_mid_chunk_leaves_it_pending_and_a_rerun_completes_it(tmp_path, fmt, monkeypatch):
    path = store_path(tmp_path, fmt)
    writer = _write_all(path)
    _fails_on_dinov2_hand(monkeypatch, fmt, OSError("disk full"))
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


def _on_write_threads() -> bool:
    return threading.current_thread().name.startswith("xmic-store-write")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_error_on_a_write_thread_reaches_the_caller_and_the_chunk_stays_pending(tmp_path, fmt, monkeypatch):
    """A checksum that fails on a write thread (Zarr: while the chunk's bytes go to its temp file) propagates with its
    message, the chunk is not flagged done, no temp file is left, and a resume writes the chunk again."""
    path = store_path(tmp_path, fmt)
    writer = _write_all(path)
    failed_on: list[str] = []
    owner, name = (google_crc32c, "value") if fmt == "zarr" else (backend_mod, "fletcher32")
    real = getattr(owner, name)

    def checksum(*args):
        data = args[-1]
        if _on_write_threads() and np.asarray(data).nbytes == 5 * T * DIMS["dinov2-vitb14"] * 2:  # a dinov2 chunk
            failed_on.append(threading.current_thread().name)
            raise MemoryError("checksum buffer (injected)")
        return real(*args)

    monkeypatch.setattr(owner, name, checksum)
    new = chunk_data(writer.spec, writer.chunk_slice(1), seed=7)
    with pytest.raises(MemoryError, match="checksum buffer"):
        writer.write_chunk(1, **new)
    monkeypatch.undo()
    assert failed_on and all(name.startswith("xmic-store-write") for name in failed_on)
    again = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    assert again.pending_chunks() == [1]
    if fmt == "zarr":
        assert not list(path.rglob("*.partial"))
    again.write_chunk(1, **new)
    r = StoreReader(path)
    assert r.complete() and verify_store(path).ok
    np.testing.assert_array_equal(r.frame_index[5:10], new["frame_index"])
    want = new["features"]["dinov2-vitb14"]["hand"].astype(np.float16)
    np.testing.assert_array_equal(r.load_features_numpy("dinov2-vitb14", "hand")[5:10], want)


def test_hdf5_write_many_raises_only_when_no_checksum_of_it_still_runs(tmp_path, monkeypatch):
    """A write that fails on the calling thread (here: to an array that does not exist) is raised once the checksums
    the write threads had begun for the chunks after it have ended, and those not begun are dropped."""
    fmt = "h5"
    path = store_path(tmp_path, fmt)
    with Backend(path, fmt).session("a") as s:
        s.create_array("a", (8, 3), "float32", (2, 3), np.nan)
    began, ended = threading.Event(), []
    name = "fletcher32"
    real = getattr(backend_mod, name)

    def slow_checksum(data):
        began.set()
        time.sleep(0.3)
        ended.append(1)
        return real(data)

    cls = backend_mod.H5Session
    library_write = cls._library_write

    def fails_once_a_checksum_runs(self, key, sel, value):
        if key == "missing":
            assert began.wait(10)
            raise KeyError("missing")
        return library_write(self, key, sel, value)

    monkeypatch.setattr(backend_mod, name, slow_checksum)
    monkeypatch.setattr(cls, "_library_write", fails_once_a_checksum_runs)
    value = np.ones((2, 3), np.float32)
    writes = [("missing", slice(0, 2), value)] + [("a", slice(i, i + 2), value) for i in range(0, 8, 2)]
    with Backend(path, fmt).session("a", lazy=True) as s, pytest.raises(KeyError, match="missing"):
        s.write_many(writes)
    n_ended = len(ended)
    assert 1 <= n_ended <= backend_mod.WRITE_THREADS < 4  # those begun have ended, the others were dropped
    time.sleep(0.4)
    assert len(ended) == n_ended
    monkeypatch.undo()
    with Backend(path, fmt).session("r") as s:  # nothing written after the failed write
        assert np.isnan(s.read("a")).all()


class _FullDisk:
    """A file whose writes fail as on a full disk (the file itself is made, as a real one would be)."""

    def __init__(self, path, mode):
        self._fh = open(path, mode)  # noqa: SIM115 (closed by __exit__)

    def write(self, data):
        raise OSError(28, "No space left on device (injected)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def test_a_zarr_write_that_fails_while_its_checksum_runs_raises_once_the_checksum_has_ended(tmp_path, monkeypatch):
    path = tmp_path / "s.zarr"
    with Backend(path).session("a") as s:
        s.create_array("f", (4, 3, 2), "float16", (2, 3, 2), np.nan)  # raw + crc32c: its checksum on a thread
    ended, real = [], backend_mod._crc32c

    def slow_crc(data):
        assert _on_write_threads()
        time.sleep(0.3)
        ended.append(1)
        return real(data)

    monkeypatch.setattr(backend_mod, "_crc32c", slow_crc)
    monkeypatch.setattr(backend_mod, "open", _FullDisk, raising=False)
    with Backend(path).session("a", lazy=True) as s, pytest.raises(OSError, match="No space left"):
        s.write("f", slice(0, 2), np.ones((2, 3, 2), np.float16))
    assert ended == [1]  # the checksum thread no longer reads the caller's array
    monkeypatch.undo()
    assert [p.name for p in path.rglob("*") if p.is_file()] == ["zarr.json"] * 2  # the group's and the array's


WRITE_MANY = {  # key: shape, dtype, chunks, fill: sizes that differ, so that the scratch buffers change size in turn
    "big": ((9, 64, 32), "float16", (3, 64, 32), np.nan),
    "small": ((9, 4), "int32", (3, 4), -1),
    "mid": ((9, 16, 4), "float32", (3, 16, 4), -1.0),
    "flags": ((9,), "uint8", (3,), 0),
    "names": ((9,), "str", (3,), None),  # variable-length strings: always the library's write
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_many_stores_the_same_bytes_as_one_write_after_another(tmp_path, fmt):
    """Many whole chunks at once (slots of the scratch buffers reused, Zarr objects written on several threads), with
    library writes among them (strings, a part of a chunk): byte for byte what writing them one by one stores."""
    paths = {how: store_path(tmp_path, fmt, how) for how in ("many", "one_by_one")}
    for path in paths.values():
        with Backend(path, fmt).session("a") as s:
            for key, (shape, dtype, chunks, fill) in WRITE_MANY.items():
                s.create_array(key, shape, dtype, chunks, fill)
    rng = np.random.default_rng(5)
    writes = []
    for start in (6, 0, 3):  # the edge chunk too, whole
        for key, (shape, dtype, chunks, _) in WRITE_MANY.items():
            sel = slice(start, start + chunks[0])
            if dtype == "str":
                value = np.array([f"row {i} ü" for i in range(sel.start, sel.stop)])
            else:
                value = (rng.standard_normal((chunks[0], *shape[1:])) * 50).astype(dtype)
            writes.append((key, sel, value))
    writes.append(("small", slice(1, 2), np.full((1, 4), 7, np.int32)))  # part of a chunk: through the library
    with Backend(paths["many"], fmt).session("a", lazy=True) as s:
        s.write_many(writes)
    with Backend(paths["one_by_one"], fmt).session("a", lazy=True) as s:
        for key, sel, value in writes:
            s.write(key, sel, value)
    for key in WRITE_MANY:
        if key != "names":
            assert _stored_chunks(paths["many"], fmt, key) == _stored_chunks(paths["one_by_one"], fmt, key), key
        with Backend(paths["many"], fmt).session("r") as s:
            got = s.read(key)
        with Backend(paths["one_by_one"], fmt).session("r") as s:
            np.testing.assert_array_equal(got, s.read(key))
    if fmt == "h5":  # the same calls in the same order: the same file
        assert paths["many"].read_bytes() == paths["one_by_one"].read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_writer_makes_its_write_threads_once(tmp_path, fmt):
    path = store_path(tmp_path, fmt)
    writer = StoreWriter.create(path, make_spec(), make_segments(), VOCAB)
    pools = set()
    for c in range(writer.n_chunks):
        writer.write_chunk(c, **chunk_data(writer.spec, writer.chunk_slice(c), seed=c))
        pools.add(id(writer._backend._pool))
    assert len(pools) == 1 and None not in pools
    assert len(writer._backend._pool._threads) <= backend_mod.WRITE_THREADS


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


@pytest.mark.parametrize("threads", [True, False])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_store_is_byte_identical_with_and_without_the_whole_chunk_path(tmp_path, fmt, threads, monkeypatch):
    if not threads:  # every checksum on the calling thread
        monkeypatch.setattr(backend_mod, "ZARR_CRC_THREAD_BYTES", 1 << 62)
        monkeypatch.setattr(backend_mod.H5Session, "write_many", backend_mod.Session.write_many)
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
