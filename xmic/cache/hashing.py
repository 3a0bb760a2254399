"""Content hashes that tie a store and a run folder to the exact weights they came from."""

from __future__ import annotations

import hashlib
from pathlib import Path

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 16 MiB blocks; cached per (path, size, mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 24):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def weight_files(folder: str | Path) -> list[Path]:
    """The weight files of a model folder (``*.safetensors``, else ``*.bin``), sorted."""
    folder = Path(folder)
    return sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))


def weights_sha256(folder: str | Path) -> str:
    """sha256 over the weight files of a model folder (each file's name and sha256, in sorted order)."""
    digest = hashlib.sha256()
    for f in weight_files(folder):
        digest.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    return digest.hexdigest()
