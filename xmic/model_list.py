"""``xmic models``: every model xmic can use, where it is on this machine (path, sha256) or how to get it.

Encoders are looked for exactly as a run looks for them (:mod:`xmic.weights`: ``--model-dir``, else
``$XMIC_MODEL_DIR``, then the Hugging Face cache); MediaPipe's hand model as ``xmic extract`` looks for it
(:func:`xmic.extract.hands.factory.hand_model_candidates`). A folder found for a registry entry counts as that
model only when its ``config.json`` has the entry's architecture (widths, depth, patch size): a tiny test model
saved under ``clip-vit-b16`` is reported as a different model, never under the hub id. Nothing is downloaded and
no model is loaded; the sha256 of an encoder is the one a store records (``weights_sha256``: every weight file's
name and sha256), of a single file its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from xmic.registry import DEMO_MODEL_PREFIX, ENCODERS, LAVILA_ZOO

#: The architecture of each released model a registry entry names, as its ``config.json`` spells it (dotted keys
#: look inside ``vision_config``). The demo entries are checked by their width only.
EXPECTED_CONFIG: dict[str, dict[str, int]] = {
    "clip-vit-b16": {
        "projection_dim": 512,
        "vision_config.hidden_size": 768,
        "vision_config.num_hidden_layers": 12,
        "vision_config.patch_size": 16,
    },
    "clip-vit-l14": {
        "projection_dim": 768,
        "vision_config.hidden_size": 1024,
        "vision_config.num_hidden_layers": 24,
        "vision_config.patch_size": 14,
    },
    "dinov2-vits14": {"hidden_size": 384, "num_hidden_layers": 12, "patch_size": 14},
    "dinov2-vitb14": {"hidden_size": 768, "num_hidden_layers": 12, "patch_size": 14},
    "dinov2-vitl14": {"hidden_size": 1024, "num_hidden_layers": 24, "patch_size": 14},
}
#: 100DOH: xmic reads the detector's output, it never runs the detector.
DOH_REPO = "https://github.com/ddshan/hand_object_detector"
DOH_WEIGHTS = "faster_rcnn_1_8_132028.pth"
EPIC_HOA_REPO = "https://github.com/epic-kitchens/epic-kitchens-100-hand-object-bboxes"

FOUND, MISSING, OTHER, GIVEN = "found", "NOT FOUND", "OTHER MODEL", "per run"


@dataclass
class ModelEntry:
    """One model xmic can use and what this machine has of it.

    Attributes:
        name: Registry name (``clip-vit-b16``) or hand-box source (``mediapipe``).
        kind: ``"encoder"``, ``"demo encoder"`` or ``"hands"``.
        model: What it is: a hub id, a file name.
        status: :data:`FOUND`, :data:`MISSING`, :data:`OTHER` (a file or folder is there but it is another model)
            or :data:`GIVEN` (no fixed place: a flag names it for each run).
        path: Where it was found.
        sha256: Of the weights found (None: not hashed).
        notes: Why a found folder is another model, or what else to know.
        get: How to provide it.
    """

    name: str
    kind: str
    model: str
    status: str
    path: str | None = None
    sha256: str | None = None
    notes: list[str] = field(default_factory=list)
    get: str = ""


def config_mismatches(name: str, folder: Path) -> list[str]:
    """``"key: found X, expected Y"`` for each architecture field of ``folder/config.json`` that is not the
    released model's of registry entry ``name`` (demo entries: their width)."""
    from xmic.registry import get_encoder_spec

    spec = get_encoder_spec(name)
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"config.json unreadable ({exc})"]
    expected = EXPECTED_CONFIG.get(name)
    if expected is None:
        expected = {"hidden_size" if spec.family == "dinov2" else "projection_dim": spec.dim}
    out = []
    for key, want in expected.items():
        value: Any = cfg
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value != want:
            out.append(f"{key}: found {value}, expected {want}")
    return out


def _hf_get(spec: Any) -> str:
    from xmic.weights import hf_cache_dir

    if spec.model_id.startswith(DEMO_MODEL_PREFIX):
        return f"written by `xmic demo` into <out>/models/{spec.name}; pass --model-dir <out>/models"
    return (
        f"`hf download {spec.model_id}` (on a machine without internet: run it elsewhere and copy the cache "
        f"folder models--{spec.model_id.replace('/', '--')} into {hf_cache_dir()}), or save the model to "
        f"MODEL_DIR/{spec.model_id.split('/')[-1]} and pass --model-dir MODEL_DIR"
    )


def encoder_entry(name: str, model_dir: str | Path | None, sha256: bool = True) -> ModelEntry:
    """Where the weights of registry entry ``name`` are (the lookup of :mod:`xmic.weights`), checked against the
    released model's architecture."""
    from xmic.cache.hashing import file_sha256, weights_sha256
    from xmic.registry import get_encoder_spec
    from xmic.weights import ModelNotFoundError, find_lavila_checkpoint, find_model_dir, lavila_checkpoint_name

    spec = get_encoder_spec(name)
    demo = spec.model_id.startswith(DEMO_MODEL_PREFIX)
    kind = "demo encoder" if demo else "encoder"
    if spec.family == "lavila":
        file = lavila_checkpoint_name(spec)
        get = (
            f"written by `xmic demo` into <out>/models/{name}/{file}; pass --model-dir <out>/models"
            if demo
            else f"download {LAVILA_ZOO}{file} (LaViLa's model zoo) into MODEL_DIR or MODEL_DIR/{name}/ and pass "
            "--model-dir MODEL_DIR; the text side also needs vocab.json + merges.txt of a CLIP folder beside it"
        )
        entry = ModelEntry(name, kind, file, MISSING, get=get)
        try:
            path = find_lavila_checkpoint(spec, model_dir)
        except ModelNotFoundError:
            return entry
        entry.status, entry.path = FOUND, str(path)
        entry.sha256 = file_sha256(path) if sha256 else None
        if path.name != file:
            entry.notes.append(f"a renamed copy: the released file is {file}")
        return entry
    entry = ModelEntry(name, kind, spec.model_id, MISSING, get=_hf_get(spec))
    try:
        folder = find_model_dir(spec, model_dir)
    except ModelNotFoundError:
        return entry
    entry.path = str(folder)
    entry.sha256 = weights_sha256(folder) if sha256 else None
    wrong = config_mismatches(name, folder)
    if wrong:
        entry.status = OTHER
        entry.notes.append(f"this folder is not {spec.model_id} ({'; '.join(wrong)}); a run would refuse it")
    else:
        entry.status = FOUND
    return entry


def hand_entries(model_dir: str | Path | None, hand_model: str | None, sha256: bool = True) -> list[ModelEntry]:
    """MediaPipe's hand model (looked for as ``xmic extract`` does), YOLO weights and the 100DOH detector."""
    import importlib.util

    from xmic.cache.hashing import file_sha256
    from xmic.extract.hands.factory import (
        HAND_MODEL_ENV,
        HAND_MODEL_FILE,
        HAND_MODEL_PAGE,
        HAND_MODEL_URL,
        find_hand_model,
    )
    from xmic.extract.hands.mediapipe_hands import KNOWN_MODEL_SHA256

    get = (
        f"download {HAND_MODEL_URL} (float16; model page {HAND_MODEL_PAGE}) and pass --hand-model PATH, set "
        f"{HAND_MODEL_ENV}=PATH, or put it in the --model-dir folder"
    )
    mp = ModelEntry("mediapipe", "hands", HAND_MODEL_FILE, MISSING, get=get)
    path = Path(hand_model).expanduser() if hand_model else find_hand_model(model_dir)
    if path is not None and path.is_file():
        mp.status, mp.path = FOUND, str(path)
        if sha256:
            mp.sha256 = file_sha256(path)
            if mp.sha256 != KNOWN_MODEL_SHA256:
                mp.notes.append(f"not Google's float16 {HAND_MODEL_FILE} (sha256 {KNOWN_MODEL_SHA256}); used anyway")
    elif hand_model:
        mp.notes.append(f"--hand-model {hand_model} does not exist")
    if importlib.util.find_spec("mediapipe") is None:
        mp.notes.append("the mediapipe package is not installed: pip install 'xmic[hands]'")
    yolo = ModelEntry(
        "yolo",
        "hands",
        "YOLO weights (.pt)",
        GIVEN,
        get="any ultralytics detector trained on hands: pass --hands yolo --yolo-weights FILE",
    )
    if importlib.util.find_spec("ultralytics") is None:
        yolo.notes.append("the ultralytics package is not installed: pip install 'xmic[yolo]' (needs torchvision)")
    doh = ModelEntry(
        "hoa",
        "hands",
        f"100DOH hand-object detector ({DOH_WEIGHTS})",
        GIVEN,
        notes=["xmic reads the detector's per-video pickles (--hands hoa --hoa-dir DIR); it never runs the detector"],
        get=(
            f"EPIC-KITCHENS-100: its released detections ({EPIC_HOA_REPO}); Ego4D, EGTEA: run {DOH_REPO} with "
            f"{DOH_WEIGHTS} on the frames and pack its output with `python -m xmic.extract.hands.pack_100doh` "
            "(docs/models.md)"
        ),
    )
    return [mp, yolo, doh]


def list_models(
    model_dir: str | Path | None = None, hand_model: str | None = None, sha256: bool = True
) -> list[ModelEntry]:
    """Every registry encoder (real ones first, then the demo's) and every hand-box model."""
    names = sorted(ENCODERS, key=lambda n: (ENCODERS[n].model_id.startswith(DEMO_MODEL_PREFIX), n))
    return [encoder_entry(n, model_dir, sha256) for n in names] + hand_entries(model_dir, hand_model, sha256)


def where_lines(model_dir: str | Path | None) -> list[str]:
    """The places looked in, in order, as the header of ``xmic models`` says them."""
    from xmic.weights import hf_cache_dir

    roots = [f"--model-dir {model_dir}"] if model_dir is not None else []
    if model_dir is None and os.environ.get("XMIC_MODEL_DIR"):
        roots.append(f"$XMIC_MODEL_DIR {os.environ['XMIC_MODEL_DIR']}")
    if not roots:
        roots.append("no --model-dir given, $XMIC_MODEL_DIR not set")
    return [f"looked in: {'; '.join(roots)}; then the Hugging Face cache {hf_cache_dir()}"]


def entry_lines(e: ModelEntry) -> list[str]:
    """One heading line per model, then what was found or how to get it."""
    out = [f"{e.name:<15} {e.status:<11} {e.model}"]
    if e.path:
        out.append(f"    path:   {e.path}")
    if e.sha256:
        out.append(f"    sha256: {e.sha256}")
    out += [f"    note:   {n}" for n in e.notes]
    if e.status != FOUND and e.get:
        out.append(f"    get:    {e.get}")
    return out


@click.command("models")
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of models (as for extract/predict); default $XMIC_MODEL_DIR, then the Hugging Face cache.",
)
@click.option("--hand-model", default=None, help="A MediaPipe hand_landmarker.task to check (as --hand-model).")
@click.option("--no-sha256", "no_sha256", is_flag=True, help="Do not hash the weights found (faster on large files).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models_cmd(model_dir: Path | None, hand_model: str | None, no_sha256: bool, as_json: bool) -> None:
    """List every model xmic can use: where it is on this machine (path, sha256) or how to get it.

    Nothing is downloaded and no model is loaded. Status: found; NOT FOUND; OTHER MODEL (a folder is there under
    the model's name, but its config.json is another architecture, e.g. a tiny test model); per run (a flag
    names the file each time).
    """
    entries = list_models(model_dir, hand_model, sha256=not no_sha256)
    if as_json:
        click.echo(json.dumps([asdict(e) for e in entries], indent=2))
        return
    lines = where_lines(model_dir)
    for title, kinds in (("encoders", ("encoder",)), ("demo encoders", ("demo encoder",)), ("hand boxes", ("hands",))):
        lines += ["", f"{title}:"]
        for e in entries:
            if e.kind in kinds:
                lines += ["  " + ln for ln in entry_lines(e)]
    click.echo("\n".join(lines))
