"""`xmic bench train`: X-MIC training throughput from the store path against an authors-style data path.

Both paths train the same model (same seed, batch, number of steps) in the same process:

* store path: the trainer's own loop; whole fp16 arrays on the device, batches and temporal jitter indexed
  there (``xmic.adapt.trainer.train_steps``).
* reference: a dict of per-segment float32 arrays in RAM served by a ``torch.utils.data.DataLoader`` with
  ``num_workers=0``, one ``__getitem__`` per clip, as the authors' code served cached features.
"""

from __future__ import annotations

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
from xmic.adapt.data import load_bank
from xmic.adapt.factory import build_model
from xmic.adapt.trainer import class_text, train_steps


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
        slots = np.arange(self.frames) * per_bin + self.rng.integers(0, per_bin, self.frames)
        full = torch.from_numpy(seg["full"][slots])
        hand = torch.from_numpy(seg["hand"][slots])
        return full, torch.stack([hand, full], dim=1), self.labels[self.ids[i]]


def reference_steps(model, loader, classes: ClassText, cfg: TrainConfig) -> int:
    """Train ``cfg.epochs`` epochs from the DataLoader; returns the number of clips seen."""
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        weight_decay=cfg.weight_decay,
    )
    seen = 0
    model.train()
    for _ in range(cfg.epochs):
        for cls, cond, labels in loader:
            logits = model(FeatureBatch(cls=cls, cond=cond), classes)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += labels.numel()
    return seen


def run_train_bench(
    *,
    segments: int = 1024,
    epochs: int = 15,
    batch_size: int = 128,
    dim: int = 512,
    store_frames: int = 32,
    classes: int = 97,
    seed: int = 0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Measure both paths in this process and return clips/s of each and ``speedup`` = store / reference."""
    from xmic.cache.reader import StoreReader
    from xmic.cache.synthetic import write_random_store

    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = write_random_store(
            Path(tmp) / "store",
            dataset="bench",
            n=segments,
            num_frames=store_frames,
            encoders={"clip-vit-b16": dim},
            n_verb=classes,
            n_noun=classes,
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
            warmup_epochs=0,
        )
        device = torch.device("cpu")
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

        torch.manual_seed(seed)
        model = build_model(cfg, dim=dim, cond_dim=dim)
        t0 = time.perf_counter()
        train_steps(model, bank, text, cfg, device=device, progress=False)
        store_s = time.perf_counter() - t0

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
        model = build_model(cfg, dim=dim, cond_dim=dim)
        t0 = time.perf_counter()
        seen = reference_steps(model, loader, text, cfg)
        ref_s = time.perf_counter() - t0

    clips = bank.rows.numel() * epochs
    assert seen == clips
    store_cps, ref_cps = clips / store_s, clips / ref_s
    return {
        "benchmark": "train",
        "method": "xmic",
        "segments": segments,
        "epochs": epochs,
        "batch_size": batch_size,
        "dim": dim,
        "store_frames": store_frames,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "store_clips_per_s": round(store_cps, 1),
        "reference_clips_per_s": round(ref_cps, 1),
        "store_seconds": round(store_s, 3),
        "reference_seconds": round(ref_s, 3),
        "speedup": round(store_cps / ref_cps, 3),
    }


@click.command("train")
@click.option("--segments", type=int, default=1024, show_default=True)
@click.option("--epochs", type=int, default=15, show_default=True)
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train_bench_cmd(segments: int, epochs: int, batch_size: int, as_json: bool) -> None:
    """X-MIC training clips/s: store path vs an authors-style DataLoader path, same model, batch and steps."""
    result = run_train_bench(segments=segments, epochs=epochs, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(result))
    else:
        for k, v in result.items():
            click.echo(f"{k:>24}: {v}")
