"""Re-opening an existing dataset group for writing: is it the same extraction (spec, segments, vocabulary), and
repairing the arrays written whole when the group was made (segment columns, vocabularies)."""

from __future__ import annotations

import numpy as np

from xmic.cache import guard, layout
from xmic.cache.backend import STR, Session
from xmic.cache.errors import StoreSpecError, spec_differences
from xmic.cache.schema import TARGETS, StoreSpec
from xmic.cache.segments import segments_difference


def read_by_chunk(s: Session, key: str, rows: int, fill: int) -> np.ndarray:
    """A 1-D array whole, or, when a chunk of it cannot be read back, chunk by chunk with ``fill`` there."""
    try:
        return s.read(key)
    except Exception:  # noqa: BLE001 - checksum or codec: read around the damaged chunk
        n = s.info(key).shape[0]
        out = np.full(n, fill, np.uint8)
        for lo in range(0, n, rows):
            try:
                out[lo : lo + rows] = s.read(key, slice(lo, lo + rows))
            except Exception:  # noqa: BLE001 - this chunk is the damaged one
                continue
        return out


def intact(s: Session, key: str) -> bool:
    """Whether array ``key`` (written whole) exists with every chunk, and reads back."""
    if not s.has(key):
        return False
    try:
        if s.missing_chunks(key, guard.expected_chunks(s, key)):
            return False
        s.read(key)
    except Exception:  # noqa: BLE001 - any failure means rewrite it
        return False
    return True


def _written_whole_keys(dataset: str, segs: dict[str, np.ndarray]) -> list[str]:
    return [layout.segments_key(dataset, c) for c in segs] + [layout.vocab_key(dataset, t) for t in TARGETS]


def _repair_written_whole(
    s: Session, spec: StoreSpec, segs: dict[str, np.ndarray], vocab: dict[str, np.ndarray]
) -> None:
    """Rewrite the segment columns and vocabularies of a group being resumed that are missing a chunk or fail to read
    back. They are written whole from the annotation files when the group is made, and the spec just compared
    records those files' sha256, so this run's copy is the same data."""
    ds, c = spec.dataset, spec.chunk_rows
    for col, arr in segs.items():
        key = layout.segments_key(ds, col)
        if not intact(s, key):
            s.create_array(key, (len(arr),), STR if arr.dtype.kind == "U" else str(arr.dtype), (c,), data=arr)
    for target, names in vocab.items():
        if not intact(s, layout.vocab_key(ds, target)):
            s.create_array(layout.vocab_key(ds, target), (len(names),), STR, data=names)


def check_resume(
    s: Session,
    spec: StoreSpec,
    segs: dict[str, np.ndarray],
    vocab: dict[str, np.ndarray],
    where: str,
    *,
    repair: bool = True,
) -> None:
    """StoreSpecError unless the group was made as ``spec``, ``segs`` and ``vocab`` would make it. With ``repair``,
    segment columns and vocabularies that are missing or damaged are rewritten first; without, they are not compared.
    """
    stored = layout.read_spec(s, spec.dataset, where)
    old_fields, new_fields = layout.spec_fields(stored, for_resume=True), layout.spec_fields(spec, for_resume=True)
    for name, ident in old_fields["encoders"].items():  # a store from before weight hashes: nothing to compare
        if not ident.get("weights_sha256") and name in new_fields["encoders"]:
            ident["weights_sha256"] = new_fields["encoders"][name].get("weights_sha256", "")
    lines = spec_differences(
        old_fields,
        new_fields,
        asked_label="the new spec has",
        exact_encoders=True,
    )
    comparable = repair or all(intact(s, k) for k in _written_whole_keys(spec.dataset, segs))
    if not lines and comparable:
        if repair:
            _repair_written_whole(s, spec, segs, vocab)
        old_segs = {
            col: s.read(layout.segments_key(spec.dataset, col))
            for col in s.children(layout.segments_key(spec.dataset))[1]
        }
        old_vocab = {t: s.read(layout.vocab_key(spec.dataset, t)) for t in TARGETS}
        lines = segments_difference(old_segs, segs, old_vocab, vocab)
    for name, enc in spec.encoders.items():
        old = stored.encoders.get(name)
        if old and old.weights_sha256 and enc.weights_sha256 and old.weights_sha256 != enc.weights_sha256:
            lines.append(
                f"weights of {name}: the store's came from {old.source} (sha256 {old.weights_sha256[:16]}…), this "
                f"run's from {enc.source} (sha256 {enc.weights_sha256[:16]}…); resuming would mix two models' features"
            )
    if lines:
        raise StoreSpecError(
            f"{where} already holds dataset {spec.dataset!r} made differently:\n  "
            + "\n  ".join(lines)
            + "\nuse another path or dataset name, or re-run with --overwrite to discard it"
        )
