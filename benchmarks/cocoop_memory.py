"""Peak memory of one Co-CoOp training step, text-tower passes chunked (and checkpointed) against unchunked.

Co-CoOp sends B x K prompts through the frozen CLIP text tower at every step (K = 521 Ego4D nouns). This
builds a random-weight text tower from a ``CLIPTextConfig`` (no download): the real CLIP ViT-B/16 text tower
(width 512, 12 layers, 8 heads, MLP 2048, projection 512, vocabulary 49408, 77 positions) or, with
``--small``, a scaled-down one. A tokenizer whose vocabulary makes each word of the K synthetic class names a
single token gives prompts of realistic length (``<bos> X X X X w1 [w2 [w3]] . <eos>``, 8 to 10 tokens).

Each variant runs in its own subprocess (forward, cross-entropy, backward, AdamW step) so that one cannot
inherit the other's heap. Memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before
the step; on the CPU the process's peak resident set size (``VmHWM``, reset just before the step through
``/proc/self/clear_refs``; ``ru_maxrss`` where that is unavailable) above the resident size before the step.
Both variants also report the bytes autograd saved for the backward pass and the loss and gradient norm,
which must agree. Prints one JSON object; ``ratio`` = unchunked peak / chunked peak.

Usage::

    python benchmarks/cocoop_memory.py --small            # CPU, well under 2 minutes
    python benchmarks/cocoop_memory.py --device cuda --batch 16 [--amp] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (width, layers, heads, MLP width, projection, vocabulary size) of the text tower.
REAL = (512, 12, 8, 2048, 512, 49408)
SMALL = (128, 4, 4, 512, 128, 49408)
EGO4D_NOUNS = 521
FRAMES = 16


def class_names(k: int) -> tuple[list[str], list[str]]:
    """``k`` distinct synthetic class names of 1 to 3 letter-only words, and the words."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [a + b + c for a in letters[:10] for b in letters for c in letters[:4]][: max(3 * k // 2, 8)]
    names = []
    for i in range(k):
        n_words = 1 + i % 3
        names.append(" ".join(words[(i * 7 + j * 131) % len(words)] for j in range(n_words)))
    names = list(dict.fromkeys(names))
    extra = 0
    while len(names) < k:  # deterministic top-up if two names collided
        names.append(f"{words[extra]} {words[-1 - extra]} {words[extra // 2]}")
        names = list(dict.fromkeys(names))
        extra += 1
    return names, words


def build_encoder(small: bool, words: list[str], folder: Path):
    """A random-weight ``FrozenTextEncoder`` of the chosen size and a tokenizer that knows ``words``."""
    import torch
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

    from xmic.adapt.text_encoder import FrozenTextEncoder
    from xmic.demo.tiny_models import BOS, EOS, _write_clip_tokenizer, build_clip_vocab

    width, layers, heads, mlp, proj, vocab_size = SMALL if small else REAL
    vocab, merges = build_clip_vocab(words + ["a", "photo", "of"])
    _write_clip_tokenizer(folder, vocab, merges, 77)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    config = CLIPTextConfig(
        vocab_size=max(vocab_size, len(vocab)),
        hidden_size=width,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        projection_dim=proj,
        bos_token_id=vocab[BOS],
        eos_token_id=vocab[EOS],
        pad_token_id=vocab[EOS],
    )
    torch.manual_seed(0)
    model = CLIPTextModelWithProjection(config).eval()
    return FrozenTextEncoder.from_model(model, tokenizer, name=f"random CLIP text tower {width}x{layers}")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes(reset_worked: bool) -> int:
    if reset_worked:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One Co-CoOp training step with ``args.chunk`` (0 = unchunked); returns its measurements."""
    import torch

    from xmic.adapt.base import ClassText, FeatureBatch
    from xmic.adapt.prompt_learning import CoCoOp

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    device = torch.device(args.device)
    names, words = class_names(args.classes)
    with tempfile.TemporaryDirectory() as tmp:
        text = build_encoder(args.small, words, Path(tmp)).to(device)
    dim = text.dim
    torch.manual_seed(1)
    model = CoCoOp(text, dim, chunk=args.chunk or None).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    g = torch.Generator().manual_seed(2)
    batch = FeatureBatch(cls=torch.randn(args.batch, FRAMES, dim, generator=g).to(device), cond=torch.zeros(0))
    labels = torch.randint(args.classes, (args.batch,), generator=g).to(device)
    classes = ClassText(emb=torch.zeros(args.classes, dim, device=device), names=names)
    prompts = text.prompts(names, 4, 0)  # tokenise outside the measured step
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        reset = reset_peak_rss()
        before = rss_bytes()
    t0 = time.perf_counter()
    try:
        with (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp),
        ):
            logits = model(batch, classes)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.sqrt(sum(p.grad.float().pow(2).sum() for p in model.parameters() if p.grad is not None))
        opt.step()
        if cuda:
            torch.cuda.synchronize()
    except torch.OutOfMemoryError as err:
        return {"chunk": args.chunk or None, "oom": True, "error": str(err).splitlines()[0]}
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda else peak_rss_bytes(reset)) - before
    return {
        "chunk": args.chunk or None,
        "prompts_per_step": args.batch * args.classes,
        "prompt_tokens": int(prompts.ids.shape[1]),
        "peak_step_bytes": int(peak),
        "autograd_saved_bytes": int(saved),
        "loss": loss.item(),
        "grad_norm": grad_norm.item(),
        "seconds": round(seconds, 2),
        "memory": "cuda max_memory_allocated" if cuda else ("VmHWM" if reset else "ru_maxrss"),
    }


def run_variant(args: argparse.Namespace, chunk: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--chunk", str(chunk), "--batch", str(args.batch)]
    cmd += ["--classes", str(args.classes), "--device", args.device]
    cmd += ["--small"] * args.small + ["--amp"] * args.amp
    # glibc: large blocks mmapped (and returned on free) so that the resident size follows the live tensors
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="scaled-down text tower (128 wide, 4 layers), CPU-sized")
    parser.add_argument("--batch", type=int, default=8, help="videos per step")
    parser.add_argument("--classes", type=int, default=EGO4D_NOUNS, help="K class names (521 = Ego4D nouns)")
    parser.add_argument("--chunk", type=int, default=None, help="prompts per text-tower pass (default: CoCoOp's)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast, as training does on CUDA")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    import inspect

    import torch

    from xmic.adapt.prompt_learning import CoCoOp

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    chunk = args.chunk or inspect.signature(CoCoOp).parameters["chunk"].default
    width, layers, heads, mlp, proj, vocab = SMALL if args.small else REAL
    unchunked, chunked = run_variant(args, 0), run_variant(args, chunk)
    result: dict[str, Any] = {
        "text_tower": {"width": width, "layers": layers, "heads": heads, "mlp": mlp, "projection": proj},
        "size": "small" if args.small else "clip-vit-b16",
        "device": args.device,
        "amp": args.amp,
        "batch": args.batch,
        "classes": args.classes,
        "unchunked": unchunked,
        "chunked": chunked,
    }
    if not unchunked.get("oom") and not chunked.get("oom"):
        result["ratio"] = round(unchunked["peak_step_bytes"] / max(1, chunked["peak_step_bytes"]), 2)
        result["saved_ratio"] = round(unchunked["autograd_saved_bytes"] / max(1, chunked["autograd_saved_bytes"]), 2)
        result["loss_abs_diff"] = abs(unchunked["loss"] - chunked["loss"])
        result["grad_norm_rel_diff"] = abs(unchunked["grad_norm"] - chunked["grad_norm"]) / unchunked["grad_norm"]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
