"""`xmic paper-numbers`: write a CSV of the paper's table cells to type in, and check a filled-in one."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("paper-numbers")
def paper_numbers() -> None:
    """The paper's numbers as a CSV: the shipped ones to look at or correct, laid over by `reproduce --paper-numbers`."""


@paper_numbers.command("template")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--table", "tables", type=click.IntRange(1, 7), multiple=True, help="Only these tables (repeatable).")
@click.option("--force", is_flag=True, help="Overwrite OUT when it exists.")
def template_cmd(out: Path, tables: tuple[int, ...], force: bool) -> None:
    """Write every cell of the paper's tables as CSV lines, with the shipped number as the value, to check or edit."""
    from xmic.evaluate.paper_file import write_template

    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; it may hold typed-in numbers (use --force to overwrite)")
    count = write_template(out, tables or None)
    click.echo(
        f"wrote {count} cells to {out}, valued with the shipped paper numbers; edit the 'value' column (percent; "
        "blank = keep the shipped one), then run `xmic paper-numbers check`"
    )


@paper_numbers.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def check_cmd(path: Path) -> None:
    """Validate a filled-in file and print, per table, how many cells it fills."""
    from xmic.evaluate import paper_numbers as pn
    from xmic.evaluate.paper_file import PaperFileError, read_paper_file

    try:
        cells = read_paper_file(path)
    except PaperFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("| table | cells filled | of | differ from the shipped paper numbers |")
    click.echo("|---:|---:|---:|---:|")
    for number, table in sorted(pn.PAPER_TABLES.items()):
        mine = [cell for cell in cells if cell.table == number]
        differ = sum(table.value(cell.row, cell.column) != cell.value for cell in mine)
        click.echo(f"| {number} | {len(mine)} | {len(table.rows) * len(table.columns)} | {differ} |")
