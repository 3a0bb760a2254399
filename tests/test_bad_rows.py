"""Annotation rows that would crash the decoder or read outside --root are bad input: one line naming the file
and row, skipped and listed with --skip-bad; the other rows extract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from xmic.bench.extract import write_ego4d_dataset, write_tiny_encoders
from xmic.cache.reader import StoreReader
from xmic.cli import main

BAD = {
    "start frame 1e18": ({"action_clip_start_frame": 10**18, "action_clip_end_frame": 10**18 + 30}, "beyond any video"),
    "clip_uid ../x": ({"clip_uid": "../outside"}, "'../outside' is not a plain name; its media path would leave"),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("badrows")
    root = write_ego4d_dataset(tmp / "ego4d", {"clipA": 30}, {"clipA": [(0, 13)]})
    (tmp / "outside.mp4").write_bytes((root / "v2" / "clips" / "clipA.mp4").read_bytes())  # a video beside --root
    return {"root": root, "models": write_tiny_encoders(tmp / "models", ("clip-vit-b16",))}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_row_is_refused_then_skipped(data: dict[str, Path], tmp_path: Path, case) -> None:
    fields, message = case
    ann = tmp_path / "ann"
    shutil.copytree(data["root"] / "v2" / "annotations", ann)
    train = json.loads((ann / "fho_lta_train.json").read_text())
    train["clips"].append({**train["clips"][0], "action_idx": 7, **fields})
    (ann / "fho_lta_train.json").write_text(json.dumps(train))
    cache = tmp_path / "s.zarr"
    args = ["extract", "--dataset", "ego4d", "--root", str(data["root"]), "--annotations", str(ann)]
    args += ["--cache", str(cache), "--model-dir", str(data["models"]), "--frames", "4", "--hands", "none"]
    args += ["--workers", "0", "--device", "cpu", "--decode-size", "0", "--no-progress"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert str(ann / "fho_lta_train.json") in res.output and "clips[1]" in res.output and message in res.output
    res = CliRunner().invoke(main, [*args, "--skip-bad", "--json"])
    assert res.exit_code == 0, res.output
    (rec,) = json.loads(res.output.strip().splitlines()[-1])["skipped"]
    assert rec["where"] == "clips[1]" and message in rec["reason"]
    reader = StoreReader(cache, "ego4d")
    assert reader.complete() and list(reader.segments["video_id"]) == ["clipA"]
