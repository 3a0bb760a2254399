"""Deleting only what xmic wrote: every command that clears an output goes through :func:`remove_owned`.

A command knows what it wrote from a manifest: either a list it keeps in the output folder (``.xmic-written.json``,
see :func:`writing` and :func:`clear_outputs`) or a fixed set of names (a run folder's files,
:mod:`xmic.adapt.run_folder`; a store's own layout, :func:`store_owned`). Before anything is deleted, every file,
link and folder under what would be removed is compared with the manifest; one that it does not list stops the
command with :class:`ForeignFileError` naming that file, and nothing is deleted.

A folder recorded as being written when its command was stopped (killed, Ctrl-C, an error) counts as the
command's as a whole: the command checked that it held nothing foreign before writing into it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

MANIFEST = ".xmic-written.json"

Owned = Callable[[str], bool]  # relative POSIX path (of a file, a link or an empty folder) -> written by xmic


class ForeignFileError(FileExistsError):
    """An output to be cleared holds a file that its command did not write."""


def _entries(root: Path, name: str) -> Iterator[str]:
    """The files, links and empty folders under ``root / name`` as paths relative to ``root`` (``name`` itself for
    a file or a link; links are never followed)."""
    top = root / name
    if top.is_symlink() or not top.is_dir():
        if top.exists() or top.is_symlink():
            yield name
        return
    for folder, dirs, files in os.walk(top):
        rel = Path(folder).relative_to(root)
        links = [d for d in dirs if (Path(folder) / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in links)
        if not dirs and not files and not links:
            yield rel.as_posix()
        for f in sorted(files + links):
            yield (rel / f).as_posix()


def foreign_files(root: Path, owned: Owned, names: Iterable[str]) -> list[Path]:
    """Every entry under ``root / name`` (for each of ``names``) that ``owned`` does not accept."""
    root = Path(root)
    out = []
    for name in names:
        for rel in _entries(root, name):
            if not owned(rel) and not _empty_dir(root / rel):
                out.append(root / rel)
    return out


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def check_owned(root: Path, owned: Owned, names: Iterable[str], *, what: str, fix: str) -> None:
    """ForeignFileError naming the first entry under ``names`` that ``owned`` does not accept.

    Args:
        what: the output in the message (``"the demo folder D"``).
        fix: how to go on, ending the message.
    """
    foreign = foreign_files(root, owned, names)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ForeignFileError(f"{foreign[0]}{more}: not written by xmic, so {what} is not cleared; {fix}")


def remove_owned(root: str | os.PathLike, owned: Owned, names: Iterable[str], *, what: str, fix: str) -> None:
    """Delete ``root / name`` for each of ``names`` when ``owned`` accepts everything under it; otherwise
    ForeignFileError (nothing deleted)."""
    root = Path(root)
    names = [n for n in names if (root / n).exists() or (root / n).is_symlink()]
    check_owned(root, owned, names, what=what, fix=fix)
    for name in names:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def pattern_owned(patterns: Iterable[str]) -> Owned:
    """Accept relative paths matching one of the glob ``patterns`` (``*`` matches within one path part)."""
    pats = tuple(patterns)
    return lambda rel: any(PurePosixPath(rel).match(p) and rel.count("/") == p.count("/") for p in pats)


# --- output folders with a manifest -------------------------------------------------------------------------------


def read_manifest(root: Path) -> dict[str, list[str]] | None:
    """``{"files": [...], "writing": [...]}`` of the folder ``root``; None without (or with an unreadable) one."""
    try:
        data = json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: [str(x) for x in data.get(k, []) if isinstance(x, str)] for k in ("files", "writing")}


def _write_manifest(root: Path, files: set[str], writing: set[str]) -> None:
    tmp = root / f"{MANIFEST}.new-{os.getpid()}"
    tmp.write_text(json.dumps({"files": sorted(files), "writing": sorted(writing)}, indent=0) + "\n")
    os.replace(tmp, root / MANIFEST)


def manifest_owned(root: Path) -> Owned:
    """Accept what the manifest of ``root`` lists, and everything under a folder it records as being written."""
    data = read_manifest(root) or {"files": [], "writing": []}
    files, writing = set(data["files"]), tuple(data["writing"])

    def owned(rel: str) -> bool:
        if rel == MANIFEST or rel.startswith(MANIFEST + ".new-"):  # the list itself, or one being rewritten
            return True
        return rel in files or any(rel == w or rel.startswith(w + "/") for w in writing)

    return owned


@contextlib.contextmanager
def writing(root: str | os.PathLike, names: Iterable[str], *, what: str, fix: str) -> Iterator[Path]:
    """Record in ``root``'s manifest that the body writes ``names`` (files or folders under ``root``).

    Before the body: ForeignFileError when something already under ``names`` is not listed. While the body runs,
    ``names`` are recorded as being written (a stopped command's folders count as its own); afterwards every file
    under them is listed.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = list(names)
    check_owned(root, manifest_owned(root), names, what=what, fix=fix)
    data = read_manifest(root) or {"files": [], "writing": []}
    _write_manifest(root, set(data["files"]), set(data["writing"]) | set(names))
    yield root
    record_written(root, names)


@contextlib.contextmanager
def adding(root: str | os.PathLike, names: Iterable[str]) -> Iterator[Path]:
    """Like :func:`writing` for a folder that may hold files of others under ``names`` (a store the user extends):
    nothing is checked, and afterwards only the entries the body created are listed (none when it is killed)."""
    root = Path(root)
    names = list(names)
    before = {rel for name in names for rel in _entries(root, name)}
    try:
        yield root
    finally:  # also when the body fails: what it created is xmic's
        new = {rel for name in names for rel in _entries(root, name)} - before
        data = read_manifest(root) or {"files": [], "writing": []}
        root.mkdir(parents=True, exist_ok=True)
        _write_manifest(root, set(data["files"]) | new, set(data["writing"]))


def record_written(root: str | os.PathLike, names: Iterable[str]) -> None:
    """List every file under ``names`` in ``root``'s manifest (and no longer mark them as being written)."""
    root = Path(root)
    data = read_manifest(root) or {"files": [], "writing": []}
    names = list(names)
    files = {f for f in data["files"] if not any(f == n or f.startswith(n + "/") for n in names)}
    files.update(rel for name in names for rel in _entries(root, name))
    _write_manifest(root, files, set(data["writing"]) - set(names))


def clear_outputs(root: str | os.PathLike, names: Iterable[str] | None = None, *, what: str, fix: str) -> None:
    """Delete what ``root``'s manifest lists (only under ``names`` when given, else everything in ``root``).

    ForeignFileError, deleting nothing, when anything there is not listed, including a folder without a manifest
    that is not empty.
    """
    root = Path(root)
    if not root.is_dir():
        return
    if names is None:
        names = sorted(p.name for p in root.iterdir() if p.name != MANIFEST)
    names = [n for n in names if (root / n).exists() or (root / n).is_symlink()]
    remove_owned(root, manifest_owned(root), names, what=what, fix=fix)
    if (root / MANIFEST).exists():
        data = read_manifest(root) or {"files": [], "writing": []}
        gone = tuple(names)

        def kept(rel: str) -> bool:
            return not any(rel == n or rel.startswith(n + "/") for n in gone)

        _write_manifest(root, {f for f in data["files"] if kept(f)}, {w for w in data["writing"] if kept(w)})


# --- stores ------------------------------------------------------------------------------------------------------

_ZARR_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")


def store_owned(root: Path, name: str) -> Owned:
    """Accept the files of the Zarr store ``root / name``: metadata files, and anything under a folder that holds
    an array's ``zarr.json`` (its chunks), plus interrupted writes' ``*.partial``; an HDF5 file is accepted whole
    when it starts with the HDF5 signature."""
    top = root / name
    if top.is_file():
        with open(top, "rb") as fh:
            is_h5 = fh.read(8) == b"\x89HDF\r\n\x1a\n"
        return lambda rel: is_h5 and rel == name

    arrays: dict[tuple[str, ...], bool] = {}

    def is_array(parts: tuple[str, ...]) -> bool:
        if parts not in arrays:
            meta = root.joinpath(*parts, "zarr.json")
            try:
                arrays[parts] = json.loads(meta.read_text()).get("node_type") == "array"
            except (OSError, ValueError, AttributeError):
                arrays[parts] = (root.joinpath(*parts, ".zarray")).is_file()
        return arrays[parts]

    def owned(rel: str) -> bool:
        parts = PurePosixPath(rel).parts
        if parts[-1] in _ZARR_FILES or fnmatch.fnmatch(parts[-1], "*.partial"):
            return True
        return any(is_array(parts[:i]) for i in range(1, len(parts)))

    return owned
