"""The demo's store groups for `xmic reproduce --demo`: generated videos, extracted with the demo's tiny encoders.

``--demo`` maps the paper's datasets to groups ``synth-epic``, ``synth-ego4d`` and ``synth-egtea`` and builds the
ones a table needs but the store lacks, from the generated benchmark (:mod:`xmic.synth`) through the real
stage-one code, so every table runs on real extracted features. Layout, the same as ``xmic demo``'s so that a
demo run's store is reused and extended::

    <root>/cache/                 the store (``--cache``); <root> is its parent folder
    <root>/models/                tiny CLIP (+ DINOv2), written when missing
    <root>/data/                  the generated datasets, when no benchmark is there yet
    <root>/data-<names>/          datasets generated later, next to an earlier benchmark

Encoders of a new group match the groups already in the store (a run trained on one group is evaluated on the
others): the tiny CLIP and the tiny LaViLa (Table 5), plus the tiny DINOv2 when the store's groups have it. A store without demo groups gets
both, so the rows conditioned on DINOv2 (X-MIC+DINO, Table 5) run too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

Echo = Callable[[str], None]
DEMO_GROUPS = {"epic": "synth-epic", "ego4d": "synth-ego4d", "egtea": "synth-egtea"}
#: The row of the hand-crop control in the demo's table1.md / table1.png (hatched in the figure), results.json and
#: the tables quoted from it.
REFERENCE_ROW = "ZS CLIP on the hand crop (reference)"
QUICK_SCALE = 0.1
#: The demo's X-MIC keeps the real adapter's bottleneck width (Dc/16 = 32 at Dc = 512) instead of its ratio,
#: which would leave 4 units at the tiny CLIP's Dc = 64.
DEMO_ADAPTER_HIDDEN = 32
#: Epochs per run: the preset's 15 (5 of them warm-up). At batch 16 (below) 200 training clips give 12 steps an
#: epoch under authors-code (the last partial batch is dropped), 180 in a run. `xmic demo` and `reproduce --demo` (DEMO=1) both train so.
DEMO_EPOCHS = 15
#: Clips per step (the preset's 128 would be under two steps an epoch on 200 clips).
DEMO_BATCH = 16
#: Seeds of a `reproduce --demo` table (mean ± std over them); `xmic demo` runs one.
DEMO_SEEDS = (0, 1, 2)
#: Epochs of `reproduce --demo --demo-quick` (CI: the code runs; nothing converges).
QUICK_EPOCHS = 3
#: The paper's backbone -> the demo's stand-in for it (ReproduceSettings.backbones; the table header says so).
DEMO_BACKBONES = {"clip-vit-b16": "demo-clip", "lavila-tsf-l14": "demo-lavila"}


def _store_encoders(cache: Path, groups: Sequence[str]) -> set[str] | None:
    """Encoder names of the first demo group present in ``cache``; None when there is none."""
    from xmic.cache.reader import StoreReader

    return set(StoreReader(cache, groups[0]).spec.encoders) if groups else None


def _old_layout_groups(cache: Path, groups: Sequence[str]) -> list[str]:
    """The groups of ``groups`` an older xmic wrote: a sampling rule without bin-centre candidates (the old 16x2
    layout), the tiny CLIP stored under a real model's name (``clip-vit-b16`` before it became ``demo-clip``), or
    no tiny LaViLa features (before ``demo-lavila``) or no frame cache (before Vita-CLIP ran on the demo)."""
    from xmic.cache.reader import StoreReader
    from xmic.registry import DEMO_CLIP, DEMO_LAVILA
    from xmic.sampling import rule_lacks_bin_centres

    specs = {g: StoreReader(cache, g).spec for g in groups}
    return [
        g
        for g, s in specs.items()
        if rule_lacks_bin_centres(s.sampling)
        or DEMO_CLIP not in s.encoders
        or DEMO_LAVILA not in s.encoders
        or DEMO_CLIP not in s.frames
    ]


def _benchmark_with(root: Path, names: Sequence[str]) -> Path | None:
    """A generated benchmark under ``root`` whose manifest has every dataset of ``names``, if one exists."""
    for folder in sorted(root.glob("data*")):
        manifest = folder / "manifest.json"
        if manifest.is_file() and set(names) <= set(json.loads(manifest.read_text())["datasets"]):
            return folder
    return None


def _generate(data_dir: Path, names: Sequence[str], *, seed: int, scale: float, progress: bool) -> None:
    from tqdm.auto import tqdm

    from xmic.synth import generate

    with tqdm(unit="video", desc=f"render {'+'.join(names)}", disable=not progress) as bar:
        generate(
            data_dir, seed=seed, scale=scale, overwrite=True, datasets=tuple(names), on_video=lambda _r: bar.update(1)
        )


def ensure_demo_groups(
    cache: Path,
    names: Sequence[str],
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    echo: Echo = print,
) -> list[str]:
    """Build the demo groups of the datasets ``names`` that ``cache`` lacks; returns the groups built.

    Args:
        cache: The store; its parent folder holds the demo's data and models (see the module docstring).
        names: Logical datasets a table needs (``epic``, ``ego4d``, ``egtea``).
        quick: A tenth of the benchmark (scale 0.1) and 40 pretraining steps: seconds, for CI and smoke runs.
        seed: Seed of the data and the encoders.
        progress: Progress bars.
        echo: Log lines.
    """
    from xmic.demo.models import (
        CLIP_NAME,
        DINO_NAME,
        LAVILA_NAME,
        make_demo_encoders,
        write_demo_dino,
        write_demo_lavila,
    )
    from xmic.demo.pipeline import QUICK_PRETRAIN, usable_cores
    from xmic.demo.pretrain import PretrainConfig
    from xmic.demo.store import extract_demo_store
    from xmic.evaluate.reproduce import store_groups
    from xmic.owned import MANIFEST, adding

    unknown = sorted(set(names) - set(DEMO_GROUPS))
    if unknown:
        raise ValueError(f"no demo dataset {', '.join(unknown)}; the demo has {', '.join(DEMO_GROUPS)}")
    cache = Path(cache)
    made_here = not cache.exists()
    present = [g for g in store_groups(cache) if g in DEMO_GROUPS.values()]
    stale = _old_layout_groups(cache, present)
    for group in stale:
        echo(f"demo: group {group} was written by an older xmic (frame layout or encoder names); extracting it again")
    present = [g for g in present if g not in stale]
    missing = [n for n in names if DEMO_GROUPS[n] not in present]
    if not missing:
        return []
    root = cache.parent
    encoders = _store_encoders(cache, present)
    second = DINO_NAME if encoders is None or DINO_NAME in encoders else None

    data_dir = _benchmark_with(root, missing)
    generate = data_dir is None
    if data_dir is None:
        data_dir = root / ("data" if not (root / "data").exists() else f"data-{'+'.join(missing)}")
    # a demo folder (or a store made here from nothing) lists what xmic wrote; what this adds is listed too, so a
    # later `xmic demo` there can clear it and a group rebuilt here can replace its older self
    ours = (root / MANIFEST).exists() or made_here
    recorded = adding(root, [data_dir.name, "models", cache.name]) if ours else nullcontext()
    with recorded:
        if generate:
            scale = QUICK_SCALE if quick else 1.0
            echo(f"demo: generating {', '.join(missing)} (scale {scale}) -> {data_dir}")
            _generate(data_dir, missing, seed=seed, scale=scale, progress=progress)
        manifest = json.loads((data_dir / "manifest.json").read_text())

        models = root / "models"
        if not (models / CLIP_NAME / "config.json").is_file():
            echo(f"demo: tiny encoders -> {models}")
            pretrain = QUICK_PRETRAIN if quick else PretrainConfig()
            make_demo_encoders(
                models, manifest, seed=seed, pretrain=pretrain, dino=second is not None, progress=progress
            )
        else:
            if second is not None and not (models / DINO_NAME / "config.json").is_file():
                write_demo_dino(models, seed=seed, echo=echo)
            if not (models / LAVILA_NAME / f"{LAVILA_NAME}.pth").is_file():
                write_demo_lavila(models, echo=echo)

        echo(f"demo: extracting {', '.join(missing)} -> {cache}")
        extract_demo_store(
            data_dir, manifest, cache, models, second_encoder=second, names=tuple(missing), jobs=usable_cores(),
            progress=progress, echo=echo,
        )  # fmt: skip
    return [DEMO_GROUPS[n] for n in missing]
