"""Frozen encoders: offline loading, on-device preprocessing vs the models' own processors, crops, text."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tolerance import assert_close_scaled

from xmic.cache.schema import PROMPT_TEMPLATES
from xmic.demo.tiny_models import make_tiny_clip, make_tiny_dinov2
from xmic.extract.encoders import ModelNotFoundError, load_encoder
from xmic.extract.preprocess import box_pixels, crop_boxes, preprocess, preprocess_crops
from xmic.extract.text import text_embeddings
from xmic.registry import CLIP_MEAN, IMAGENET_STD

WORDS = ["chopping", "board", "cut", "knife"]


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point every cache variable at an empty folder so that no real cache on the machine is consulted."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XMIC_MODEL_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "clip": make_tiny_clip(root / "clip-vit-base-patch16", vocab_words=WORDS),
        "dino": make_tiny_dinov2(root / "dinov2-base"),
    }


@pytest.fixture(scope="module")
def clip(models: dict[str, Path]):
    return load_encoder("clip-vit-b16", models["clip"])


@pytest.fixture(scope="module")
def dino(models: dict[str, Path]):
    return load_encoder("dinov2-vitb14", models["dino"])


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random frames (upsampled noise plus a little grain), uint8 (n, h, w, 3)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR), dtype=np.int16)
        out.append(np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


# --- tiny models -------------------------------------------------------------------------------------


def test_tiny_models_are_small_and_load_with_transformers(models: dict[str, Path]) -> None:
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPImageProcessor, CLIPModel, Dinov2Model

    for folder in models.values():
        assert sum(f.stat().st_size for f in folder.iterdir()) < 1_000_000
    assert (models["clip"] / "vocab.json").is_file() and (models["clip"] / "merges.txt").is_file()
    model = CLIPModel.from_pretrained(models["clip"], local_files_only=True)
    tok = AutoTokenizer.from_pretrained(models["clip"], local_files_only=True)
    assert len(tok) == model.config.text_config.vocab_size
    ids = tok("a Chopping board!")["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens == ["<|startoftext|>", "a</w>", "chopping</w>", "board</w>", "!</w>", "<|endoftext|>"]
    assert ids[-1] == model.config.text_config.eos_token_id
    proc = CLIPImageProcessor.from_pretrained(models["clip"])
    assert proc.size["shortest_edge"] == 32 and proc.crop_size["height"] == 32
    dino = Dinov2Model.from_pretrained(models["dino"], local_files_only=True)
    dproc = AutoImageProcessor.from_pretrained(models["dino"])
    assert dproc.size["shortest_edge"] == 32 and dproc.crop_size["height"] == 28
    # position embeddings for a larger grid than the 4x4 patches used, as in the real 518 px checkpoints
    assert dino.config.image_size // dino.config.patch_size > 28 // dino.config.patch_size


# --- loading -----------------------------------------------------------------------------------------


def test_load_from_model_dir_builds_spec_from_files(clip, dino, models: dict[str, Path]) -> None:
    s = clip.spec
    assert (s.name, s.family, s.model_id) == ("clip-vit-b16", "clip", "openai/clip-vit-base-patch16")
    assert (s.dim, s.image_size, s.resize, s.interpolation) == (32, 32, 32, "bicubic")
    assert s.mean == pytest.approx(CLIP_MEAN) and s.source == str(models["clip"])
    d = dino.spec
    assert (d.dim, d.image_size, d.resize) == (32, 28, 32) and d.std == pytest.approx(IMAGENET_STD)
    assert clip.batch_size == 64 and clip.device.type == "cpu"


def test_load_from_parent_folder_by_model_id_name(models: dict[str, Path]) -> None:
    enc = load_encoder("clip-vit-b16", models["clip"].parent)
    assert enc.spec.source == str(models["clip"])


def test_load_from_hf_cache_follows_refs_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "hf_home"
    repo = home / "hub" / "models--openai--clip-vit-base-patch16"
    old = make_tiny_clip(repo / "snapshots" / "1111", dim=16)  # another revision, not the one refs/main names
    make_tiny_clip(repo / "snapshots" / "2222", dim=24)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("2222")
    monkeypatch.setenv("HF_HOME", str(home))
    enc = load_encoder("clip-vit-b16")
    assert enc.spec.source == str(repo / "snapshots" / "2222") and enc.dim == 24
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))  # takes precedence over HF_HOME
    monkeypatch.setenv("HF_HOME", str(tmp_path / "elsewhere"))
    assert load_encoder("clip-vit-b16").dim == 24
    shutil.rmtree(repo / "refs")  # without refs/main: the most recently modified complete snapshot
    os.utime(old, (time.time() + 60, time.time() + 60))
    assert load_encoder("clip-vit-b16").dim == 16


def test_missing_weights_error_names_model_and_paths(tmp_path: Path) -> None:
    given = tmp_path / "my_models"
    given.mkdir()
    (given / "config.json").write_text("{}")  # a config without weights does not count
    with pytest.raises(ModelNotFoundError) as info:
        load_encoder("dinov2-vitb14", given)
    msg = str(info.value)
    assert "facebook/dinov2-base" in msg and "dinov2-vitb14" in msg
    assert str(given) in msg and str(given / "dinov2-base") in msg
    assert str(tmp_path / "empty_hf_home" / "hub") in msg  # the HF cache that was searched
    assert "download facebook/dinov2-base" in msg and "--model-dir" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_wrong_family_is_refused(models: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="needs a dinov2"):
        load_encoder("dinov2-vitb14", models["clip"])


def test_spec_falls_back_to_config_without_processor_file(tmp_path: Path) -> None:
    folder = make_tiny_clip(tmp_path / "m", image_size=48, patch=16)
    (folder / "preprocessor_config.json").unlink()
    spec = load_encoder("clip-vit-b16", folder).spec
    assert (spec.image_size, spec.resize, spec.interpolation) == (48, 48, "bicubic")
    assert spec.mean == pytest.approx(CLIP_MEAN)


# --- preprocessing vs the models' own image processors ---------------------------------------------


@pytest.mark.parametrize("which", ["clip", "dino"])
@pytest.mark.parametrize("hw", [(256, 456), (456, 256), (97, 131), (32, 32), (720, 1280)])
def test_tensor_path_matches_image_processor(which: str, hw: tuple[int, int], models, clip, dino) -> None:
    from transformers import AutoImageProcessor

    enc = clip if which == "clip" else dino
    proc = AutoImageProcessor.from_pretrained(models[which])
    frames = _frames(3, *hw, seed=hw[0])
    ref_pixels = torch.as_tensor(proc([Image.fromarray(f) for f in frames], return_tensors="np")["pixel_values"])
    ours = preprocess(frames, enc.spec)
    assert ours.shape == ref_pixels.shape == (3, 3, enc.spec.image_size, enc.spec.image_size)
    assert (ours - ref_pixels).abs().mean() < 0.01
    cos = _cos(enc.encode_pixels(ref_pixels), enc.encode_images(frames))
    assert cos.min() >= 0.999


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("hw", [(108, 192), (97, 131), (30, 41)])  # down- and upsampling
def test_cpu_uint8_resize_is_pils_and_the_float_path_rounds_once(interpolation: str, hw: tuple[int, int]) -> None:
    """The CPU resize (uint8 kernel, rounded and clamped after each separable pass) against PIL's resize of each
    image: at most one level apart, in under 2 % of the values. The float path (rounded once at the end, as CUDA and
    "nearest" run; bicubic's overshoot is clamped only then) is further from PIL: more values differ."""
    from xmic.extract.preprocess import resize_levels, resize_shortest, resized_shape, uint8_kernel

    frames = _frames(4, *hw, seed=hw[1])
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    h, w = resized_shape(*hw, 64)
    resample = Image.BICUBIC if interpolation == "bicubic" else Image.BILINEAR
    pil = np.stack([np.asarray(Image.fromarray(f).resize((w, h), resample)) for f in frames]).transpose(0, 3, 1, 2)
    assert uint8_kernel(x.device, interpolation) and not uint8_kernel(torch.device("cuda"), interpolation)
    ours = resize_levels(x, 64, interpolation)
    assert ours.dtype == torch.uint8 and ours.shape == (4, 3, h, w)
    diff = np.abs(ours.numpy().astype(int) - pil)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.02, (diff.max(), (diff > 0).mean())
    float_path = resize_shortest(x.float(), 64, interpolation).numpy()
    float_diff = np.abs(float_path - pil)
    assert float_diff.max() <= 3 and (diff > 0).mean() <= (float_diff > 0).mean(), (float_diff.max(), diff.mean())


def test_nearest_resizes_in_float() -> None:
    from xmic.extract.preprocess import resize_levels, resize_shortest

    x = torch.from_numpy(_frames(2, 40, 60)).permute(0, 3, 1, 2)
    out = resize_levels(x, 20, "nearest")
    assert out.dtype == torch.float32
    assert torch.equal(out, resize_shortest(x.float(), 20, "nearest"))


@pytest.mark.numeric
def test_layouts_inputs_and_batching_agree(clip) -> None:
    frames = _frames(5, 60, 80)
    ref = clip.encode_images(frames)
    assert ref.shape == (5, 32) and ref.dtype == torch.float32
    chw = torch.from_numpy(frames).permute(0, 3, 1, 2)
    assert_close_scaled(clip.encode_images(chw), ref, k=16, what="(T, C, H, W) input")
    assert_close_scaled(clip.encode_images(frames, batch_size=2), ref, k=128, what="batches of 2")
    assert clip.encode_images(frames[:0]).shape == (0, 32)
    with pytest.raises(TypeError, match="uint8"):
        clip.encode_images(frames.astype(np.float32))


# --- hand crops --------------------------------------------------------------------------------------


@pytest.mark.numeric
def test_crop_of_known_box_equals_slice(clip) -> None:
    frames = _frames(3, 256, 456)
    boxes = np.array([[0.25, 0.5, 0.75, 1.0], [np.nan] * 4, [0.101, 0.2, 0.3, 0.41]], dtype=np.float32)
    crops = crop_boxes(frames, boxes)
    np.testing.assert_array_equal(crops[0].numpy(), frames[0, 128:256, 114:342])
    np.testing.assert_array_equal(crops[1].numpy(), frames[1])
    x0, y0, x1, y1 = box_pixels(boxes[2], 256, 456)
    assert (x0, y0, x1, y1) == (46, 51, 137, 105)  # floor of the start, ceil of the end
    np.testing.assert_array_equal(crops[2].numpy(), frames[2, 51:105, 46:137])
    pix = preprocess_crops(frames, boxes, clip.spec)
    assert_close_scaled(pix[0], preprocess(frames[:1, 128:256, 114:342], clip.spec)[0], k=16)
    assert_close_scaled(pix[1], preprocess(frames[1:2], clip.spec)[0], k=16)
    assert_close_scaled(pix[2], preprocess(frames[2:3, 51:105, 46:137], clip.spec)[0], k=16)
    # NaN boxes everywhere: hand features equal full-frame features
    nan = np.full((3, 4), np.nan, dtype=np.float32)
    assert_close_scaled(clip.encode_crops(frames, nan), clip.encode_images(frames), k=16)


def test_bad_boxes_name_the_row() -> None:
    frames = np.zeros((2, 20, 30, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="row 1.*empty box"):
        crop_boxes(frames, np.array([[0, 0, 1, 1], [0.5, 0.5, 0.4, 0.9]]))
    with pytest.raises(ValueError, match="row 0.*outside"):
        crop_boxes(frames, np.array([[1.2, 0, 1.5, 1], [0, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        crop_boxes(frames, np.zeros((3, 4)))


# --- outputs: CLIP text, DINOv2 CLS ---------------------------------------------------------------------


@pytest.mark.numeric
def test_text_embeddings_shapes_and_values(clip, models: dict[str, Path]) -> None:
    from transformers import AutoTokenizer, CLIPModel

    names = ["chopping board", "knife", "cut"]
    emb = text_embeddings(clip, names)
    assert list(emb) == list(PROMPT_TEMPLATES)
    for arr in emb.values():
        assert arr.shape == (3, 32) and arr.dtype == np.float32 and np.isfinite(arr).all()
    assert not np.allclose(emb["{}"], emb["Image of a hand holding a {}"])
    # reference: one prompt at a time (no padding) through a freshly loaded model
    model = CLIPModel.from_pretrained(models["clip"], local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(models["clip"], local_files_only=True)
    with torch.no_grad():
        enc = tok(["Image of a knife"], return_tensors="pt")
        ref = model.text_projection(model.text_model(**enc).pooler_output)[0].numpy()
    assert_close_scaled(emb["Image of a {}"][1], ref, k=256, what="padded batch vs one prompt")
    with pytest.raises(ValueError, match="no '\\{\\}'"):
        text_embeddings(clip, names, templates=["a photo"])
    with pytest.raises(ValueError, match="label index 1"):
        text_embeddings(clip, ["knife", " "])


@pytest.mark.numeric
def test_dinov2_output_is_final_norm_cls_token(dino, models: dict[str, Path]) -> None:
    from transformers import Dinov2Model

    frames = _frames(2, 90, 120)
    pixels = preprocess(frames, dino.spec)
    model = Dinov2Model.from_pretrained(models["dino"], local_files_only=True).eval()
    with torch.no_grad():
        out = model(pixel_values=pixels, output_hidden_states=True)
    cls = model.layernorm(out.hidden_states[-1])[:, 0]
    assert_close_scaled(dino.encode_images(frames), cls, k=256)
    assert not torch.allclose(out.hidden_states[-1][:, 0], cls)  # the norm matters
    with pytest.raises(ValueError, match="no text tower"):
        dino.encode_texts(["knife"])


def test_spec_round_trips_through_store_json(clip) -> None:
    from xmic.cache.schema import EncoderSpec

    d = json.loads(json.dumps(clip.spec.to_dict()))
    assert EncoderSpec.from_dict(d) == clip.spec


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_autocast_matches_cpu(models: dict[str, Path], clip) -> None:
    gpu = load_encoder("clip-vit-b16", models["clip"], device="cuda")
    assert gpu.batch_size == 256
    frames = _frames(6, 256, 456)
    boxes = np.array([[0.1, 0.2, 0.6, 0.9]] * 3 + [[np.nan] * 4] * 3, dtype=np.float32)
    assert _cos(gpu.encode_images(frames), clip.encode_images(frames)).min() > 0.99
    assert _cos(gpu.encode_crops(frames, boxes), clip.encode_crops(frames, boxes)).min() > 0.99
    assert (
        _cos(gpu.encode_texts(["knife", "chopping board"]), clip.encode_texts(["knife", "chopping board"])).min() > 0.99
    )


def test_spec_records_the_models_own_logit_scale(clip, dino, models: dict[str, Path]) -> None:
    from safetensors.numpy import load_file

    files = sorted(models["clip"].glob("*.safetensors"))
    saved = float(np.exp(np.float64(load_file(str(files[0]))["logit_scale"])))
    assert clip.spec.logit_scale == pytest.approx(saved, rel=1e-6) and saved != 100.0  # tiny CLIP: ln(1/0.07) init
    assert dino.spec.logit_scale == 0.0  # no text tower: nothing to record
    assert "logit_scale" not in clip.spec.identity()  # the weights' hash already covers it
