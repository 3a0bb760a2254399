"""Training and evaluation from a store: learnable synthetic labels, run folders, determinism, refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tolerance import assert_close_scaled

from xmic.adapt.config import TrainConfig
from xmic.adapt.run_io import load_run
from xmic.adapt.trainer import train
from xmic.cache.errors import StoreError, StoreSpecError
from xmic.cache.synthetic import write_random_store
from xmic.cache.writer import StoreWriter
from xmic.cli import main
from xmic.evaluate.evaluator import evaluate_run

N_VERBS, DIM, T_STORE, FRAMES = 5, 32, 8, 4


def shifted_features(
    labels: np.ndarray, text: np.ndarray, bias: np.ndarray, seed: int, shift: float = 4.0, noise: float = 2.0
) -> dict[str, dict[str, np.ndarray]]:
    """Frames = class text direction + a strong common domain shift + noise: zero-shot is hurt by the shift."""
    rng = np.random.default_rng(seed)
    base = text[labels][:, None, :] + shift * bias
    views = {}
    for view in ("full", "hand"):
        x = base + noise * rng.standard_normal((labels.size, T_STORE, DIM)) / np.sqrt(DIM)
        views[view] = x.astype(np.float16)
    return {"clip-vit-b16": views}


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def write_dataset(path, name, labels, split, text, bias, seed, vocab=None):
    write_random_store(
        path,
        dataset=name,
        n=labels.size,
        num_frames=T_STORE,
        encoders={"clip-vit-b16": DIM},
        n_verbs=text.shape[0],
        n_nouns=3,
        verbs=labels,
        split=split,
        vocab=vocab,
        features=shifted_features(labels, text, bias, seed),
        seed=seed,
    )
    writer = StoreWriter.open(path, name)
    writer.write_text("clip-vit-b16", name, "verb", "{}", text)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "cache"
    rng = np.random.default_rng(0)
    text = unit_rows(rng.standard_normal((N_VERBS + 1, DIM)))
    bias = unit_rows(rng.standard_normal(DIM))
    n = 320
    verbs = rng.integers(0, N_VERBS, n)
    split = np.where(np.arange(n) < 240, "train", "validation")
    vocab_a = {"verb": [f"verb{i}" for i in range(N_VERBS)], "noun": ["a", "b", "c"]}
    write_dataset(path, "alpha", verbs, split, text[:N_VERBS], bias, seed=1, vocab=vocab_a)
    # a second dataset: the same classes plus one novel class, all rows for evaluation
    verbs_b = rng.integers(0, N_VERBS + 1, 80)
    vocab_b = {"verb": [f"verb{i}" for i in range(N_VERBS)] + ["brand new"], "noun": ["a", "b", "c"]}
    write_dataset(path, "beta", verbs_b, "validation", text, bias, seed=2, vocab=vocab_b)
    return path


def config(**kw) -> TrainConfig:
    base = dict(
        dataset="alpha",
        target="verb",
        method="xmic",
        epochs=12,
        batch_size=32,
        lr=3e-3,
        frames=FRAMES,
        warmup_epochs=0,
        drop_last=False,  # every row each epoch: the learning thresholds below were set for that
        seed=0,
    )
    base.update(kw)
    return TrainConfig.from_preset("authors-code", **base)


def test_xmic_learns_well_above_chance_and_evaluates(store, tmp_path):
    result = train(config(), store, tmp_path / "run", progress=False)
    assert [m["epoch"] for m in result.metrics] == list(range(1, 13))
    assert result.metrics[-1]["loss"] < result.metrics[0]["loss"]
    ev = evaluate_run(tmp_path / "run", store, ["alpha"])
    within = ev["datasets"]["alpha"]
    assert within["kind"] == "within" and within["n"] == 80 and within["classes"] == N_VERBS
    zs = train(config(method="zero-shot"), store, tmp_path / "zs", progress=False)
    assert zs.metrics == []
    zero_shot = evaluate_run(tmp_path / "zs", store, ["alpha"])["datasets"]["alpha"]["top1"]
    assert within["top1"] > 0.9  # chance is 0.2
    assert within["top1"] > zero_shot + 0.1


def test_cross_dataset_shared_novel_and_hm(store, tmp_path):
    train(config(epochs=3), store, tmp_path / "run", progress=False)
    ev = evaluate_run(tmp_path / "run", store)
    beta = ev["datasets"]["beta"]
    assert beta["kind"] == "cross" and beta["classes"] == N_VERBS + 1
    assert beta["shared"]["classes"] == N_VERBS and beta["novel"]["classes"] == 1
    assert beta["shared"]["n"] + beta["novel"]["n"] == beta["n"] == 80
    assert beta["novel"]["top1"] == 1.0  # one class: classified among its own classes only
    within = ev["datasets"]["alpha"]["top1"]
    expected = 2 * within * beta["top1"] / (within + beta["top1"])
    assert ev["hm"]["beta"] == pytest.approx(expected)


def test_training_is_deterministic_on_cpu(store):
    a = train(config(epochs=2), store, None, progress=False)
    b = train(config(epochs=2), store, None, progress=False)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    c = train(config(epochs=2, seed=1), store, None, progress=False)
    assert not torch.equal(a.model.mlp[0].weight, c.model.mlp[0].weight)


def test_run_folder_round_trip(store, tmp_path):
    result = train(config(epochs=2), store, tmp_path / "run", progress=False)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["config.json", "metrics.jsonl", "model.safetensors", "run.json"]
    model, cfg, meta = load_run(tmp_path / "run")
    assert cfg.method == "xmic" and meta["train_rows"] == 240 and len(meta["vocab"]) == N_VERBS
    for (k, v), (_, w) in zip(result.model.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_store_with_other_encoder_is_refused(store, tmp_path):
    train(config(epochs=1), store, tmp_path / "run", progress=False)
    other = tmp_path / "other"
    write_random_store(
        other,
        dataset="alpha",
        n=16,
        num_frames=T_STORE,
        encoders={"clip-vit-l14": DIM},
        n_verbs=N_VERBS,
        n_nouns=3,
        split="validation",
    )
    with pytest.raises(StoreSpecError) as err:
        evaluate_run(tmp_path / "run", other, ["alpha"])
    assert "clip-vit-b16" in str(err.value) and "clip-vit-l14" in str(err.value)
    with pytest.raises(StoreSpecError, match="clip-vit-l14"):
        train(config(encoder="clip-vit-l14"), store, None, progress=False)


def test_cli_train_evaluate_and_vita_clip(store, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli-run"
    res = runner.invoke(
        main,
        [
            "train",
            "--cache",
            str(store),
            "--dataset",
            "alpha",
            "--target",
            "verb",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--out",
            str(out),
            "--quiet",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code != 0 and "multiple of" in res.output  # default 16 frames, store has 8
    res = runner.invoke(
        main, ["train", "--cache", str(store), "--dataset", "alpha", "--target", "verb", "--method", "vita-clip"]
    )
    assert res.exit_code != 0 and "no frame cache" in res.output and "--frames-cache" in res.output


def test_stage_two_never_imports_av():
    code = (
        "import sys, xmic.cli, xmic.adapt.trainer, xmic.evaluate.evaluator, xmic.cache.reader;"
        "bad = [m for m in ('av', 'ultralytics', 'mediapipe') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluation_splits_are_every_non_training_split():
    from types import SimpleNamespace

    from xmic.evaluate.evaluator import evaluation_splits

    reader = SimpleNamespace(segments={"split": np.array(["train", "test_split1+2+3", "val", "train", "validation"])})
    assert evaluation_splits(reader) == ("test_split1+2+3", "val", "validation")


def test_coop_uses_the_store_encoders_own_weights(tmp_path, monkeypatch):
    import dataclasses

    import xmic.cache.synthetic as synthetic
    from xmic.demo.tiny_models import make_tiny_clip

    model_dir = make_tiny_clip(tmp_path / "tiny-clip", dim=DIM)
    real = synthetic.synthetic_encoder_spec
    monkeypatch.setattr(
        synthetic, "synthetic_encoder_spec", lambda n, d: dataclasses.replace(real(n, d), source=str(model_dir))
    )
    store = write_random_store(
        tmp_path / "cache",
        dataset="alpha",
        n=48,
        num_frames=T_STORE,
        encoders={"clip-vit-b16": DIM},
        n_verbs=4,
        n_nouns=3,
        split=np.where(np.arange(48) < 32, "train", "validation"),
    )
    result = train(config(method="coop", epochs=1, batch_size=16), store, tmp_path / "coop", progress=False)
    assert result.model.ctx.requires_grad and result.model.ctx.shape[0] == 16
    cfg = TrainConfig.load(tmp_path / "coop" / "config.json")
    assert cfg.text_model_dir == str(model_dir)
    ev = evaluate_run(tmp_path / "coop", store, ["alpha"])
    assert ev["datasets"]["alpha"]["n"] == 16 and 0.0 <= ev["datasets"]["alpha"]["top1"] <= 1.0

    # the weights move (runs copied to another machine): a clear error, then --model-dir finds them
    moved = tmp_path / "elsewhere" / "clip-vit-b16"
    moved.parent.mkdir()
    model_dir.rename(moved)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("XMIC_MODEL_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"coop run needs the frozen CLIP text tower .* give --model-dir"):
        evaluate_run(tmp_path / "coop", store, ["alpha"])
    res = CliRunner().invoke(
        main, ["evaluate", "--run", str(tmp_path / "coop"), "--cache", str(store), "--model-dir", str(moved.parent)]
    )
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "coop" / "eval.json").read_text())
    assert again["datasets"]["alpha"]["top1"] == pytest.approx(ev["datasets"]["alpha"]["top1"])


def test_cli_adapter_hidden_is_trained_saved_and_rebuilt(tmp_path):
    store = write_random_store(tmp_path / "s.zarr", dataset="alpha", n=32, num_frames=16, encoders={"clip-vit-b16": 32})
    out = tmp_path / "wide"
    args = ["train", "--cache", str(store), "--dataset", "alpha", "--epochs", "1", "--batch-size", "16"]
    res = CliRunner().invoke(main, [*args, "--adapter-hidden", "8", "--out", str(out), "--quiet", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["extra"] == {"xmic": {"mlp_hidden": 8}}
    model, cfg, _ = load_run(out)
    assert model.mlp[0].out_features == 8 and cfg.extra["xmic"]["mlp_hidden"] == 8


def test_cli_train_without_dataset_takes_the_only_group(tmp_path):
    store = write_random_store(
        tmp_path / "one.zarr", dataset="solo", n=32, num_frames=16, encoders={"clip-vit-b16": 32}
    )
    out = tmp_path / "solo-run"
    args = ["train", "--cache", str(store), "--epochs", "1", "--batch-size", "16", "--out", str(out), "--quiet"]
    res = CliRunner().invoke(main, [*args, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["dataset"] == "solo"


def test_cli_train_without_dataset_lists_the_groups_and_the_command_for_each(store):
    args = ["train", "--cache", str(store), "--target", "verb", "--epochs", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "Missing option" not in res.output
    assert "holds 2 dataset groups (alpha, beta)" in res.output
    for group in ("alpha", "beta"):
        assert f"xmic train --cache {store} --target verb --epochs 1 --dataset {group}" in res.output
    res = CliRunner().invoke(main, [*args, "--dataset", "gamma"])
    assert res.exit_code == 2 and "no dataset group 'gamma'" in res.output
    assert f"xmic train --cache {store} --target verb --epochs 1 --dataset alpha" in res.output


def test_cli_evaluate_on_an_unknown_group_lists_the_groups_and_the_command_for_each(store, tmp_path):
    run = tmp_path / "run"
    train(config(epochs=1), store, run, progress=False)
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--cache", str(store), "--dataset", "epic"])
    assert res.exit_code == 2 and "no dataset group 'epic'" in res.output and "alpha, beta" in res.output
    for group in ("alpha", "beta"):
        assert f"xmic evaluate --run {run} --cache {store} --dataset {group}" in res.output
    res = CliRunner().invoke(main, ["evaluate", "--run", str(run), "--cache", str(store)])
    assert res.exit_code == 0, res.output  # no --dataset: every group of the store


def test_incomplete_store_is_refused_and_failed_rows_are_counted(tmp_path):
    from xmic.cache.backend import Backend
    from xmic.cache.schema import ROW_FAILED

    split = np.where(np.arange(48) < 32, "train", "val")
    path = write_random_store(
        tmp_path / "s.zarr", dataset="alpha", n=48, num_frames=16, encoders={"clip-vit-b16": 32}, split=split,
        chunk_rows=8, seed=3,
    )  # fmt: skip
    with Backend(path).session("a") as s:
        s.write("alpha/row_status", slice(0, 3), np.full(3, ROW_FAILED, np.uint8))  # 3 train rows
        s.write("alpha/row_status", slice(40, 42), np.full(2, ROW_FAILED, np.uint8))  # 2 val rows
    cfg = TrainConfig(dataset="alpha", epochs=1, batch_size=16)
    result = train(cfg, path, tmp_path / "run", progress=False)
    assert result.meta["rows_failed_left_out"] == 3
    evaluation = evaluate_run(tmp_path / "run", path)
    assert evaluation["datasets"]["alpha"]["failed_left_out"] == 2 and evaluation["datasets"]["alpha"]["n"] == 14
    from xmic.evaluate.evaluator import to_markdown

    assert "Not scored: 2 of alpha evaluation rows whose extraction failed" in to_markdown(evaluation)

    with Backend(path).session("a") as s:
        s.write("alpha/done", slice(2, 4), np.zeros(2, np.uint8))  # chunks 2 and 3 unfinished
    with pytest.raises(StoreError, match=r"2 of 6 chunks are not extracted yet \(chunks 2, 3\)"):
        train(cfg, path, tmp_path / "run2", progress=False)
    res = CliRunner().invoke(main, ["evaluate", "--run", str(tmp_path / "run"), "--cache", str(path)])
    assert res.exit_code == 1 and "re-run the same `xmic extract` command" in res.output


def test_authors_code_warmup_steps_per_epoch(store):
    """Dassl's linear warm-up: epoch 0 at WARMUP_MIN_LR, epoch e < 5 at lr * e / 5, constant within an epoch;
    the last partial batch is dropped (240 rows at batch 64: 3 steps an epoch, not 4)."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    preset = TrainConfig.from_preset("authors-code")
    assert (preset.warmup_epochs, preset.warmup_min_lr, preset.drop_last) == (5, 1e-7, True)
    cfg = config(epochs=7, warmup_epochs=5, warmup_min_lr=1e-7, drop_last=True, lr=5e-4, batch_size=64)
    used = []
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"]))
    try:
        result = train(cfg, store, None, progress=False)
    finally:
        handle.remove()
    per_epoch = [1e-7, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 5e-4]
    assert used == pytest.approx([lr for lr in per_epoch for _ in range(3)], rel=1e-12)
    assert [m["lr"] for m in result.metrics] == pytest.approx(per_epoch, rel=1e-12)
    assert [m["steps"] for m in result.metrics] == [3] * 7


def test_evaluation_is_fp32_even_where_bf16_autocast_is_available(store, tmp_path, monkeypatch):
    """Evaluation ignores ``amp``: with bf16 support forced on, its logits equal an fp32 forward by hand."""
    import xmic.adapt.config as config_module
    import xmic.evaluate.evaluator as evaluator
    from xmic.adapt.data import frame_slots
    from xmic.adapt.trainer import class_text
    from xmic.cache.reader import StoreReader

    train(config(epochs=2), store, tmp_path / "run", progress=False)
    monkeypatch.setattr(config_module, "amp_supported", lambda device: True)
    seen = []
    real_scores = evaluator.scores
    monkeypatch.setattr(evaluator, "scores", lambda logits, labels: seen.append(logits) or real_scores(logits, labels))
    evaluate_run(tmp_path / "run", store, ["alpha"])

    model, cfg, _ = load_run(tmp_path / "run")
    assert cfg.amp and cfg.autocast_enabled(torch.device("cpu"))  # training would use bf16 here
    reader = StoreReader(store, "alpha")
    bank = evaluator.run_bank(reader, cfg, ("validation",), torch.device("cpu"))
    classes = class_text(reader, cfg.encoder, cfg.target, cfg.template, "cpu")
    slots = frame_slots(bank.rows.numel(), bank.store_frames, cfg.frames, train=False, generator=None, device="cpu")
    batch = bank.batch(bank.rows, slots)
    with torch.no_grad():
        reference = model(batch, classes)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = model(batch, classes).float()
            inside_autocast = evaluator.predict_logits(model, bank, classes, frames=cfg.frames)
    assert reference.dtype == torch.float32 and len(seen) == 1 and seen[0].dtype == torch.float32
    assert not torch.allclose(reduced, reference, rtol=0, atol=1e-4)  # bf16 would be seen by the checks below
    assert_close_scaled(seen[0], reference, k=16, what="logits evaluate scored")
    assert_close_scaled(inside_autocast, reference, k=16, what="logits under autocast")


def test_evaluations_sharing_readers_read_each_array_once(store, tmp_path, monkeypatch):
    """evaluate_run over kept readers: the same results as fresh readers, and the second run reads no array whole."""
    import xmic.cache.reader as reader_module

    train(config(epochs=1), store, tmp_path / "a", progress=False)
    train(config(epochs=1, seed=1), store, tmp_path / "b", progress=False)
    readers: dict = {}
    first = evaluate_run(tmp_path / "a", store, ["alpha", "beta"], readers=readers)
    assert first == evaluate_run(tmp_path / "a", store, ["alpha", "beta"])
    assert sorted(readers) == [(str(store), "alpha"), (str(store), "beta")]
    assert all(r.keep_arrays for r in readers.values())
    reads = []
    real = reader_module.guard.read_checked
    monkeypatch.setattr(reader_module.guard, "read_checked", lambda *a, **k: reads.append(a[2]) or real(*a, **k))
    second = evaluate_run(tmp_path / "b", store, ["alpha", "beta"], readers=readers)
    assert not [key for key in reads if "features" in key or key.endswith(("row_status", "done"))], reads
    monkeypatch.undo()
    assert second == evaluate_run(tmp_path / "b", store, ["alpha", "beta"])


def test_kept_arrays_stay_within_the_byte_budget(store, monkeypatch):
    """Arrays that would take a reader past KEEP_BYTES are read again each time, with the same values."""
    import xmic.cache.reader as reader_module

    reader = reader_module.shared_reader({}, store, "alpha")
    monkeypatch.setattr(reader_module, "KEEP_BYTES", reader.row_status.nbytes)
    reader._kept.clear()
    first = reader.load_features_numpy("clip-vit-b16", "full")
    assert reader.row_status is reader.row_status  # fits: kept
    again = reader.load_features_numpy("clip-vit-b16", "full")
    assert again is not first and np.array_equal(again, first)  # over the budget: read again
