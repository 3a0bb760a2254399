"""A complete random store in about a second, for tests and benchmarks of the stages that read the cache.

Features carry class signal: every frame of a segment is its verb prototype plus its noun prototype plus
uniform noise, and the text embeddings of a class are its prototype plus a little noise, so a zero-shot
classifier or an adapter trained on the store does better than chance.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

import xmic
from xmic.cache.schema import PROMPT_TEMPLATES, ROW_OK, TARGETS, VIEWS, EncoderSpec, StoreSpec, chunk_rows_for
from xmic.cache.writer import StoreWriter

SEGMENTS_PER_VIDEO = 8


def synthetic_encoder_spec(name: str, dim: int) -> EncoderSpec:
    """The registry entry of ``name`` (its width replaced by ``dim`` if different) or a made-up spec."""
    from xmic.registry import CLIP_MEAN, CLIP_STD, ENCODERS

    if name in ENCODERS:
        spec = ENCODERS[name]
        return spec if spec.dim == dim else dataclasses.replace(spec, dim=dim, source="synthetic")
    family = "dinov2" if name.startswith("dino") else "clip"
    return EncoderSpec(name, family, f"synthetic/{name}", dim, 224, 224, "bicubic", CLIP_MEAN, CLIP_STD, "synthetic")


def write_random_store(
    path: str | os.PathLike,
    *,
    dataset: str = "synth",
    n: int = 64,
    num_frames: int = 8,
    encoders: dict[str, int] | None = None,
    n_verbs: int = 5,
    n_nouns: int = 7,
    verbs: Any = None,
    nouns: Any = None,
    vocab: dict[str, list[str]] | None = None,
    split: str | Any = "train",
    features: dict[str, dict[str, Any]] | None = None,
    fmt: str | None = None,
    chunk_rows: int | None = None,
    noise: float = 1.0,
    seed: int = 0,
    overwrite: bool = True,
) -> Path:
    """Build a complete dataset group ``dataset`` (every chunk done, every row ok) through the writer API.

    Args:
        path: the store; other dataset groups in it are kept, group ``dataset`` is replaced (``overwrite``).
        n: segments N; they form videos of 8 consecutive segments.
        num_frames: T.
        encoders: registry name -> width D (default ``{"clip-vit-b16": 512}``).
        n_verbs, n_nouns: vocabulary sizes when ``vocab`` is not given.
        verbs, nouns: optional (N,) labels; random otherwise.
        vocab: optional ``{"verb": names, "noun": names}``.
        split: the ``split`` column: one value for all rows or (N,) strings.
        features: optional ``{encoder: {"full": (N, T, D), "hand": (N, T, D)}}`` written instead of random ones.
        fmt: ``"zarr"`` / ``"h5"``; default from the suffix.
        chunk_rows: rows per chunk; default about 8 MiB of the widest feature array.
        noise: amplitude of the uniform noise around the class prototypes (signal has norm ~1 per class).
        seed: random seed (everything is deterministic given the arguments).

    Returns:
        ``path`` as a Path. Text embeddings are stored for all six templates of every CLIP-family encoder.
    """
    rng = np.random.default_rng(seed)
    encoders = {"clip-vit-b16": 512} if encoders is None else encoders
    if vocab is None:
        vocab = {"verb": [f"verb {i}" for i in range(n_verbs)], "noun": [f"noun {i}" for i in range(n_nouns)]}
    sizes = {t: len(vocab[t]) for t in TARGETS}
    labels = {
        t: np.asarray(given, dtype=np.int64) if given is not None else rng.integers(0, sizes[t], n)
        for t, given in (("verb", verbs), ("noun", nouns))
    }
    video = np.arange(n) // SEGMENTS_PER_VIDEO
    start = (np.arange(n) % SEGMENTS_PER_VIDEO) * 120 + 1
    segments = {
        "segment_id": np.array([f"{dataset}_{i:06d}" for i in range(n)]),
        "video_id": np.array([f"{dataset}_video_{v:04d}" for v in video]),
        "start_frame": start,
        "stop_frame": start + 90,
        "fps": np.full(n, 30.0, np.float32),
        "verb": labels["verb"],
        "noun": labels["noun"],
        "split": np.full(n, split) if isinstance(split, str) else np.asarray(split),
    }
    specs = {name: synthetic_encoder_spec(name, dim) for name, dim in encoders.items()}
    rows = chunk_rows or min(n, chunk_rows_for(num_frames, max(encoders.values(), default=1)))
    spec = StoreSpec(
        dataset=dataset,
        num_frames=num_frames,
        encoders=specs,
        sampling=f"synthetic:{num_frames}",
        chunk_rows=rows,
        hands="synthetic",
        config={"synthetic": {"seed": seed, "noise": noise}},
        xmic_version=xmic.__version__,
    )
    writer = StoreWriter.create(path, spec, segments, vocab, fmt, overwrite=overwrite)
    protos = {
        name: {t: _unit_rows(rng.standard_normal((sizes[t], enc.dim), dtype=np.float32)) for t in TARGETS}
        for name, enc in specs.items()
    }
    t_pos = (np.arange(num_frames, dtype=np.float32) + 0.5) / num_frames
    for chunk in writer.pending_chunks():
        sl = writer.chunk_slice(chunk)
        m = sl.stop - sl.start
        frame_index = (start[sl, None] + t_pos[None] * 90).astype(np.int32)
        lo = rng.random((m, num_frames, 2), dtype=np.float32) * 0.5
        hand_box = np.concatenate([lo, lo + 0.2 + 0.3 * rng.random((m, num_frames, 2), dtype=np.float32)], axis=-1)
        feats = {}
        for name in specs:
            given = (features or {}).get(name)
            signal = protos[name]["verb"][labels["verb"][sl]] + protos[name]["noun"][labels["noun"][sl]]
            feats[name] = {
                view: np.asarray(given[view][sl]) if given is not None else _noisy(signal, num_frames, noise, rng)
                for view in VIEWS
            }
        writer.write_chunk(
            chunk, frame_index=frame_index, hand_box=hand_box, features=feats, row_status=np.full(m, ROW_OK, np.uint8)
        )
    for name, enc in specs.items():
        if enc.family == "dinov2":
            continue
        for target in TARGETS:
            for template in PROMPT_TEMPLATES:
                emb = protos[name][target] + 0.05 * rng.standard_normal(protos[name][target].shape, dtype=np.float32)
                writer.write_text(name, dataset, target, template, emb)
    return Path(path)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _noisy(signal: np.ndarray, num_frames: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """(m, D) signal -> (m, T, D) float16 signal + uniform noise of norm about ``noise`` per frame."""
    m, d = signal.shape
    out = rng.random((m, num_frames, d), dtype=np.float32)
    out -= 0.5
    out *= noise * np.sqrt(12.0 / d)
    out += signal[:, None, :]
    return out.astype(np.float16)
