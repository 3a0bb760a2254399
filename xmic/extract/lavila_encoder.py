"""LaViLa's frozen dual encoder as a stage-one encoder: 4-frame clips of the store's slots, and its text tower.

A LaViLa entry (``clip_frames = F``, 4 for the released models) embeds clips, not frames. The slots of a segment
(``bins`` x ``per_bin`` candidates) are grouped as :func:`xmic.sampling.window_slots` says: clip ``w`` is one
candidate of ``F`` consecutive bins. Every slot receives the embedding of its clip, so the store keeps its
``(N, T, D)`` shape and stage two samples it like any other encoder; at evaluation the 16 bin-centre slots hold
LaViLa's own multi-clip view (4 clips x 4 frames over 16 uniformly sampled frames), each clip 4 times.
The hand view embeds clips of hand crops (each frame cropped to its own box; the full frame where it has none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xmic.cache.hashing import file_sha256
from xmic.cache.schema import EncoderSpec
from xmic.extract.preprocess import preprocess, preprocess_crops
from xmic.sampling import slot_windows, window_slots

log = logging.getLogger(__name__)
#: Registry entries of LaViLa's released models -> their sizes in :data:`xmic.lavila.model.LAVILA_CONFIGS` (a file of
#: other sizes is refused); the demo's tiny entry takes the sizes its checkpoint has.
RELEASED_SIZES = {"lavila-tsf-l14": "tsf-l14", "lavila-tsf-b16": "tsf-b16"}


class LavilaEncoder:
    """LaViLa's visual (TimeSformer) and text towers, frozen, on one device.

    Attributes:
        model: :class:`xmic.lavila.model.LavilaDualEncoder` (eval, no gradients).
        device: Where it runs.
        batch_size: Clips per forward pass.
    """

    kind = "lavila"

    def __init__(self, model: Any, spec: EncoderSpec, tokenizer: Any, device: torch.device, batch_size: int) -> None:
        self.model = model
        self._spec = spec
        self._tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size

    @property
    def spec(self) -> EncoderSpec:
        return self._spec

    @property
    def dim(self) -> int:
        return self._spec.dim

    @property
    def clip_frames(self) -> int:
        return self._spec.clip_frames

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16)

    def encode_clips(self, pixels: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Embed normalised clips.

        Args:
            pixels: ``(B, F, 3, S, S)`` float, normalised with the spec's mean/std.

        Returns:
            ``(B, D)`` float32 on the CPU (visual CLS @ image projection, not normalised).
        """
        bs = batch_size or self.batch_size
        dtype = next(self.model.parameters()).dtype
        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(pixels), bs):
                clip = pixels[i : i + bs].to(self.device, dtype=dtype).permute(0, 2, 1, 3, 4)  # (b, 3, F, S, S)
                outs.append(self.model.encode_video(clip).float().cpu())
        return torch.cat(outs) if outs else torch.empty((0, self.dim))

    def encode_slots(
        self, frames: np.ndarray | torch.Tensor, boxes: np.ndarray | torch.Tensor | None, bins: int
    ) -> torch.Tensor:
        """Embed the clips of whole segments and give every slot its clip's embedding.

        Args:
            frames: uint8 ``(R, T, H, W, 3)``, the ``T = bins * per_bin`` slots of R segments in slot order.
            boxes: ``(R, T, 4)`` normalised xyxy hand boxes (NaN = the full frame), or None for full frames.
            bins: The store's bins (``T // bins`` candidates each).

        Returns:
            ``(R, T, D)`` float32 on the CPU.
        """
        r, t = frames.shape[:2]
        per_bin = t // bins
        clips = torch.from_numpy(window_slots(bins, per_bin, self.clip_frames))  # (W, F)
        owner = torch.from_numpy(slot_windows(bins, per_bin, self.clip_frames))  # (T,)
        flat = frames.reshape(r * t, *frames.shape[2:])
        out = torch.empty((r, t, self.dim))
        seg_per_pass = max(1, self.batch_size // max(1, len(clips)))
        for s in range(0, r, seg_per_pass):
            rows = slice(s * t, min(r, s + seg_per_pass) * t)
            if boxes is None:
                pix = preprocess(flat[rows], self._spec, self.device)
            else:
                pix = preprocess_crops(flat[rows], boxes.reshape(r * t, 4)[rows], self._spec, self.device)
            pix = pix.view(-1, t, *pix.shape[1:])  # (r_s, T, 3, S, S)
            emb = self.encode_clips(pix[:, clips.to(pix.device)].flatten(0, 1))  # (r_s * W, D)
            out[s : s + pix.shape[0]] = emb.view(pix.shape[0], len(clips), -1)[:, owner]
        return out

    def encode_texts(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Embed prompts with LaViLa's text tower: ``(C, D)`` float32 on the CPU, not normalised."""
        bs = batch_size or 256
        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(texts), bs):
                tokens = self._tokenizer(list(texts[i : i + bs])).to(self.device)
                outs.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(outs) if outs else torch.empty((0, self.dim))


def _tokenizer_dirs(checkpoint: Path, model_dir: str | Path | None) -> list[Path]:
    """Folders that may hold the CLIP BPE files for LaViLa's text tower: beside the checkpoint, the model folder,
    then the folder of a local Hugging Face CLIP (the same BPE vocabulary)."""
    from xmic.registry import get_encoder_spec
    from xmic.weights import ModelNotFoundError, find_model_dir

    dirs = [checkpoint.parent]
    if model_dir is not None and Path(model_dir).is_dir():
        dirs.append(Path(model_dir))
    for clip in ("clip-vit-b16", "clip-vit-l14", "demo-clip"):
        with contextlib.suppress(ModelNotFoundError):
            dirs.append(find_model_dir(get_encoder_spec(clip), model_dir))
    return dirs


def load_lavila_encoder(
    base: EncoderSpec,
    model_dir: str | Path | None,
    device: torch.device,
    dtype: torch.dtype | None,
    batch_size: int | None,
) -> LavilaEncoder:
    """Load the LaViLa registry entry ``base`` from its released checkpoint (see
    :func:`xmic.weights.find_lavila_checkpoint`) and the CLIP BPE vocabulary.

    Raises:
        ModelNotFoundError: the checkpoint or the BPE vocabulary is not on this machine.
        LavilaCheckpointError: the file's keys or shapes are not LaViLa's.
    """
    from xmic.lavila.checkpoint import load_lavila
    from xmic.lavila.model import LAVILA_CONFIGS
    from xmic.lavila.tokenizer import load_lavila_tokenizer
    from xmic.weights import ModelNotFoundError, find_lavila_checkpoint

    path = find_lavila_checkpoint(base, model_dir)
    expected = LAVILA_CONFIGS.get(RELEASED_SIZES.get(base.name, ""))
    model, config = load_lavila(path, num_frames=base.clip_frames, expected=expected)
    tokenizer = None
    errors = []
    for folder in _tokenizer_dirs(path, model_dir):
        try:
            tokenizer = load_lavila_tokenizer(folder, context_length=config.context_length)
            break
        except FileNotFoundError as exc:
            errors.append(str(exc).splitlines()[0])
    if tokenizer is None:
        raise ModelNotFoundError(
            f"no CLIP BPE vocabulary for LaViLa's text tower ({base.name}); put vocab.json + merges.txt (from any "
            f"Hugging Face CLIP folder, e.g. openai/clip-vit-base-patch16) or bpe_simple_vocab_16e6.txt.gz (LaViLa's "
            f"lavila/models/) beside {path}. Tried: " + "; ".join(errors)
        )
    scale = float(model.logit_scale.detach().float().exp())
    model = model.to(device=device, dtype=dtype or torch.float32).eval().requires_grad_(False)
    spec = dataclasses.replace(
        base,
        dim=int(config.embed_dim),
        image_size=int(config.image_size),
        resize=int(config.image_size),
        source=str(path),
        weights_sha256=file_sha256(path),
        logit_scale=scale,
    )
    log.info("loaded %s from %s (D=%d, %d-frame clips, %s)", base.name, path, spec.dim, spec.clip_frames, device)
    return LavilaEncoder(model, spec, tokenizer, device, batch_size or (128 if device.type == "cuda" else 16))
