"""CPU time of Co-CoOp and CoOp training steps: the text tower's full forward on every prompt against the shared
prefix run once (:mod:`xmic.adapt.shared_prefix`), in one process, alternating, best of several repeats.

The tower is the demo's tiny CLIP (built offline with ``xmic.demo.tiny_models.make_tiny_clip``: width 64, 2
layers) or the CLIP folder given with ``--model-dir``. A step is the demo's: B videos of T frames, K classes with
two-token names, 16 context vectors before the name, no period; forward, cross-entropy, backward, AdamW step.
Both paths start from the same weights and take the same batches; the logits of their last step must agree to
float rounding. Prints one JSON object; ``ratio`` = full-forward seconds / shared-prefix seconds per step.

Usage::

    python benchmarks/text_prefix_speed.py                 # about a minute on one CPU thread
    python benchmarks/text_prefix_speed.py --model-dir DIR --batch 16 --steps 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VERBS = ["cut", "wash", "open", "close", "take", "put", "pour", "stir", "mix", "peel"]
OBJECTS = ["knife", "pot", "lid", "jar", "cup", "bowl", "water", "spoon", "dough", "skin"]
NAMES = [f"{a} {b}" for a, b in zip(VERBS, OBJECTS, strict=True)]  # two-token names, as the demo's


def steps(method: str, text, share: bool, batch: int, frames: int, n_steps: int):
    """CPU seconds of each of ``n_steps`` training steps, and the last step's logits (B, K)."""
    import torch

    from xmic.adapt.base import ClassText, FeatureBatch
    from xmic.adapt.prompt_learning import CoCoOp, CoOp

    text.share_prefix = share
    torch.manual_seed(0)
    model = CoCoOp(text, text.dim) if method == "cocoop" else CoOp(text, text.dim)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4, foreach=True)
    classes = ClassText(emb=text.encode(NAMES), names=list(NAMES))
    g = torch.Generator().manual_seed(1)
    times, logits = [], None
    for _ in range(n_steps):
        feats = FeatureBatch(cls=torch.randn(batch, frames, text.dim, generator=g), cond=None)
        labels = torch.randint(0, len(NAMES), (batch,), generator=g)
        t0 = time.process_time()
        logits = model(feats, classes)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.process_time() - t0)
    text.share_prefix = True
    return times, logits.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="a local CLIP folder (default: the demo's tiny)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from xmic.adapt.text_encoder import FrozenTextEncoder

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            from xmic.demo.tiny_models import make_tiny_clip

            words = sorted({w for n in NAMES for w in n.split()} | {"x"})
            model_dir = make_tiny_clip(Path(tmp) / "clip", vocab_words=words, dim=64)
        text = FrozenTextEncoder(model_dir)
        result = {"model_dir": str(args.model_dir or "demo tiny CLIP"), "batch": args.batch, "classes": len(NAMES)}
        for method in ("cocoop", "coop"):
            best = {False: float("inf"), True: float("inf")}
            last = {}
            for _ in range(args.repeats):
                for share in (False, True):
                    times, logits = steps(method, text, share, args.batch, args.frames, args.steps)
                    best[share] = min(best[share], sorted(times)[len(times) // 2])  # median step of a repeat
                    last[share] = logits
            diff = float((last[True] - last[False]).abs().max())
            result[method] = {
                "full_forward_s_per_step": round(best[False], 5),
                "shared_prefix_s_per_step": round(best[True], 5),
                "ratio": round(best[False] / best[True], 2),
                "last_logits_max_abs_diff": diff,
                "last_logits_max_abs": float(last[False].abs().max()),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
