"""`xmic bench store`: it runs on small shapes, reads back what it wrote, and sizes the arrays as stored."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from xmic.bench.store import run_store_bench
from xmic.cli import main


def test_store_bench_small_shapes_and_exact_sizes(tmp_path):
    result = run_store_bench(segments=40, frames=6, dim=16, repeats=1, workdir=tmp_path)
    assert result["shape"] == {"N": 40, "T": 6, "V": 2, "D": 16, "encoders": 1, "dtype": "float16"}
    assert result["feature_bytes"] == 40 * 6 * 2 * 16 * 2
    assert result["chunk_rows"] == 40  # at most N; about 8 MiB otherwise
    for fmt in ("zarr", "h5"):
        r = result["backends"][fmt]
        assert r["write_s"] > 0 and r["load_s"] > 0 and r["npy_save_s"] > 0 and r["npy_load_s"] > 0
        # creating the group is timed apart; counting it too can only lower the ratio
        assert r["create_s"] > 0 and r["write_ratio_with_create"] <= r["write_ratio"]
        # one whole chunk per array: raw fp16 plus at most a checksum per chunk
        assert result["feature_bytes"] <= r["disk_bytes"] <= result["feature_bytes"] + 2 * 4
        assert r["disk_over_chunk_grid"] == pytest.approx(1.0, abs=0.01)


def test_store_bench_counts_the_padding_of_the_last_chunk(tmp_path, monkeypatch):
    import xmic.bench.store as bench

    monkeypatch.setattr(bench, "chunk_rows_for", lambda frames, dim: 16)  # 40 rows -> chunks of 16, 16, 8 (+8 pad)
    r = run_store_bench(segments=40, frames=4, dim=8, repeats=1, backends=("zarr",), workdir=tmp_path)["backends"]
    assert r["zarr"]["disk_over_raw"] == pytest.approx(48 / 40, abs=0.01)
    assert r["zarr"]["disk_over_chunk_grid"] == pytest.approx(1.0, abs=0.01)


def test_store_bench_cli_json(tmp_path):
    out = CliRunner().invoke(main, ["bench", "store", "--segments", "24", "--frames", "4", "--dim", "8", "--repeats",
                                    "1", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert set(data["backends"]) == {"zarr", "h5"} and "8 MiB" in data["chunk_why"]
    table = CliRunner().invoke(main, ["bench", "store", "--segments", "24", "--frames", "4", "--dim", "8", "--repeats",
                                      "1"])  # fmt: skip
    assert table.exit_code == 0 and "| zarr |" in table.output and "with group creation" in table.output
