"""The X-MIC options a run records (Table 6 flags, video pooling, flags_version) and the refusal of stale runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.adapt.config import FLAGS_VERSION, StaleRunError, TrainConfig
from xmic.adapt.factory import build_model
from xmic.adapt.run_io import load_run
from xmic.cache.synthetic import write_random_store
from xmic.cli import main


def old_run(folder: Path, method: str = "xmic", **fields) -> Path:
    """A run folder whose config.json was written before flags_version existed (only its config matters here)."""
    folder.mkdir(parents=True)
    d = TrainConfig(method=method, n3=True, **fields).to_dict()
    del d["flags_version"], d["video_pool"]
    (folder / "config.json").write_text(json.dumps(d))
    (folder / "run.json").write_text(json.dumps({"dim": 32, "cond_dim": 32}))
    return folder


def test_defaults_and_round_trip(tmp_path):
    cfg = TrainConfig.from_preset("authors-code")
    assert (cfg.n1, cfg.n2, cfg.n3, cfg.video_pool, cfg.flags_version) == (True, False, False, "mean", FLAGS_VERSION)
    cfg = TrainConfig.from_preset("paper", n1=False, n2=True, n3=True, video_pool="norm-mean")
    cfg.save(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["flags_version"] == FLAGS_VERSION and saved["video_pool"] == "norm-mean"
    assert TrainConfig.load(tmp_path / "config.json") == cfg
    with pytest.raises(ValueError, match="--video-pool"):
        TrainConfig.from_preset("paper", video_pool="max")


def test_factory_passes_every_option_and_refuses_clashes():
    cfg = TrainConfig.from_preset("paper", n1=False, n2=True, n3=True, video_pool="norm-mean", frames=4)
    model = build_model(cfg, dim=16, cond_dim=32)
    c = model.config
    assert (c.n1, c.n2, c.n3, c.video_pool, c.num_frames) == (False, True, True, "norm-mean", 4)
    cfg.extra = {"xmic": {"video_pool": "mean"}}
    with pytest.raises(ValueError, match="video_pool"):
        build_model(cfg, dim=16, cond_dim=32)


@pytest.mark.parametrize("version", [None, 1])
def test_stale_xmic_config_is_refused(tmp_path, version):
    run = old_run(tmp_path / "old-xmic", dataset="epic", target="verb")
    if version is not None:
        d = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**d, "flags_version": version}))
    with pytest.raises(StaleRunError) as err:
        TrainConfig.load(run / "config.json")
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert str(run) in msg and "n2/n3" in msg and "xmic train" in msg and "--dataset epic --target verb" in msg
    with pytest.raises(StaleRunError):
        load_run(run)


def test_old_clip_adapter_star_config_is_refused(tmp_path):
    run = old_run(tmp_path / "old-star", method="clip-adapter-star")
    with pytest.raises(StaleRunError, match="temporal block's output") as err:
        TrainConfig.load(run / "config.json")
    assert "--method clip-adapter-star" in str(err.value)


def test_old_baseline_config_still_loads(tmp_path):
    run = old_run(tmp_path / "old-zs", method="zero-shot")
    cfg = TrainConfig.load(run / "config.json")
    assert cfg.method == "zero-shot" and cfg.flags_version == 1  # kept as written; its flags are never read


def test_newer_config_is_refused(tmp_path):
    cfg = TrainConfig(method="zero-shot", flags_version=FLAGS_VERSION + 1)
    cfg.save(tmp_path / "config.json")
    with pytest.raises(ValueError, match="newer") as err:
        TrainConfig.load(tmp_path / "config.json")
    assert not isinstance(err.value, StaleRunError)


def test_cli_records_the_options_and_refuses_stale_runs(tmp_path):
    store = write_random_store(tmp_path / "s.zarr", dataset="alpha", n=32, num_frames=16, encoders={"clip-vit-b16": 32})
    out = tmp_path / "run"
    args = ["train", "--cache", str(store), "--dataset", "alpha", "--epochs", "1", "--batch-size", "16", "--quiet"]
    res = CliRunner().invoke(main, [*args, "--no-n1", "--n2", "--n3", "--video-pool", "norm-mean", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "config.json").read_text())
    assert (saved["n1"], saved["n2"], saved["n3"], saved["video_pool"]) == (False, True, True, "norm-mean")
    assert saved["flags_version"] == FLAGS_VERSION
    model, _, _ = load_run(out)
    assert (model.config.n1, model.config.n2, model.config.n3, model.config.video_pool) == (
        False,
        True,
        True,
        "norm-mean",
    )
    # the same run as an older xmic would have written it: evaluate and predict print one line, no traceback
    del saved["flags_version"]
    (out / "config.json").write_text(json.dumps(saved))
    res = CliRunner().invoke(main, ["evaluate", "--run", str(out), "--cache", str(store), "--device", "cpu"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1 and "n2/n3" in res.output
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    res = CliRunner().invoke(main, ["predict", str(video), "--run", str(out)])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
    assert "xmic train" in res.output
