"""Read, check, load and write LaViLa dual-encoder checkpoints.

The released files (e.g. ``clip_openai_timesformer_large.narrator_rephraser.ep_0003.md5sum_c89337.pth``) are
``torch.save`` dicts ``{"state_dict": {"module.<key>": tensor}, "args": argparse.Namespace, "epoch", "best_acc1",
...}`` written from DistributedDataParallel. They are read with ``weights_only=True``; only ``argparse.Namespace`` and
numpy scalars are allowed as extra globals, nothing executes from the file.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from xmic.lavila.model import LAVILA_CONFIGS, LavilaConfig, LavilaDualEncoder, config_from_state_dict

MODULE_PREFIX = "module."
TEMPORAL_KEY = "visual.temporal_embed"
SHOWN_KEYS = 5
LAVILA_MODEL_NAMES = {"tsf-l14": "CLIP_OPENAI_TIMESFORMER_LARGE", "tsf-b16": "CLIP_OPENAI_TIMESFORMER_BASE"}


class LavilaCheckpointError(ValueError):
    """A file is not a LaViLa dual-encoder checkpoint, or its tensors do not fit the model asked for."""


def _allowed_globals() -> list[Callable[..., Any] | tuple[Callable[..., Any], str]]:
    """Globals a LaViLa checkpoint may name besides tensors: its argparse args and numpy scalars (e.g. best_acc1)."""
    allowed: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [argparse.Namespace]
    try:
        import numpy as np
    except ImportError:
        return allowed
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed += [np.dtype, (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]
    allowed += [type(np.dtype(code)) for code in "?" + np.typecodes["AllInteger"] + np.typecodes["AllFloat"]]
    return allowed


#: Head counts a state dict cannot show; saved in ``args`` (LaViLa's released files have none: width // 64 there).
HEAD_ARGS = ("vision_heads", "text_heads")


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LavilaCheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc


def read_lavila_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a LaViLa checkpoint, keys without DistributedDataParallel's ``module.`` prefix
    (see :func:`read_lavila_checkpoint`)."""
    return read_lavila_checkpoint(path)[0]


def read_lavila_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], Any]:
    """The state dict of a LaViLa checkpoint, keys without DistributedDataParallel's ``module.`` prefix, and its
    ``args`` (an ``argparse.Namespace``; None when the file has none).

    Accepts LaViLa's ``{"state_dict": ..., "args": ...}`` layout or a bare state dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        LavilaCheckpointError: the file is not a torch checkpoint, or holds no mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LaViLa checkpoint not found: {path}")
    obj = _torch_load(path)
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping) or not state:
        raise LavilaCheckpointError(
            f"{path}: holds {type(obj).__name__}, not a LaViLa checkpoint (a dict with a 'state_dict' of tensors)"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise LavilaCheckpointError(f"{path}: the state dict has non-tensor entries, e.g. {bad[:SHOWN_KEYS]}")
    args = obj.get("args") if isinstance(obj, Mapping) else None
    return {k.removeprefix(MODULE_PREFIX): v for k, v in state.items()}, args


def resize_temporal_embed(embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Fit a (1, F_ckpt, W) temporal embedding to ``num_frames`` the way LaViLa's ``inflate_positional_embeds`` does.

    More frames: bilinear interpolation over time (``align_corners=False``, i.e. linear between frame centres, edges
    clamped). Fewer frames: the first ``num_frames`` rows are kept, which is what the X-MIC authors' 1-frame LaViLa
    features used.

    Returns:
        (1, num_frames, W) tensor, same dtype.
    """
    loaded = embed.shape[1]
    if num_frames == loaded:
        return embed
    if num_frames < loaded:
        return embed[:, :num_frames].clone()
    width = embed.shape[2]
    grown = F.interpolate(embed[None].float(), size=(num_frames, width), mode="bilinear", align_corners=False)
    return grown[0].to(embed.dtype)


def _describe(shape: torch.Size | tuple[int, ...]) -> str:
    return str(tuple(shape))


def _fit_problems(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable list of missing, unexpected and wrongly shaped keys (each list cut to the first few)."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    problems = []
    if missing:
        shown = ", ".join(f"{k} {_describe(expected[k].shape)}" for k in missing[:SHOWN_KEYS])
        problems.append(f"{len(missing)} missing key(s): {shown}")
    if unexpected:
        shown = ", ".join(f"{k} {_describe(state_dict[k].shape)}" for k in unexpected[:SHOWN_KEYS])
        problems.append(f"{len(unexpected)} unexpected key(s): {shown}")
    if wrong:
        shown = ", ".join(
            f"{k} checkpoint {_describe(state_dict[k].shape)} vs model {_describe(expected[k].shape)}"
            for k in wrong[:SHOWN_KEYS]
        )
        problems.append(f"{len(wrong)} shape mismatch(es): {shown}")
    return problems


def _meta_model(config: LavilaConfig) -> LavilaDualEncoder:
    with torch.device("meta"):
        return LavilaDualEncoder(config)


def load_lavila(
    path: str | Path, num_frames: int = 4, expected: LavilaConfig | None = None
) -> tuple[LavilaDualEncoder, LavilaConfig]:
    """Build a :class:`LavilaDualEncoder` from a LaViLa checkpoint and load it strictly.

    Args:
        path: A released LaViLa dual-encoder ``.pth`` (or one written by :func:`save_lavila_checkpoint`).
        num_frames: Frames per clip the model is built for; ``visual.temporal_embed`` is resized with
            :func:`resize_temporal_embed`.
        expected: Sizes the checkpoint must have (its ``num_frames`` is ignored); e.g. ``LAVILA_CONFIGS["tsf-l14"]``.
            Its head counts are used as given.

    Returns:
        ``(model, config)``: float32, eval mode, every parameter with ``requires_grad=False``, on the CPU.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        LavilaCheckpointError: unreadable file, or keys missing / unexpected / of another shape than the model's
            (the message names the file and the first offending keys with both shapes).
    """
    path = Path(path)
    state, args = read_lavila_checkpoint(path)
    try:
        inferred = config_from_state_dict(state, num_frames)
        heads = {k: int(getattr(args, k)) for k in HEAD_ARGS if isinstance(getattr(args, k, None), int)}
        inferred = dataclasses.replace(inferred, **heads)  # written by save_lavila_checkpoint for non-64 head widths
    except ValueError as exc:
        raise LavilaCheckpointError(f"{path}: {exc}") from exc
    config = inferred if expected is None else dataclasses.replace(expected, num_frames=num_frames)
    if TEMPORAL_KEY in state:
        state[TEMPORAL_KEY] = resize_temporal_embed(state[TEMPORAL_KEY], num_frames)
    problems = _fit_problems(state, _meta_model(config).state_dict())
    if problems:
        raise LavilaCheckpointError(f"{path} does not fit a LaViLa dual encoder {config}: " + "; ".join(problems))
    model = _meta_model(config)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True, assign=True)
    return model.eval().requires_grad_(False), config


def _model_name(config: LavilaConfig) -> str:
    for key, known in LAVILA_CONFIGS.items():
        if dataclasses.replace(known, num_frames=config.num_frames) == config:
            return LAVILA_MODEL_NAMES[key]
    return "XMIC_LAVILA_CUSTOM"


def save_lavila_checkpoint(model: LavilaDualEncoder, path: str | Path, *, module_prefix: bool = True) -> None:
    """Write ``model`` in the released checkpoints' layout (``state_dict`` with ``module.`` keys, ``args``, ``epoch``).

    ``args.model`` is LaViLa's model name when the sizes are those of a released model, else ``XMIC_LAVILA_CUSTOM``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = MODULE_PREFIX if module_prefix else ""
    config = model.config
    args = argparse.Namespace(
        model=_model_name(config),
        project_embed_dim=config.embed_dim,
        clip_length=config.num_frames,
        use_cls_token=False,
        **{k: getattr(config, k) for k in HEAD_ARGS},
    )
    state = {prefix + k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "args": args, "epoch": 0, "best_acc1": 0.0}, path)
