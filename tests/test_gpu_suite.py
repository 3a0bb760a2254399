"""The GPU suite's --smoke run: same code as on a GPU at tiny sizes on the CPU; checks its JSON's shape."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"


def _load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(value, path="$"):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")


def test_gpu_suite_smoke_writes_complete_finite_json(tmp_path):
    out = tmp_path / "smoke.json"
    assert _load_suite().main(["--smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    top = {"suite", "smoke", "device", "date", "budget_seconds", "goals", "skipped", "errors", "matmul"}
    parts = {"encoders", "extract", "train", "cocoop", "vita"}
    assert top | parts | {"total_seconds"} <= set(report)
    assert report["smoke"] is True
    assert report["skipped"] == {} and report["errors"] == {}
    assert set(report["encoders"]["models"]) == {"clip-vit-b16", "clip-vit-l14", "dinov2-vitb14", "lavila-tsf-l14"}
    lavila = report["encoders"]["models"]["lavila-tsf-l14"]
    assert lavila["img_per_s"] == pytest.approx(4 * lavila["clips_per_s"])
    assert lavila["gflops_per_img"] == pytest.approx(lavila["gflops_per_clip"] / 4)
    for entry in report["encoders"]["models"].values():
        assert {"img_per_s", "best_batch", "gflops_per_img", "bound_img_per_s", "share_of_bound"} <= set(entry)
    assert {"clips_per_second", "shares", "decode_only_clips_per_second", "share_of_decode_ceiling"} <= set(
        report["extract"]
    )
    assert {"decode", "encode"} <= set(report["extract"]["shares"])
    train = report["train"]
    assert train["segments"] == 256 and train["epochs"] == 2 and train["reference_epochs"] == 1
    assert {"store_clips_per_s", "reference_clips_per_s", "speedup", "reference_seconds_scaled"} <= set(train)
    cocoop = report["cocoop"]
    assert cocoop["classes"] == 521
    vita = report["vita"]
    assert vita["frames"] == 16 and vita["best_batch"] == 2 and vita["clips_per_s"] > 0
    assert {"chunked_peak_bytes", "unchunked_peak_bytes", "peak_ratio"} <= set(cocoop)
    numbers = list(_numbers(report))
    assert len(numbers) > 40
    bad = [
        (p, v) for p, v in numbers if not (math.isfinite(v) and (v > 0 or ".shares." in p))
    ]  # a share may round to 0
    assert not bad, bad


def test_gpu_suite_budget_skips_parts_with_a_reason(tmp_path):
    out = tmp_path / "skip.json"
    assert _load_suite().main(["--smoke", "--budget", "1", "--parts", "train,cocoop", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["skipped"]) == {"train", "cocoop"}
    assert all("budget" in reason for reason in report["skipped"].values())
    assert report["matmul"]["tflops"] > 0


def test_timesformer_flops_against_a_count_by_parts():
    """LaViLa-L/14 on 4 frames at 224 px: per block two attentions' projections, the grouped attention products,
    the CLS queries and the MLP, counted here term by term; about 213 GFLOPs per frame (162 for one CLIP L/14 image)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import gpu_encoders

    from xmic.lavila.model import LAVILA_CONFIGS

    cfg = LAVILA_CONFIGS["tsf-l14"]
    d, f, p = 1024, 4, 256
    tokens = f * p + 1
    projections = 2 * 4 * tokens * d * d
    time_attn = 2 * f * p * (f + 1) * d
    space_attn = 2 * f * p * (p + 1) * d
    cls = 2 * 2 * tokens * d
    mlp = 2 * tokens * d * 4 * d
    macs = f * p * 3 * 14 * 14 * d + 24 * (projections + time_attn + space_attn + cls + mlp) + d * 256
    assert gpu_encoders.timesformer_flops(cfg) == pytest.approx(2 * macs, rel=1e-12)
    assert 200 < gpu_encoders.timesformer_flops(cfg) / f / 1e9 < 230
