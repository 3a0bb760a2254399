"""The command line's error policy, in one place (used by `xmic.cli.main`).

Expected errors (bad input, a missing or unwritable file, a damaged store, a refused run) end in one line,
`Error: <message>`, and exit status 1. Anything else is a bug: the traceback, then one line that says so, and
exit status 70. Ctrl-C ends with one line and 130. `XMIC_DEBUG=1` (or `xmic --debug`) prints the traceback for
expected errors too.

What counts as expected:

- any exception whose class (or a base class) is defined in the xmic package (StoreError, ReproduceError,
  AnnotationError, StaleRunError, ...): xmic raises these on purpose, with a message written for the user;
- FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError, and an OSError for
  a full disk or a read-only file system, wherever raised: they are about the user's files, not the code;
- ValueError raised in xmic's own code (the innermost frame of its traceback is a file of the package): xmic
  raises it for bad input all over. A ValueError raised inside a library (numpy, torch, zarr, ...) is treated
  as a bug, so that its traceback is kept.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path
from types import TracebackType

EXIT_OK = 0
EXIT_ERROR = 1  # an expected error: one line says what, where and what to do
EXIT_USAGE = 2  # click: a bad option or argument
EXIT_ROWS_FAILED = 3  # xmic extract: rows failed without --skip-bad (the rest is written)
EXIT_BUG = 70  # an unexpected error (EX_SOFTWARE): the traceback and a line saying it is a bug
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

DEBUG_ENV = "XMIC_DEBUG"

_PACKAGE_DIR = Path(__file__).resolve().parent
_USER_OS_ERRORS = (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)
_USER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def debug_enabled(flag: bool = False) -> bool:
    """True when `--debug` was given or XMIC_DEBUG is set to anything but "", "0", "false", "no"."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _defined_in_xmic(exc: BaseException) -> bool:
    return any(
        cls.__module__ == "xmic" or cls.__module__.startswith("xmic.")
        for cls in type(exc).__mro__
        if cls not in (BaseException, Exception, object)
    )


def _innermost_file(tb: TracebackType | None) -> Path | None:
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return None
    try:
        return Path(last.tb_frame.f_code.co_filename).resolve()
    except (OSError, ValueError):
        return None


def raised_in_xmic(exc: BaseException) -> bool:
    """True when the innermost frame of the exception's traceback is a file of the xmic package."""
    path = _innermost_file(exc.__traceback__)
    return path is not None and path.is_relative_to(_PACKAGE_DIR)


def is_expected(exc: BaseException) -> bool:
    """Whether the CLI reports `exc` in one line (True) or as a bug with its traceback (False)."""
    if _defined_in_xmic(exc):
        return True
    if isinstance(exc, _USER_OS_ERRORS):
        return True
    if isinstance(exc, OSError) and exc.errno in _USER_ERRNOS:
        return True
    return isinstance(exc, ValueError) and raised_in_xmic(exc)


def one_line(exc: BaseException) -> str:
    """The message of an expected error, without Python's `[Errno N]` prefix for OS errors."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        target = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        hint = ""
        if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
            hint = " (check that you may write there, or choose another path)"
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = " (free some space, or choose another path)"
        return f"{exc.strerror}: {target}{hint}"
    text = str(exc).strip()
    return text or type(exc).__name__


def bug_line(version: str) -> str:
    return (
        f"this is a bug in xmic {version}; please report it on the project's issue tracker with the command you "
        "ran and the traceback above"
    )


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n")
