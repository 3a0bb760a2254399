"""The `xmic` command line: one click group; each command's heavy imports happen inside the command."""

from __future__ import annotations

from typing import Any

import click

from xmic import __version__
from xmic import errors as E


class XmicGroup(click.Group):
    """The top-level group: every command's errors go through one policy (see xmic/errors.py).

    Expected errors -> `Error: <message>`, exit 1; Ctrl-C -> one line, exit 130; anything else -> the traceback
    and a line saying it is a bug, exit 70. click's own exits (usage errors: 2; a command's own status, such as
    `xmic extract`'s 3) pass through unchanged.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as exc:
            # a command's own one-line refusal; with --debug, show what it was made from
            cause = exc.__cause__ or exc.__context__
            if cause is not None and E.debug_enabled(bool(ctx.params.get("debug"))):
                click.echo(E.format_traceback(cause), err=True)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("", err=True)
            raise _Exit(
                "interrupted (Ctrl-C); whatever was written so far is kept; re-running the same command resumes "
                "where it can",
                E.EXIT_INTERRUPTED,
            ) from None
        except Exception as exc:
            debug = E.debug_enabled(bool(ctx.params.get("debug")))
            if E.is_expected(exc):
                if debug:
                    click.echo(E.format_traceback(exc), err=True)
                raise click.ClickException(E.one_line(exc)) from None
            click.echo(E.format_traceback(exc), err=True)
            raise _Exit(E.bug_line(__version__), E.EXIT_BUG) from None


class _Exit(click.ClickException):
    """A one-line error with its own exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@click.group(cls=XmicGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, prog_name="xmic")
@click.option(
    "--debug",
    is_flag=True,
    help="Print the traceback of expected errors too (also: XMIC_DEBUG=1).",
)
def main(debug: bool) -> None:
    """X-MIC for egocentric video: extract frozen features once, then train and evaluate adapters from the cache.

    \b
    Exit status: 0 done; 1 an expected error (one line: what, where, what to do); 2 a bad option or argument;
    3 `xmic extract` rows failed without --skip-bad; 70 a bug (traceback shown); 130 interrupted (Ctrl-C).
    """


@main.group("bench")
def bench() -> None:
    """Speed measurements, as ratios against a reference path measured in the same run."""


def _register() -> None:
    from xmic.adapt.train_cli import evaluate_cmd, train_cmd
    from xmic.bench.decode import decode_bench_cmd
    from xmic.bench.extract import extract_bench_cmd
    from xmic.bench.store import store_bench_cmd
    from xmic.bench.train import train_bench_cmd
    from xmic.cache.cli import cache
    from xmic.demo.cli import demo_cmd
    from xmic.evaluate.paper_cli import paper_numbers
    from xmic.evaluate.reproduce_cli import reproduce_cmd
    from xmic.evaluate.splits_cli import splits
    from xmic.extract.extract_cli import extract
    from xmic.model_list import models_cmd
    from xmic.predict import predict_cmd
    from xmic.report.cli import report_cmd
    from xmic.synth.cli import synth

    main.add_command(extract)
    main.add_command(train_cmd)
    main.add_command(evaluate_cmd)
    main.add_command(splits)
    main.add_command(cache)
    main.add_command(synth)
    main.add_command(reproduce_cmd)
    main.add_command(paper_numbers)
    main.add_command(demo_cmd)
    main.add_command(predict_cmd)
    main.add_command(models_cmd)
    main.add_command(report_cmd)
    bench.add_command(train_bench_cmd)
    bench.add_command(decode_bench_cmd)
    bench.add_command(extract_bench_cmd)
    bench.add_command(store_bench_cmd)


_register()

if __name__ == "__main__":
    main()
