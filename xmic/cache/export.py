"""Copying a store into the other backend (Zarr -> one HDF5 file, or back), chunk by chunk."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from xmic.cache import guard
from xmic.cache.backend import FORMATS, H5_SUFFIXES, Backend, Session
from xmic.cache.errors import StoreError
from xmic.owned import check_owned, remove_owned, store_owned

#: Upper bound on the rows copied at once, in bytes of the array being copied.
BLOCK_BYTES = 64 * 1024 * 1024


def export_store(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    block_bytes: int = BLOCK_BYTES,
) -> Path:
    """Copy every group, attribute and array of ``src`` into a new store ``out`` with the same layout.

    Arrays are copied in blocks of whole storage chunks along the first axis (at most ``block_bytes`` per
    block, at least one chunk), so memory stays bounded whatever the store's size. ``done`` flags are
    copied last, so an interrupted export never shows a chunk as done before its data.

    Args:
        src: the store to copy (Zarr or HDF5).
        out: the new store; its format is ``fmt``, else from its suffix (``.h5``/``.hdf5`` -> HDF5).
        overwrite: replace ``out`` when it exists (otherwise that is an error).

    Returns:
        ``out`` as a Path.
    """
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown store format {fmt!r}; use one of {', '.join(FORMATS)}")
    src_b = Backend(src)
    out_p = Path(out)
    owned = store_owned(out_p.parent, out_p.name)  # only a store's own files are deleted
    replace = {"what": f"--to {out_p}", "fix": "give another --to"}
    if out_p.exists():
        if out_p.resolve() == src_b.path.resolve():
            raise StoreError(f"cannot export {src} onto itself")
        if not overwrite:
            raise StoreError(f"{out_p} exists; pass --overwrite to replace it")
        check_owned(out_p.parent, owned, [out_p.name], **replace)
    out_fmt = fmt or _suffix_format(out_p)
    # written under a temporary name beside ``out`` and renamed once complete: a failed export leaves nothing
    # at ``out`` (its temporary copy is removed), so the retry is not blocked
    tmp = out_p.with_name(f".{out_p.name}.{uuid.uuid4().hex[:12]}.export-partial")
    try:
        _export(src_b, Backend(tmp, out_fmt), block_bytes)
        if out_p.exists():
            remove_owned(out_p.parent, owned, [out_p.name], **replace)
        os.replace(tmp, out_p)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
    return out_p


def _suffix_format(path: Path) -> str:
    return "h5" if path.suffix.lower() in H5_SUFFIXES else "zarr"


def _export(src_b: Backend, dst_b: Backend, block_bytes: int) -> None:
    with src_b.session("r") as s, dst_b.session("a") as d:
        d.set_attrs("", _plain_attrs(s.get_attrs("")))
        for group in s.walk_groups(""):
            d.require_group(group)
            d.set_attrs(group, _plain_attrs(s.get_attrs(group)))
        keys = sorted(s.walk_arrays(""), key=lambda k: (k.endswith("/done"), k))
        done: dict[str, np.ndarray] = {}
        for key in keys:  # every chunk an array must hold is there, else nothing is copied
            guard.check_present(s, src_b.path, key, done)
        for key in keys:
            _copy_array(s, d, key, block_bytes, src_b.path)


def _copy_array(s: Session, d: Session, key: str, block_bytes: int, src: Path) -> None:
    info = s.info(key)
    d.create_array(key, info.shape, info.dtype, info.chunks, info.fill_value)
    d.set_attrs(key, _plain_attrs(s.get_attrs(key)))
    if not info.shape or 0 in info.shape:
        return
    n = info.shape[0]
    if info.dtype == "str":
        d.write(key, slice(0, n), guard.read_checked(s, src, key))
        return
    row_bytes = int(np.prod(info.shape[1:], dtype=np.int64)) * np.dtype(info.dtype).itemsize
    chunk = info.chunks[0] if info.chunks else n
    step = max(chunk, (block_bytes // max(1, row_bytes)) // chunk * chunk)
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        d.write(key, rows, guard.read_checked(s, src, key, rows))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _plain_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in attrs.items()}
