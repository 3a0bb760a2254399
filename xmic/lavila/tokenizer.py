"""Text tokenization and pixel normalisation of LaViLa's OpenAI-initialised dual encoders.

LaViLa tokenizes with OpenAI CLIP's byte-level BPE (``SimpleTokenizer`` over ``bpe_simple_vocab_16e6.txt.gz``):
cleaned, lower-cased text between ``<|startoftext|>`` and ``<|endoftext|>``, zero-padded to the context length. The
BPE itself is run by ``transformers.CLIPTokenizer``, which implements the same merges and pre-tokenisation regex.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from xmic.registry import LAVILA_MEAN, LAVILA_STD  # noqa: F401 - LaViLa's normalisation, re-exported here

BPE_GZ_NAME = "bpe_simple_vocab_16e6.txt.gz"
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
CLIP_MERGE_COUNT = 49152 - 256 - 2
PACKAGED_BPE = (("open_clip", BPE_GZ_NAME), ("clip", BPE_GZ_NAME), ("lavila", f"models/{BPE_GZ_NAME}"))

Merge = tuple[str, str]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (printable Latin-1 bytes map to themselves)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in table)
    for offset, byte in enumerate(shifted):
        table[byte] = chr(256 + offset)
    return table


def clean_text(text: str) -> str:
    """SimpleTokenizer's cleaning without ftfy: HTML entities decoded twice, whitespace collapsed, lower case."""
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip().lower()


def vocab_from_bpe_gz(path: Path) -> tuple[dict[str, int], list[Merge]]:
    """Vocabulary and merges of OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` as SimpleTokenizer builds them.

    The first line is a header; the next 48,894 lines are merges. Ids: the 256 byte characters, the same with
    ``</w>``, one token per merge in order, then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408 in all).
    """
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    merges = [_merge(line) for line in lines[1 : 1 + CLIP_MERGE_COUNT] if line.strip()]
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges] + [START_TOKEN, END_TOKEN]
    return {token: i for i, token in enumerate(tokens)}, merges


def _merge(line: str) -> Merge:
    left, right = line.split()
    return left, right


def vocab_from_hf_files(folder: Path) -> tuple[dict[str, int], list[Merge]]:
    """Vocabulary and merges from a Hugging Face CLIP tokenizer folder (``vocab.json`` + ``merges.txt``)."""
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [_merge(line) for line in lines if line.strip() and not line.startswith("#version")]
    return vocab, merges


def _clip_bpe(vocab: dict[str, int], merges: list[Merge]):
    """A ``transformers.CLIPTokenizer`` over ``vocab``/``merges`` (transformers >= 5 in memory, 4.x via files)."""
    from transformers import CLIPTokenizer

    try:
        return CLIPTokenizer(vocab=dict(vocab), merges=list(merges))
    except TypeError:
        with tempfile.TemporaryDirectory() as tmp:
            vocab_file, merges_file = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
            vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
            return CLIPTokenizer(str(vocab_file), str(merges_file))


class LavilaTokenizer:
    """CLIP BPE tokenization as LaViLa's ``SimpleTokenizer`` does it, into fixed-length id rows.

    Each row is ``<|startoftext|>``, the BPE ids of the cleaned, lower-cased text, ``<|endoftext|>``, then zeros.
    Too long texts keep their first ``context_length - 2`` BPE ids and still end with ``<|endoftext|>`` (LaViLa
    itself would cut the end token off; the dual encoder reads its feature there).
    """

    def __init__(self, vocab: dict[str, int], merges: Sequence[Merge], context_length: int = 77) -> None:
        missing = [t for t in (START_TOKEN, END_TOKEN) if t not in vocab]
        if missing:
            raise ValueError(f"the BPE vocabulary has no {missing}: not a CLIP vocabulary")
        if context_length < 2:
            raise ValueError(f"context_length must leave room for the start and end tokens, got {context_length}")
        self.context_length = context_length
        self.sot_id = vocab[START_TOKEN]
        self.eot_id = vocab[END_TOKEN]
        self.vocab_size = len(vocab)
        self._bpe = _clip_bpe(vocab, list(merges))

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without start/end tokens."""
        return list(self._bpe(clean_text(text), add_special_tokens=False)["input_ids"])

    def __call__(self, texts: Sequence[str] | str) -> torch.Tensor:
        """C texts -> (C, context_length) int64 ids (a single string counts as C = 1)."""
        if isinstance(texts, str):
            texts = [texts]
        rows = torch.zeros(len(texts), self.context_length, dtype=torch.int64)
        for i, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text)[: self.context_length - 2], self.eot_id]
            rows[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return rows


def _packaged_bpe(package: str, relative: str) -> Path | None:
    """The file ``relative`` inside an installed ``package``, located without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def find_bpe_vocab(search_dirs: Sequence[Path]) -> Path | None:
    """``bpe_simple_vocab_16e6.txt.gz`` from the first of ``search_dirs`` holding it, else the copy shipped inside an
    installed ``open_clip``, ``clip`` or ``lavila`` package, else None."""
    for folder in search_dirs:
        candidate = Path(folder) / BPE_GZ_NAME
        if candidate.is_file():
            return candidate
    for package, relative in PACKAGED_BPE:
        found = _packaged_bpe(package, relative)
        if found is not None:
            return found
    return None


def load_lavila_tokenizer(folder: Path, context_length: int = 77) -> LavilaTokenizer:
    """The LaViLa tokenizer from ``folder``: Hugging Face CLIP files (``vocab.json`` + ``merges.txt``) first, then
    ``bpe_simple_vocab_16e6.txt.gz`` there or in an installed package (:func:`find_bpe_vocab`).

    Raises:
        FileNotFoundError: no vocabulary found; the message says which files to put where.
    """
    folder = Path(folder)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        vocab, merges = vocab_from_hf_files(folder)
        return LavilaTokenizer(vocab, merges, context_length)
    gz = find_bpe_vocab([folder])
    if gz is not None:
        vocab, merges = vocab_from_bpe_gz(gz)
        return LavilaTokenizer(vocab, merges, context_length)
    raise FileNotFoundError(
        f"No CLIP BPE vocabulary for the LaViLa tokenizer in {folder}. Put vocab.json and merges.txt there (copy "
        f"them from any Hugging Face CLIP model folder, e.g. openai/clip-vit-base-patch16), or {BPE_GZ_NAME} "
        "(from LaViLa's repository, lavila/models/, or OpenAI CLIP's clip/); an installed open_clip's copy is "
        "also used when present."
    )
