"""Where the weights of a registry encoder are on this machine; nothing is ever downloaded.

Where the weights are looked for (first hit wins), for a registry entry whose model id is ``org/name``
(e.g. ``openai/clip-vit-base-patch16``) and registry name ``reg`` (e.g. ``clip-vit-b16``):

1. ``model_dir`` itself, when it holds ``config.json`` and weights (a single model in Hugging Face layout);
2. ``model_dir/name`` (``MODEL_DIR/clip-vit-base-patch16``), then ``model_dir/reg``, then ``model_dir/org/name``
   (a parent folder holding several models);
3. ``model_dir`` used as a Hugging Face hub cache (``model_dir/models--org--name/snapshots/<rev>``);
4. when ``model_dir`` is None, the same three steps under ``$XMIC_MODEL_DIR`` if that is set;
5. the local Hugging Face cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``; the snapshot named by ``refs/main``,
   else the newest snapshot with a ``config.json``.

Nothing is ever downloaded (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``, ``local_files_only=True``); when
no candidate holds the model, :class:`ModelNotFoundError` lists every place searched and how to fill one.
"""

from __future__ import annotations

import os
from pathlib import Path

from xmic.cache.schema import EncoderSpec
from xmic.registry import DEMO_MODEL_PREFIX

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


class ModelNotFoundError(FileNotFoundError):
    """The weights of a frozen encoder are not on this machine (nothing is downloaded at run time)."""


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, from the environment at call time."""
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return xdg / "huggingface" / "hub"


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in WEIGHT_FILES)


def snapshot_in_cache(model_id: str, cache: Path) -> Path | None:
    """The cached snapshot folder of ``model_id`` under hub cache ``cache`` (refs/main first), or None."""
    repo = cache / ("models--" + model_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        if _has_weights(snap):
            return snap
    snaps = [p for p in (repo / "snapshots").glob("*") if _has_weights(p)] if (repo / "snapshots").is_dir() else []
    return max(snaps, key=lambda p: p.stat().st_mtime) if snaps else None


def _candidates(spec: EncoderSpec, root: Path) -> list[Path]:
    short = spec.model_id.split("/")[-1]
    return [root, root / short, root / spec.name, root / spec.model_id]


def find_model_dir(spec: EncoderSpec, model_dir: str | Path | None = None) -> Path:
    """Resolve where the weights of ``spec`` are, following the module's lookup order.

    Raises:
        ModelNotFoundError: nothing found; the message lists the paths searched and how to provide the model.
    """
    searched: list[str] = []
    roots = [Path(model_dir).expanduser()] if model_dir is not None else []
    if model_dir is None and os.environ.get("XMIC_MODEL_DIR"):
        roots.append(Path(os.environ["XMIC_MODEL_DIR"]).expanduser())
    for root in roots:
        for cand in _candidates(spec, root):
            if _has_weights(cand):
                return cand
            searched.append(str(cand))
        snap = snapshot_in_cache(spec.model_id, root)
        if snap is not None:
            return snap
        searched.append(str(root / ("models--" + spec.model_id.replace("/", "--"))))
    cache = hf_cache_dir()
    snap = snapshot_in_cache(spec.model_id, cache)
    if snap is not None:
        return snap
    searched.append(str(cache / ("models--" + spec.model_id.replace("/", "--"))))
    short = spec.model_id.split("/")[-1]
    if spec.model_id.startswith(DEMO_MODEL_PREFIX):
        raise ModelNotFoundError(
            f"weights of the demo encoder {spec.name!r} not found; only `xmic demo` writes them (into "
            f"<out>/models/{spec.name}), nothing is downloaded. Searched:\n  " + "\n  ".join(searched) + "\n"
            "Pass --model-dir <demo out>/models, or run `xmic demo` first."
        )
    raise ModelNotFoundError(
        f"weights of encoder {spec.name!r} (model id {spec.model_id}) not found; nothing is downloaded at run time.\n"
        f"Searched (each needs config.json + model.safetensors):\n  " + "\n  ".join(searched) + "\n"
        f"Hugging Face cache: {cache} (set HF_HUB_CACHE or HF_HOME to move it).\n"
        f"To provide it: on a machine with internet run `hf download {spec.model_id}` "
        f"(or `huggingface-cli download {spec.model_id}`) and copy its cache folder "
        f"models--{spec.model_id.replace('/', '--')} into {cache}, or save the model to a folder and pass "
        f"--model-dir DIR (DIR itself, or DIR/{short} inside a parent folder)."
    )


def check_weight_files(folder: Path) -> None:
    """ModelNotFoundError naming the file when a ``*.safetensors`` file of ``folder`` does not parse (truncated,
    overwritten) — before transformers would fail on it with a message that does not name it."""
    from safetensors import safe_open

    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(f), "pt") as fh:
                fh.keys()
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for every defect
            raise ModelNotFoundError(
                f"{f} is not a readable safetensors file ({exc}); copy or download that model folder again"
            ) from None


def lavila_checkpoint_name(spec: EncoderSpec) -> str:
    """The file name of a LaViLa entry's released checkpoint (its model id is ``lavila/<file>``)."""
    return spec.model_id.split("/", 1)[-1]


def find_lavila_checkpoint(spec: EncoderSpec, model_dir: str | Path | None = None) -> Path:
    """Where the ``.pth`` checkpoint of a LaViLa registry entry is; nothing is downloaded.

    Looked for, in each root (``model_dir``, else ``$XMIC_MODEL_DIR``): the root itself when it is the file, then
    ``root/<file>``, ``root/<entry name>/<file>``, ``root/lavila/<file>``, and the only ``*.pth`` in
    ``root/<entry name>/`` (a renamed copy).

    Raises:
        ModelNotFoundError: not found; the message names the file, the places searched and where LaViLa's model
            zoo publishes it.
    """
    from xmic.registry import LAVILA_ZOO

    file = lavila_checkpoint_name(spec)
    roots = [Path(model_dir).expanduser()] if model_dir is not None else []
    if model_dir is None and os.environ.get("XMIC_MODEL_DIR"):
        roots.append(Path(os.environ["XMIC_MODEL_DIR"]).expanduser())
    searched: list[str] = []
    for root in roots:
        if root.is_file() and root.suffix == ".pth":
            return root
        for cand in (root / file, root / spec.name / file, root / "lavila" / file):
            if cand.is_file():
                return cand
            searched.append(str(cand))
        renamed = sorted((root / spec.name).glob("*.pth")) if (root / spec.name).is_dir() else []
        if len(renamed) == 1:
            return renamed[0]
    if spec.model_id.startswith(DEMO_MODEL_PREFIX):
        raise ModelNotFoundError(
            f"weights of the demo encoder {spec.name!r} not found; only `xmic demo` writes them (into "
            f"<out>/models/{spec.name}/{file}). Pass --model-dir <demo out>/models, or run `xmic demo` first."
        )
    where = "\n  ".join(searched) if searched else "(no --model-dir given and XMIC_MODEL_DIR is not set)"
    raise ModelNotFoundError(
        f"LaViLa checkpoint {file} of encoder {spec.name!r} not found; nothing is downloaded at run time.\n"
        f"Searched:\n  {where}\n"
        f"To provide it: download {LAVILA_ZOO}{file} (LaViLa's model zoo, docs/MODEL_ZOO.md, dual encoders "
        f"pre-trained on Ego4D) on a machine with internet and put it in MODEL_DIR (or MODEL_DIR/{spec.name}/), "
        f"then pass --model-dir MODEL_DIR. The text side needs the CLIP BPE vocabulary too: vocab.json + merges.txt "
        f"of any Hugging Face CLIP folder, or bpe_simple_vocab_16e6.txt.gz, beside the checkpoint."
    )
