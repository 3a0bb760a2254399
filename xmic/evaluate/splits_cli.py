"""``xmic splits``: list the classes of one vocabulary that are shared with (or novel to) another."""

from __future__ import annotations

from pathlib import Path

import click

from xmic.evaluate.splits import novel_classes, shared_classes
from xmic.evaluate.vocab_files import read_vocab

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("splits")
@click.option(
    "--vocab",
    "vocab_path",
    type=_FILE,
    required=True,
    help="Vocabulary to split: EPIC class .csv, Ego4D fho_lta_taxonomy.json or EGTEA *_idx.txt.",
)
@click.option("--other", "other_path", type=_FILE, required=True, help="The vocabulary to compare with (same formats).")
@click.option("--kind", type=click.Choice(["noun", "verb"]), required=True, help="Nouns or verbs.")
@click.option("--novel", is_flag=True, help="List the classes of --vocab absent from --other instead.")
def splits(vocab_path: Path, other_path: Path, kind: str, novel: bool) -> None:
    """Print `id<TAB>raw name<TAB>prompt name` for each class of --vocab shared with --other.

    Classes are shared when their prompt names are equal after normalisation (the "exact" rule of the
    paper's Table 2); lines come in id order.
    """
    try:
        vocab = read_vocab(vocab_path, kind)  # type: ignore[arg-type]
        other = read_vocab(other_path, kind)  # type: ignore[arg-type]
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    chosen = set(novel_classes(vocab, other) if novel else shared_classes(vocab, other))
    for class_id, raw, prompt in zip(vocab.ids, vocab.raw, vocab.prompt, strict=True):
        if class_id in chosen:
            click.echo(f"{class_id}\t{raw}\t{prompt}")
