"""How much of a verb one frame shows, and how much the order of the frames adds: linear probes on a demo store.

``python -m xmic.demo.probes demo_out/cache`` fits a multinomial logistic regression (torch, L-BFGS, L2) from
the frozen CLIP features of each clip to its verb and prints the 5-fold cross-validated top-1 of:

- ``centre``: the centre frame (bin 8 of 16) alone;
- ``mean``: the mean of the 16 bin-centre frames (what zero-shot CLIP, CLIP-Adapter and X-MIC's classified view see);
- ``ordered``: the 16 bin-centre frames concatenated in time order (what a temporal model can use);

for the hand crop, the full frame and both views side by side. Chance is 1 / (number of verbs). Each fold trains on
four fifths of a group's clips (both splits) and tests on the rest; features are standardised on the training fold.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Frame features of one clip -> the probe's input: ``(N, T, D)`` -> ``(N, F)``.
FEATURES = {
    "centre": lambda x: x[:, x.shape[1] // 2],
    "mean": lambda x: x.mean(dim=1),
    "ordered": lambda x: x.flatten(1),
}
VIEWS = ("hand", "full", "F+H")


def clip_frames(reader: Any, encoder: str, view: str, bins: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The l2-normalised bin-centre features ``(N, bins, D)`` of every ok row with a verb label, and the labels."""
    from xmic.adapt.data import frame_slots
    from xmic.cache.schema import ROW_OK

    labels = np.asarray(reader.segments["verb"], dtype=np.int64)
    rows = np.flatnonzero((np.asarray(reader.row_status) == ROW_OK) & (labels >= 0))
    x = torch.from_numpy(reader.load_features_numpy(encoder, view)[rows].astype(np.float32))
    slots = frame_slots(1, x.shape[1], bins, train=False, generator=None, device="cpu")[0]
    return torch.nn.functional.normalize(x[:, slots], dim=-1), torch.from_numpy(labels[rows])


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, *, l2: float = 1e-2, seed: int = 0) -> torch.nn.Linear:
    """A multinomial logistic regression ``x`` ``(N, F)`` -> ``y`` ``(N,)``, L-BFGS with an L2 penalty on the weights."""
    torch.manual_seed(seed)
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x), y) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def probe_top1(x: torch.Tensor, y: torch.Tensor, classes: int, *, folds: int = 5, l2: float = 1e-2) -> float:
    """Cross-validated top-1 (%) of :func:`fit_logistic` from ``x`` ``(N, F)`` to ``y`` ``(N,)``."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    correct = 0
    for fold in range(folds):
        test = order[fold::folds]
        train = order[torch.arange(len(y)) % folds != fold]
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        lin = fit_logistic((x[train] - mu) / sd, y[train], classes, l2=l2, seed=fold)
        with torch.no_grad():
            correct += int((lin((x[test] - mu) / sd).argmax(1) == y[test]).sum())
    return 100.0 * correct / len(y)


def verb_probes(cache: str | Path, groups: list[str] | None = None) -> dict[str, Any]:
    """``{group: {"clips", "verbs", "chance", view: {feature: top-1 %}}}`` for the demo store at ``cache``."""
    from xmic.cache.reader import StoreReader, list_datasets

    out: dict[str, Any] = {}
    for group in groups or list_datasets(cache):
        reader = StoreReader(cache, group)
        encoder = next(n for n, e in reader.spec.encoders.items() if e.family == "clip")
        hand, y = clip_frames(reader, encoder, "hand")
        full, _ = clip_frames(reader, encoder, "full")
        k = len(reader.vocab["verb"])
        row: dict[str, Any] = {"clips": len(y), "verbs": k, "chance": 100.0 / k}
        for view, x in zip(VIEWS, (hand, full, torch.cat([hand, full], dim=-1)), strict=True):
            row[view] = {name: probe_top1(f(x), y, k) for name, f in FEATURES.items()}
        out[group] = row
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m xmic.demo.probes STORE [GROUP ...] [--json]")
    torch.set_num_threads(1)
    as_json = "--json" in argv
    args = [a for a in argv if a != "--json"]
    result = verb_probes(args[0], args[1:] or None)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for group, row in result.items():
        print(f"{group}: {row['clips']} clips, {row['verbs']} verbs (chance {row['chance']:.1f} %), 5-fold CV top-1 %")
        for view in VIEWS:
            print(f"  {view:5s} " + "  ".join(f"{name} {row[view][name]:5.1f}" for name in FEATURES))


if __name__ == "__main__":
    main()
