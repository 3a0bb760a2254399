"""Contrastive (InfoNCE) pretraining of the demo's tiny CLIP on third-person image–caption pairs.

A random-weight CLIP gives zero-shot accuracy at chance and makes every comparison in the demo noise. A minute
of CLIP-style training on :mod:`xmic.demo.webdata` pairs gives it what the real CLIP brings to the paper: a
joint image–text space that names objects and (weakly) motions in plain third-person photos, and that
transfers only partly to egocentric frames. The weights are saved back with ``save_pretrained``, so the model
loads like any other checkpoint.

Loss: image -> text cross-entropy over the distinct caption contents of the batch, plus text -> image with
every image of the same content as a positive (a batch holds repeats of a class, which plain CLIP would count
as negatives).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xmic.demo.webdata import CaptionPairs, render_pairs

Echo = Callable[[str], None]


@dataclass
class PretrainConfig:
    """How long and on what the tiny CLIP is pretrained.

    Attributes:
        steps: Optimiser steps (fixed, so that a seed gives the same weights on any machine).
        batch_size: Image–caption pairs per step.
        lr: Peak AdamW learning rate (linear warm-up, cosine decay).
        weight_decay: AdamW weight decay.
        warmup: Warm-up steps.
        pairs: Rendered pairs in the training pool.
        holdout: Extra pairs rendered with another seed to measure zero-shot accuracy after training.
        image_px: Side of the rendered images (the encoder's own preprocessing resizes them).
        logit_scale: Fixed multiplier of the cosine similarities. 20, not the 100 the real CLIP ends at: at 100
            the tiny model separates its classes by a hundredth of a cosine and its class names come out nearly
            parallel in text space (the ten verbs: mean pairwise cosine 0.97, max 1.00, also when the scale rises
            from 20 to 100 over the steps, ``logit_scale_start``); at 20 they are 0.93 / 0.99 (200 steps on the
            current pairs). The scale is saved with the weights, extraction records it in the store, and every
            method classifies the tiny CLIP's features at it (:func:`xmic.adapt.base.encoder_logit_scale`).
        logit_scale_start: When set, the scale rises geometrically from this value to ``logit_scale`` over the
            steps (real CLIP learns its scale up from 1 / 0.07); None keeps ``logit_scale`` throughout.
        seed: Seed of the pairs, the sampling and the optimiser.
        threads: Torch CPU threads while pretraining (fixed, not the machine's core count: the weights depend on
            how the kernels split their sums, and so do all the demo's numbers).
    """

    steps: int = 200
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 40
    pairs: int = 5000
    holdout: int = 600
    image_px: int = 64
    logit_scale: float = 20.0
    logit_scale_start: float | None = None
    seed: int = 0
    threads: int = 2


@dataclass
class PretrainReport:
    """What pretraining did: the loss curve (every 25 steps), held-out zero-shot accuracy and wall time."""

    config: dict[str, Any]
    losses: list[float] = field(default_factory=list)
    holdout_noun_top1: float = float("nan")
    holdout_verb_top1: float = float("nan")
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _content(caption: str, cls: str, kind: str) -> str:
    """What a caption says, without its template: the class, "verb noun" for a verb caption naming the object, or
    the whole caption of a state image ("far red cube in halves")."""
    if kind == "state":
        return caption
    if kind == "verb" and len(caption.split()) >= 3 and caption.split()[-3] == cls:
        return " ".join(caption.split()[-3:])
    return cls


def scale_at(config: PretrainConfig, step: int) -> float:
    """The logit scale of ``step``: ``logit_scale`` throughout, or from ``logit_scale_start`` geometrically up to
    ``logit_scale`` over the steps when a start is given (real CLIP learns its scale up from 1 / 0.07 to 100)."""
    if config.logit_scale_start is None or config.steps <= 1:
        return float(config.logit_scale)
    w = min(step / (config.steps - 1), 1.0)
    return float(math.exp((1 - w) * math.log(config.logit_scale_start) + w * math.log(config.logit_scale)))


def _image_features(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """``(B, 3, S, S)`` -> ``(B, D)`` l2-normalised image embeddings."""
    return F.normalize(model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output), dim=-1)


def _text_features(model: Any, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    """Tokenised captions -> ``(C, D)`` l2-normalised text embeddings."""
    out = model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
    return F.normalize(model.text_projection(out.pooler_output), dim=-1)


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with several images per caption.

    Args:
        img: ``(B, D)`` normalised image embeddings.
        txt: ``(U, D)`` normalised embeddings of the batch's distinct caption contents.
        target: ``(B,)`` index into ``txt`` of each image's caption.
        scale: Logit scale (a multiplier, not its log).

    Returns:
        Scalar loss: mean of image -> text cross-entropy and text -> image multi-positive NLL.
    """
    logits = scale * img @ txt.T  # (B, U)
    i2t = F.cross_entropy(logits, target)
    positive = F.one_hot(target, txt.shape[0]).T.bool()  # (U, B)
    log_p = logits.T.log_softmax(dim=1)  # (U, B): each caption over the images
    t2i = -torch.logsumexp(log_p.masked_fill(~positive, -math.inf), dim=1).mean()
    return (i2t + t2i) / 2


class _Pool:
    """Preprocessed pixels and caption contents of a set of pairs."""

    def __init__(self, pairs: CaptionPairs, spec: Any) -> None:
        from xmic.extract.preprocess import preprocess

        self.pixels = torch.cat(
            [preprocess(pairs.images[i : i + 512], spec, "cpu") for i in range(0, len(pairs.images), 512)]
        )
        self.captions = pairs.captions
        self.contents = [
            _content(c, k, kd) for c, k, kd in zip(pairs.captions, pairs.classes, pairs.kinds, strict=True)
        ]
        self.classes, self.kinds = pairs.classes, pairs.kinds


def _batch_text(pool: _Pool, idx: np.ndarray, tokenizer: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tokens of one caption per distinct content in ``idx`` (the first one seen) and each image's index."""
    first: dict[str, int] = {}
    for i in idx.tolist():
        first.setdefault(pool.contents[i], i)
    order = list(first)
    tokens = tokenizer([pool.captions[first[c]] for c in order], padding=True, return_tensors="pt")
    target = torch.tensor([order.index(pool.contents[i]) for i in idx.tolist()])
    return tokens, target


@torch.no_grad()
def zero_shot_top1(model: Any, tokenizer: Any, pool: _Pool, kind: str, names: list[str]) -> float:
    """Top-1 of classifying ``pool``'s images of ``kind`` among ``names`` (bare class names as prompts)."""
    rows = [i for i, k in enumerate(pool.kinds) if k == kind]
    if not rows:
        return float("nan")
    txt = _text_features(model, tokenizer(names, padding=True, return_tensors="pt"))
    img = _image_features(model, pool.pixels[rows])
    pred = (img @ txt.T).argmax(dim=1)
    truth = torch.tensor([names.index(pool.classes[i]) for i in rows])
    return float((pred == truth).float().mean())


def pretrain_clip(
    model_dir: str | Path, config: PretrainConfig | None = None, *, progress: bool = True, echo: Echo = print
) -> PretrainReport:
    """Pretrain the CLIP saved in ``model_dir`` on rendered pairs and save it back in place.

    Args:
        model_dir: A CLIP folder in Hugging Face layout (e.g. from :func:`xmic.demo.tiny_models.make_tiny_clip`).
        config: Steps, batch, learning rate, pairs.
        progress: Show a progress bar.
        echo: Where the summary line goes.

    Returns:
        The :class:`PretrainReport`.
    """
    config = config or PretrainConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _pretrain(model_dir, config, progress, echo)
    finally:
        torch.set_num_threads(threads)


def _pretrain(model_dir: str | Path, config: PretrainConfig, progress: bool, echo: Echo) -> PretrainReport:
    from tqdm.auto import tqdm

    from xmic.demo.webdata import all_nouns, all_verbs
    from xmic.extract.encoders import load_encoder
    from xmic.registry import DEMO_CLIP

    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    enc = load_encoder(DEMO_CLIP, model_dir, "cpu")
    model, tokenizer = enc.model, enc.tokenizer
    train_pool = _Pool(render_pairs(config.pairs, size=config.image_px, seed=config.seed), enc.spec)
    model.train().requires_grad_(True)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(config.logit_scale))
    model.logit_scale.requires_grad_(False)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - config.warmup) / max(1, config.steps - config.warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng([config.seed, 11])
    report = PretrainReport(config=asdict(config))
    running = []
    for step in tqdm(range(config.steps), desc="pretrain tiny CLIP", unit="step", disable=not progress):
        idx = rng.choice(len(train_pool.captions), size=min(config.batch_size, len(train_pool.captions)), replace=False)
        tokens, target = _batch_text(train_pool, idx, tokenizer)
        scale = torch.tensor(scale_at(config, step))
        loss = contrastive_loss(
            _image_features(model, train_pool.pixels[idx]), _text_features(model, tokens), target, scale
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 25 == 0 or step + 1 == config.steps:
            report.losses.append(float(np.mean(running)))
            running = []
    model.eval().requires_grad_(False)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(config.logit_scale))  # the scale it ends at, saved with the weights
    model.save_pretrained(model_dir, safe_serialization=True)
    holdout = _Pool(render_pairs(config.holdout, size=config.image_px, seed=config.seed + 1000), enc.spec)
    report.holdout_noun_top1 = zero_shot_top1(model, tokenizer, holdout, "noun", all_nouns())
    report.holdout_verb_top1 = zero_shot_top1(model, tokenizer, holdout, "verb", all_verbs())
    report.seconds = time.perf_counter() - t0
    echo(
        f"pretrained tiny CLIP: {config.steps} steps, loss {report.losses[0]:.2f} -> {report.losses[-1]:.2f}; "
        f"zero-shot on held-out third-person pairs: nouns {100 * report.holdout_noun_top1:.1f}% "
        f"(chance {100 / len(all_nouns()):.1f}%), verbs {100 * report.holdout_verb_top1:.1f}% "
        f"(chance {100 / len(all_verbs()):.1f}%)"
    )
    return report
