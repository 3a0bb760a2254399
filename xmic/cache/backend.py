"""Two storage backends with one API: a Zarr v3 group (a directory) or one HDF5 file.

Both hold the same tree of groups and arrays (see :mod:`xmic.cache.schema`). Keys are ``/``-separated paths
from the root. String arrays are variable-length UTF-8 on disk and come back as numpy ``<U`` arrays from
either backend. Each :meth:`Backend.session` opens the store and closes it again, so no HDF5 handle (read or
write) is held between operations and a reader never blocks a writer for long.

Every write goes through the storage library (zarr's ``Array.__setitem__``, h5py's ``Dataset.__setitem__``), which
encodes each chunk with the array's checksum codec (Zarr ``crc32c``, HDF5 ``fletcher32``) and checks it on every read.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmic.cache.errors import StoreError

#: Marker dtype for variable-length unicode arrays.
STR = "str"
FORMATS = ("zarr", "h5")
H5_SUFFIXES = (".h5", ".hdf5")

#: Chunks zarr encodes per batch when writing (its default, 1, pays the codec pipeline's overhead per chunk).
WRITE_BATCH = 64


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


def unreadable_h5_message(path: Path, exc: BaseException) -> str:
    why = str(exc).split("\n")[0][:160]
    return (
        f"{path}: the HDF5 file cannot be opened ({why}): it is damaged, e.g. by a write that failed on a full disk. "
        "`xmic extract ... --overwrite` sets it aside (renamed, not deleted) and starts a new one; or move it away"
    )


def h5_opens(path: Path) -> bool:
    """Whether the HDF5 file at ``path`` opens for reading."""
    import h5py

    try:
        with h5py.File(path, "r"):
            return True
    except OSError:
        return False


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

    def exists(self) -> bool:
        return self.path.exists()

    @contextlib.contextmanager
    def session(self, mode: str = "r") -> Iterator[Session]:
        """Open the store: ``"r"`` (must exist) or ``"a"`` (read/write, created when absent)."""
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        if mode == "r" and not self.path.exists():
            raise StoreError(f"no feature store at {self.path}")
        if self.fmt == "zarr":
            yield ZarrSession(self._open_zarr(mode), self.path)
        else:
            import h5py

            try:
                root = h5py.File(self.path, mode)
            except PermissionError:
                raise
            except OSError as exc:
                if not self.path.is_file():
                    raise
                raise StoreError(unreadable_h5_message(self.path, exc)) from None
            try:
                with root:
                    yield H5Session(root)
            except PermissionError:
                raise
            except (OSError, RuntimeError) as exc:  # HDF5 reports a failed write (a full disk) as either
                if mode == "r":
                    raise
                why = str(exc).split("\n")[0][:200]
                raise StoreError(
                    f"{self.path}: writing the HDF5 file failed ({type(exc).__name__}: {why}; is the disk full?); "
                    f"free space, then re-run the same command (it resumes; `xmic cache verify {self.path}` says "
                    "what the file holds, and `xmic extract ... --overwrite` sets a file that no longer opens aside)"
                ) from None

    def _open_zarr(self, mode: str) -> Any:
        import zarr

        from xmic.cache.frames import register_codecs

        register_codecs()  # the frame cache's JPEG codec (xmic.cache.frames): its arrays then open like any other
        try:
            return zarr.open_group(str(self.path), mode=mode)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
            raise StoreError(f"{self.path} is not a Zarr group: {exc}") from None

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

    def missing_chunks(self, key: str, first: Any) -> list[int]:
        """Of the chunk indices ``first`` along axis 0 of array ``key``, those with a chunk (of any index along the
        other axes) that was never stored: the library would read it as the fill value without a word."""
        raise NotImplementedError

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
    def __init__(self, root: Any, path: Path):
        super().__init__(root)
        self._path = path

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
        # every node of a Zarr v3 store has its zarr.json: without one there is nothing to delete (no group opened)
        if key and not (self._path / key / "zarr.json").exists():
            return
        if self.has(key):
            del self.root[key]

    def create_array(self, key, shape, dtype, chunks=None, fill_value=None, data=None) -> None:
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
        # write_empty_chunks is a runtime setting, not stored with the array: set it again on every open, so that
        # a chunk equal to the fill value is still written (a missing chunk object then always means damage) and
        # zarr skips its per-chunk emptiness scan (about 2.5x faster on 8 MiB feature chunks)
        # the codec pipeline takes its batch size from zarr's config when the array opens: 64 chunks per batch
        # (the frame cache's images are inner chunks of a shard) cut zarr's per-chunk overhead, same bytes on disk
        import zarr

        with zarr.config.set({"codec_pipeline.batch_size": WRITE_BATCH}):
            self.root[key].with_config({"write_empty_chunks": True})[sel] = value

    def missing_chunks(self, key: str, first: Any) -> list[int]:
        arr = self.root[key]
        if 0 in arr.shape:
            return []
        grid = arr.shards if arr.shards is not None else arr.chunks  # a sharded array stores one object per shard
        rest = list(itertools.product(*(range(-(-n // c)) for n, c in zip(arr.shape[1:], grid[1:], strict=True))))
        folder = self._path / key
        return [
            int(i)
            for i in first
            if not all((folder / arr.metadata.encode_chunk_key((int(i), *r))).is_file() for r in rest)
        ]

    def get_attrs(self, key: str = "") -> dict[str, Any]:
        return dict(self._node(key).attrs)

    def set_attrs(self, key: str, attrs: dict[str, Any]) -> None:
        self._node(key).attrs.update(attrs)


class H5Session(_RootSession):
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
        import h5py

        ds = self.root[key]
        if h5py.check_string_dtype(ds.dtype) is not None:
            value = np.asarray(value).astype(object)
        ds[sel] = value

    def missing_chunks(self, key: str, first: Any) -> list[int]:
        ds = self.root[key]
        if ds.chunks is None or 0 in ds.shape:  # contiguous: allocated whole when written
            return []
        rest = list(itertools.product(*(range(0, n, c) for n, c in zip(ds.shape[1:], ds.chunks[1:], strict=True))))
        dsid, rows = ds.id, ds.chunks[0]
        return [
            int(i)
            for i in first
            if any(dsid.get_chunk_info_by_coord((int(i) * rows, *r)).byte_offset is None for r in rest)
        ]

    def get_attrs(self, key: str = "") -> dict[str, Any]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._node(key).attrs.items()}

    def set_attrs(self, key: str, attrs: dict[str, Any]) -> None:
        node = self._node(key)
        for k, v in attrs.items():
            node.attrs[k] = v
