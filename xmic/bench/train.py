"""`xmic bench train`: X-MIC training throughput from the store path against an authors-style data path.

Both paths train the same model (same seed, batch, number of steps) in the same process:

* store path: the trainer's own loop; whole fp16 arrays on the device, batches and temporal jitter indexed
  there (``xmic.adapt.trainer.train_steps``).
* reference: a dict of per-segment float32 arrays in RAM served by a ``torch.utils.data.DataLoader`` with
  ``num_workers=0``, one ``__getitem__`` per clip, as the authors' code served cached features.

``speedup`` compares whole training (input pipeline + the same model's forward/backward) with the trainer's
defaults (bf16 autocast where the device has native bf16); ``speedup_fp32`` runs the store path in fp32 like
the reference. On a CPU the model's compute dominates every path; ``data_speedup`` times the input pipelines
alone over the same batches, which is what bounds training once the model runs on a GPU.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from xmic.adapt.base import ClassText, FeatureBatch
from xmic.adapt.config import TrainConfig
from xmic.adapt.data import frame_slots, load_bank
from xmic.adapt.factory import build_model
from xmic.adapt.trainer import EpochTrainer, class_text


class PerSegmentDataset(torch.utils.data.Dataset):
    """Authors-style: ``features[segment_id][view]`` (T_s, D) float32, frames drawn per item with numpy."""

    def __init__(self, features: dict[str, dict[str, np.ndarray]], labels: dict[str, int], frames: int, seed: int):
        self.ids = list(features)
        self.features, self.labels, self.frames = features, labels, frames
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        seg = self.features[self.ids[i]]
        store_frames = seg["full"].shape[0]
        per_bin = store_frames // self.frames
        # one random frame per bin, drawn bin by bin with numpy, as a per-clip loader does
        slots = [int(self.rng.choice(np.arange(b * per_bin, (b + 1) * per_bin))) for b in range(self.frames)]
        full = torch.from_numpy(seg["full"][slots])
        hand = torch.from_numpy(seg["hand"][slots])
        return full, torch.stack([hand, full], dim=1), self.labels[self.ids[i]]


class ReferenceTrainer:
    """Authors-style loop: batches from the DataLoader, the same model, loss and optimiser settings."""

    def __init__(self, model, loader, classes: ClassText, cfg: TrainConfig, device: torch.device | None = None) -> None:
        self.model, self.loader, self.classes = model, loader, classes
        self.device = device or torch.device("cpu")
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)

    def epoch(self) -> int:
        """One epoch; returns the number of clips seen."""
        seen = 0
        self.model.train()
        for cls, cond, labels in self.loader:
            if self.device.type != "cpu":  # batches are copied to the device one by one, as such a loop does
                cls, cond, labels = (t.to(self.device, non_blocking=True) for t in (cls, cond, labels))
            logits = self.model(FeatureBatch(cls=cls, cond=cond), self.classes)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            seen += labels.numel()
        return seen


def serve_store_batches(bank, cfg: TrainConfig, device: torch.device, epochs: int = 1) -> int:
    """The store path's input pipeline alone: shuffle, jitter and gather every batch of ``epochs`` epochs."""
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    n, seen = bank.rows.numel(), 0
    for _ in range(epochs):
        order = bank.rows[torch.randperm(n, generator=gen, device=device)]
        for start in range(0, n, cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            slots = frame_slots(rows.numel(), bank.store_frames, cfg.frames, train=True, generator=gen, device=device)
            batch = bank.batch(rows, slots)
            seen += batch.cls.shape[0]
    return seen


def serve_reference_batches(loader, epochs: int) -> int:
    """The reference input pipeline alone: every batch of the DataLoader for ``epochs`` epochs."""
    return sum(labels.numel() for _ in range(epochs) for _, _, labels in loader)


def run_train_bench(
    *,
    segments: int = 1024,
    epochs: int = 2,
    data_repeats: int = 5,
    batch_size: int = 128,
    dim: int = 512,
    store_frames: int = 48,
    classes: int = 97,
    seed: int = 0,
    workdir: Path | None = None,
    device: str | torch.device = "cpu",
    reference_epochs: int | None = None,
    fp32: bool = True,
) -> dict[str, Any]:
    """Measure both paths in this process and return clips/s of each and ``speedup`` = store / reference.

    ``device``: where the bank, the models and the batches go. ``reference_epochs`` (default ``epochs``): how many
    of the epochs the reference path also runs; its clips/s come from those (``reference_seconds_scaled`` is its
    time scaled to ``epochs``). ``fp32=False`` leaves out the fp32 run of the store path.
    """
    from xmic.cache.reader import StoreReader
    from xmic.cache.synthetic import write_random_store

    torch.set_num_threads(torch.get_num_threads())
    ref_epochs = epochs if reference_epochs is None else max(1, min(reference_epochs, epochs))
    device = torch.device(device)
    t_setup = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = write_random_store(
            Path(tmp) / "store",
            dataset="bench",
            n=segments,
            num_frames=store_frames,
            encoders={"clip-vit-b16": dim},
            n_verbs=classes,
            n_nouns=classes,
            seed=seed,
        )
        reader = StoreReader(path, "bench")
        cfg = TrainConfig.from_preset(
            "authors-code",
            dataset="bench",
            target="verb",
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            encoder="clip-vit-b16",
            second_encoder="clip-vit-b16",
            classified_view="full",
            warmup_epochs=0,
        )
        bank = load_bank(
            reader,
            target="verb",
            encoder="clip-vit-b16",
            second_encoder="clip-vit-b16",
            views="F+H",
            classified_view="full",
            splits=None,
            device=device,
        )
        text = class_text(reader, "clip-vit-b16", "verb", "{}", device)

        # authors-style copy: per-segment float32 arrays, built outside the timed region
        full = reader.load_features("clip-vit-b16", "full").float().numpy()
        hand = reader.load_features("clip-vit-b16", "hand").float().numpy()
        ids = [str(s) for s in reader.segments["segment_id"]]
        feats = {sid: {"full": full[i].copy(), "hand": hand[i].copy()} for i, sid in enumerate(ids)}
        labels = {sid: int(v) for sid, v in zip(ids, reader.segments["verb"], strict=True)}
        loader = torch.utils.data.DataLoader(
            PerSegmentDataset(feats, labels, cfg.frames, seed),
            batch_size=batch_size,
            shuffle=True,
            num_workers=0,
            generator=torch.Generator().manual_seed(seed),
        )
        torch.manual_seed(seed)
        store_trainer = EpochTrainer(build_model(cfg, dim=dim, cond_dim=dim).to(device), bank, text, cfg, device)
        fp32_cfg = dataclasses.replace(cfg, amp=False)
        torch.manual_seed(seed)
        fp32_trainer = (
            EpochTrainer(build_model(cfg, dim=dim, cond_dim=dim).to(device), bank, text, fp32_cfg, device)
            if fp32
            else None
        )
        torch.manual_seed(seed)
        ref_trainer = ReferenceTrainer(build_model(cfg, dim=dim, cond_dim=dim).to(device), loader, text, cfg, device)
        setup_s = time.perf_counter() - t_setup
        # epochs alternate between the paths so that load from other processes hits them alike
        store_s = fp32_s = ref_s = 0.0
        seen = 0
        for epoch in range(epochs):
            t0 = time.perf_counter()
            store_trainer.epoch()
            _sync(device)
            store_s += time.perf_counter() - t0
            if fp32_trainer is not None:
                t0 = time.perf_counter()
                fp32_trainer.epoch()
                _sync(device)
                fp32_s += time.perf_counter() - t0
            if epoch < ref_epochs:
                t0 = time.perf_counter()
                seen += ref_trainer.epoch()
                _sync(device)
                ref_s += time.perf_counter() - t0

        # input pipelines alone, one epoch each, interleaved, best of ``data_repeats`` (the machine is shared)
        store_data_s = ref_data_s = float("inf")
        for _ in range(data_repeats):
            t0 = time.perf_counter()
            assert serve_store_batches(bank, cfg, device) == bank.rows.numel()
            _sync(device)
            store_data_s = min(store_data_s, time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert serve_reference_batches(loader, 1) == bank.rows.numel()
            ref_data_s = min(ref_data_s, time.perf_counter() - t0)

    clips = bank.rows.numel() * epochs
    assert seen == bank.rows.numel() * ref_epochs
    store_cps, ref_cps = clips / store_s, seen / ref_s
    result = {
        "benchmark": "train",
        "method": "xmic",
        "segments": segments,
        "epochs": epochs,
        "reference_epochs": ref_epochs,
        "batch_size": batch_size,
        "dim": dim,
        "store_frames": store_frames,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "store_clips_per_s": round(store_cps, 1),
        "reference_clips_per_s": round(ref_cps, 1),
        "store_seconds": round(store_s, 3),
        "reference_seconds": round(ref_s, 3),
        "reference_seconds_scaled": round(ref_s * epochs / ref_epochs, 3),
        "setup_seconds": round(setup_s, 2),
        "store_autocast": "bf16" if store_trainer.use_amp else "off",
        "speedup": round(store_cps / ref_cps, 3),
        "data_repeats": data_repeats,
        "data_store_clips_per_s": round(bank.rows.numel() / store_data_s, 1),
        "data_reference_clips_per_s": round(bank.rows.numel() / ref_data_s, 1),
        "data_speedup": round(ref_data_s / store_data_s, 2),
    }
    if fp32_trainer is not None:
        result["store_fp32_clips_per_s"] = round(clips / fp32_s, 1)
        result["speedup_fp32"] = round(ref_s * epochs / ref_epochs / fp32_s, 3)
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@click.command("train")
@click.option("--segments", type=int, default=1024, show_default=True)
@click.option("--epochs", type=int, default=2, show_default=True, help="Epochs of the end-to-end comparison.")
@click.option("--data-repeats", type=int, default=5, show_default=True, help="Rounds of the input-pipeline timing.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train_bench_cmd(segments: int, epochs: int, data_repeats: int, batch_size: int, as_json: bool) -> None:
    """X-MIC training clips/s: store path vs an authors-style DataLoader path, same model, batch and steps."""
    result = run_train_bench(segments=segments, epochs=epochs, data_repeats=data_repeats, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(result))
    else:
        for k, v in result.items():
            click.echo(f"{k:>24}: {v}")
