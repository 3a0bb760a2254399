"""Shared fixtures: the real sample data in ../shared (skipped with a reason when absent), the session's quick
demo, one torch thread, a video decoder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XMIC_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test saying which file is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample {path} is absent (set XMIC_SHARED or place ../shared beside the repo)")
    return path


@pytest.fixture
def realdata() -> Path:
    """``../shared/realdata``; skips the test when that folder is not there."""
    return shared_path("realdata")


def find_realdata(name: str) -> Path:
    """First file called ``name`` anywhere under ../shared/realdata, or skip naming it."""
    root = shared_path("realdata")
    hits = sorted(root.rglob(name))
    if not hits:
        pytest.skip(f"{name} not found under {root}")
    return hits[0]


def decode_mp4(path: Path) -> tuple[np.ndarray, float]:
    """Every frame of a video file, ``(N, H, W, 3)`` uint8 RGB, and its average frame rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.average_rate)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quick ``xmic demo`` per test session (its runs, store, tables and models), made on first use."""
    from xmic.demo.pipeline import DemoConfig, run_demo

    out = tmp_path_factory.getbasetemp() / "xmic-quick-demo"
    if not (out / "results.json").is_file():
        run_demo(DemoConfig(out=out, quick=True, progress=False, workers=0), echo=lambda _m: None)
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread (as the subprocesses get): stable timings on a busy machine, equal results everywhere."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_clip_extract_config(tmp_path: Path, dataset: str, root: Path, splits, words, **overrides):
    """An ``ExtractConfig`` for a small synthetic dataset: a tiny random CLIP whose tokenizer knows ``words``
    (saved under ``tmp_path/models``), 8 slots, no workers, CPU, into ``tmp_path/cache.zarr``; ``overrides``
    replace any field (``hands``, ``hand_options``, ``num_frames``, ...)."""
    from xmic.demo.tiny_models import make_tiny_clip
    from xmic.extract.runner import ExtractConfig

    make_tiny_clip(tmp_path / "models" / "clip-vit-b16", vocab_words=sorted(words))
    fields = dict(
        dataset=dataset,
        root=root,
        splits=tuple(splits),
        cache=tmp_path / "cache.zarr",
        hands="none",
        model_dir=tmp_path / "models",
        num_frames=8,
        workers=0,
        device="cpu",
        decode_size=0,
        fmt="zarr",
        progress=False,
    )
    return ExtractConfig(**{**fields, **overrides})
