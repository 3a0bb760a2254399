"""Two storage backends with one API: a Zarr v3 group (a directory) or one HDF5 file.

Both hold the same tree of groups and arrays (see :mod:`xmic.cache.schema`). Keys are ``/``-separated paths
from the root. String arrays are variable-length UTF-8 on disk and come back as numpy ``<U`` arrays from
either backend. Each :meth:`Backend.session` opens the store and closes it again, so no HDF5 handle (read or
write) is held between operations and a reader never blocks a writer for long.

A write that covers exactly one chunk of an array (what :class:`~xmic.cache.writer.StoreWriter` does) skips the
storage library's generic write path (Zarr: a round trip through its event loop per call, the array's metadata
read again, the chunk copied to append its checksum; HDF5: the chunk copied twice into fresh buffers around a
byte-by-byte Fletcher-32, about 2 GB/s), and encodes the chunk as the library would and writes it in one go:

* Zarr: the array's own codecs (``bytes`` little-endian, optionally ``zstd``, then ``crc32c``) and chunk key,
  into ``<key>.<uuid>.partial`` renamed into place, as Zarr's local store writes every object;
* HDF5: the chunk and its Fletcher-32 checksum (:func:`fletcher32`, the value HDF5's filter computes) through
  ``H5Dwrite_chunk``, for an array whose only filter is fletcher32.

Any other write, or an array with other codecs or filters, goes through the library. Both libraries verify the
checksums on every read, so a chunk encoded wrongly could not be read back unnoticed.

Every file operation stays on the calling thread, in order; a thread of the :class:`Backend` computes checksums
meanwhile, as file writes release the GIL. Zarr: the crc32c of a large raw chunk while its bytes go to the temp file
(google_crc32c holds the GIL, but the write does not need it). HDF5: :meth:`Session.write_many` (the writer's arrays
of one chunk of rows) has the Fletcher-32 checksums of its chunks computed ahead of the ``H5Dwrite_chunk`` calls.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmic.cache.errors import StoreError

#: Marker dtype for variable-length unicode arrays.
STR = "str"
FORMATS = ("zarr", "h5")
H5_SUFFIXES = (".h5", ".hdf5")
#: Threads of a backend that compute checksums while the calling thread writes. One: the checksums are then ready in
#: the order the writes need them (two would compute a chunk's two feature checksums side by side, each slower, and
#: the first write would wait longer for its own), and a second core is left to the writes.
WRITE_THREADS = 1


@dataclass(frozen=True)
class ArrayInfo:
    """Shape, dtype (numpy name or ``"str"``), chunk shape (``None`` = contiguous), fill value of an array, and
    whether the storage library checksums its chunks (Zarr crc32c codec, HDF5 fletcher32 filter)."""

    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...] | None
    fill_value: Any = None
    checksum: bool = False


def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The backend of ``path``: from its content when it exists, else ``fmt``, else its suffix.

    Raises:
        StoreError: ``fmt`` contradicts what is on disk, or an existing file is not HDF5.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown store format {fmt!r}; use one of {', '.join(FORMATS)}")
    p = Path(path)
    found = None
    if p.is_dir():
        found = "zarr"
    elif p.is_file():
        import h5py

        if not h5py.is_hdf5(p):
            raise StoreError(f"{p} is a file but not an HDF5 file; a Zarr store is a directory")
        found = "h5"
    if found and fmt and found != fmt:
        raise StoreError(f"{p} holds a {found} store, not {fmt}")
    return found or fmt or ("h5" if p.suffix.lower() in H5_SUFFIXES else "zarr")


def to_str_array(values: Any) -> np.ndarray:
    """Any sequence of Python strings (or numpy StringDType / object array) as a ``<U`` array."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind == "T":
        width = int(np.strings.str_len(arr).max()) if arr.size else 1
        return arr.astype(f"<U{max(width, 1)}")
    if arr.size == 0:
        return np.zeros(arr.shape, dtype="<U1")
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()]).reshape(arr.shape)


class Backend:
    """A store at ``path`` in format ``fmt``; open it with :meth:`session`."""

    def __init__(self, path: str | os.PathLike, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = detect_format(self.path, fmt)
        # what the whole-chunk write path needs to know of a Zarr array, by key, with the stat of its zarr.json
        self._zarr_chunks: dict[str, tuple[tuple[int, ...], _ZarrChunks | None]] = {}
        # HDF5: one chunk and its checksum, reused (no fresh pages per chunk)
        self._scratch = np.empty(0, np.uint8)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    def exists(self) -> bool:
        return self.path.exists()

    @contextlib.contextmanager
    def session(self, mode: str = "r", *, lazy: bool = False) -> Iterator[Session]:
        """Open the store: ``"r"`` (must exist) or ``"a"`` (read/write, created when absent).

        ``lazy``: open a Zarr group only when an operation needs it (a whole-chunk write does not; errors about
        the group then come from that operation). HDF5 files are always opened at once.
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        if mode == "r" and not self.path.exists():
            raise StoreError(f"no feature store at {self.path}")
        if self.fmt == "zarr":
            session = ZarrSession(lambda: self._open_zarr(mode), self)
            if not lazy:
                session.root  # noqa: B018 (opens the group: errors belong to the session's start)
            yield session
        else:
            import h5py

            with h5py.File(self.path, mode) as root:
                yield H5Session(root, self)

    def _open_zarr(self, mode: str) -> Any:
        import zarr

        from xmic.cache.frames import register_codecs

        register_codecs()  # the frame cache's JPEG codec (xmic.cache.frames): its arrays then open like any other
        try:
            return zarr.open_group(str(self.path), mode=mode)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
            raise StoreError(f"{self.path} is not a Zarr group: {exc}") from None

    def _scratch_bytes(self, n: int) -> np.ndarray:
        if self._scratch.size < n:
            self._scratch = np.empty(n, np.uint8)
        return self._scratch[:n]

    def _workers(self) -> ThreadPoolExecutor:
        """The threads that compute checksums while the calling thread writes, made on first use (again in a forked
        child, which has none)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="xmic-store-write")
                self._pool_pid = os.getpid()
            return self._pool

    def size_bytes(self) -> int:
        """Bytes on disk (all files of a Zarr directory, or the HDF5 file)."""
        if self.path.is_file():
            return self.path.stat().st_size
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


class Session:
    """Operations on an open store; keys are paths such as ``"epic/features/clip-vit-b16/full"``."""

    def has(self, key: str) -> bool:
        raise NotImplementedError

    def is_group(self, key: str) -> bool:
        raise NotImplementedError

    def children(self, key: str = "") -> tuple[list[str], list[str]]:
        """Sorted names of the sub-groups and of the arrays directly under group ``key``."""
        raise NotImplementedError

    def require_group(self, key: str) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def create_array(
        self,
        key: str,
        shape: tuple[int, ...],
        dtype: str,
        chunks: tuple[int, ...] | None = None,
        fill_value: Any = None,
        data: np.ndarray | None = None,
    ) -> None:
        """Create (replacing any existing array) ``key``; ``chunks=None`` means one chunk / contiguous."""
        raise NotImplementedError

    def info(self, key: str) -> ArrayInfo:
        raise NotImplementedError

    def read(self, key: str, sel: Any = ...) -> np.ndarray:
        """``array[sel]`` as numpy (strings as ``<U``); the default reads everything."""
        raise NotImplementedError

    def write(self, key: str, sel: Any, value: np.ndarray) -> None:
        raise NotImplementedError

    def write_many(self, writes: Sequence[tuple[str, Any, np.ndarray]]) -> None:
        """Each ``(key, sel, value)`` as :meth:`write` does it, in that order (a backend may compute checksums on other
        threads meanwhile). Stops at the first error, and returns or raises only when nothing it started still
        runs."""
        for key, sel, value in writes:
            self.write(key, sel, value)

    def get_attrs(self, key: str = "") -> dict[str, Any]:
        raise NotImplementedError

    def set_attrs(self, key: str, attrs: dict[str, Any]) -> None:
        raise NotImplementedError

    def walk_arrays(self, key: str = "") -> Iterator[str]:
        """Every array key below group ``key``, depth first, sorted."""
        groups, arrays = self.children(key)
        for name in arrays:
            yield _join(key, name)
        for name in groups:
            yield from self.walk_arrays(_join(key, name))

    def walk_groups(self, key: str = "") -> Iterator[str]:
        """Every group key below ``key`` (not ``key`` itself), parents first."""
        for name in self.children(key)[0]:
            sub = _join(key, name)
            yield sub
            yield from self.walk_groups(sub)


def _join(key: str, name: str) -> str:
    return f"{key}/{name}" if key else name


def _clamp_chunks(shape: tuple[int, ...], chunks: tuple[int, ...] | None) -> tuple[int, ...]:
    chunks = shape if chunks is None else chunks
    return tuple(max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))


class _RootSession(Session):
    """A session over a root group that indexes by path (both Zarr and h5py groups do)."""

    def __init__(self, root: Any):
        self.root = root

    def _node(self, key: str) -> Any:
        return self.root[key] if key else self.root

    def has(self, key: str) -> bool:
        return key == "" or key in self.root


class ZarrSession(_RootSession):
    def __init__(self, open_root: Callable[[], Any], backend: Backend):
        self._open_root = open_root
        self._root: Any = None
        self._backend = backend

    @property
    def root(self) -> Any:  # type: ignore[override]
        if self._root is None:
            self._root = self._open_root()
        return self._root

    def _forget(self, key: str) -> None:
        """Drop what the whole-chunk path knows of ``key`` and of the arrays below it."""
        cache = self._backend._zarr_chunks
        for k in [k for k in cache if not key or k == key or k.startswith(key + "/")]:
            del cache[k]

    def is_group(self, key: str) -> bool:
        import zarr

        return self.has(key) and isinstance(self._node(key), zarr.Group)

    def children(self, key: str = "") -> tuple[list[str], list[str]]:
        node = self._node(key)
        with warnings.catch_warnings():
            # temp files of a killed write: verify lists them and the next extract removes them (cache.tempfiles)
            warnings.filterwarnings("ignore", message=r".*\.partial is not recognized as a component")
            return sorted(node.group_keys()), sorted(node.array_keys())

    def require_group(self, key: str) -> None:
        self.root.require_group(key)

    def delete(self, key: str) -> None:
        self._forget(key)
        # every node of a Zarr v3 store has its zarr.json: without one there is nothing to delete (no group opened)
        if key and not (self._backend.path / key / "zarr.json").exists():
            return
        if self.has(key):
            del self.root[key]

    def create_array(self, key, shape, dtype, chunks=None, fill_value=None, data=None) -> None:
        self._forget(key)
        parent, _, _ = key.rpartition("/")
        if parent:
            self.root.require_group(parent)
        from zarr.codecs import Crc32cCodec, ZstdCodec

        kind = np.dtype(dtype).kind if dtype != STR else "T"
        # fp16 embeddings hardly compress (~10 %); raw chunks make the trainer's whole-array read cheaper.
        # Every chunk ends with a crc32c checksum, checked by zarr on every read.
        raw = kind == "f" and len(shape) == 3
        arr = self.root.create_array(
            key,
            shape=shape,
            chunks=_clamp_chunks(shape, chunks),
            dtype=str if dtype == STR else dtype,
            fill_value=fill_value,
            compressors=[Crc32cCodec()] if raw else [ZstdCodec(), Crc32cCodec()],
            # a chunk that equals the fill value is still written, so a missing chunk object means damage
            config={"write_empty_chunks": True},
            overwrite=True,
        )
        if data is not None and data.size:
            arr[...] = data

    def info(self, key: str) -> ArrayInfo:
        arr = self.root[key]
        dtype = STR if arr.dtype.kind in "TUO" else str(arr.dtype)
        fill = None if dtype == STR else arr.fill_value
        checksum = any(type(c).__name__ == "Crc32cCodec" for c in arr.compressors)
        # a sharded array (the frame cache) is stored shard by shard: its shards are the chunks that count here
        chunks = arr.shards if arr.shards is not None else arr.chunks
        return ArrayInfo(tuple(arr.shape), dtype, tuple(chunks), fill, checksum)

    def read(self, key: str, sel: Any = ...) -> np.ndarray:
        out = np.asarray(self.root[key][sel])
        return to_str_array(out) if out.dtype.kind in "TO" else out

    def write(self, key: str, sel: Any, value: np.ndarray) -> None:
        form = self._chunk_format(key)
        index = None if form is None else _whole_chunk(sel, form.shape, form.chunks)
        if index is not None and np.shape(value) == (sel.stop - sel.start, *form.shape[1:]):
            form.write(os.path.join(self._backend.path, key), index, value, self._backend._workers)
            return
        # write_empty_chunks is a runtime setting, not stored with the array: set it again on every open, so that
        # a chunk equal to the fill value is still written (a missing chunk object then always means damage) and
        # zarr skips its per-chunk emptiness scan (about 2.5x faster on 8 MiB feature chunks)
        self.root[key].with_config({"write_empty_chunks": True})[sel] = value

    def _chunk_format(self, key: str) -> _ZarrChunks | None:
        """How to encode a chunk of array ``key`` (None: not a plain array, or codecs this path does not know)."""
        try:
            st = os.stat(self._backend.path / key / "zarr.json")
        except OSError:
            return None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._backend._zarr_chunks.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        import zarr

        node = self.root[key] if self.has(key) else None
        form = _ZarrChunks.of(node) if isinstance(node, zarr.Array) else None
        self._backend._zarr_chunks[key] = (stamp, form)
        return form

    def get_attrs(self, key: str = "") -> dict[str, Any]:
        return dict(self._node(key).attrs)

    def set_attrs(self, key: str, attrs: dict[str, Any]) -> None:
        self._node(key).attrs.update(attrs)


class H5Session(_RootSession):
    def __init__(self, root: Any, backend: Backend | None = None):
        super().__init__(root)
        self._backend = backend

    def is_group(self, key: str) -> bool:
        import h5py

        return self.has(key) and isinstance(self._node(key), h5py.Group)

    def children(self, key: str = "") -> tuple[list[str], list[str]]:
        import h5py

        node = self._node(key)
        groups = sorted(k for k, v in node.items() if isinstance(v, h5py.Group))
        arrays = sorted(k for k, v in node.items() if isinstance(v, h5py.Dataset))
        return groups, arrays

    def require_group(self, key: str) -> None:
        self.root.require_group(key)

    def delete(self, key: str) -> None:
        if self.has(key):
            del self.root[key]

    def create_array(self, key, shape, dtype, chunks=None, fill_value=None, data=None) -> None:
        import h5py

        self.delete(key)
        if dtype == STR:
            h5_dtype, fill_value = h5py.string_dtype(), None
        else:
            h5_dtype = np.dtype(dtype)
        chunked = chunks is not None and all(s > 0 for s in shape)
        ds = self.root.create_dataset(
            key,
            shape=shape,
            dtype=h5_dtype,
            chunks=_clamp_chunks(shape, chunks) if chunked else None,
            fillvalue=fill_value,
            # HDF5 filters cannot apply to variable-length strings, nor to an array without elements
            fletcher32=dtype != STR and all(s > 0 for s in shape),
        )
        if data is not None and data.size:
            ds[...] = data.astype(object) if dtype == STR else data

    def info(self, key: str) -> ArrayInfo:
        import h5py

        ds = self.root[key]
        is_str = h5py.check_string_dtype(ds.dtype) is not None
        dtype = STR if is_str else str(ds.dtype)
        return ArrayInfo(tuple(ds.shape), dtype, ds.chunks, None if is_str else ds.fillvalue, bool(ds.fletcher32))

    def read(self, key: str, sel: Any = ...) -> np.ndarray:
        import h5py

        ds = self.root[key]
        if h5py.check_string_dtype(ds.dtype) is not None:
            return to_str_array(ds.asstr()[sel])
        return np.asarray(ds[sel])

    def write(self, key: str, sel: Any, value: np.ndarray) -> None:
        target = self._whole_chunk_target(key, sel, value)
        if target is not None:
            self._write_chunk(*target)
        else:
            self._library_write(key, sel, value)

    def write_many(self, writes: Sequence[tuple[str, Any, np.ndarray]]) -> None:
        """One write after another on the calling thread (h5py serialises its calls through one lock anyway); the
        workers compute the Fletcher-32 checksums of the whole chunks ahead. Stops at the first error."""
        if self._backend is None:
            super().write_many(writes)
            return
        plan = [(self._whole_chunk_target(key, sel, value), (key, sel, value)) for key, sel, value in writes]
        chunks = [target for target, _ in plan if target is not None]
        pool = self._backend._workers() if chunks else None
        checksums = [pool.submit(fletcher32, arr) for _, _, arr in chunks]  # type: ignore[union-attr]
        try:
            k = 0
            for target, args in plan:
                if target is None:
                    self._library_write(*args)
                    continue
                self._write_chunk(*target, checksum=checksums[k].result)
                k += 1
        except BaseException:
            _cancel_and_wait(checksums)
            raise

    def _library_write(self, key: str, sel: Any, value: Any) -> None:
        import h5py

        ds = self.root[key]
        if h5py.check_string_dtype(ds.dtype) is not None:
            value = np.asarray(value).astype(object)
        ds[sel] = value

    def _whole_chunk_target(self, key: str, sel: Any, value: Any) -> tuple[Any, int, np.ndarray] | None:
        """``(dataset id, chunk index, chunk)`` for :meth:`_write_chunk` when ``sel`` covers one chunk of a fixed-size
        array whose only filter is fletcher32; None otherwise. Uses h5py's low-level API: opening the high-level
        dataset object costs more than writing a small chunk."""
        import h5py

        if self._backend is None:
            return None
        try:
            dsid = h5py.h5d.open(self.root.id, key.encode())
        except Exception:  # not a dataset: the high-level path raises what it raises
            return None
        dtype = dsid.dtype
        if dtype.kind not in "biuf":
            return None
        dcpl = dsid.get_create_plist()
        if dcpl.get_layout() != h5py.h5d.CHUNKED or dcpl.get_nfilters() != 1:
            return None
        if dcpl.get_filter(0)[0] != h5py.h5z.FILTER_FLETCHER32:
            return None
        shape, chunks = dsid.shape, dcpl.get_chunk()
        index = _whole_chunk(sel, shape, chunks)
        if index is None or np.shape(value) != (sel.stop - sel.start, *shape[1:]):
            return None
        fill = np.zeros(1, dtype)
        dcpl.get_fill_value(fill)
        return dsid, index, _padded_chunk(value, dtype, chunks, fill[0])

    def _write_chunk(self, dsid: Any, index: int, arr: np.ndarray, checksum: Callable[[], int] | None = None) -> None:
        """Chunk ``index`` (axis 0) as HDF5's fletcher32 filter stores it: the bytes, then their checksum (from
        ``checksum()`` when given, called once the bytes are in place, else computed here)."""
        n = arr.nbytes
        buf = self._backend._scratch_bytes(n + 4)  # type: ignore[union-attr]
        buf[:n] = arr.reshape(-1).view(np.uint8)
        value = fletcher32(buf[:n]) if checksum is None else checksum()
        buf[n:] = np.frombuffer(struct.pack("<I", value), np.uint8)
        dsid.write_direct_chunk((index * arr.shape[0],) + (0,) * (arr.ndim - 1), buf)

    def get_attrs(self, key: str = "") -> dict[str, Any]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._node(key).attrs.items()}

    def set_attrs(self, key: str, attrs: dict[str, Any]) -> None:
        node = self._node(key)
        for k, v in attrs.items():
            node.attrs[k] = v


def _cancel_and_wait(futures: Sequence[Future]) -> None:
    """Cancel the work not yet started and wait for the rest to end (its errors are dropped): the caller's error is
    the one that counts, and nothing may still read the caller's arrays once it goes on."""
    for f in futures:
        f.cancel()
    wait_futures(futures)


def _whole_chunk(sel: Any, shape: tuple[int, ...], chunks: tuple[int, ...] | None) -> int | None:
    """The index of the chunk that ``sel`` covers exactly, when it is a slice of axis 0 of an array with one chunk
    across every other axis; else None. The edge chunk counts when ``sel`` runs to the end of the array."""
    if not chunks or not isinstance(sel, slice) or sel.step not in (None, 1) or 0 in shape:
        return None
    if not isinstance(sel.start, int | np.integer) or not isinstance(sel.stop, int | np.integer):
        return None
    if tuple(chunks[1:]) != tuple(shape[1:]):
        return None
    start, stop, rows = int(sel.start), int(sel.stop), chunks[0]
    if start < 0 or start % rows or stop != min(start + rows, shape[0]):
        return None
    return start // rows


def _padded_chunk(value: Any, dtype: np.dtype, chunks: tuple[int, ...], fill: Any) -> np.ndarray:
    """``value`` as a C-ordered chunk of ``dtype``; an edge chunk padded with the fill value, as the libraries do."""
    arr = np.ascontiguousarray(value, dtype=dtype)
    if arr.shape[0] < chunks[0]:
        full = np.full(chunks, fill, dtype)
        full[: arr.shape[0]] = arr
        arr = full
    return arr


@dataclass(frozen=True)
class _ZarrChunks:
    """What it takes to write one chunk of a Zarr v3 array as Zarr would: its shape, chunk shape, little-endian
    dtype, fill value, chunk key encoding and codecs (``bytes``, optional ``zstd``, ``crc32c``)."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill: Any
    chunk_key: Callable[[tuple[int, ...]], str]
    zstd: Any  # a numcodecs Zstd, or None

    @classmethod
    def of(cls, arr: Any) -> _ZarrChunks | None:
        from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec

        meta = arr.metadata
        dtype = np.dtype(arr.dtype)
        if getattr(meta, "zarr_format", None) != 3 or meta.storage_transformers or arr.filters:
            return None
        if arr.shards is not None or dtype.kind not in "biuf":
            return None
        ser, comps = arr.serializer, tuple(arr.compressors)
        if type(ser) is not BytesCodec or (ser.endian is not None and ser.endian.value != "little"):
            return None
        if not comps or type(comps[-1]) is not Crc32cCodec:  # every chunk ends with its checksum, or no fast path
            return None
        zstd = None
        if len(comps) == 2 and type(comps[0]) is ZstdCodec:
            from numcodecs.zstd import Zstd

            zstd = Zstd(level=comps[0].level, checksum=comps[0].checksum)
        elif len(comps) != 1:
            return None
        return cls(
            tuple(arr.shape), tuple(arr.chunks), dtype.newbyteorder("<"), arr.fill_value, meta.encode_chunk_key, zstd
        )

    def write(
        self, array_dir: str, index: int, value: Any, workers: Callable[[], ThreadPoolExecutor] | None = None
    ) -> None:
        """Encode chunk ``index`` along axis 0 and put it in place (:meth:`put`); the checksum of a large raw chunk
        on a thread of ``workers()`` while its bytes are written."""
        data: Any = _padded_chunk(value, self.dtype, self.chunks, self.fill).reshape(-1).view(np.uint8)
        if self.zstd is not None:
            data = self.zstd.encode(data)
        elif workers is not None and data.nbytes >= ZARR_CRC_THREAD_BYTES:
            self.put(array_dir, index, data, workers())
            return
        self.put(array_dir, index, data)

    def put(self, array_dir: str, index: int, data: Any, pool: ThreadPoolExecutor | None = None) -> None:
        """Write ``data`` and then its crc32c as the object of chunk ``index`` along axis 0, by renaming a temp file
        into place as Zarr's store does (``<chunk key>.<32 hex digits>.partial``, the name :mod:`xmic.cache.tempfiles`
        knows); a failed write removes its temp file. With ``pool``, the checksum is computed there while this thread
        writes the bytes: the file write releases the GIL, which google_crc32c holds while it runs."""
        path = os.path.join(array_dir, self.chunk_key((index,) + (0,) * (len(self.shape) - 1)))
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            fh = open(tmp, "wb")  # noqa: SIM115 (closed below; the directory is made only when missing)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fh = open(tmp, "wb")  # noqa: SIM115
        crc = None
        try:
            with fh:
                crc = None if pool is None else pool.submit(_crc32c, data)
                fh.write(data)
                fh.write(struct.pack("<I", _crc32c(data) if crc is None else crc.result()))
            os.replace(tmp, path)
        except BaseException:
            if crc is not None:
                _cancel_and_wait([crc])  # it reads the caller's array: done before the error reaches the caller
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


#: A raw Zarr chunk of at least this many bytes has its checksum computed on a thread of the backend while the
#: calling thread writes its bytes (below, handing the work over costs more than it saves).
ZARR_CRC_THREAD_BYTES = 1 << 20


def _crc32c(data: Any) -> int:
    """The crc32c of ``data`` (bytes or a uint8 array), as Zarr's ``crc32c`` codec computes it."""
    import google_crc32c

    return google_crc32c.value(data)


#: Fletcher-32 as HDF5 computes it works modulo 2**16 - 1.
_F32_MOD = 65535
#: Below this many 16-bit words the sums are taken directly, big-endian, in 64 bits (no per-call setup).
_F32_DIRECT = 1 << 16
_F32_WEIGHTS = np.arange(1, _F32_DIRECT + 1, dtype=np.uint64)


def fletcher32(data: Any) -> int:
    """The Fletcher-32 checksum HDF5's ``fletcher32`` filter computes (``H5_checksum_fletcher32``), vectorised.

    HDF5 sums the data as big-endian 16-bit words w_1..w_n (an odd last byte as the high byte of one more word):
    s1 = sum w_i and s2 = sum (n - i + 1) w_i, both folded to 16 bits along the way by x -> (x & 0xffff) + (x >> 16),
    which keeps x modulo 65535, keeps a positive x positive and ends at most 0xffff. So each half is 0 when its sum
    is 0 (all bytes zero) and otherwise the one value in 1..65535 congruent to the sum. For large data the words are
    read little-endian, which makes each 256 times smaller modulo 65535 (256 * 256 = 65536 = 1), and since the
    weight of a word only matters modulo 65535, the data as rows of 65535 words is reduced to its column sums in
    one pass. ``tests/test_store_chunk_write.py`` checks it against a literal port of HDF5's loop and against the
    checksums HDF5's filter stores.
    """
    b = data.reshape(-1).view(np.uint8) if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    odd = b.size & 1
    n = b.size // 2
    if n < _F32_DIRECT:
        words = b[: 2 * n].view(">u2").astype(np.uint64)
        s1 = int(words.sum())
        weighted = int(np.dot(_F32_WEIGHTS[:n], words))  # sum of i * w_i
        nonzero = s1 > 0
    else:
        words = b[: 2 * n].view("<u2")
        rows, tail = divmod(n, _F32_MOD)
        if rows < _F32_MOD:  # under 8 GiB: the exact column sums fit 32 bits, and the weighted sum below 64 bits
            cols = np.add.reduce(words[: rows * _F32_MOD].reshape(rows, _F32_MOD), axis=0, dtype=np.uint32)
            cols[:tail] += words[rows * _F32_MOD :]
            total = int(cols.sum(dtype=np.uint64))
            nonzero = total > 0  # the exact sum of the words: 0 only when every word is
        else:
            cols = np.zeros(_F32_MOD, np.uint64)
            acc = np.empty(_F32_MOD, np.uint32)
            step = 65536  # rows per pass: their column sums fit in 32 bits
            for r0 in range(0, rows, step):
                block = words[r0 * _F32_MOD : min(rows, r0 + step) * _F32_MOD].reshape(-1, _F32_MOD)
                np.add.reduce(block, axis=0, dtype=np.uint32, out=acc)
                cols += acc
            cols[:tail] += words[rows * _F32_MOD :]
            nonzero = bool(cols.any())  # exact sums: all zero only when every word is
            cols %= _F32_MOD
            total = int(cols.sum())
        s1 = 256 * total
        weighted = 256 * int(np.dot(_F32_WEIGHTS[:_F32_MOD], cols))
    if odd:
        last = int(b[-1]) << 8
        s1, weighted, n = s1 + last, weighted + (n + 1) * last, n + 1
    if not nonzero and not (odd and b[-1]):
        return 0
    s2 = (n + 1) * s1 - weighted
    return ((s2 - 1) % _F32_MOD + 1) << 16 | ((s1 - 1) % _F32_MOD + 1)
