"""Train one method from the cache: whole arrays on the device, batches indexed there, no DataLoader."""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from xmic import __version__
from xmic.adapt.base import ClassText, encoder_logit_scale
from xmic.adapt.config import TrainConfig
from xmic.adapt.data import FeatureBank, frame_slots, load_bank
from xmic.adapt.factory import build_model
from xmic.adapt.run_io import append_metrics, save_run
from xmic.cache.errors import StoreSpecError


class NonFiniteLossError(ValueError):
    """The training loss became NaN/inf; the run stops before saving weights that are no longer finite."""


@dataclass
class TrainResult:
    run_dir: Path | None
    model: torch.nn.Module
    metrics: list[dict[str, Any]]
    meta: dict[str, Any]


def resolve_encoders(cfg: TrainConfig, spec) -> tuple[str, str]:
    """The CLIP encoder (classified view + text) and the conditioning encoder, checked against the store."""
    from xmic.adapt.baselines import TEXT_METHODS
    from xmic.registry import TEXT_FAMILIES, text_encoders

    clip = text_encoders(spec.encoders)
    encoder = cfg.encoder or (clip[0] if clip else None)
    if encoder is None:
        raise StoreSpecError(f"the store holds no CLIP encoder (it has {', '.join(spec.encoders)}); X-MIC needs one")
    second = cfg.second_encoder or encoder
    for name in (encoder, second):
        if name not in spec.encoders:
            raise StoreSpecError(
                f"the run asks for encoder {name!r} but the store {spec.dataset!r} was extracted with "
                f"{', '.join(spec.encoders)}; re-run `xmic extract` with --encoder/--second-encoder {name}"
            )
    family = spec.encoders[encoder].family
    if family not in TEXT_FAMILIES:
        raise StoreSpecError(
            f"--encoder must be an encoder with a text tower (CLIP or LaViLa; the store holds its text embeddings); "
            f"{encoder!r} is {family}"
        )
    if family != "clip" and cfg.method in TEXT_METHODS:
        raise StoreSpecError(
            f"{cfg.method} runs the frozen text tower of a Hugging Face CLIP model and cannot run on {encoder!r} "
            f"({family}); use a CLIP --encoder, or zero-shot / X-MIC / the feature baselines on {encoder}"
        )
    return encoder, second


def check_text_weights(cfg: TrainConfig, enc) -> None:
    """StoreSpecError when the CLIP text tower a prompt-learning run would load is not the one the store's text
    embeddings and features came from (compared by the weights' sha256 the store recorded, when it did)."""
    from xmic.cache.hashing import weights_sha256

    if not (enc.weights_sha256 and cfg.text_model_dir and Path(cfg.text_model_dir).is_dir()):
        return
    got = weights_sha256(cfg.text_model_dir)
    if got != enc.weights_sha256:
        raise StoreSpecError(
            f"the CLIP weights in {cfg.text_model_dir} (sha256 {got[:16]}…) are not those the store was extracted "
            f"with ({enc.source}, sha256 {enc.weights_sha256[:16]}…); give --model-dir the store's {enc.name} weights"
        )


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def class_text(reader, encoder: str, target: str, template: str, device) -> ClassText:
    """The dataset's vocabulary for ``target``: frozen text embeddings (K, D) and prompt names."""
    emb = reader.load_text(encoder, target, template).to(device)
    return ClassText(emb=emb, names=list(reader.vocab[target]), template=template)


def epoch_lr(epoch: int, lr: float, warmup_epochs: int, min_lr: float = 0.0) -> float:
    """The learning rate of 0-based ``epoch`` under Dassl's linear warm-up (``LinearWarmupScheduler``).

    Epoch 0 trains at ``min_lr``, epoch ``e < W`` at ``lr * e / W``, every later epoch at ``lr`` (the authors'
    ``single_step`` successor decays only at MAX_EPOCH, which is never trained). W = 5, lr 5e-4, min 1e-7: 1e-7,
    1e-4, 2e-4, 3e-4, 4e-4, then 5e-4. Without a warm-up (W <= 0) every epoch trains at ``lr``.
    """
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return lr
    return min_lr if epoch == 0 else lr * epoch / warmup_epochs


def steps_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    """Optimiser steps in one epoch of ``n`` clips: the last partial batch is dropped when ``drop_last`` and at
    least one full batch exists (Dassl's ``drop_last=is_train and len(data) >= batch_size``)."""
    if drop_last and n >= batch_size:
        return n // batch_size
    return max(1, math.ceil(n / batch_size))


class EpochTrainer:
    """The optimisation state of one run; ``epoch()`` runs one pass over ``bank.rows`` on the device."""

    def __init__(
        self,
        model: torch.nn.Module,
        bank: FeatureBank,
        classes: ClassText,
        cfg: TrainConfig,
        device: torch.device,
        bar=None,
    ) -> None:
        self.model, self.bank, self.classes, self.cfg, self.device, self.bar = model, bank, classes, cfg, device, bar
        params = [p for p in model.parameters() if p.requires_grad]
        # foreach: one multi-tensor update instead of a loop over the parameters (torch's default on CUDA only);
        # the same arithmetic per element, and on the CPU a third of the optimiser's time per step
        self.opt = torch.optim.AdamW(
            params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=True
        )
        self.n = bank.rows.numel()
        self.steps_per_epoch = steps_per_epoch(self.n, cfg.batch_size, cfg.drop_last)
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed)
        self.use_amp = cfg.autocast_enabled(device)
        self.epochs_done = 0

    def epoch(self) -> dict[str, Any]:
        """One epoch of shuffled batches with temporal jitter; returns its metrics row."""
        cfg, bank, device = self.cfg, self.bank, self.device
        # Set once per epoch, as the authors' scheduler steps: the lr is constant within an epoch (epoch_lr).
        lr = epoch_lr(self.epochs_done, cfg.lr, cfg.warmup_epochs, cfg.warmup_min_lr)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.train()
        t0 = time.perf_counter()
        order = bank.rows[torch.randperm(self.n, generator=self.gen, device=device)]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        bad_steps = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for step in range(self.steps_per_epoch):
            rows = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            seen += rows.numel()
            slots = frame_slots(
                rows.numel(), bank.store_frames, cfg.frames, train=True, generator=self.gen, device=device
            )
            labels = bank.labels[rows]
            batch = bank.batch(rows, slots)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.use_amp):
                logits = self.model(batch, self.classes)
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            bad_steps += ~torch.isfinite(loss.detach())
            loss_sum += loss.detach() * rows.numel()
            correct += (logits.detach().argmax(dim=1) == labels).sum()
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(epoch=self.epochs_done + 1, loss=f"{loss.item():.3f}")
        if int(bad_steps):
            raise NonFiniteLossError(
                f"training stopped: the loss became NaN/inf in {int(bad_steps)} of {self.steps_per_epoch} steps of "
                f"epoch {self.epochs_done + 1} ({cfg.method}, lr {self.opt.param_groups[0]['lr']:g}); the weights "
                "are no longer finite and nothing was saved. Check the store with `xmic cache verify`, or lower --lr"
            )
        self.epochs_done += 1
        seconds = time.perf_counter() - t0
        return {
            "epoch": self.epochs_done,
            "loss": loss_sum.item() / seen,
            "train_top1": correct.item() / seen,
            "lr": lr,
            "steps": self.steps_per_epoch,
            "seconds": seconds,
            "clips_per_s": seen / seconds,
        }


def train_steps(
    model: torch.nn.Module,
    bank: FeatureBank,
    classes: ClassText,
    cfg: TrainConfig,
    *,
    device: torch.device,
    progress: bool = True,
    on_epoch=None,
) -> list[dict[str, Any]]:
    """The optimisation loop: ``cfg.epochs`` epochs over ``bank.rows``; returns one metrics row per epoch."""
    steps = cfg.epochs * steps_per_epoch(bank.rows.numel(), cfg.batch_size, cfg.drop_last)
    bar = tqdm(total=steps, desc=f"train {cfg.method}", unit="step") if progress else None
    trainer = EpochTrainer(model, bank, classes, cfg, device, bar)
    history = []
    for _ in range(cfg.epochs):
        row = trainer.epoch()
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    if bar is not None:
        bar.close()
    return history


def train(
    cfg: TrainConfig,
    cache: Path,
    out: Path | None = None,
    *,
    progress: bool = True,
    reader=None,
    overwrite: bool = False,
    ignore_lock: bool = False,
) -> TrainResult:
    """Train ``cfg.method`` on the store at ``cache`` (dataset group ``cfg.dataset``); write the run to ``out``.

    The last epoch is what the run keeps: nothing is selected on evaluation data. ``out`` is written as
    :mod:`xmic.adapt.run_folder` says: locked, written beside it and swapped in when complete; a finished run
    there is replaced only with ``overwrite``.
    """
    from xmic.adapt.baselines import FRAME_METHODS, TEXT_METHODS
    from xmic.adapt.run_folder import check_run_folder, new_run
    from xmic.cache.reader import StoreReader

    cfg.validate()
    if out is not None:
        check_run_folder(out, overwrite=overwrite)  # before the store is read
    reader = reader or StoreReader(cache, cfg.dataset)
    spec = reader.spec
    encoder, second = resolve_encoders(cfg, spec)
    cfg.encoder, cfg.second_encoder = encoder, second
    if cfg.method in TEXT_METHODS and not cfg.text_model_dir:
        source = spec.encoders[encoder].source
        if source and Path(source).is_dir():
            cfg.text_model_dir = source  # the same local weights the store was extracted with
    elif cfg.method in TEXT_METHODS:  # --model-dir: the model folder itself, or a folder of them (as extract takes)
        from xmic.weights import find_model_dir

        cfg.text_model_dir = str(find_model_dir(spec.encoders[encoder], cfg.text_model_dir))
    if cfg.method in TEXT_METHODS:
        check_text_weights(cfg, spec.encoders[encoder])
    device = torch.device(cfg.device)
    seed_everything(cfg.seed)
    if cfg.method in FRAME_METHODS:
        from xmic.adapt.frame_bank import load_frame_bank

        bank = load_frame_bank(reader, target=cfg.target, encoder=encoder, splits=(cfg.train_split,), device=device)
    else:
        bank = load_bank(
            reader,
            target=cfg.target,
            encoder=encoder,
            second_encoder=second,
            views=cfg.views,
            classified_view=cfg.classified_view,
            splits=(cfg.train_split,),
            device=device,
        )
    if bank.rows.numel() == 0:
        raise ValueError(
            f"no usable training rows in {cache} / {cfg.dataset}: need status ok, a {cfg.target} label and "
            f"split {cfg.train_split!r} (splits present: {sorted(set(map(str, reader.segments['split'])))})"
        )
    classes = class_text(reader, encoder, cfg.target, cfg.template, device)
    dim, cond_dim = spec.encoders[encoder].dim, spec.encoders[second].dim
    logit_scale = encoder_logit_scale(spec.encoders[encoder])
    model = build_model(cfg, dim=dim, cond_dim=cond_dim, logit_scale=logit_scale).to(device)
    options = cfg.baseline_options()
    meta = {
        "baseline_form": cfg.baseline_form if options is not None else None,
        "baseline_options": dataclasses.asdict(options) if options is not None else None,
        "dim": dim,
        "cond_dim": cond_dim,
        "logit_scale": logit_scale,
        "rows_failed_left_out": bank.failed,
        "train_dataset": cfg.dataset,
        "train_rows": int(bank.rows.numel()),
        "vocab": classes.names,
        "encoders": {name: spec.encoders[name].identity() for name in {encoder, second}},
        "store": {
            "path": str(cache),
            "dataset": cfg.dataset,
            "num_frames": spec.num_frames,
            "sampling": spec.sampling,
            "hands": spec.hands,
            "spec": spec.to_json(),
        },
        "xmic_version": __version__,
    }
    with new_run(out, overwrite=overwrite, ignore_lock=ignore_lock) if out is not None else nullcontext() as work:
        history: list[dict[str, Any]] = []
        if getattr(model, "trainable", True):
            history = train_steps(
                model,
                bank,
                classes,
                cfg,
                device=device,
                progress=progress,
                on_epoch=(lambda row: append_metrics(work, row)) if work is not None else None,
            )
        if work is not None:
            meta["final"] = history[-1] if history else None
            save_run(work, model, cfg, meta)
    return TrainResult(run_dir=out, model=model.eval(), metrics=history, meta=meta)
