"""A run folder belongs to one run: a lock while training, a temporary folder swapped in when the run is done.

``xmic train --out R``:

- takes the lock ``.R.lock`` beside ``R`` (:func:`run_lock`); a second run into ``R`` is refused while the first
  lives;
- refuses when ``R`` holds a finished run, unless ``overwrite`` (``--overwrite``); refuses, even then, when ``R``
  holds a file that xmic does not write in a run folder (:data:`RUN_FILES`);
- trains into ``.R.partial-<pid>`` beside ``R`` and, once the run is complete, puts it in place of ``R`` (the old
  run, evaluations included, is deleted only then). A run that is killed leaves ``R`` as it was, never old weights
  beside new metrics; its partial folder is deleted by the next run into ``R``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from xmic.adapt.run_io import CHECKPOINT, CONFIG, META, METRICS
from xmic.locks import LockHeldError, hold_lock, short_name
from xmic.owned import check_owned, pattern_owned, remove_owned

#: What xmic writes in a run folder: the run (train) and its evaluations (evaluate, reproduce).
RUN_FILES = (CONFIG, META, CHECKPOINT, METRICS, "eval.json", "eval.md", "eval-*.json")
PARTIAL = ".partial-"
OLD = ".old-"


class RunLockedError(LockHeldError):
    """Another live process trains into the same run folder."""


class RunExistsError(FileExistsError):
    """The run folder holds a finished run and ``--overwrite`` was not given."""


def _folder(run_dir: str | os.PathLike) -> Path:
    path = Path(os.path.abspath(run_dir))
    if not path.name:
        raise ValueError(f"--out {run_dir}: a run folder needs a name (not the file system's root)")
    return path


def lock_path(run_dir: str | os.PathLike) -> Path:
    """``.<name>.lock`` beside the run folder (hashed when the name is too long)."""
    path = _folder(run_dir)
    return path.parent / (short_name(f".{path.name}") + ".lock")


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, *, ignore: bool = False) -> Iterator[Path]:
    """Hold the lock of the run folder ``run_dir`` for the body; :class:`RunLockedError` while another live
    process holds it. Re-entrant in one process, so a caller holding it can call :func:`xmic.adapt.trainer.train`
    on the same folder. Yields the lock file's path."""
    with hold_lock(
        lock_path(run_dir),
        busy=f"{run_dir}: a run is being trained into this folder",
        hint="Wait for it or give another --out; if that process is gone, pass --ignore-lock",
        ignore=ignore,
        error=RunLockedError,
    ) as path:
        yield path


def run_owned(rel: str) -> bool:
    """Whether xmic writes the relative path ``rel`` in a run folder."""
    return pattern_owned(RUN_FILES)(rel)


def _in_run_folder(rel: str) -> bool:
    """:func:`run_owned` of a path relative to the run folder's parent (``R/config.json``)."""
    return run_owned(rel.split("/", 1)[-1])


def is_finished(run_dir: str | os.PathLike) -> bool:
    """A finished run: its ``run.json`` (written last) is there."""
    return (Path(run_dir) / META).is_file()


def check_run_folder(run_dir: str | os.PathLike, *, overwrite: bool) -> None:
    """Refuse ``run_dir`` before any work: a file that is not a folder, a folder holding files xmic does not write,
    or a finished run without ``overwrite``."""
    path = _folder(run_dir)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--out {run_dir} is a file; a run folder is a folder: give another --out")
    if not path.is_dir():
        return
    fix = "move it out or give another --out"
    check_owned(path.parent, _in_run_folder, [path.name], what=f"the run folder {run_dir}", fix=fix)
    if is_finished(path) and not overwrite:
        raise RunExistsError(
            f"{run_dir} holds a finished run; pass --overwrite to replace it (the old run stays until the new one is "
            "complete) or give another --out"
        )


def _partials(path: Path) -> list[str]:
    """Sibling folders a killed run left: its partial run, or the old run it was replacing."""
    out = []
    for tag in (PARTIAL, OLD):
        prefix = short_name(f".{path.name}") + tag
        out += [p.name for p in path.parent.glob(f"{prefix}*") if p.name[len(prefix) :].isdigit()]
    return sorted(out)


def _remove_run(parent: Path, name: str, what: str) -> None:
    remove_owned(parent, _in_run_folder, [name], what=what, fix="remove that folder yourself")


@contextlib.contextmanager
def new_run(run_dir: str | os.PathLike, *, overwrite: bool = False, ignore_lock: bool = False) -> Iterator[Path]:
    """Lock ``run_dir``, check it (:func:`check_run_folder`) and yield an empty temporary folder beside it to
    write the run into; when the body returns, that folder becomes ``run_dir``. When the body raises, the
    temporary folder is deleted and ``run_dir`` is left as it was."""
    path = _folder(run_dir)
    with run_lock(path, ignore=ignore_lock):
        check_run_folder(path, overwrite=overwrite)
        for stale in _partials(path):  # left by killed runs: the lock says no other process uses them
            _remove_run(path.parent, stale, f"the partial run {path.parent / stale}")
        work = path.parent / (short_name(f".{path.name}") + f"{PARTIAL}{os.getpid()}")
        work.mkdir(parents=True)
        try:
            yield work
        except BaseException:
            with contextlib.suppress(OSError):  # the error that stopped the run is the one to report
                _remove_run(path.parent, work.name, f"the partial run {work}")
            raise
        try:
            check_run_folder(path, overwrite=True)  # nothing foreign appeared in the old run meanwhile
        except FileExistsError as exc:
            raise type(exc)(f"{exc}; the new run is complete in {work}") from None
        if path.is_dir():
            old = path.parent / (short_name(f".{path.name}") + f"{OLD}{os.getpid()}")
            os.replace(path, old)
            os.replace(work, path)
            _remove_run(path.parent, old.name, f"the replaced run {old}")
        else:
            os.replace(work, path)
