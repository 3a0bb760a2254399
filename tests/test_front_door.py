"""What a new user meets first: `xmic models`, the order and wording of extract's first errors, the evaluate
legend, train's printed accuracy, and the outputs git ignores."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xmic.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_model_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No model anywhere but where a test puts it: an empty hub cache, no XMIC_MODEL_DIR / XMIC_HAND_MODEL."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    for var in ("XMIC_MODEL_DIR", "XMIC_HAND_MODEL"):
        monkeypatch.delenv(var, raising=False)


def _entries(output: str) -> dict[str, dict]:
    return {e["name"]: e for e in json.loads(output)}


def test_models_reports_tiny_models_as_other_models_and_hashes_what_it_finds(tmp_path: Path, no_model_env) -> None:
    """A tiny CLIP saved where clip-vit-b16 is looked for is not reported as openai/clip-vit-base-patch16; the demo
    CLIP is found with the sha256 a store records; the hand model file is found and hashed; the rest say how to
    get them."""
    from xmic.demo.tiny_models import make_tiny_clip

    models = tmp_path / "models"
    make_tiny_clip(models / "clip-vit-b16")  # architecture of the tiny test model, name of the real one
    demo = make_tiny_clip(models / "demo-clip", dim=64, image_size=64)
    (models / "hand_landmarker.task").write_bytes(b"not really a task file")
    result = CliRunner().invoke(main, ["models", "--model-dir", str(models), "--json"])
    assert result.exit_code == 0, result.output
    got = _entries(result.output)
    assert set(got) >= {"clip-vit-b16", "clip-vit-l14", "dinov2-vitb14", "lavila-tsf-l14", "demo-clip", "mediapipe"}
    tiny = got["clip-vit-b16"]
    assert tiny["status"] == "OTHER MODEL" and tiny["path"] == str(models / "clip-vit-b16")
    assert tiny["notes"][0].startswith("this folder is not openai/clip-vit-base-patch16 (projection_dim: found 32")
    # the demo CLIP: found, hashed as the store's weights_sha256 (file name + sha256 of each weight file)
    weights = hashlib.sha256((demo / "model.safetensors").read_bytes()).hexdigest()
    expect = hashlib.sha256(b"model.safetensors\0" + weights.encode()).hexdigest()
    assert (got["demo-clip"]["status"], got["demo-clip"]["sha256"]) == ("found", expect)
    missing = got["clip-vit-l14"]
    assert missing["status"] == "NOT FOUND" and missing["path"] is None
    assert missing["get"].startswith("`hf download openai/clip-vit-large-patch14`")
    lavila = got["lavila-tsf-l14"]
    assert lavila["status"] == "NOT FOUND" and "https://dl.fbaipublicfiles.com/lavila/checkpoints/" in lavila["get"]
    hand = got["mediapipe"]
    assert hand["status"] == "found" and hand["path"] == str(models / "hand_landmarker.task")
    assert hand["sha256"] == hashlib.sha256(b"not really a task file").hexdigest()
    assert hand["notes"][0].startswith("not Google's float16 hand_landmarker.task")
    assert got["hoa"]["status"] == "per run" and "pack_100doh" in got["hoa"]["get"]
    # the text listing says the same, one heading line per model
    text = CliRunner().invoke(main, ["models", "--model-dir", str(models), "--no-sha256"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == f"looked in: --model-dir {models}; then the Hugging Face cache {tmp_path / 'empty-hub'}"
    assert "  clip-vit-b16    OTHER MODEL openai/clip-vit-base-patch16" in lines
    assert "  clip-vit-l14    NOT FOUND   openai/clip-vit-large-patch14" in lines
    assert "sha256" not in text.output


def test_models_finds_a_real_architecture_in_the_hub_cache(tmp_path: Path, no_model_env) -> None:
    """A folder whose config.json has DINOv2-B/14's architecture, in the hub cache layout, is reported found."""
    from xmic.demo.tiny_models import make_tiny_dinov2

    snap = tmp_path / "empty-hub" / "models--facebook--dinov2-base" / "snapshots" / "abc"
    make_tiny_dinov2(snap)
    cfg = json.loads((snap / "config.json").read_text())
    (snap / "config.json").write_text(
        json.dumps({**cfg, "hidden_size": 768, "num_hidden_layers": 12, "patch_size": 14})
    )
    result = CliRunner().invoke(main, ["models", "--json", "--no-sha256"])
    assert result.exit_code == 0, result.output
    entry = _entries(result.output)["dinov2-vitb14"]
    assert (entry["status"], entry["path"], entry["notes"]) == ("found", str(snap), [])


@pytest.mark.parametrize(
    ("dataset", "first_file"),
    [("epic", "EPIC_100_train.csv"), ("ego4d", "fho_lta_train.json"), ("egtea", "train_split1.txt")],
)
def test_extract_on_an_empty_root_names_the_annotations_first(
    tmp_path: Path, no_model_env, dataset: str, first_file: str
) -> None:
    """No annotations and no hand source: the annotations are what is reported (the first thing to fix)."""
    root = tmp_path / "empty"
    root.mkdir()
    result = CliRunner().invoke(main, ["extract", "--dataset", dataset, "--root", str(root), "--dry-run"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and "not found; searched:" in result.output
    assert str(root / first_file) in result.output and "hand-box source" not in result.output
    # with the annotations in place the hand-box choice is the next refusal
    from xmic.bench.extract import write_ego4d_dataset

    if dataset == "ego4d":
        write_ego4d_dataset(root, {}, {"clipA": [(0, 11)]})
        again = CliRunner().invoke(main, ["extract", "--dataset", dataset, "--root", str(root), "--dry-run"])
        assert again.exit_code == 1 and again.output.startswith("Error: no hand-box source chosen"), again.output


@pytest.fixture(scope="module")
def two_group_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xmic.cache.synthetic import write_random_store

    path = tmp_path_factory.mktemp("front") / "cache.zarr"
    vocab = {"alpha": {"verb": ["take", "put"], "noun": ["cup", "pan", "knife"]},
             "beta": {"verb": ["take", "open"], "noun": ["cup", "door", "knife"]}}  # fmt: skip
    for seed, group in enumerate(vocab):
        split = np.where(np.arange(32) < 24, "train", "validation")
        write_random_store(path, dataset=group, n=32, num_frames=16, encoders={"clip-vit-b16": 32},
                           vocab=vocab[group], split=split, seed=seed)  # fmt: skip
    return path


def test_train_prints_percent_and_evaluate_explains_hm(two_group_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--cache", str(two_group_store), "--dataset", "alpha", "--epochs", "1", "--batch-size", "8"]
    res = CliRunner().invoke(main, [*args, "--out", str(out), "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert f"train top-1 {100 * last['train_top1']:.2f}%" in res.output and "train_top1" not in res.output
    assert f"(last epoch: epoch 1, loss {last['loss']:.4f}, " in res.output
    res = CliRunner().invoke(main, ["evaluate", "--run", str(out), "--cache", str(two_group_store), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "| shared top-1 | novel top-1 | hm |" in res.output
    assert "hm: harmonic mean 2ab/(a+b) of the within-dataset top-1 (a, row alpha) and the cross row's top-1 (b)" in (
        res.output
    )
    assert "shared / novel top-1: the cross rows whose class is / is not shared with the training dataset" in res.output


def test_default_outputs_are_ignored_by_git() -> None:
    """The folders and files the commands write by default into the working directory are in .gitignore."""
    from xmic.evaluate.reproduce_cli import reproduce_cmd
    from xmic.report.cli import report_cmd

    ignored = set((REPO / ".gitignore").read_text().splitlines())
    reproduce_out, report_out = (
        next(p.default for p in cmd.params if p.name == "out") for cmd in (reproduce_cmd, report_cmd)
    )
    assert f"/{reproduce_out}/" in ignored and f"/{report_out}" in ignored, (reproduce_out, report_out)
    assert {"/runs/", "/cache/", "/demo_out/"} <= ignored
