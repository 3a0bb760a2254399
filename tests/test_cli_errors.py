"""The command line's one error policy (xmic/cli.py, xmic/errors.py; issue 9).

`xmic cache info`'s store reader is replaced by a function that raises each kind of error; the top-level
group turns expected errors into one line (exit 1), Ctrl-C into one line (130), and anything else into the
traceback plus a line saying it is a bug (70). Exit codes commands choose themselves pass through.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import xmic
import xmic.cache.verify as verify
from xmic import errors as E
from xmic.cli import main


def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raiser, *args: str, env: dict | None = None):
    monkeypatch.setattr(verify, "store_info", raiser)
    return CliRunner().invoke(main, [*args, "cache", "info", str(tmp_path)], env=env)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _reproduce_error(_path):
    from xmic.evaluate.reproduce_data import ReproduceError

    raise ReproduceError("table 3 needs group egtea in /x/cache; run `xmic extract --dataset egtea` first")


def _xmic_value_error(_path):
    from xmic.extract.plan import center_window
    from xmic.extract.runner import ExtractConfig

    center_window(ExtractConfig(dataset="ego4d", root=Path("."), center_sec=-1.0))  # xmic's own check


def _library_value_error(_path):
    json.loads("{")  # raised inside the json module: not xmic's message


def _missing_file(path):
    open(Path(path) / "no-such-file.csv")  # noqa: SIM115


def _permission(path):
    raise PermissionError(13, "Permission denied", str(Path(path) / "cache.zarr"))


def _interrupt(_path):
    raise KeyboardInterrupt


def _bug(_path):
    raise RuntimeError("boom")


def _own_exit(_path):
    raise SystemExit(3)


def test_xmic_error_is_one_line_exit_1(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _reproduce_error)
    assert res.exit_code == E.EXIT_ERROR == 1
    assert lines(res.output) == [
        "Error: table 3 needs group egtea in /x/cache; run `xmic extract --dataset egtea` first"
    ]
    assert "Traceback" not in res.output


def test_value_error_raised_by_xmic_is_expected(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _xmic_value_error)
    assert res.exit_code == 1
    (line,) = lines(res.output)
    assert line.startswith("Error: --center-sec must be a number of seconds >= 0")


def test_value_error_from_a_library_is_a_bug_with_its_traceback(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _library_value_error)
    assert res.exit_code == E.EXIT_BUG == 70
    out = lines(res.output)
    assert out[0] == "Traceback (most recent call last):"
    assert any(line.startswith("json.decoder.JSONDecodeError") for line in out)
    assert out[-1] == (
        f"Error: this is a bug in xmic {xmic.__version__}; please report it on the project's issue tracker with "
        "the command you ran and the traceback above"
    )


def test_missing_file_names_the_file(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _missing_file)
    assert res.exit_code == 1
    assert lines(res.output) == [f"Error: No such file or directory: {tmp_path / 'no-such-file.csv'}"]


def test_permission_error_says_what_to_do(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _permission)
    assert res.exit_code == 1
    (line,) = lines(res.output)
    assert line == (
        f"Error: Permission denied: {tmp_path / 'cache.zarr'} (check that you may write there, or choose another path)"
    )


def test_keyboard_interrupt_is_one_line_exit_130(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _interrupt)
    assert res.exit_code == E.EXIT_INTERRUPTED == 130
    (line,) = lines(res.output)
    assert line.startswith("Error: interrupted (Ctrl-C)")
    assert "Traceback" not in res.output and "Aborted" not in res.output


def test_unexpected_error_is_traceback_and_bug_line(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _bug)
    assert res.exit_code == 70
    out = lines(res.output)
    assert out[0] == "Traceback (most recent call last):"
    assert "RuntimeError: boom" in out
    assert out[-1].startswith(f"Error: this is a bug in xmic {xmic.__version__}")
    assert out.index("RuntimeError: boom") == len(out) - 2  # the traceback, then the one line


def test_a_commands_own_exit_status_passes_through(monkeypatch, tmp_path: Path) -> None:
    res = run(monkeypatch, tmp_path, _own_exit)
    assert res.exit_code == E.EXIT_ROWS_FAILED == 3 and res.output == ""


def test_command_level_refusal_keeps_its_one_line(monkeypatch, tmp_path: Path) -> None:
    from xmic.cache.errors import StoreError

    def store_error(_path):
        raise StoreError(f"{tmp_path}: not a feature store")

    res = run(monkeypatch, tmp_path, store_error)
    assert res.exit_code == 1 and lines(res.output) == [f"Error: {tmp_path}: not a feature store"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_of_expected_errors(monkeypatch, tmp_path: Path, how: str) -> None:
    args, env = (("--debug",), None) if how == "flag" else ((), {E.DEBUG_ENV: "1"})
    res = run(monkeypatch, tmp_path, _reproduce_error, *args, env=env)
    assert res.exit_code == 1
    out = lines(res.output)
    assert out[0] == "Traceback (most recent call last):"
    assert out[-1].startswith("Error: table 3 needs group egtea")
    # a refusal a command made itself (click.ClickException from a StoreError) shows what it was made from
    from xmic.cache.errors import StoreError

    def store_error(_path):
        raise StoreError("not a feature store")

    res = run(monkeypatch, tmp_path, store_error, *args, env=env)
    out = lines(res.output)
    assert res.exit_code == 1 and out[0].startswith("Traceback") and out[-1] == "Error: not a feature store"
    assert any(re.search(r"StoreError: not a feature store$", line) for line in out)


def test_debug_env_off_values(monkeypatch) -> None:
    for value in ("", "0", "false", "no"):
        monkeypatch.setenv(E.DEBUG_ENV, value)
        assert not E.debug_enabled()
    monkeypatch.setenv(E.DEBUG_ENV, "yes")
    assert E.debug_enabled()
    monkeypatch.delenv(E.DEBUG_ENV)
    assert E.debug_enabled(True) and not E.debug_enabled()


def test_usage_errors_keep_click_exit_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["cache", "info", str(tmp_path / "missing")])
    assert res.exit_code == E.EXIT_USAGE == 2 and "does not exist" in res.output


def test_every_xmic_error_class_is_expected() -> None:
    """Every `class ...Error` of the package counts as expected (found by scanning the sources)."""
    import importlib

    package = Path(xmic.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        for name in re.findall(r"^class (\w+Error)\(", path.read_text(encoding="utf-8"), flags=re.M):
            module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
            found.append(getattr(importlib.import_module(module), name))
    assert len(found) >= 10
    for cls in found:
        try:
            exc = cls("message")
        except TypeError:  # errors with other constructors (e.g. VideoDecodeError(path, why))
            exc = cls.__new__(cls)
        assert E.is_expected(exc), cls


def test_os_errors_about_the_users_files_are_expected_wherever_raised() -> None:
    import errno

    assert E.is_expected(FileExistsError(17, "File exists", "x"))
    assert E.is_expected(OSError(errno.ENOSPC, "No space left on device", "x"))
    assert E.one_line(OSError(errno.ENOSPC, "No space left on device", "x")) == (
        "No space left on device: x (free some space, or choose another path)"
    )
    assert not E.is_expected(OSError(errno.EIO, "Input/output error"))
    assert not E.is_expected(KeyError("k"))


def test_extract_exit_code_matches_the_policy() -> None:
    from xmic.extract.extract_cli import EXIT_ROWS_FAILED

    assert EXIT_ROWS_FAILED == E.EXIT_ROWS_FAILED


def test_real_command_unexpected_error_end_to_end(monkeypatch, tmp_path: Path) -> None:
    """A real subcommand (`xmic splits`) whose internals fail unexpectedly: traceback + bug line, exit 70."""
    import xmic.evaluate.splits_cli as splits_cli

    vocab = tmp_path / "v.csv"
    vocab.write_text("id,key\n0,take\n")
    monkeypatch.setattr(splits_cli, "shared_classes", lambda *_a: [][0])  # IndexError inside the command
    monkeypatch.setattr(splits_cli, "read_vocab", lambda *_a: None)
    res = CliRunner().invoke(main, ["splits", "--vocab", str(vocab), "--other", str(vocab), "--kind", "verb"])
    assert res.exit_code == 70 and "IndexError" in res.output
    assert lines(res.output)[-1].startswith("Error: this is a bug in xmic")
    assert os.environ.get(E.DEBUG_ENV) in (None, "", "0")
