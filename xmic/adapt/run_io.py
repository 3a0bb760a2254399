"""The run folder: resolved config, checkpoint (safetensors), per-epoch metrics, the store's spec.

Loading a run never executes code from a file: weights are safetensors, everything else is JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xmic.adapt.base import CLIP_LOGIT_SCALE
from xmic.adapt.config import TrainConfig
from xmic.cache.hashing import file_sha256

CHECKPOINT = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
META = "run.json"
#: Submodules holding frozen weights loaded from the encoder's own directory; never saved in a run.
FROZEN_PREFIXES = ("text_encoder.",)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without the frozen encoders, contiguous and on the CPU."""
    return {
        k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)
    }


def save_run(run_dir: Path, model: nn.Module, cfg: TrainConfig, meta: dict[str, Any]) -> None:
    """Write checkpoint, config and metadata (vocabulary, encoders, store spec) into ``run_dir``."""
    from safetensors.torch import save

    run_dir.mkdir(parents=True, exist_ok=True)
    state = trainable_state(model)
    meta = dict(meta)
    if state:  # written as bytes, so it gets the same permissions (umask) as the run's other files
        (run_dir / CHECKPOINT).write_bytes(save(state))
        meta["checkpoint_sha256"] = file_sha256(run_dir / CHECKPOINT)
    cfg.save(run_dir / CONFIG)
    (run_dir / META).write_text(json.dumps(meta, indent=2, sort_keys=True))


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_run(
    run_dir: Path, device: str | torch.device = "cpu", model_dir: str | Path | None = None
) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the model of a run folder and load its weights; returns (model, config, meta).

    ``model_dir``: where to look for the frozen CLIP text tower of a CoOp / Co-CoOp / A5 run when given, or
    when the folder the run recorded is gone (runs copied to another machine); see :func:`text_weights`.
    """
    from xmic.adapt.factory import build_model

    run_dir = Path(run_dir)
    for name in (CONFIG, META):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir} is not an xmic run folder: {name} is missing")
    cfg = TrainConfig.load(run_dir / CONFIG)
    meta = json.loads((run_dir / META).read_text())
    cfg.text_model_dir = text_weights(run_dir, cfg, meta, model_dir)
    scale = meta.get("logit_scale", CLIP_LOGIT_SCALE)  # runs trained before the store recorded the model's own
    model = build_model(cfg, dim=meta["dim"], cond_dim=meta["cond_dim"], logit_scale=scale)
    ckpt = run_dir / CHECKPOINT
    if ckpt.exists():
        from safetensors.torch import load_file

        want = meta.get("checkpoint_sha256")
        if want and (got := file_sha256(ckpt)) != want:
            raise ValueError(
                f"{ckpt} is damaged or was replaced: its sha256 is {got}, the run recorded {want} in {run_dir / META}; "
                "train the run again (or restore the file)"
            )
        try:
            state = load_file(str(ckpt))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for every defect
            raise ValueError(f"{ckpt} is not a readable safetensors file ({exc}); train the run again") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(FROZEN_PREFIXES)]
        if missing or unexpected:
            raise ValueError(
                f"{ckpt} does not match the {cfg.method} model: missing {missing}, unexpected {unexpected}"
            )
    elif getattr(model, "trainable", True):
        raise FileNotFoundError(f"{ckpt} is missing: the run did not finish training")
    return model.to(device).eval(), cfg, meta


def text_weights(run_dir: Path, cfg: TrainConfig, meta: dict[str, Any], model_dir: str | Path | None) -> str | None:
    """The CLIP text-tower folder a prompt-learning run needs: the one it recorded while it still holds the
    weights and no ``model_dir`` is given, else the run's CLIP encoder looked up under ``model_dir`` (then
    ``XMIC_MODEL_DIR`` and the Hugging Face cache). Other methods: the recorded value, unused."""
    from xmic.adapt.baselines import TEXT_METHODS

    recorded = cfg.text_model_dir
    if cfg.method not in TEXT_METHODS:
        return recorded
    if model_dir is None and recorded and (Path(recorded) / "config.json").is_file():
        return recorded
    from xmic.cache.schema import StoreSpec
    from xmic.weights import ModelNotFoundError, find_model_dir

    encoder = StoreSpec.from_json(meta["store"]["spec"]).encoders[cfg.encoder]
    try:
        return str(find_model_dir(encoder, model_dir))
    except ModelNotFoundError as exc:
        raise FileNotFoundError(
            f"{run_dir}: this {cfg.method} run needs the frozen CLIP text tower of {encoder.model_id}, no longer at "
            f"{recorded}; give --model-dir (the folder of the weights the store was extracted with).\n{exc}"
        ) from None
