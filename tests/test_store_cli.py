"""``xmic cache {info, verify, export}`` through click's CliRunner."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from xmic.cache.backend import Backend
from xmic.cache.cli import cache
from xmic.cache.reader import StoreReader
from xmic.cache.schema import ROW_FAILED
from xmic.cache.synthetic import write_random_store
from xmic.cache.writer import StoreWriter


def small_store(path, **kw):
    return write_random_store(path, n=30, num_frames=4, encoders={"clip-vit-b16": 8}, chunk_rows=8, **kw)


def test_info_human_and_json(tmp_path):
    path = small_store(tmp_path / "c.zarr", dataset="epic")
    runner = CliRunner()
    res = runner.invoke(cache, ["info", str(path)])
    assert res.exit_code == 0, res.output
    assert "dataset epic" in res.output
    assert "segments   30 in 4 videos" in res.output
    assert "chunks     4/4 done (8 rows each)" in res.output
    assert "clip-vit-b16" in res.output and "D=8" in res.output
    assert "text clip-vit-b16/epic/verb: (5, 8), 6 templates" in res.output
    res = runner.invoke(cache, ["info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["format"] == "zarr" and info["size_bytes"] > 0
    d = info["datasets"]["epic"]
    assert (d["n_rows"], d["num_frames"], d["rows"]) == (30, 4, {"ok": 30, "failed": 0, "pending": 0})
    assert d["encoders"]["clip-vit-b16"]["dim"] == 8


def test_verify_ok_and_failing(tmp_path):
    path = small_store(tmp_path / "c.h5")
    runner = CliRunner()
    res = runner.invoke(cache, ["verify", str(path)])
    assert res.exit_code == 0 and res.output.strip() == "OK"
    # un-flag chunk 2 and fail row 3 by hand: verify must name both and exit 1
    with Backend(path).session("a") as s:
        s.write("synth/done", slice(2, 3), np.zeros(1, np.uint8))
    w = StoreWriter.open(path, "synth")
    r = StoreReader(path)
    rows = w.chunk_slice(0)
    feats = {
        "clip-vit-b16": {v: r.load_features("clip-vit-b16", v, rows=np.arange(8)).numpy() for v in ("full", "hand")}
    }
    status = np.ones(8, np.uint8)
    status[3] = ROW_FAILED
    w.write_chunk(
        0,
        frame_index=r.frame_index[rows],
        hand_box=r.hand_box[rows],
        features=feats,
        row_status=status,
        failures=[{"row": 3, "reason": "decode error at frame 12"}],
    )
    failed_file = tmp_path / "failed.jsonl"
    res = runner.invoke(cache, ["verify", str(path), "--failed", str(failed_file)])
    assert res.exit_code == 1
    assert "chunk 2 (rows 16-23) not flagged done" in res.output
    assert "row 3 failed (segment synth_000003, video synth_video_0000): decode error at frame 12" in res.output
    recs = [json.loads(line) for line in failed_file.read_text().splitlines()]
    assert [(x["row"], x["reason"]) for x in recs] == [(3, "decode error at frame 12")]


def test_export_to_h5(tmp_path):
    src = small_store(tmp_path / "c.zarr")
    out = tmp_path / "c.h5"
    runner = CliRunner()
    res = runner.invoke(cache, ["export", str(src), "--to", str(out)])
    assert res.exit_code == 0, res.output
    a, b = StoreReader(src), StoreReader(out)
    assert b.fmt == "h5"
    np.testing.assert_array_equal(a.load_features("clip-vit-b16", "full"), b.load_features("clip-vit-b16", "full"))
    res = runner.invoke(cache, ["export", str(src), "--to", str(out)])
    assert res.exit_code != 0 and "exists" in res.output
    res = runner.invoke(cache, ["export", str(src), "--to", str(out), "--overwrite"])
    assert res.exit_code == 0
    assert runner.invoke(cache, ["verify", str(out)]).exit_code == 0


def test_info_on_missing_path(tmp_path):
    res = CliRunner().invoke(cache, ["info", str(tmp_path / "nope.zarr")])
    assert res.exit_code == 2 and "does not exist" in res.output
