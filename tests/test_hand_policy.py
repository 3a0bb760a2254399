"""Hand boxes of every dataset: the provider a table extracts each group with (defaults, explicit choices, missing
model files), `xmic extract` without a silent "no hands", and what the store records (hand_source,
no_hands_reason) on small stores, with MediaPipe's real model on generated clips when ../shared is there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xmic.bench.extract import write_ego4d_dataset, write_tiny_encoders
from xmic.cache.backend import Backend
from xmic.cache.hand_info import hand_boxes_line, hand_coverage, hand_source, no_hands_reason
from xmic.cache.reader import StoreReader
from xmic.cache.schema import StoreSpec
from xmic.cache.synthetic import write_random_store
from xmic.evaluate.reproduce import ReproduceSettings
from xmic.evaluate.reproduce_data import (
    HandPlan,
    ReproduceError,
    ensure_datasets,
    extract_command,
    hand_plan,
    parse_hands,
)
from xmic.extract.extract_cli import extract
from xmic.extract.hands.factory import HAND_MODEL_PAGE, NO_HAND_CHOICE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def no_model_in_env(monkeypatch):
    """No hand model or model folder leaks in from the environment."""
    monkeypatch.delenv("XMIC_HAND_MODEL", raising=False)
    monkeypatch.delenv("XMIC_MODEL_DIR", raising=False)


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# ------------------------------------------------------------------------------------ provider per dataset


def test_parse_hands_one_for_all_or_per_dataset():
    assert parse_hands("mediapipe") == {"epic": "mediapipe", "ego4d": "mediapipe", "egtea": "mediapipe"}
    assert parse_hands("ego4d=mediapipe, egtea=yolo,epic=epic-hoa") == {
        "ego4d": "mediapipe",
        "egtea": "yolo",
        "epic": "epic-hoa",
    }
    assert parse_hands("yolo,egtea=none") == {"epic": "yolo", "ego4d": "yolo", "egtea": "none"}
    assert parse_hands("") == parse_hands(None) == {}
    assert parse_hands("ego4d=hoa") == {"ego4d": "hoa"}
    with pytest.raises(ValueError, match="unknown hand-box provider 'doh'.*hoa, epic-hoa, mediapipe, yolo, none"):
        parse_hands("ego4d=doh")
    with pytest.raises(ValueError, match="unknown dataset 'ek100'"):
        parse_hands("ek100=mediapipe")
    with pytest.raises(ValueError, match="unknown hand-box provider 'given'"):
        parse_hands("given")


def test_defaults_epic_hoa_with_hoa_dir_else_mediapipe(tmp_path):
    model = _file(tmp_path / "m" / "hand_landmarker.task")
    s = ReproduceSettings(cache=tmp_path / "c.zarr", hand_model=model)
    for logical in ("epic", "ego4d", "egtea"):
        assert hand_plan(s, logical) == HandPlan("mediapipe", {"hand_model": str(model)})
    s.hoa_dir = tmp_path / "hoa"
    assert hand_plan(s, "epic") == HandPlan("epic-hoa", {"hoa_dir": str(tmp_path / "hoa")})
    assert hand_plan(s, "ego4d").hands == hand_plan(s, "egtea").hands == "mediapipe"  # HOA is EPIC's only


def test_the_model_is_found_in_the_env_or_the_model_dir(tmp_path, monkeypatch):
    s = ReproduceSettings(cache=tmp_path / "c.zarr", model_dir=tmp_path / "models")
    in_dir = _file(tmp_path / "models" / "hand_landmarker.task")
    assert hand_plan(s, "ego4d").options == {"hand_model": str(in_dir)}
    in_env = _file(tmp_path / "elsewhere" / "hl.task")
    monkeypatch.setenv("XMIC_HAND_MODEL", str(in_env))
    assert hand_plan(s, "ego4d").options == {"hand_model": str(in_env)}  # the variable first
    s.hand_model = in_dir
    assert hand_plan(s, "ego4d").options == {"hand_model": str(in_dir)}  # --hand-model before both


def test_explicit_choices_per_dataset(tmp_path):
    weights = _file(tmp_path / "hands.pt")
    model = _file(tmp_path / "hand_landmarker.task")
    s = ReproduceSettings(
        cache=tmp_path / "c.zarr",
        hands=parse_hands("ego4d=mediapipe,egtea=yolo,epic=epic-hoa"),
        hand_model=model,
        yolo_weights=weights,
        hoa_dir=tmp_path / "hoa",
    )
    assert hand_plan(s, "ego4d") == HandPlan("mediapipe", {"hand_model": str(model)})
    assert hand_plan(s, "egtea") == HandPlan("yolo", {"yolo_weights": str(weights)})
    assert hand_plan(s, "epic") == HandPlan("epic-hoa", {"hoa_dir": str(tmp_path / "hoa")})
    s.hands = {"epic": "mediapipe"}
    assert hand_plan(s, "epic").hands == "mediapipe"  # explicit beats the HOA default

    s.hands = {"ego4d": "epic-hoa"}
    with pytest.raises(ReproduceError, match="epic-hoa reads EPIC's pickles; for ego4d use ego4d=hoa"):
        hand_plan(s, "ego4d")
    s.hands = {"ego4d": "hoa"}  # a folder alone is EPIC's
    with pytest.raises(ReproduceError, match=r"--hands ego4d=hoa needs --hoa-dir ego4d=DIR"):
        hand_plan(s, "ego4d")
    s.hands, s.hoa_dir = {"epic": "epic-hoa"}, None
    with pytest.raises(ReproduceError, match=r"needs --hoa-dir DIR \(make HOA_DIR=DIR; one folder per dataset"):
        hand_plan(s, "epic")
    s.hands, s.yolo_weights = {"egtea": "yolo"}, None
    with pytest.raises(ReproduceError, match=r"no --yolo-weights given.*make YOLO_WEIGHTS=PATH"):
        hand_plan(s, "egtea")
    s.yolo_weights = tmp_path / "absent.pt"
    with pytest.raises(ReproduceError, match="--yolo-weights .*absent.pt does not exist"):
        hand_plan(s, "egtea")
    s.hands = {"egtea": "none"}
    with pytest.raises(ReproduceError, match=r"--allow-no-hands \(make ALLOW_NO_HANDS=1\)"):
        hand_plan(s, "egtea")
    s.allow_no_hands = True
    assert hand_plan(s, "egtea") == HandPlan("none")


def test_missing_model_file_says_which_file_and_where_to_get_it(tmp_path):
    s = ReproduceSettings(cache=tmp_path / "c.zarr", hand_model=tmp_path / "absent.task")
    with pytest.raises(ReproduceError) as err:
        hand_plan(s, "ego4d")
    msg = str(err.value)
    assert f"--hand-model {tmp_path / 'absent.task'} does not exist" in msg
    assert HAND_MODEL_PAGE in msg and "hand_landmarker.task" in msg and "never downloads" in msg
    assert "make HAND_MODEL=PATH" in msg and "XMIC_HAND_MODEL" in msg
    s = ReproduceSettings(cache=tmp_path / "c.zarr", model_dir=tmp_path / "models")
    with pytest.raises(ReproduceError, match="no MediaPipe hand model") as err:
        hand_plan(s, "egtea")
    assert str(tmp_path / "models" / "hand_landmarker.task") in str(err.value)  # where it looked


def test_extract_command_spells_the_hand_flags(tmp_path):
    s = ReproduceSettings(cache=tmp_path / "c.zarr", hoa_dir=tmp_path / "hoa")
    assert "--hands epic-hoa --hoa-dir " + str(tmp_path / "hoa") in extract_command(s, "epic")
    assert "--hands mediapipe --hand-model <hand_landmarker.task>" in extract_command(s, "ego4d")
    s.hand_model = _file(tmp_path / "hand_landmarker.task")
    assert f"--hands mediapipe --hand-model {s.hand_model}" in extract_command(s, "egtea")
    s.hands = {"egtea": "none"}
    assert extract_command(s, "egtea").count("--hands none") == 1


def test_every_missing_group_is_planned_before_the_first_extraction(tmp_path, monkeypatch):
    import xmic.extract.runner as runner

    calls = []
    monkeypatch.setattr(runner, "run_extraction", lambda config, echo=print: calls.append(config))
    s = ReproduceSettings(
        cache=tmp_path / "c.zarr",
        roots={"ego4d": tmp_path / "E", "egtea": tmp_path / "G"},
        hand_model=_file(tmp_path / "hand_landmarker.task"),
        hands={"egtea": "yolo"},
    )
    with pytest.raises(ReproduceError, match="--hands yolo needs a local YOLO weights file"):
        ensure_datasets(s, ["ego4d", "egtea"], echo=lambda _: None)
    assert calls == []  # ego4d was not extracted only to stop at egtea
    s.hands = {}
    ensure_datasets(s, ["ego4d", "egtea"], echo=lambda _: None)
    assert [(c.dataset, c.hands, c.hand_options) for c in calls] == [
        (d, "mediapipe", {"hand_model": str(s.hand_model)}) for d in ("ego4d", "egtea")
    ]


# ------------------------------------------------------------------------------------- hand_source & reason


class _Reader:
    """A reader made of a spec and boxes (what hand_policy reads), for records no provider writes here."""

    def __init__(self, spec: StoreSpec, boxes: np.ndarray, status: np.ndarray | None = None):
        self.spec, self.dataset, self.hand_box = spec, spec.dataset, boxes
        self.row_status = np.ones(len(boxes), np.uint8) if status is None else status


def _spec(hands: str, record: dict | None = None) -> StoreSpec:
    return StoreSpec("g", 2, {}, hands=hands, config={} if record is None else {"hand_provider": record})


def test_hand_source_names_the_recorded_provider():
    boxes = np.full((1, 2, 4), 0.5, np.float32)
    mp = {"hands": "mediapipe", "model": "/m/hand_landmarker.task", "model_sha256": "fbc2", "margin": 0.2}
    yolo = {"hands": "yolo", "weights": "/w/hands.pt", "classes": [0], "class_names": ["hand"], "conf": 0.25}
    hoa = {"hands": "epic-hoa", "hoa_dir": "/h", "hand_threshold": 0.8, "object_threshold": 0.01}
    cases = {
        "mediapipe (hand_landmarker.task)": _Reader(_spec("mediapipe", mp), boxes),
        "yolo (hands.pt, classes hand)": _Reader(_spec("yolo", yolo), boxes),
        "epic-hoa (hands >= 0.8, objects >= 0.01)": _Reader(_spec("epic-hoa", hoa), boxes),
        "given (boxes)": _Reader(_spec("given", {"hands": "given", "boxes_dir": "/d/boxes"}), boxes),
        "none": _Reader(_spec("none"), boxes),  # a store without the record: the spec's field
    }
    for label, reader in cases.items():
        assert hand_source(reader) == label
    line = hand_boxes_line({"epic": cases["epic-hoa (hands >= 0.8, objects >= 0.01)"], "ego4d": cases["none"]})
    assert line == "Hand boxes: epic = epic-hoa (hands >= 0.8, objects >= 0.01), ego4d = none"


def test_no_hands_reason_ignores_failed_rows():
    boxes = np.full((3, 2, 4), np.nan, np.float32)
    boxes[2, 1] = [0.1, 0.1, 0.4, 0.5]
    ok_first_two = np.array([1, 1, 2], np.uint8)  # the row with a box failed
    reader = _Reader(_spec("mediapipe", {"hands": "mediapipe", "model": "/m/h.task"}), boxes, ok_first_two)
    assert "no hand box in any frame" in no_hands_reason(reader) and hand_coverage(reader) == 0.0
    reader.row_status = np.ones(3, np.uint8)
    assert no_hands_reason(reader) is None and hand_coverage(reader) == pytest.approx(1 / 6)


@pytest.mark.parametrize("name", ["s.zarr", "s.h5"])
def test_hand_policy_on_synthetic_stores(tmp_path, name):
    path = write_random_store(tmp_path / name, dataset="synth-ego4d", n=20, num_frames=4, chunk_rows=6)
    reader = StoreReader(path, "synth-ego4d")
    assert hand_source(reader) == "synthetic (boxes from the generator)"
    assert no_hands_reason(reader) is None and hand_coverage(reader) == 1.0
    with Backend(path).session("a") as s:  # the detector found nothing anywhere
        s.write("synth-ego4d/hand_box", ..., np.full((20, 4, 4), np.nan, np.float32))
    reason = no_hands_reason(StoreReader(path, "synth-ego4d"))
    assert "'synth-ego4d' (synthetic (boxes from the generator)) has no hand box in any frame" in reason
    assert hand_coverage(StoreReader(path, "synth-ego4d")) == 0.0


# ------------------------------------------------------------------------------ xmic extract and its store


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """An Ego4D layout with one clip of a drawn hand and one of bars, and a tiny CLIP."""
    tmp = tmp_path_factory.mktemp("hand-policy")
    root = tmp / "ego4d"
    _write_hand_video(root / "v2" / "clips" / "hands.mp4", 24)
    write_ego4d_dataset(root, {"hands": 24, "bars": 24}, {"hands": [(0, 23)], "bars": [(0, 23)]})
    return {"tmp": tmp, "root": root, "models": write_tiny_encoders(tmp / "models", ("clip-vit-b16",))}


def _write_hand_video(path: Path, n: int) -> None:
    import av
    from test_hands import _draw_hand

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [_draw_hand(cx=200 + 2 * i)[0] for i in range(n)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("h264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 456, 256, "yuv420p"
        for img in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())


def _args(tiny: dict[str, Path], cache: Path, *extra: str) -> list[str]:
    return [
        "--dataset", "ego4d", "--root", str(tiny["root"]), "--split", "train", "--cache", str(cache),
        "--model-dir", str(tiny["models"]), "--frames", "4", "--workers", "0", "--device", "cpu",
        "--decode-size", "0", "--no-progress", *extra,
    ]  # fmt: skip


def test_extract_without_a_hand_choice_stops_with_one_line(tiny):
    cache = tiny["tmp"] / "unchosen.zarr"
    result = CliRunner().invoke(extract, _args(tiny, cache))
    assert result.exit_code == 1 and result.output.strip() == f"Error: {NO_HAND_CHOICE}"
    assert not cache.exists()


def test_extract_hands_none_is_recorded(tiny):
    cache = tiny["tmp"] / "none.zarr"
    result = CliRunner().invoke(extract, _args(tiny, cache, "--hands", "none"))
    assert result.exit_code == 0, result.output
    reader = StoreReader(cache, "ego4d")
    assert reader.spec.hands == "none" and reader.spec.config["hand_provider"] == {"hands": "none"}
    assert hand_source(reader) == "none" and np.isnan(reader.hand_box).all()
    assert "extracted with --hands none" in no_hands_reason(reader)


def test_extract_finds_the_hand_model_and_mediapipe_boxes_the_drawn_hand(tiny, monkeypatch):
    from conftest import shared_path

    pytest.importorskip("mediapipe")
    model = shared_path("models", "hand_landmarker.task")
    monkeypatch.setenv("XMIC_HAND_MODEL", str(model))
    cache = tiny["tmp"] / "mediapipe.zarr"
    result = CliRunner().invoke(extract, _args(tiny, cache))  # no --hands: the model found picks mediapipe
    assert result.exit_code == 0, result.output
    reader = StoreReader(cache, "ego4d")
    assert reader.spec.hands == "mediapipe" and reader.spec.config["hand_provider"]["model"] == str(model)
    assert hand_source(reader) == "mediapipe (hand_landmarker.task)"
    found = np.isfinite(reader.hand_box).all(axis=-1)  # (rows, T)
    rows = {str(v): k for k, v in enumerate(reader.segments["video_id"])}
    assert found[rows["hands"]].all() and not found[rows["bars"]].any()
    assert no_hands_reason(reader) is None and hand_coverage(reader) == 0.5


def test_one_hoa_folder_per_dataset(tmp_path):
    """--hoa-dir epic=DIR,ego4d=DIR,egtea=DIR: each dataset with a folder gets HOA boxes, the others MediaPipe."""
    from xmic.evaluate.reproduce_data import parse_hoa_dirs

    assert parse_hoa_dirs("/d/epic") == {"epic": Path("/d/epic")}  # the old form: EPIC's folder
    dirs = parse_hoa_dirs("ego4d=/d/e4, egtea=/d/eg")
    assert dirs == {"ego4d": Path("/d/e4"), "egtea": Path("/d/eg")} and parse_hoa_dirs("") == {}
    for bad, match in [("ek=/d", "expected DIR or dataset=DIR"), ("ego4d=/a,ego4d=/b", "ego4d is given twice")]:
        with pytest.raises(ValueError, match=match):
            parse_hoa_dirs(bad)
    model = _file(tmp_path / "hand_landmarker.task")
    s = ReproduceSettings(cache=tmp_path / "c.zarr", hand_model=model, hoa_dir=dirs)
    assert hand_plan(s, "ego4d") == HandPlan("hoa", {"hoa_dir": "/d/e4"})
    assert hand_plan(s, "egtea") == HandPlan("hoa", {"hoa_dir": "/d/eg"})
    assert hand_plan(s, "epic") == HandPlan("mediapipe", {"hand_model": str(model)})
    assert hand_plan(s, "ego4d").flags() == "--hands hoa --hoa-dir /d/e4"
    s.hoa_dir = {"epic": Path("/d/ep"), **dirs}
    assert hand_plan(s, "epic") == HandPlan("epic-hoa", {"hoa_dir": "/d/ep"})


def test_reproduce_cli_rejects_a_bad_hoa_dir(tmp_path):
    from xmic.evaluate.reproduce_cli import reproduce_cmd

    res = CliRunner().invoke(reproduce_cmd, ["--table", "3", "--cache", str(tmp_path / "c.zarr"), "--hoa-dir", "k=/x"])
    assert res.exit_code == 2 and "--hoa-dir" in res.output and "expected DIR or dataset=DIR" in res.output
