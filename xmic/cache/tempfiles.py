"""Temporary files that a killed Zarr write leaves behind, and their removal.

Zarr's local store writes each object to ``<key>.<32 hex digits>.partial`` and renames it into place; a process
killed between the two leaves that file. It is never part of the data (the chunk it belonged to is not flagged
done, so a resumed run writes it again), but Zarr warns about it whenever the group is listed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def stale_partial_files(path: str | os.PathLike) -> list[Path]:
    """The ``*.partial`` files of interrupted writes under the Zarr store ``path`` (none for HDF5 or no store)."""
    root = Path(path)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.partial") if p.is_file() and _PARTIAL.search(p.name))


def remove_stale_partial_files(path: str | os.PathLike) -> int:
    """Delete them; returns how many. Only safe while no other process writes to the store."""
    files = stale_partial_files(path)
    for file in files:
        file.unlink(missing_ok=True)
    return len(files)
