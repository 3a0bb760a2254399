"""`xmic train --model-dir` takes a folder of model folders, as `xmic extract` does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from xmic.cache.synthetic import write_random_store
from xmic.cli import main


def test_train_finds_the_text_tower_in_a_folder_of_model_folders(tmp_path: Path) -> None:
    from xmic.demo.tiny_models import make_tiny_clip

    models = tmp_path / "models"
    clip = make_tiny_clip(models / "clip-vit-b16", dim=32)
    (models / "other-model").mkdir()
    split = np.where(np.arange(32) < 24, "train", "validation")
    store = write_random_store(
        tmp_path / "s.zarr", dataset="alpha", n=32, num_frames=16, encoders={"clip-vit-b16": 32}, split=split
    )
    args = ["train", "--cache", str(store), "--method", "coop", "--epochs", "1", "--device", "cpu", "--quiet"]
    res = CliRunner().invoke(main, [*args, "--model-dir", str(models), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["text_model_dir"] == str(clip)
    res = CliRunner().invoke(main, [*args, "--model-dir", str(models / "other-model"), "--out", str(tmp_path / "r2")])
    assert res.exit_code == 1 and "weights of encoder 'clip-vit-b16'" in res.output and "sha256" not in res.output
    assert not (tmp_path / "r2").exists()
