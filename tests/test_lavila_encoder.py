"""LaViLa as a stage-one encoder: clips of the store's slots, the text tower, weights lookup, preprocessing,
extraction into a store and zero-shot / X-MIC training on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path, tiny_clip_extract_config
from tolerance import assert_close_scaled

from xmic.demo.tiny_models import make_tiny_clip, make_tiny_lavila
from xmic.sampling import slot_windows, window_slots


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HF CLIP (2 heads of 16) and the LaViLa-layout checkpoint made from it, as ``demo-lavila``."""
    root = tmp_path_factory.mktemp("lavila-models")
    clip = make_tiny_clip(root / "demo-clip", vocab_words=["cut", "onion", "take"], dim=32, image_size=32, patch=8)
    make_tiny_lavila(root / "demo-lavila" / "demo-lavila.pth", clip)
    return root


def test_window_slots_group_one_candidate_of_consecutive_bins() -> None:
    clips = window_slots(16, 3, 4)
    assert clips.shape == (12, 4)
    for w, slots in enumerate(clips):
        g, c = divmod(w, 3)
        assert list(slots) == [(4 * g + j) * 3 + c for j in range(4)]
    owner = slot_windows(16, 3, 4)
    assert sorted(np.bincount(owner)) == [4] * 12
    centres = np.arange(16) * 3 + 1  # evaluation slots: 4 clips of 4 bin centres, LaViLa's 4 x 4 frames
    assert [list(owner[centres[4 * g : 4 * g + 4]]) for g in range(4)] == [[3 * g + 1] * 4 for g in range(4)]
    with pytest.raises(ValueError, match="multiple"):
        window_slots(10, 3, 4)


@pytest.mark.numeric
def test_inflated_tiny_clip_equals_the_hf_clip(models: Path) -> None:
    """The tiny LaViLa is the tiny CLIP in LaViLa's layout: its text tower equals HF's CLIP text features exactly and
    a 1-frame clip equals HF's image features (the towers differ only in LayerNorm eps, 1e-6 vs 1e-5)."""
    from transformers import CLIPModel

    from xmic.extract.encoders import load_encoder

    enc = load_encoder("demo-lavila", models)
    hf = CLIPModel.from_pretrained(models / "demo-clip").eval()
    texts = ["cut onion", "take", "a photo of a cut onion"]
    tokens = enc._tokenizer(texts)
    assert tokens.shape == (3, 77) and int(tokens[0, 0]) == enc._tokenizer.sot_id
    with torch.no_grad():
        ref_text = hf.get_text_features(input_ids=tokens)
        pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        ref_image = hf.get_image_features(pixel_values=pixels)
        video = enc.model.encode_video(pixels[:, :, None])
    ref_text = ref_text if torch.is_tensor(ref_text) else ref_text.pooler_output
    ref_image = ref_image if torch.is_tensor(ref_image) else ref_image.pooler_output
    assert_close_scaled(enc.encode_texts(texts), ref_text, k=128, what="text tower")
    # not a rounding difference: LayerNorm eps 1e-6 vs 1e-5 moves the image features by ~1e-4 of their scale
    torch.testing.assert_close(video, ref_image, rtol=0, atol=1e-3 * float(ref_image.abs().max()))
    assert enc.spec.clip_frames == 4 and enc.spec.dim == 32 and enc.spec.family == "lavila"


@pytest.mark.numeric
def test_encode_slots_gives_every_slot_its_clip(models: Path) -> None:
    """Each slot holds the embedding of its 4-frame clip, computed here clip by clip from the preprocessed frames;
    the hand view embeds clips of per-frame crops (NaN box: the full frame)."""
    from xmic.extract.assemble import encoder_views
    from xmic.extract.encoders import load_encoder
    from xmic.extract.preprocess import preprocess, preprocess_crops

    enc = load_encoder("demo-lavila", models, batch_size=5)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 12, 40, 48, 3), dtype=np.uint8)  # 2 segments, 4 bins x 3 candidates
    boxes = np.full((2, 12, 4), np.nan, np.float32)
    boxes[0, :6] = [0.1, 0.2, 0.6, 0.9]
    full, hand = encoder_views(enc, frames, boxes, bins=4)
    assert full.shape == hand.shape == (2, 12, 32)
    for r in range(2):
        for c in range(3):
            slots = [j * 3 + c for j in range(4)]
            pix = preprocess(frames[r, slots], enc.spec)  # (4, 3, 32, 32)
            with torch.no_grad():
                ref = enc.model.encode_video(pix.permute(1, 0, 2, 3)[None])[0].numpy()
            for s in slots:
                assert_close_scaled(full[r, s], ref, k=128)
            crops = preprocess_crops(frames[r, slots], boxes[r, slots], enc.spec)
            with torch.no_grad():
                ref_hand = enc.model.encode_video(crops.permute(1, 0, 2, 3)[None])[0].numpy()
            assert_close_scaled(hand[r, slots[0]], ref_hand, k=128)
    np.testing.assert_array_equal(hand[1], full[1])  # no box in the whole segment: the full-frame clips
    assert not np.allclose(hand[0], full[0])


def test_missing_checkpoint_names_the_file_and_the_model_zoo(tmp_path: Path) -> None:
    from xmic.extract.encoders import load_encoder
    from xmic.weights import ModelNotFoundError

    with pytest.raises(ModelNotFoundError) as err:
        load_encoder("lavila-tsf-l14", tmp_path)
    msg = str(err.value)
    assert "clip_openai_timesformer_large.narrator_rephraser.ep_0003.md5sum_c89337.pth" in msg
    assert "dl.fbaipublicfiles.com/lavila/checkpoints/dual_encoders/ego4d/" in msg and str(tmp_path) in msg
    assert "nothing is downloaded" in msg


def test_a_real_sized_entry_refuses_a_checkpoint_of_other_sizes(models: Path, tmp_path: Path) -> None:
    import shutil

    from xmic.extract.encoders import load_encoder
    from xmic.lavila.checkpoint import LavilaCheckpointError

    folder = tmp_path / "lavila-tsf-b16"
    folder.mkdir()
    shutil.copy(models / "demo-lavila" / "demo-lavila.pth", folder / "renamed.pth")
    with pytest.raises(LavilaCheckpointError, match=r"renamed\.pth.*visual\."):
        load_encoder("lavila-tsf-b16", tmp_path)


def test_preprocessing_matches_lavila_transform_on_a_real_image() -> None:
    """LaViLa's eval transform (shorter side to 224, bilinear with antialiasing, centre crop 224, its mean/std),
    written here with PIL, against the batched on-device preprocessing of the registry entry."""
    from PIL import Image

    from xmic.extract.preprocess import preprocess
    from xmic.registry import LAVILA_MEAN, LAVILA_STD, get_encoder_spec

    path = shared_path("realdata", "media", "epic_hoa_hand-object-detection-example.png")
    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = 224 / min(w, h)
    size = (round(w * scale), round(h * scale))
    channels = [np.asarray(ch, np.float32) for ch in image.split()]
    resized = np.stack([np.asarray(Image.fromarray(ch, "F").resize(size, Image.BILINEAR)) for ch in channels])
    top, left = (resized.shape[1] - 224) // 2, (resized.shape[2] - 224) // 2
    crop = resized[:, top : top + 224, left : left + 224] / 255.0
    ref = (crop - np.array(LAVILA_MEAN)[:, None, None]) / np.array(LAVILA_STD)[:, None, None]
    ours = preprocess(np.asarray(image)[None], get_encoder_spec("lavila-tsf-l14"))[0].numpy()
    assert ours.shape == ref.shape == (3, 224, 224)
    cos = float((ours * ref).sum() / np.linalg.norm(ours) / np.linalg.norm(ref))
    assert cos >= 0.999, cos


def test_extract_and_train_with_lavila(models: Path, tmp_path: Path) -> None:
    """A synthetic EGTEA set extracted with the tiny CLIP and the tiny LaViLa in one pass; zero-shot and X-MIC train
    and evaluate with LaViLa as the classified, text and conditioning encoder."""
    import shutil

    from xmic.adapt.config import TrainConfig
    from xmic.adapt.trainer import train
    from xmic.cache.reader import StoreReader
    from xmic.cache.verify import verify_store
    from xmic.extract.runner import run_extraction
    from xmic.synth import KITCHEN_C, generate
    from xmic.synth.generate import Sizes

    root = tmp_path / "data"
    generate(root, seed=0, datasets=("egtea",), sizes=Sizes(train=4, val=2, segments_per_video=(2, 3)))
    words = {w for n in KITCHEN_C.verbs + KITCHEN_C.nouns for w in n.split()}
    config = tiny_clip_extract_config(
        tmp_path, "egtea", root / "egtea", ("train",), words, num_frames=48, extra_encoders=("demo-lavila",)
    )
    shutil.copytree(models / "demo-lavila", tmp_path / "models" / "demo-lavila")
    report = run_extraction(config, echo=lambda _m: None)
    assert report.rows_failed == 0 and report.rows_ok > 0
    reader = StoreReader(config.cache, "egtea")
    spec = reader.spec.encoders["demo-lavila"]
    assert spec.family == "lavila" and spec.clip_frames == 4 and spec.model_id == "xmic-demo/demo-lavila.pth"
    feats = reader.load_features("demo-lavila", "full").float().numpy()
    owner = slot_windows(16, 3, 4)
    for w in range(12):
        same = feats[:, owner == w]
        np.testing.assert_array_equal(same, np.repeat(same[:, :1], same.shape[1], axis=1))
    assert set(reader.text_templates("demo-lavila", "verb")) >= {"{}", "Video of a {}"}
    assert verify_store(config.cache).ok
    for method in ("zero-shot", "xmic"):
        cfg = TrainConfig(
            dataset="egtea",
            target="verb",
            method=method,
            encoder="demo-lavila",
            second_encoder="demo-lavila",
            train_split="train_split1",
        )
        cfg.epochs, cfg.batch_size = 1, 4
        result = train(cfg, config.cache, tmp_path / f"run-{method}", progress=False)
        assert result.meta["encoders"]["demo-lavila"]["clip_frames"] == 4


def test_prompt_learners_refuse_a_lavila_encoder() -> None:
    from xmic.adapt.config import TrainConfig
    from xmic.adapt.trainer import resolve_encoders
    from xmic.cache.errors import StoreSpecError
    from xmic.cache.schema import StoreSpec
    from xmic.cache.synthetic import synthetic_encoder_spec

    encoders = {n: synthetic_encoder_spec(n, 32) for n in ("clip-vit-b16", "lavila-tsf-l14")}
    spec = StoreSpec("e", 48, encoders)
    assert resolve_encoders(TrainConfig(dataset="e", method="xmic"), spec) == ("clip-vit-b16", "clip-vit-b16")
    cfg = TrainConfig(dataset="e", method="zero-shot", encoder="lavila-tsf-l14")
    assert resolve_encoders(cfg, spec) == ("lavila-tsf-l14", "lavila-tsf-l14")
    with pytest.raises(StoreSpecError, match="coop runs the frozen text tower of a Hugging Face CLIP"):
        resolve_encoders(TrainConfig(dataset="e", method="coop", encoder="lavila-tsf-l14"), spec)
