"""Extract the synthetic benchmark into the demo's feature store, as dataset groups ``synth-<name>``.

The extraction runner names a group after the dataset reader ("epic"); the demo renames each group once it is
complete, so that ``xmic reproduce --demo --cache demo_out/cache`` (which maps epic -> synth-epic, ego4d ->
synth-ego4d) finds the real extracted features rather than writing random stand-ins. A rename moves the group's
folder and its text embeddings (``text/<encoder>/<group>``) and sets ``spec.dataset`` to the new name (the
evaluator tells within- from cross-dataset by that name).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xmic.registry import DEMO_CLIP, DEMO_LAVILA
from xmic.sampling import DEFAULT_BINS

Echo = Callable[[str], None]
GROUP_PREFIX = "synth-"
DEMO_DATASETS = ("epic", "ego4d")
#: Slots per demo segment: the 16 bin centres only (``uniform-bins:16x1``). Real stores keep 3 candidates per bin
#: (training draws one, evaluation takes the centre); one per bin makes extraction three times cheaper (every
#: encoder runs on 16 frames of a clip, not 48), which the demo's time budget needs, and training then sees the
#: centre frames every epoch (no temporal jitter), the same for every method.
DEMO_NUM_FRAMES = DEFAULT_BINS


def rename_group(cache: str | Path, old: str, new: str) -> None:
    """Rename dataset group ``old`` of the Zarr store ``cache`` to ``new`` (folder, text embeddings and spec).

    Raises:
        ValueError: ``cache`` is not a Zarr directory store.
        FileExistsError: ``new`` exists already.
        StoreError: ``old`` is not a dataset group with a spec.
    """
    from xmic.cache import layout
    from xmic.cache.backend import Backend

    cache = Path(cache)
    backend = Backend(cache)
    if backend.fmt != "zarr":
        raise ValueError(f"{cache}: only a Zarr store's groups can be renamed here, not {backend.fmt}")
    with backend.session("r") as s:
        layout.read_spec(s, old, str(cache))
        if s.has(new):
            raise FileExistsError(f"{cache} already has a group {new!r}; remove it before renaming {old!r}")
    os.replace(cache / old, cache / new)
    text = cache / layout.TEXT_GROUP
    for encoder in sorted(p for p in text.iterdir() if p.is_dir()) if text.is_dir() else []:
        if (encoder / old).is_dir():
            os.replace(encoder / old, encoder / new)
    with backend.session("a") as s:
        spec = layout.read_spec(s, new, str(cache))
        spec.dataset = new
        spec.config = {**spec.config, "group_renamed_from": old}
        s.set_attrs(new, {layout.SPEC_ATTR: spec.to_json()})


def extract_demo_store(
    data_dir: str | Path,
    manifest: dict[str, Any],
    cache: str | Path,
    model_dir: str | Path,
    *,
    second_encoder: str | None = None,
    extra_encoders: tuple[str, ...] = (DEMO_LAVILA,),
    frames_cache: bool = True,
    names: tuple[str, ...] = DEMO_DATASETS,
    num_frames: int = DEMO_NUM_FRAMES,
    jobs: int = 1,
    progress: bool = True,
    echo: Echo = print,
) -> dict[str, Any]:
    """Extract the synthetic datasets ``names`` of ``manifest`` into ``cache``, renaming each group ``synth-<name>``.

    Args:
        data_dir: The benchmark folder (``manifest.json``'s folder).
        manifest: Its manifest (dataset roots, splits, hand-box folders).
        cache: The store (created; groups ``synth-*`` already there are replaced).
        model_dir: Parent folder of the encoders (see :mod:`xmic.demo.models`).
        second_encoder: Also extract this encoder (``demo-dinov2``) for X-MIC+DINO.
        extra_encoders: More encoders of the same pass (default the tiny LaViLa, for Table 5).
        frames_cache: Also store the tiny CLIP's preprocessed frames (``--frames-cache``, for Vita-CLIP).
        names: Which datasets of the manifest (``epic``, ``ego4d``, ``egtea``); other groups are left alone.
        num_frames: Slots per segment (default :data:`DEMO_NUM_FRAMES`, the 16 bin centres; 48 = 16 bins x 3
            candidates as a real store: evaluation takes each bin's centre one, training draws one per bin).
        jobs: Datasets extracted at once, each in a process of its own with one torch thread (1: one after
            another in this process).
        progress: Progress bars.
        echo: Log lines.

    Returns:
        ``{group: {"rows_ok", "rows_failed", "seconds", "clips_per_second"}}``.

    Raises:
        RuntimeError: a row failed (the synthetic data should extract completely); the message lists reasons.
    """
    from xmic.extract.runner import ExtractConfig
    from xmic.owned import manifest_owned, remove_owned

    data_dir, cache = Path(data_dir), Path(cache)
    configs: dict[str, ExtractConfig] = {}
    for name in names:
        info = manifest["datasets"][name]
        group = GROUP_PREFIX + name
        texts = [p for p in (cache / "text").iterdir() if p.is_dir()] if (cache / "text").is_dir() else []
        stale = [p.relative_to(cache.parent).as_posix() for p in (cache / name, cache / group)]
        stale += [(t / n).relative_to(cache.parent).as_posix() for t in texts for n in (name, group)]
        remove_owned(  # a group of that name that the demo did not write is never deleted
            cache.parent, manifest_owned(cache.parent), stale, what=f"the group {name!r} of {cache}",
            fix="the demo extracts that dataset under this name: remove or rename the group, or use another store",
        )  # fmt: skip
        configs[name] = ExtractConfig(
            dataset=name,
            root=data_dir / info["root"],
            splits=tuple(info["splits"].values()),
            cache=cache,
            encoder=DEMO_CLIP,
            second_encoder=second_encoder,
            extra_encoders=tuple(extra_encoders),
            frames_cache=frames_cache,
            hands="given",
            hand_options={"hand_boxes": str(data_dir / info["hand_boxes"])},
            model_dir=Path(model_dir),
            num_frames=num_frames,
            workers=0,
            device="cpu",
            decode_size=0,  # the synthetic frames are small already (192x108, 160x120)
            fmt="zarr",
            progress=progress,
        )
    jobs = max(1, min(jobs, len(configs)))
    if jobs > 1:
        _create_shared_groups(cache, configs[names[0]].encoder_names())
        reports = _extract_in_processes(configs, jobs, echo)
    else:
        reports = {name: _extract_one(config, echo) for name, config in configs.items()}
    out: dict[str, Any] = {}
    for name, (report, seconds) in reports.items():
        if report["rows_failed"]:
            reasons = "; ".join(f"row {f['row']}: {f['reason']}" for f in report["failures"][:5])
            raise RuntimeError(f"extracting {name}: {report['rows_failed']} rows failed ({reasons})")
        group = GROUP_PREFIX + name
        rename_group(cache, name, group)
        out[group] = {
            "rows_ok": report["rows_ok"],
            "rows_failed": report["rows_failed"],
            "seconds": seconds,
            "clips_per_second": report["clips_per_second"],
        }
        echo(f"{name} -> store group {group}: {report['rows_ok']} clips in {seconds:.1f} s")
    return out


def _extract_one(config: Any, echo: Echo) -> tuple[dict[str, Any], float]:
    """Run one group's extraction; its report's numbers (picklable) and its wall time."""
    from xmic.extract.runner import run_extraction

    t0 = time.perf_counter()
    report = run_extraction(config, echo=echo)
    numbers = {
        "rows_ok": report.rows_ok,
        "rows_failed": report.rows_failed,
        "failures": list(report.failures),
        "clips_per_second": report.clips_per_second,
    }
    return numbers, time.perf_counter() - t0


def _create_shared_groups(cache: Path, encoders: list[str]) -> None:
    """The store and the text groups every dataset's extraction writes under, made before the processes start, so
    that no two of them create the same group at once."""
    from xmic.cache import layout
    from xmic.cache.backend import Backend

    with Backend(cache, "zarr").session("a") as s:
        for encoder in encoders:
            s.require_group(f"{layout.TEXT_GROUP}/{encoder}")


def _extract_in_processes(configs: dict[str, Any], jobs: int, echo: Echo) -> dict[str, tuple[dict[str, Any], float]]:
    """Each dataset's extraction in a spawned process of one torch thread (``jobs`` at a time); progress bars on
    their own lines."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {name: pool.submit(_extract_in_child, config, k) for k, (name, config) in enumerate(configs.items())}
        return {name: future.result() for name, future in futures.items()}


def _extract_in_child(config: Any, position: int) -> tuple[dict[str, Any], float]:
    import torch

    torch.set_num_threads(1)
    os.environ["TQDM_POSITION"] = str(position)  # tqdm reads TQDM_<argument> defaults (tqdm >= 4.66)
    return _extract_one(config, lambda line: print(f"  [{config.dataset}] {line}", flush=True))
