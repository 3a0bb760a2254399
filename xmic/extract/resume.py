"""What a resumed extraction must share with the store it resumes: every option that changes what is stored.

Every field of :class:`~xmic.extract.runner.ExtractConfig` is declared here once, either in :data:`STORED_FIELDS`
(it changes what a chunk holds: compared on resume) or in :data:`RUN_FIELDS` (how this process runs, or checked
elsewhere: the annotation files by their sha256, the encoders by their weights' sha256, the segment table row by
row); ``tests/test_store_guards.py`` fails when a field is in neither, so a new option cannot be forgotten. Every
hand-box option of the chosen provider (:data:`xmic.extract.hands.factory.HAND_OPTIONS`, defaults filled in) is
compared too, except those in :data:`RUN_HAND_OPTIONS`, and so is the identity of the files the hand-box options
name (:func:`path_fingerprint`). The store records these values (``config["stored_options"]``); a resume whose
values differ is refused with one line naming each option, the stored value and the given one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from xmic.cache.errors import StoreSpecError

#: ExtractConfig fields that change what is stored.
STORED_FIELDS = (
    "dataset",
    "splits",
    "encoder",
    "second_encoder",
    "extra_encoders",
    "hands",
    "num_frames",
    "bins",
    "center_sec",
    "media",
    "egtea_split",
    "decode_size",
    "frames_cache",
    "frames_quality",
)
#: ExtractConfig fields that do not (or that other checks cover); ``hand_options`` is compared option by option.
RUN_FIELDS = (
    "root",
    "cache",
    "model_dir",
    "hand_options",
    "workers",
    "prefetch",
    "rank",
    "world_size",
    "fmt",
    "annotations_dir",
    "skip_bad",
    "device",
    "batch_size",
    "chunk_rows",
    "piece_rows",
    "overwrite",
    "dry_run",
    "progress",
    "ignore_lock",
)
#: Hand-box options that change how the provider runs, not the boxes.
RUN_HAND_OPTIONS = ("yolo_device", "yolo_batch")
#: The flag of a field whose name is not its flag's.
FLAGS = {"splits": "--split", "num_frames": "--frames", "extra_encoders": "--extra-encoder"}
#: Where the record lives in the store's config.
RECORD_KEY = "stored_options"
#: Files up to this size are hashed whole; larger ones by size and their first and last MiB.
HASH_WHOLE_BYTES = 16 << 20
_EDGE = 1 << 20


def flag(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def stored_options(config: Any) -> dict[str, Any]:
    """``{flag: value}`` of every option of ``config`` that changes what is stored (JSON values)."""
    from xmic.extract.hands.factory import HAND_OPTIONS

    record = config.as_record()
    out = {flag(name): record[name] for name in STORED_FIELDS}
    given = {k: v for k, v in (config.hand_options or {}).items() if v is not None}
    for opt in HAND_OPTIONS:
        if config.hands not in opt.providers or opt.name in RUN_HAND_OPTIONS:
            continue
        value = given.get(opt.name, opt.default)
        out[opt.flag] = _plain(value)
        if value is not None and opt.metavar in ("DIR", "PATH") and Path(str(value)).exists():
            out[f"{opt.flag} content"] = path_fingerprint(Path(str(value)))
    return out


def path_fingerprint(path: Path) -> str:
    """sha256 over a file's bytes (or, above :data:`HASH_WHOLE_BYTES`, its size and first and last MiB), or over
    every file of a folder: its relative name and that file's fingerprint, in name order."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        h.update(_file_digest(f))
    return h.hexdigest()


def _file_digest(path: Path) -> bytes:
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        if size <= HASH_WHOLE_BYTES:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(fh.read(_EDGE))
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))
    return h.digest()


def check_resume(stored_config: dict[str, Any], given: dict[str, Any], where: str) -> None:
    """Raise StoreSpecError (one line) when an option recorded in ``stored_config`` differs from ``given``.

    A store written before the record existed has only its config's plain fields; those are compared.
    """
    stored = stored_config.get(RECORD_KEY)
    if stored is None:  # an older store: what its config recorded of the same fields
        stored = {flag(k): stored_config[k] for k in STORED_FIELDS if k in stored_config}
        given = {k: v for k, v in given.items() if k in stored}
    diffs = [
        f"{name}: store has {_show(stored.get(name))}, given {_show(value)}"
        for name, value in given.items()
        if _plain(stored.get(name)) != _plain(value)
    ]
    diffs += [f"{name}: store has {_show(stored[name])}, given none" for name in stored if name not in given]
    if diffs:
        raise StoreSpecError(
            f"{where} was extracted with other options ({'; '.join(diffs)}); resuming would mix both in one store: "
            "re-run with the store's options, or pass --overwrite to discard the group, or use another --cache"
        )


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _show(value: Any) -> str:
    return json.dumps(value, default=str)
