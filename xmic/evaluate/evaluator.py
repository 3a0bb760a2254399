"""Evaluate a trained run on one or more dataset groups of a store: within, cross, shared and novel.

Within: the run's own dataset (its evaluation split). Cross: any other dataset, zero-shot with that dataset's
full vocabulary. Shared / novel (Table 2): the cross test set split by whether the ground-truth class name is
also a class of the training vocabulary; each subset is classified among its own classes only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from xmic.adapt.base import ClassText
from xmic.adapt.data import FeatureBank, frame_slots, load_bank
from xmic.adapt.trainer import class_text
from xmic.cache.errors import StoreSpecError
from xmic.cache.schema import same_identity
from xmic.classnames import normalise_name
from xmic.evaluate.metrics import class_mean_top1, harmonic_mean, subset_accuracy, top1


def evaluation_splits(reader) -> tuple[str, ...]:
    """Every split of the group that is not a training split (validation, val, test, test_split1+2+3, ...)."""
    present = sorted({str(x) for x in reader.segments["split"]})
    return tuple(x for x in present if not x.startswith("train"))


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    bank: FeatureBank,
    classes: ClassText,
    *,
    frames: int,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Logits (M, K) for ``bank.rows`` with the fixed evaluation slots, computed in fp32.

    Autocast is switched off here even inside a caller's autocast block: CLIP's cosines to the K classes sit
    close together and bf16 rounding flips the top classes. (Training may use bf16; evaluation never does.)
    """
    device = bank.rows.device
    batch_size = min(batch_size, getattr(bank, "eval_batch_size", batch_size))  # a FrameBank's clips cost T passes
    out = []
    for start in range(0, bank.rows.numel(), batch_size):
        rows = bank.rows[start : start + batch_size]
        slots = frame_slots(rows.numel(), bank.store_frames, frames, train=False, generator=None, device=device)
        with torch.autocast(device.type, enabled=False):
            out.append(model(bank.batch(rows, slots), classes).float())
    return torch.cat(out) if out else torch.zeros(0, len(classes.names), device=device)


def run_bank(reader, cfg, splits: tuple[str, ...], device: torch.device) -> FeatureBank:
    """The features a run reads (its encoders, views and target) for ``splits`` of ``reader``, on ``device``; the
    frame cache for Vita-CLIP."""
    from xmic.adapt.baselines import FRAME_METHODS

    if cfg.method in FRAME_METHODS:
        from xmic.adapt.frame_bank import load_frame_bank

        return load_frame_bank(reader, target=cfg.target, encoder=cfg.encoder, splits=splits, device=device)
    return load_bank(
        reader,
        target=cfg.target,
        encoder=cfg.encoder,
        second_encoder=cfg.second_encoder,
        views=cfg.views,
        classified_view=cfg.classified_view,
        splits=splits,
        device=device,
    )


def check_store_matches_run(reader, meta: dict[str, Any]) -> None:
    """Refuse a store whose encoders or frame sampling differ from those the run was trained on."""
    reader.check_bin_centres()  # an old store without bin-centre frames: say how to re-extract it first
    spec = reader.spec
    for name, identity in meta["encoders"].items():
        have = spec.encoders.get(name)
        if have is None or not same_identity(have.identity(), identity):
            raise StoreSpecError(
                f"the run was trained on encoder {name} {identity}; the store {spec.dataset!r} has "
                f"{have.identity() if have else 'no such encoder (it has ' + ', '.join(spec.encoders) + ')'}"
            )
    trained = meta["store"]
    for key, mine in (("num_frames", spec.num_frames), ("sampling", spec.sampling)):
        if trained[key] != mine:
            raise StoreSpecError(
                f"the run was trained with {key}={trained[key]!r}; the store {spec.dataset!r} has {mine!r}"
            )


def scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {"top1": top1(logits, labels), "class_mean_top1": class_mean_top1(logits, labels), "n": int(labels.numel())}


def evaluate_dataset(
    model,
    cfg,
    meta,
    reader,
    *,
    split_files: Path | None = None,
    eval_splits: tuple[str, ...] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Scores of a loaded run on one dataset group; adds shared/novel subsets when it is a cross dataset."""
    check_store_matches_run(reader, meta)
    eval_splits = eval_splits or evaluation_splits(reader)
    device = torch.device(device)
    bank = run_bank(reader, cfg, eval_splits, device)
    if bank.rows.numel() == 0:
        raise ValueError(
            f"no labelled evaluation rows (splits {', '.join(eval_splits)}) in dataset {reader.spec.dataset!r}"
        )
    classes = class_text(reader, cfg.encoder, cfg.target, cfg.template, device)
    logits = predict_logits(model, bank, classes, frames=cfg.frames)
    labels = bank.labels[bank.rows]
    result: dict[str, Any] = {"dataset": reader.spec.dataset, "classes": len(classes.names), **scores(logits, labels)}
    result["failed_left_out"] = bank.failed
    within = reader.spec.dataset == meta["train_dataset"]
    result["kind"] = "within" if within else "cross"
    if not within:
        if split_files is None:
            train_vocab = {normalise_name(n) for n in meta["vocab"]}
            shared = [k for k, name in enumerate(classes.names) if normalise_name(name) in train_vocab]
        else:
            shared = shared_ids_from_files(split_files, reader.spec.dataset, cfg.target, classes.names)
        novel = [k for k in range(len(classes.names)) if k not in set(shared)]
        result["shared_rule"] = "exact" if split_files is None else f"files:{split_files}"
        result["shared"] = {"classes": len(shared), **subset_accuracy(logits, labels, shared)}
        result["novel"] = {"classes": len(novel), **subset_accuracy(logits, labels, novel)}
    return result


def evaluate_run(
    run_dir: Path,
    cache: Path,
    datasets: list[str] | None = None,
    *,
    device: str = "cpu",
    split_files: Path | None = None,
    eval_splits: tuple[str, ...] | None = None,
    model_dir: Path | None = None,
    readers: dict | None = None,
) -> dict[str, Any]:
    """Evaluate ``run_dir`` on every dataset of ``datasets`` (default: all groups of the store).

    ``model_dir``: the CLIP weights of a prompt-learning run whose recorded folder moved (see ``load_run``).
    ``readers``: a dict the caller keeps over the evaluations of many runs of one finished store; the store's
    arrays are then read once (:func:`~xmic.cache.reader.shared_reader`).
    """
    from xmic.adapt.run_io import load_run
    from xmic.cache.reader import list_datasets, shared_reader

    model, cfg, meta = load_run(run_dir, device=device, model_dir=model_dir)
    datasets = datasets or list_datasets(cache)
    results = {
        "run": str(run_dir),
        "method": cfg.method,
        "target": cfg.target,
        "preset": cfg.preset,
        "train_dataset": meta["train_dataset"],
        "encoders": meta["encoders"],
        "store": str(cache),
        "datasets": {},
    }
    for name in datasets:
        reader = shared_reader(readers, cache, name)
        results["datasets"][name] = evaluate_dataset(
            model, cfg, meta, reader, split_files=split_files, eval_splits=eval_splits, device=device
        )
    within = [r for r in results["datasets"].values() if r["kind"] == "within"]
    cross = [r for r in results["datasets"].values() if r["kind"] == "cross"]
    if within and cross:
        results["hm"] = {c["dataset"]: harmonic_mean(within[0]["top1"], c["top1"]) for c in cross}
    return results


DATASET_FILE_PREFIX = {"epic": "epic", "ego4d": "ego", "egtea": "egtea"}


def shared_ids_from_files(split_dir: Path, dataset: str, target: str, class_names: list[str]) -> list[int]:
    """Ids of ``class_names`` listed in the authors' shared-class file of ``dataset`` (``<ds>_*_common_*<target>.txt``).

    The authors name the file after the test dataset first: ``epic_ego_common_exact_noun.txt`` lists EPIC
    classes shared with Ego4D, ``ego_epic_common_exact_noun.txt`` the Ego4D ones.
    """
    from xmic.evaluate.splits import read_split_file, split_from_file

    files = [p for p in sorted(Path(split_dir).glob(f"*common*{target}*.txt")) if "non_common" not in p.name]
    prefix = DATASET_FILE_PREFIX.get(dataset, dataset)
    mine = [p for p in files if p.name.split("_")[0] == prefix]
    if not mine:
        raise FileNotFoundError(
            f"no shared-class file for {dataset} ({prefix}_*_common_*{target}*.txt) in {split_dir}; found: "
            f"{', '.join(p.name for p in files) or 'none'}"
        )
    return split_from_file(class_names, read_split_file(mine[0]), origin=mine[0])


#: The notes under an evaluation table that has an hm column filled / shared and novel columns filled.
HM_LEGEND = (
    "hm: harmonic mean 2ab/(a+b) of the within-dataset top-1 (a, row {within}) and the cross row's top-1 (b): the "
    "paper's balance of within- and cross-dataset generalisation."
)
SHARED_NOVEL_LEGEND = (
    "shared / novel top-1: the cross rows whose class is / is not shared with the training dataset (same name, or "
    "the authors' shared-class files with --split-files), each classified among its own subset of classes."
)


def to_markdown(results: dict[str, Any]) -> str:
    """A Markdown table of one evaluation (top-1, class-mean, shared/novel, hm)."""
    lines = [
        f"### {results['method']} · {results['target']} · trained on {results['train_dataset']} ({results['preset']})",
        "",
        "| dataset | kind | classes | n | top-1 | class-mean | shared top-1 | novel top-1 | hm |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["datasets"].items():
        sh = f"{100 * r['shared']['top1']:.2f}" if "shared" in r else ""
        nv = f"{100 * r['novel']['top1']:.2f}" if "novel" in r else ""
        hm = results.get("hm", {}).get(name)
        lines.append(
            f"| {name} | {r['kind']} | {r['classes']} | {r['n']} | {100 * r['top1']:.2f} | "
            f"{100 * r['class_mean_top1']:.2f} | {sh} | {nv} | {'' if hm is None else f'{100 * hm:.2f}'} |"
        )
    within = next((name for name, r in results["datasets"].items() if r["kind"] == "within"), None)
    if results.get("hm") and within is not None:
        lines += ["", HM_LEGEND.format(within=within)]
    if any("shared" in r or "novel" in r for r in results["datasets"].values()):
        lines += ["", SHARED_NOVEL_LEGEND]
    left_out = {name: r["failed_left_out"] for name, r in results["datasets"].items() if r.get("failed_left_out")}
    if left_out:
        counts = ", ".join(f"{n} of {name}" for name, n in left_out.items())
        lines += ["", f"Not scored: {counts} evaluation rows whose extraction failed (`xmic cache verify` lists them)."]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out_dir: Path, stem: str = "eval") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(results, indent=2, sort_keys=True))
    md.write_text(to_markdown(results))
    return js, md
