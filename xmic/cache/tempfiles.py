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


def remove_stale_partial_files(path: str | os.PathLike, dataset: str | None = None) -> int:
    """Delete them; returns how many.

    Args:
        path: The Zarr store.
        dataset: Only those of this dataset's group and its text embeddings (``text/<encoder>/<dataset>``), the
            folders that the one process extracting it writes: another dataset's extraction may be writing its
            own temporary files into the same store at this moment. None: every one in the store, safe only while
            no other process writes to it.
    """
    root = Path(path)
    if dataset is None:
        files = stale_partial_files(root)
    else:
        folders = [root / dataset, *sorted((root / "text").glob(f"*/{dataset}"))]
        files = [f for folder in folders for f in stale_partial_files(folder)]
    for file in files:
        file.unlink(missing_ok=True)
    return len(files)
