"""The `xmic` command line: one click group; each command's heavy imports happen inside the command."""

from __future__ import annotations

import click

from xmic import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, prog_name="xmic")
def main() -> None:
    """X-MIC for egocentric video: extract frozen features once, then train and evaluate adapters from the cache."""


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
    main.add_command(report_cmd)
    bench.add_command(train_bench_cmd)
    bench.add_command(decode_bench_cmd)
    bench.add_command(extract_bench_cmd)
    bench.add_command(store_bench_cmd)


_register()

if __name__ == "__main__":
    main()
