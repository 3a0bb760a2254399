"""`xmic extract` refuses bad arguments and unsafe stores with one line before decoding, records skipped rows,
exits non-zero when rows failed, keeps two runs of one rank apart and never mixes two checkpoints in one store."""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xmic.bench.extract import write_ego4d_dataset, write_tiny_encoders
from xmic.cache.backend import Backend
from xmic.cache.cli import cache as cache_cli
from xmic.cache.errors import StoreSpecError
from xmic.cache.reader import StoreReader
from xmic.extract.extract_cli import EXIT_ROWS_FAILED, extract
from xmic.extract.runner import ExtractConfig, run_extraction
from xmic.extract.storelock import StoreLockedError, lock_path, store_lock

CLIPS = {"clipA": 30, "clipB": 30}
SEGMENTS = {"clipA": [(0, 13), (10, 29)], "clipB": [(2, 20)]}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("refusals")
    root = write_ego4d_dataset(tmp / "ego4d", CLIPS, SEGMENTS)
    models = write_tiny_encoders(tmp / "models", ("clip-vit-b16",))
    return {"tmp": tmp, "root": root, "models": models}


def config(data: dict[str, Path], cache: Path, **kw) -> ExtractConfig:
    base = ExtractConfig(
        dataset="ego4d", root=data["root"], cache=cache, model_dir=data["models"], num_frames=4, workers=0,
        device="cpu", chunk_rows=1, decode_size=None, progress=False,
    )  # fmt: skip
    return replace(base, **kw)


def cli_args(data: dict[str, Path], cache: Path, *extra: str) -> list[str]:
    return [
        "--dataset", "ego4d", "--root", str(data["root"]), "--cache", str(cache), "--model-dir", str(data["models"]),
        "--frames", "4", "--hands", "none", "--workers", "0", "--device", "cpu", "--chunk-rows", "1",
        "--decode-size", "0", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(("flag", "value"), [("--frames", "0"), ("--frames", "-4"), ("--workers", "-1")])
def test_bad_numbers_are_one_line(data, tmp_path, flag, value):
    args = cli_args(data, tmp_path / "s.zarr")
    i = args.index(flag)
    args[i + 1] = value
    res = CliRunner().invoke(extract, args)
    assert res.exit_code == 2 and f"Invalid value for '{flag}'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "s.zarr").exists()


def test_cache_under_a_file_is_refused_before_decoding(data, tmp_path):
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(extract, cli_args(data, tmp_path / "afile" / "s.zarr"))
    assert res.exit_code == 1 and "is a file, so the store cannot be created under it" in res.output
    assert "Traceback" not in res.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions; needs a normal user")
def test_read_only_store_is_refused_before_decoding(data, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        res = CliRunner().invoke(extract, cli_args(data, folder / "s.zarr"))
    finally:
        folder.chmod(0o755)
    assert res.exit_code == 1 and "is not writable" in res.output and "Traceback" not in res.output


def test_corrupt_encoder_weights_name_the_file(data, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(data["models"], models)
    weights = models / "clip-vit-b16" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated copy
    res = CliRunner().invoke(extract, [*cli_args(data, tmp_path / "s.zarr"), "--model-dir", str(models)])
    assert res.exit_code == 1 and f"{weights} is not a readable safetensors file" in res.output
    assert "Traceback" not in res.output


def test_skip_bad_rows_are_recorded_in_store_report_verify_and_info(data, tmp_path):
    ann = tmp_path / "ann"
    shutil.copytree(data["root"] / "v2" / "annotations", ann)
    train = json.loads((ann / "fho_lta_train.json").read_text())
    bad = {"clip_uid": "clipA", "action_idx": 99, "action_clip_start_sec": 2.0, "action_clip_end_sec": 1.0}
    train["clips"].append({**bad, "verb_label": 0, "noun_label": 0})
    (ann / "fho_lta_train.json").write_text(json.dumps(train))
    cache = tmp_path / "s.zarr"
    res = CliRunner().invoke(extract, [*cli_args(data, cache), "--annotations", str(ann), "--skip-bad", "--json"])
    assert res.exit_code == 0, res.output
    assert "skipped annotation rows (1, --skip-bad; recorded in the store):" in res.output
    report = json.loads(res.output.strip().splitlines()[-1])
    (rec,) = report["skipped"]
    assert rec["status"] == "skipped" and rec["where"] == "clips[3]" and "1.0 <= action_clip_start_sec" in rec["reason"]
    assert StoreReader(cache, "ego4d").skipped() == [rec]
    out = CliRunner().invoke(cache_cli, ["verify", str(cache)]).output
    assert "1 rows skipped on purpose (--skip-bad):" in out and "clips[3]" in out
    info = CliRunner().invoke(cache_cli, ["info", str(cache)]).output
    assert "(+1 annotation rows skipped by --skip-bad)" in info and "clips[3]" in info


def test_failed_rows_without_skip_bad_exit_with_the_documented_code(data, tmp_path):
    root = tmp_path / "bad"
    write_ego4d_dataset(root, {"good": 30, "bad": 30}, {"good": [(0, 13)], "bad": [(0, 10)]})
    (root / "v2" / "clips" / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    cache = tmp_path / "s.zarr"
    args = cli_args(data, cache)
    args[args.index("--root") + 1] = str(root)
    res = CliRunner().invoke(extract, args)
    assert res.exit_code == EXIT_ROWS_FAILED == 3, res.output
    assert "error: 1 rows failed" in res.output and "--skip-bad" in res.output
    assert StoreReader(cache, "ego4d").complete()  # what succeeded is written
    res = CliRunner().invoke(extract, [*args, "--skip-bad"])
    assert res.exit_code == 0, res.output


def test_a_second_run_of_the_same_rank_is_refused(data, tmp_path):
    cache = tmp_path / "s.zarr"
    held = lock_path(cache, "ego4d", 0)  # a live process of this host (pid 1) holds rank 0
    held.write_text(json.dumps({"host": socket.gethostname(), "pid": 1, "started": "then"}))
    with pytest.raises(StoreLockedError, match=r"pid 1 on this host"):
        run_extraction(config(data, cache), echo=lambda _: None)
    res = CliRunner().invoke(extract, cli_args(data, cache))
    assert res.exit_code == 1 and "is being extracted by pid" in res.output and "--ignore-lock" in res.output
    with store_lock(cache, "ego4d", 1):  # another rank is another lock
        pass
    assert json.loads(held.read_text())["pid"] == 1


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    path = lock_path(tmp_path / "s.zarr", "ego4d", 0)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345, "started": "then"}))
    with store_lock(tmp_path / "s.zarr", "ego4d", 0):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "then"}))
    with pytest.raises(StoreLockedError, match="host elsewhere"), store_lock(tmp_path / "s.zarr", "ego4d", 0):
        pass
    with store_lock(tmp_path / "s.zarr", "ego4d", 0, ignore=True):
        pass


def test_resume_with_other_weights_under_the_same_name_is_refused(data, tmp_path):
    from safetensors.numpy import load_file, save_file

    cache = tmp_path / "s.zarr"
    run_extraction(config(data, cache), echo=lambda _: None)
    spec = StoreReader(cache, "ego4d").spec.encoders["clip-vit-b16"]
    assert len(spec.weights_sha256) == 64
    with Backend(cache).session("a") as s:  # as if killed before the last chunk
        s.write("ego4d/done", slice(2, 3), np.zeros(1, np.uint8))
    other = tmp_path / "models"
    shutil.copytree(data["models"], other)
    weights = other / "clip-vit-b16" / "model.safetensors"
    state = load_file(str(weights))
    name = sorted(state)[0]
    state[name] = np.asarray(state[name] + 1)
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(StoreSpecError) as err:
        run_extraction(config(data, cache, model_dir=other), echo=lambda _: None)
    msg = str(err.value)
    assert "weights of clip-vit-b16: the store's came from" in msg and str(other / "clip-vit-b16") in msg
    assert spec.weights_sha256[:16] in msg
    assert StoreReader(cache, "ego4d").done.tolist() == [1, 1, 0]  # nothing was written


def test_duplicate_class_names_name_both_lines(tmp_path):
    from xmic.extract.datasets import AnnotationError
    from xmic.extract.datasets.ego4d import read_ego4d_taxonomy
    from xmic.extract.datasets.egtea import read_egtea_classes
    from xmic.extract.datasets.epic import read_epic_classes

    tax = tmp_path / "fho_lta_taxonomy.json"
    tax.write_text(json.dumps({"verbs": ["take", "put", "take"], "nouns": ["cup"]}))
    with pytest.raises(AnnotationError, match=r"verbs\[2\] 'take' repeats verbs\[0\]"):
        read_ego4d_taxonomy(tax)
    csv = tmp_path / "EPIC_100_verb_classes.csv"
    csv.write_text("id,key,instances,category\n0,take,[],a\n1,put,[],b\n2,take,[],c\n")
    with pytest.raises(AnnotationError, match=r"line 4.*class key 'take' repeats the one at .*line 2"):
        read_epic_classes(csv)
    idx = tmp_path / "verb_idx.txt"
    idx.write_text("Take 1\nPut 2\nTake 3\n")
    with pytest.raises(AnnotationError, match=r"line 3: class name 'Take' repeats line 1"):
        read_egtea_classes(idx)


def test_an_unwritable_store_folder_is_one_line_even_as_root(data, tmp_path, monkeypatch):
    """As root the permission bits do not stop a write, so the probe's refusal is simulated (a read-only mount)."""
    real = Path.write_bytes

    def refuse(self, payload):
        if self.name.startswith(".xmic-write-probe-"):
            raise PermissionError(30, "Read-only file system")
        return real(self, payload)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    res = CliRunner().invoke(extract, cli_args(data, tmp_path / "new" / "s.zarr"))
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"the folder {tmp_path} is not writable (Read-only file system)" in res.output
    assert not (tmp_path / "new").exists()  # refused before anything was created or decoded
