"""Hand-box providers: none, given, epic-hoa (own protobuf codec), yolo (fake model; real one under -m yolo),
mediapipe (the real hand_landmarker.task on drawn frames; the real Ego4D clip when present)."""

from __future__ import annotations

import json
import math
import pickle
import socket
import struct
import sys
import warnings

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import shared_path

from xmic.extract.hands import (
    HAND_PROVIDERS,
    BoxRequest,
    HandBoxError,
    finalize_boxes,
    hand_options,
    make_hand_provider,
    pop_hand_options,
    union_box,
)
from xmic.extract.hands import epic_hoa as hoa
from xmic.extract.hands.given import GivenBoxProvider, write_given_boxes
from xmic.extract.hands.hoa_proto import (
    NO_CONTACT,
    PORTABLE_OBJECT,
    RIGHT,
    SELF_CONTACT,
    BBox,
    FrameDetections,
    HandDetection,
    ObjectDetection,
    ProtoDecodeError,
    decode_frame_detections,
    encode_frame_detections,
)
from xmic.extract.hands.mediapipe_hands import landmark_box
from xmic.extract.hands.yolo import YoloProvider

NAN4 = [math.nan] * 4


def f32(x: float) -> float:
    return float(np.float32(x))


# ----------------------------------------------------------------------------------------- base, none, factory


def test_none_gives_nan_rows_of_the_right_shape():
    p = make_hand_provider("none")
    out = p.boxes("v", np.arange(5), None)
    assert out.shape == (5, 4) and out.dtype == np.float32 and np.isnan(out).all()
    assert p.boxes("v", np.array([], dtype=np.int64)).shape == (0, 4)
    assert not p.needs_frames


def test_union_and_finalize():
    np.testing.assert_allclose(union_box([[0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.5, 0.3], NAN4]), [0.1, 0.1, 0.5, 0.4])
    assert np.isnan(union_box(np.empty((0, 4)))).all()
    raw = np.array([[-0.1, 0.2, 1.3, 0.9], [0.5, 0.5, 0.5, 0.9], [0.1, math.nan, 0.2, 0.3]], np.float32)
    out = finalize_boxes(raw, 3)
    np.testing.assert_allclose(out[0], [0.0, 0.2, 1.0, 0.9])
    assert np.isnan(out[1:]).all()  # zero width; partly NaN
    with pytest.raises(HandBoxError, match=r"expected boxes of shape \(2, 4\)"):
        finalize_boxes(raw, 2)
    with pytest.raises(HandBoxError, match="infinite coordinate .* row 1"):
        finalize_boxes(np.array([[0, 0, 1, 1], [0, 0, np.inf, 1]], np.float32), 2)


def test_factory_errors_name_the_choices_and_flags(tmp_path):
    with pytest.raises(
        ValueError, match="unknown --hands 'doh'; choose one of: hoa, epic-hoa, mediapipe, yolo, given, none"
    ):
        make_hand_provider("doh")
    with pytest.raises(ValueError, match="--hands hoa needs --hoa-dataset epic|ego4d|egtea"):
        make_hand_provider("hoa", hoa_dir=str(tmp_path))
    for name, flag in [
        ("hoa", "--hoa-dir"),
        ("epic-hoa", "--hoa-dir"),
        ("mediapipe", "--hand-model"),
        ("yolo", "--yolo-weights"),
    ]:
        with pytest.raises(ValueError, match=f"--hands {name} needs {flag}"):
            make_hand_provider(name)
    with pytest.raises(ValueError, match="--hands given needs --hand-boxes"):
        make_hand_provider("given")
    with pytest.raises(ValueError, match="--yolo-weights is not used by --hands epic-hoa"):
        make_hand_provider("epic-hoa", hoa_dir=str(tmp_path), yolo_weights="w.pt")
    with pytest.raises(ValueError, match="unknown hand-box option 'hoa_thresh'"):
        make_hand_provider("epic-hoa", hoa_dir=str(tmp_path), hoa_thresh=0.5)
    with pytest.raises(FileNotFoundError, match="--hoa-dir .*missing is not a directory"):
        make_hand_provider("epic-hoa", hoa_dir=str(tmp_path / "missing"))
    p = make_hand_provider("epic-hoa", hoa_dir=str(tmp_path), hoa_hand_threshold=0.5, yolo_weights=None)
    assert (p.hand_threshold, p.object_threshold, p.first_frame, p.dataset) == (0.5, 0.01, 1, "epic")
    assert set(HAND_PROVIDERS) == {"hoa", "epic-hoa", "mediapipe", "yolo", "given", "none"}
    # each dataset's numbering: EPIC frame numbers count from 1, Ego4D / EGTEA frames from 0
    for data, first in [("epic", 1), ("ego4d", 0), ("egtea", 0)]:
        q = make_hand_provider("hoa", hoa_dir=str(tmp_path), hoa_dataset=data)
        assert (q.name, q.first_frame, q.describe()["dataset"]) == ("hoa", first, data)
    assert make_hand_provider("hoa", hoa_dir=str(tmp_path), hoa_dataset="ego4d", hoa_first_frame=1).first_frame == 1


def test_click_options_build_the_provider(tmp_path):
    seen = {}

    @click.command()
    @hand_options
    @click.option("--other", default=1)
    def cmd(hands, other, **kwargs):
        opts = pop_hand_options(kwargs)
        assert not kwargs
        seen["p"] = make_hand_provider(hands, **opts)

    res = CliRunner().invoke(cmd, ["--hands", "given", "--hand-boxes", str(tmp_path), "--hand-missing", "skip"])
    assert res.exit_code == 0, res.output
    assert isinstance(seen["p"], GivenBoxProvider) and seen["p"].missing == "skip"
    res = CliRunner().invoke(cmd, ["--hands", "epic-hoa"])
    assert res.exit_code != 0 and "needs --hoa-dir" in str(res.exception)


# ----------------------------------------------------------------------------------------------------- given


def test_given_json_union_missing_frames_and_round_trip(tmp_path):
    path = write_given_boxes(
        tmp_path, "vid", {3: [[0.1, 0.2, 0.3, 0.4], [0.25, 0.1, 0.6, 0.35]], 4: [], 7: [[0, 0, 1, 1]]}
    )
    assert json.loads(path.read_text())["frames"]["3"][1] == [0.25, 0.1, 0.6, 0.35]
    p = make_hand_provider("given", hand_boxes=str(tmp_path))
    out = p.boxes("vid", np.array([3, 4, 5, 7, 3]))
    np.testing.assert_allclose(out[0], [0.1, 0.1, 0.6, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(out[4], out[0])
    assert np.isnan(out[1:3]).all()
    np.testing.assert_array_equal(out[3], [0, 0, 1, 1])


def test_given_npz_repeated_rows_are_unioned(tmp_path):
    np.savez(
        tmp_path / "clip.npz",
        frame_index=np.array([2, 2, 9]),
        boxes=np.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.6, 0.7, 0.8], [0.3, 0.3, 0.4, 0.4]]),
    )
    out = GivenBoxProvider(tmp_path).boxes("clip", np.array([9, 2, 0]))
    np.testing.assert_allclose(out[:2], [[0.3, 0.3, 0.4, 0.4], [0.1, 0.1, 0.7, 0.8]], rtol=1e-6)
    assert np.isnan(out[2]).all()


def test_given_table_of_a_whole_video_equals_frame_by_frame(tmp_path):
    """The whole-file check and union against the frame-by-frame reference: frames of 0 to 3 boxes, boxes a hair
    outside [0, 1] (clipped), and a frame index written twice ("7" and "07": the later wins)."""
    from xmic.extract.hands.given import _checked_table, _table_frame_by_frame

    rng = np.random.default_rng(0)
    frames = {}
    for i in range(40):
        lo = rng.uniform(0, 0.5, (i % 4, 2))
        frames[str(i)] = np.concatenate([lo, lo + rng.uniform(0.05, 0.4, lo.shape)], 1).round(4).tolist()
    frames["3"] = [[-0.00005, 0.1, 1.00005, 0.2]]
    path = tmp_path / "v.json"
    table, ref = _checked_table(frames, path), _table_frame_by_frame(frames, path)
    assert table is not None and list(table) == list(ref)
    for k in ref:
        np.testing.assert_array_equal(table[k], ref[k])
        assert table[k].dtype == ref[k].dtype == np.float32
    np.testing.assert_array_equal(table[3], np.float32([0, 0.1, 1, 0.2]))
    twice = {"7": [[0.1, 0.1, 0.2, 0.2]], "07": [[0.3, 0.3, 0.4, 0.4]]}
    assert _checked_table(twice, path) is None
    np.testing.assert_allclose(_table_frame_by_frame(twice, path)[7], [0.3, 0.3, 0.4, 0.4], rtol=1e-6)


def test_given_bad_files_name_file_and_frame(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"frames": {"5": [[0.4, 0.1, 0.2, 0.3]]}}))
    with pytest.raises(HandBoxError, match=r"a\.json: frame 5: box 0 .* is empty"):
        GivenBoxProvider(tmp_path).boxes("a", np.array([5]))
    (tmp_path / "b.json").write_text(json.dumps({"frames": {"x1": []}}))
    with pytest.raises(HandBoxError, match=r"b\.json: frame key 'x1' is not an integer"):
        GivenBoxProvider(tmp_path).boxes("b", np.array([1]))
    (tmp_path / "c.json").write_text(json.dumps({"video_id": "other", "frames": {}}))
    with pytest.raises(HandBoxError, match="holds boxes of video 'other', expected 'c'"):
        GivenBoxProvider(tmp_path).boxes("c", np.array([1]))
    (tmp_path / "d.json").write_text(json.dumps({"frames": {"1": [[0.1, 0.1, 1.5, 0.5]]}}))
    with pytest.raises(HandBoxError, match=r"d\.json: frame 1: box 0 .* not normalised"):
        GivenBoxProvider(tmp_path).boxes("d", np.array([1]))
    with pytest.raises(HandBoxError, match=r"no boxes for video zz: .*zz\.json or .*zz\.npz not found"):
        GivenBoxProvider(tmp_path).boxes("zz", np.array([1]))
    skip = GivenBoxProvider(tmp_path, missing="skip")
    with pytest.warns(UserWarning, match="no boxes for zz"):
        assert np.isnan(skip.boxes("zz", np.array([1, 2]))).all()
    assert skip.missing_videos == ["zz"]


# ----------------------------------------------------------------------------------------- epic-hoa: protobuf


def test_proto_decoder_reads_hand_built_wire_bytes():
    """Bytes written by hand from the wire-format rules, independent of the encoder."""

    def fl(field, v):
        return bytes([field << 3 | 5]) + struct.pack("<f", v)

    bbox = fl(1, 0.25) + fl(2, 0.5) + fl(3, 0.75) + fl(4, 1.0)
    offset = fl(1, -0.125) + fl(2, 0.0625)
    hand = b"\x0a" + bytes([len(bbox)]) + bbox + fl(2, 0.9) + b"\x18\x03" + b"\x22" + bytes([len(offset)]) + offset
    hand += b"\x28\x01"
    obj = b"\x0a" + bytes([len(bbox)]) + bbox + fl(2, 0.5)
    frame_300 = b"\x10\xac\x02"  # varint 300
    unknown = b"\x48\x07" + b"\x51" + b"\x00" * 8  # field 9 varint, field 10 fixed64: skipped
    msg = b"\x0a\x06P01_01" + frame_300 + b"\x1a" + bytes([len(hand)]) + hand + b"\x22" + bytes([len(obj)]) + obj
    det = decode_frame_detections(msg + unknown)
    assert det.video_id == "P01_01" and det.frame_number == 300
    (h,) = det.hands
    assert h.bbox == BBox(0.25, 0.5, 0.75, 1.0) and h.score == f32(0.9)
    assert (h.state, h.side, h.object_offset) == (PORTABLE_OBJECT, RIGHT, (-0.125, 0.0625))
    assert det.objects == (ObjectDetection(BBox(0.25, 0.5, 0.75, 1.0), 0.5),)
    assert encode_frame_detections(det) == msg  # the encoder writes fields in order, like protobuf
    assert decode_frame_detections(b"") == FrameDetections()  # proto3: everything default
    for bad in (msg[:-3], b"\x0b", b"\x10"):
        with pytest.raises(ProtoDecodeError):
            decode_frame_detections(bad)


def test_proto_round_trip_random_messages():
    rng = np.random.default_rng(0)

    def box():
        x0, y0 = (f32(v) for v in rng.uniform(0, 0.5, 2))
        return BBox(x0, y0, f32(x0 + rng.uniform(0.01, 0.5)), f32(y0 + rng.uniform(0.01, 0.5)))

    for n in range(30):
        hands = tuple(
            HandDetection(
                box(), f32(rng.uniform()), int(rng.integers(5)), (f32(rng.normal()), 0.0), int(rng.integers(2))
            )
            for _ in range(rng.integers(0, 3))
        )
        objects = tuple(ObjectDetection(box(), f32(rng.uniform())) for _ in range(rng.integers(0, 4)))
        det = FrameDetections(f"P{n:02d}_1{n:02d}", int(rng.integers(-5, 10**6)), hands, objects)
        assert decode_frame_detections(encode_frame_detections(det)) == det


# ----------------------------------------------------------------------------------------- epic-hoa: box rule


def _hand(box, score=0.95, state=PORTABLE_OBJECT, offset=(0.0, 0.0)):
    return HandDetection(BBox(*box), score, state, offset, RIGHT)


def _obj(box, score=0.5):
    return ObjectDetection(BBox(*box), score)


def test_offset_rule_picks_the_object_the_hand_points_at():
    hand = _hand((0.1, 0.4, 0.2, 0.6), offset=(0.5, -0.3))  # centre (0.15, 0.5) -> target (0.65, 0.2)
    near_hand = _obj((0.2, 0.45, 0.3, 0.55), 0.9)
    pointed = _obj((0.6, 0.15, 0.7, 0.25), 0.02)
    det = FrameDetections("v", 1, (hand,), (near_hand, pointed))
    assert hoa.contact_objects(det, 0.8, 0.01) == {0: 1}
    np.testing.assert_allclose(hoa.hand_object_box(det), [0.1, 0.15, 0.7, 0.6], rtol=1e-6)
    # the pointed-at object below the object threshold: the nearest remaining candidate is taken instead
    np.testing.assert_allclose(hoa.hand_object_box(det, 0.8, 0.05), [0.1, 0.4, 0.3, 0.6], rtol=1e-6)
    # a hand in no contact adds no object; a self-contact hand still does (epic_kitchens.hoa's rule)
    no_contact = FrameDetections(
        "v", 1, (_hand((0.1, 0.4, 0.2, 0.6), state=NO_CONTACT, offset=(0.5, -0.3)),), det.objects
    )
    np.testing.assert_allclose(hoa.hand_object_box(no_contact), [0.1, 0.4, 0.2, 0.6], rtol=1e-6)
    self_contact = FrameDetections(
        "v", 1, (_hand((0.1, 0.4, 0.2, 0.6), state=SELF_CONTACT, offset=(0.5, -0.3)),), det.objects
    )
    assert hoa.contact_objects(self_contact, 0.8, 0.01) == {0: 1}


def test_hand_threshold_is_inclusive_and_no_hand_is_nan():
    obj = _obj((0.0, 0.0, 0.1, 0.1))
    det = FrameDetections(
        "v", 1, (_hand((0.5, 0.5, 0.6, 0.6), score=0.8), _hand((0.7, 0.7, 0.9, 0.9), score=0.79)), (obj,)
    )
    np.testing.assert_allclose(hoa.hand_object_box(det), [0.0, 0.0, 0.6, 0.6], rtol=1e-6)
    only_weak = FrameDetections("v", 1, det.hands[1:], (obj,))
    assert np.isnan(hoa.hand_object_box(only_weak)).all()
    assert np.isnan(hoa.hand_object_box(FrameDetections("v", 1, (), (obj,)))).all()


def _reference_box(det, ht=0.8, ot=0.01):
    """The rule written out with plain loops."""
    parts = []
    objects = [o for o in det.objects if o.score >= ot]
    for h in det.hands:
        if h.score < ht:
            continue
        parts.append(h.bbox.xyxy)
        if h.state != NO_CONTACT and objects:
            tx = (h.bbox.left + h.bbox.right) / 2 + h.object_offset[0]
            ty = (h.bbox.top + h.bbox.bottom) / 2 + h.object_offset[1]
            dist = [
                ((o.bbox.left + o.bbox.right) / 2 - tx) ** 2 + ((o.bbox.top + o.bbox.bottom) / 2 - ty) ** 2
                for o in objects
            ]
            parts.append(objects[dist.index(min(dist))].bbox.xyxy)
    if not parts:
        return NAN4
    return [min(p[0] for p in parts), min(p[1] for p in parts), max(p[2] for p in parts), max(p[3] for p in parts)]


def _random_frame(rng, number=1):
    def box():
        x0, y0 = rng.uniform(0, 0.7, 2)
        return (x0, y0, x0 + rng.uniform(0.05, 0.3), y0 + rng.uniform(0.05, 0.3))

    hands = tuple(
        _hand(box(), rng.uniform(0.5, 1.0), int(rng.integers(5)), tuple(rng.uniform(-0.3, 0.3, 2)))
        for _ in range(rng.integers(0, 3))
    )
    return FrameDetections(
        "P01_01", number, hands, tuple(_obj(box(), rng.uniform(0, 1)) for _ in range(rng.integers(0, 4)))
    )


def test_box_rule_matches_a_loop_reference_on_random_frames():
    rng = np.random.default_rng(1)
    for _ in range(200):
        det = _random_frame(rng)
        np.testing.assert_allclose(hoa.hand_object_box(det), _reference_box(det), rtol=1e-6)


# ----------------------------------------------------------------------------------------- epic-hoa: provider


def _write_pickle(path, frames):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump([encode_frame_detections(d) for d in frames], f)


@pytest.fixture
def hoa_video(tmp_path):
    rng = np.random.default_rng(2)
    frames = [_random_frame(rng, number=p + 1) for p in range(40)]
    frames[5] = FrameDetections()  # a frame without detections serialises to b""
    _write_pickle(tmp_path / "P01" / "P01_01.pkl", frames)
    return tmp_path, frames


def test_provider_reads_each_frame_by_its_number(hoa_video, monkeypatch):
    root, frames = hoa_video
    loads = []
    real = hoa._VideoDetections

    class Counting(real):
        def __init__(self, path):
            loads.append(path)
            super().__init__(path)

    monkeypatch.setattr(hoa, "_VideoDetections", Counting)
    p = make_hand_provider("epic-hoa", hoa_dir=str(root))
    numbers = np.array([1, 6, 18, 40, 18, 0])  # EPIC frame numbers (frame_N.jpg); 0 is read as frame 1
    out = p.boxes("P01_01", numbers)
    ref = np.array([_reference_box(frames[max(n, 1) - 1]) for n in numbers], np.float32)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    assert np.isnan(out[1]).all() and np.isfinite(ref[[0, 2, 3]]).any()
    # 0-based indices: the same frames with first_frame=0
    np.testing.assert_allclose(
        hoa.EpicHoaProvider(root, first_frame=0).boxes("P01_01", numbers[:5] - 1), ref[:5], rtol=1e-6
    )
    (root / "P01" / "P01_01.pkl").unlink()  # cached: the second segment of the video does not reread it
    np.testing.assert_allclose(p.boxes("P01_01", numbers[::-1]), ref[::-1], rtol=1e-6)
    assert len(loads) == 2  # one per provider


def test_provider_handles_flat_layout_shuffled_lists_and_missing_frames(tmp_path):
    rng = np.random.default_rng(3)
    frames = [_random_frame(rng, number=p + 1) for p in range(12)]
    shuffled = [frames[i] for i in rng.permutation(12)]
    _write_pickle(tmp_path / "P02_103.pkl", shuffled)
    p = hoa.EpicHoaProvider(tmp_path, hand_threshold=0.6, first_frame=0)
    with pytest.warns(UserWarning, match=r"P02_103\.pkl has no detections for frame index 12 \(12 frames\)"):
        out = p.boxes("P02_103", np.array([11, 0, 12, 50]))
    np.testing.assert_allclose(out[:2], [_reference_box(frames[11], 0.6), _reference_box(frames[0], 0.6)], rtol=1e-6)
    assert np.isnan(out[2:]).all() and p.missing_frames == {"P02_103": 2}


def test_provider_missing_and_bad_pickles(tmp_path):
    with pytest.raises(HandBoxError, match=r"P03_01: .*P03/P03_01\.pkl or .*P03_01\.pkl not found"):
        hoa.EpicHoaProvider(tmp_path).boxes("P03_01", np.array([0]))
    skip = hoa.EpicHoaProvider(tmp_path, missing="skip")
    with pytest.warns(UserWarning, match="no hand-object detections for P03_01"):
        assert np.isnan(skip.boxes("P03_01", np.array([0, 1]))).all()
    assert skip.missing_videos == ["P03_01"]

    (tmp_path / "P04_01.pkl").write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(HandBoxError, match=r"P04_01\.pkl: expected a pickled list"):
        hoa.EpicHoaProvider(tmp_path).boxes("P04_01", np.array([0]))
    (tmp_path / "P05_01.pkl").write_bytes(pickle.dumps([b"\x10\x01", b"\x1a\x09\x0a"]))
    with pytest.raises(HandBoxError, match=r"P05_01\.pkl: message at list position 1: truncated"):
        hoa.EpicHoaProvider(tmp_path).boxes("P05_01", np.array([2]))
    (tmp_path / "P06_01.pkl").write_bytes(pickle.dumps([warnings.warn]))  # a callable: refused, never run
    with pytest.raises(HandBoxError, match=r"P06_01\.pkl: not a hand-object detection pickle .*refusing to load"):
        hoa.EpicHoaProvider(tmp_path).boxes("P06_01", np.array([0]))
    (tmp_path / "P07_01.pkl").write_bytes(pickle.dumps([b"\x10\x01"], protocol=2))  # old protocol: still read
    assert np.isnan(hoa.EpicHoaProvider(tmp_path).boxes("P07_01", np.array([0]))).all()


# ----------------------------------------------------------------------------------------------------- yolo


class _Res:
    def __init__(self, xyxyn, cls, conf):
        self.boxes = type(
            "Boxes",
            (),
            {
                "xyxyn": np.array(xyxyn, np.float32).reshape(-1, 4),
                "cls": np.array(cls, np.float32),
                "conf": np.array(conf, np.float32),
            },
        )()


class FakeYolo:
    """ultralytics-like: the detections of an image are keyed by its blue channel (BGR index 0) at (0, 0)."""

    names = {0: "hand", 1: "object", 2: "person"}

    def __init__(self, table):
        self.table, self.calls = table, []

    def predict(self, source, conf=0.25, classes=None, verbose=True, **kwargs):
        self.calls.append((len(source), conf, classes))
        out = []
        for img in source:
            dets = [d for d in self.table.get(int(img[0, 0, 0]), []) if d[2] >= conf]  # ultralytics filters conf too
            out.append(_Res([d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets]))
        return out


def _frames_with_keys(keys):
    frames = np.zeros((len(keys), 8, 8, 3), np.uint8)
    frames[:, 0, 0, 2] = keys  # RGB blue channel: seen as BGR index 0 only if the provider converts
    return frames


YOLO_TABLE = {
    1: [((0.1, 0.1, 0.2, 0.2), 0, 0.9), ((0.5, 0.5, 0.8, 0.9), 1, 0.6), ((0.0, 0.0, 1.0, 1.0), 2, 0.99)],
    2: [((0.3, 0.3, 0.4, 0.4), 0, 0.3)],
}


def test_yolo_union_class_filter_conf_and_bgr():
    model = FakeYolo(YOLO_TABLE)
    p = make_hand_provider("yolo", yolo_model=model, yolo_classes="hand,object", yolo_conf=0.5, yolo_batch=2)
    assert p.needs_frames and p.class_ids == [0, 1]
    out = p.boxes("v", np.arange(5), _frames_with_keys([1, 2, 0, 1, 2]))
    np.testing.assert_allclose(out[0], [0.1, 0.1, 0.8, 0.9], rtol=1e-6)  # person (class 2) left out
    np.testing.assert_array_equal(out[3], out[0])
    assert np.isnan(out[[1, 2, 4]]).all()  # conf 0.3 < 0.5; no detection
    assert [c[0] for c in model.calls] == [2, 2, 1] and model.calls[0][1:] == (0.5, [0, 1])
    ids = YoloProvider(model=model, classes="0", conf=0.2).boxes("v", np.arange(2), _frames_with_keys([1, 2]))
    np.testing.assert_allclose(ids, [[0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4]], rtol=1e-6)
    every = YoloProvider(model=model).boxes("v", np.arange(1), _frames_with_keys([1]))
    np.testing.assert_array_equal(every, [[0, 0, 1, 1]])


def test_yolo_boxes_many_batches_across_segments():
    model = FakeYolo(YOLO_TABLE)
    p = YoloProvider(model=model, classes=[0, 1], conf=0.2, batch_size=4)
    reqs = [
        BoxRequest("a", np.arange(3), _frames_with_keys([1, 0, 2])),
        BoxRequest("b", np.arange(2), _frames_with_keys([2, 1])),
    ]
    many = p.boxes_many(reqs)
    assert [c[0] for c in model.calls] == [4, 1]
    for got, r in zip(many, reqs, strict=True):
        np.testing.assert_array_equal(got, p.boxes(*r))
    with pytest.raises(ValueError, match="yolo hand boxes of c: .*needs the decoded frames"):
        p.boxes_many([BoxRequest("c", np.arange(1))])


def test_yolo_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown class 'face'; the model has 0:hand, 1:object, 2:person"):
        YoloProvider(model=FakeYolo({}), classes="hand,face")
    with pytest.raises(FileNotFoundError, match="--yolo-weights .*nope.pt does not exist"):
        make_hand_provider("yolo", yolo_weights=str(tmp_path / "nope.pt"))
    (tmp_path / "w.pt").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'xmic\[yolo\]'"):
        make_hand_provider("yolo", yolo_weights=str(tmp_path / "w.pt"))
    with pytest.raises(ValueError, match="needs the decoded frames, got frames=None"):
        YoloProvider(model=FakeYolo({})).boxes("v", np.arange(2), None)


@pytest.mark.yolo
def test_yolo_with_real_ultralytics(tmp_path, monkeypatch):
    """Run by scripts/test_yolo.sh: a random-weight YOLOv8n built from its yaml, saved, loaded as --yolo-weights."""
    pytest.importorskip("ultralytics")
    import torch
    import ultralytics.utils.downloads as downloads
    from ultralytics import YOLO

    attempts = []

    def no_download(*args, **kwargs):
        attempts.append(("download", args, kwargs))
        raise OSError("downloads are blocked in this test")

    def no_connect(sock, address, *args):
        attempts.append(("connect", address))
        raise OSError("network is blocked in this test")

    monkeypatch.setattr(downloads, "safe_download", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", no_connect)
    model = YOLO("yolov8n.yaml")
    with torch.no_grad():  # make class 3 fire everywhere so the random detector has something to report
        for branch in model.model.model[-1].cv3:
            branch[-1].bias[:] = -20.0
            branch[-1].bias[3] = 20.0
    weights = tmp_path / "tiny.pt"
    model.save(str(weights))
    frames = np.random.default_rng(0).integers(0, 255, (2, 128, 160, 3), dtype=np.uint8)
    p = make_hand_provider(
        "yolo", yolo_weights=str(weights), yolo_classes=model.names[3], yolo_conf=0.5, yolo_imgsz=160, yolo_device="cpu"
    )
    out = p.boxes("v", np.arange(2), frames)
    ref = YOLO(str(weights)).predict(
        [f[..., ::-1].copy() for f in frames], conf=0.5, imgsz=160, device="cpu", verbose=False
    )
    expect = [union_box(r.boxes.xyxyn.cpu().numpy()[r.boxes.cls.cpu().numpy() == 3]) for r in ref]
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()
    np.testing.assert_allclose(out, expect, atol=1e-6)
    none = make_hand_provider("yolo", yolo_weights=str(weights), yolo_classes="0", yolo_imgsz=160, yolo_device="cpu")
    assert np.isnan(none.boxes("v", np.arange(2), frames)).all()
    assert attempts == []  # nothing was fetched: not the model, not a font, not a check


# ------------------------------------------------------------------------------------------------ mediapipe


def test_landmark_box_margin_and_clipping():
    pts = np.array([[0.2, 0.3], [0.4, 0.7], [0.3, 0.5]])
    np.testing.assert_allclose(landmark_box(pts, 0.2), [0.16, 0.22, 0.44, 0.78], rtol=1e-6)
    np.testing.assert_allclose(
        landmark_box(np.array([[-0.05, 0.9], [0.3, 1.02]]), 0.0), [0.0, 0.9, 0.3, 1.0], rtol=1e-6
    )


def _draw_hand(width=456, height=256, cx=228, cy=154, s=1.0):
    """An open right hand (palm, four fingers, thumb, wrist) in skin tone; returns the image and the skin box."""
    from PIL import Image, ImageDraw, ImageFilter

    img = Image.new("RGB", (width, height), (70, 90, 110))
    d = ImageDraw.Draw(img)
    skin = (224, 172, 138)

    def capsule(p0, p1, r):
        d.line([p0, p1], fill=skin, width=int(2 * r))
        for x, y in (p0, p1):
            d.ellipse([x - r, y - r, x + r, y + r], fill=skin)

    d.rounded_rectangle([cx - 38 * s, cy - 30 * s, cx + 38 * s, cy + 45 * s], radius=int(18 * s), fill=skin)
    for bx, length, deg in [(-28, 55, -10), (-10, 68, -3), (9, 64, 3), (27, 50, 10)]:
        a = math.radians(deg)
        p0 = (cx + bx * s, cy - 28 * s)
        capsule(p0, (p0[0] + math.sin(a) * length * s, p0[1] - math.cos(a) * length * s), 8.5 * s)
    capsule((cx - 33 * s, cy + 20 * s), (cx - 75 * s, cy - 15 * s), 10 * s)
    for bx in (-19, 0, 18):
        d.line([(cx + bx * s, cy - 75 * s), (cx + bx * s, cy - 28 * s)], fill=(190, 140, 110), width=2)
    d.rectangle([cx - 30 * s, cy + 40 * s, cx + 30 * s, height], fill=skin)
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.5)))
    ys, xs = np.nonzero(np.abs(arr.astype(int) - skin).sum(-1) < 60)
    return arr, np.array([xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height])


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def hand_model():
    pytest.importorskip("mediapipe")
    return shared_path("models", "hand_landmarker.task")


@pytest.mark.parametrize("mode", ["image", "video"])
def test_mediapipe_finds_a_drawn_hand_and_nothing_in_an_empty_frame(hand_model, mode):
    hand, skin = _draw_hand()
    empty = np.broadcast_to(np.linspace(40, 200, 456, dtype=np.uint8)[None, :, None], (256, 456, 3))
    frames = np.stack([hand, empty, hand])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the known model: no checksum warning
        p = make_hand_provider("mediapipe", hand_model=str(hand_model), hand_mode=mode, hand_gap=0)
    with p:
        out = p.boxes("synthetic", np.array([0, 3, 6]), frames)
    assert np.isnan(out[1]).all() and not p.last_interpolated.any()
    for row in (0, 2):
        box = out[row]
        assert np.isfinite(box).all() and (box >= 0).all() and (box <= 1).all()
        # the skin box runs down to the image bottom (the wrist); the hand box must cover most of the hand
        assert _iou(box, skin) > 0.5, (box, skin)
        assert box[0] <= skin[0] + 0.03 and box[2] >= skin[2] - 0.03 and box[1] <= skin[1] + 0.05
    assert p.describe()["model_sha256"].startswith("fbc2a300")


def test_mediapipe_defaults_track_and_fill_a_lost_hand(hand_model):
    """The default provider: video mode, measured confidence, a hand lost between two frames is interpolated."""
    from xmic.extract.hands.mediapipe_hands import DEFAULT_MAX_GAP, DEFAULT_MIN_CONF

    left, _ = _draw_hand(cx=150)
    right, _ = _draw_hand(cx=300)
    empty = np.broadcast_to(np.linspace(40, 200, 456, dtype=np.uint8)[None, :, None], (256, 456, 3))
    frames = np.stack([left, empty, right, empty, empty, empty, empty, left])
    idx = np.arange(8) * 3  # 0.1 s apart at 30 fps: one lost frame, then a run of four (longer than the gap)
    with make_hand_provider("mediapipe", hand_model=str(hand_model)) as p:
        d = p.describe()
        assert (d["running_mode"], d["min_detection_confidence"], d["max_gap"]) == ("video", DEFAULT_MIN_CONF, 3)
        assert DEFAULT_MAX_GAP == 3
        out = p.boxes("synthetic", idx, frames)
        flags = p.last_interpolated.copy()
        # the rows go back in time (a segment's slots need not be sorted): the same boxes, row for row
        order = np.array([7, 2, 0, 1, 3, 4, 5, 6])
        again = p.boxes("synthetic", idx[order], frames[order])
    assert flags.tolist() == [False, True, False, False, False, False, False, False]
    np.testing.assert_allclose(out[1], (out[0] + out[2]) / 2, atol=1e-6)  # halfway in time, halfway in space
    assert np.isnan(out[3:7]).all()  # four frames lost: longer than the gap, left as the full frame
    np.testing.assert_allclose(again, out[order], atol=1e-6)
    assert p.interpolated == {"synthetic": 2}


def test_mediapipe_interpolated_slots_are_recorded_in_the_store(hand_model, tmp_path):
    """The frame filled between two that found the hand is stored as hand_source 2; the others 1 (box) or 0."""
    from types import SimpleNamespace

    from xmic.cache.reader import StoreReader
    from xmic.cache.schema import (
        HAND_SOURCE_DETECTED,
        HAND_SOURCE_INTERPOLATED,
        HAND_SOURCE_NONE,
        EncoderSpec,
        StoreSpec,
    )
    from xmic.cache.writer import StoreWriter
    from xmic.extract.assemble import ChunkAssembler, piece_boxes
    from xmic.extract.pipeline import Piece

    left, _ = _draw_hand(cx=150)
    right, _ = _draw_hand(cx=300)
    empty = np.broadcast_to(np.linspace(40, 200, 456, dtype=np.uint8)[None, :, None], (256, 456, 3))
    frames = np.stack([left, empty, right, empty, empty, empty, empty, left])
    idx = np.arange(8) * 3  # as above: frame 1 is filled, frames 3-6 are a run longer than the gap
    d, i, n = HAND_SOURCE_DETECTED, HAND_SOURCE_INTERPOLATED, HAND_SOURCE_NONE
    want = [d, i, d, n, n, n, n, d]
    with make_hand_provider("mediapipe", hand_model=str(hand_model)) as p:
        assert p.interpolates
        [(boxes, codes)] = p.boxes_with_sources([BoxRequest("synthetic", idx, frames)])
        assert codes.dtype == np.uint8 and codes.tolist() == want
        np.testing.assert_array_equal(boxes, p.boxes("synthetic", idx, frames))
        piece = Piece(0, "synthetic", np.array([0, 1]), np.stack([idx, idx[::-1]]), np.stack([frames, frames[::-1]]))
        records = [SimpleNamespace(segment_id=f"s{k}", fps=30.0) for k in range(2)]
        hand_box, hand_source = piece_boxes(piece, p, records)
    assert hand_source.tolist() == [want, want[::-1]]
    # through the chunk assembler and the writer into a store, and back
    spec = StoreSpec(
        dataset="synthetic",
        num_frames=8,
        encoders={"e": EncoderSpec("e", "clip", "test/e", 4, 224, 224, "bicubic", (0.5,) * 3, (0.25,) * 3)},
        chunk_rows=2,
    )
    segments = {
        "segment_id": np.array(["s0", "s1"]),
        "video_id": np.array(["synthetic"] * 2),
        "start_frame": np.zeros(2, int),
        "stop_frame": np.full(2, 30),
        "fps": np.full(2, 30.0),
        "verb": np.zeros(2, int),
        "noun": np.zeros(2, int),
        "split": np.array(["train"] * 2),
    }
    writer = StoreWriter.create(tmp_path / "s.zarr", spec, segments, {"verb": ["v"], "noun": ["n"]})
    acc = ChunkAssembler(0, 0, 2, 8, {"e": 4})
    feats = {"e": {v: np.zeros((2, 8, 4), np.float16) for v in ("full", "hand")}}
    acc.add(piece.rows, piece.frame_index, hand_box, feats, hand_source)
    writer.write_chunk(
        0,
        frame_index=acc.frame_index,
        hand_box=acc.hand_box,
        hand_source=acc.hand_source,
        features=acc.features,
        row_status=acc.row_status,
    )
    assert StoreReader(tmp_path / "s.zarr").hand_source.tolist() == [want, want[::-1]]


def test_providers_that_do_not_interpolate_mark_detected_or_none(tmp_path):
    write_given_boxes(tmp_path, "v", {0: [[0.1, 0.1, 0.3, 0.3]], 2: [[0.5, 0.5, 0.7, 0.7]]})
    [(_, codes)] = GivenBoxProvider(tmp_path).boxes_with_sources([BoxRequest("v", np.arange(3))])
    assert codes.tolist() == [1, 0, 1]
    [(_, codes)] = make_hand_provider("none").boxes_with_sources([BoxRequest("v", np.arange(3))])
    assert codes.tolist() == [0, 0, 0]


def test_fill_gaps_rules():
    from xmic.extract.hands.mediapipe_hands import fill_gaps

    nan = [np.nan] * 4
    boxes = np.array([[0, 0, 0.2, 0.2], nan, nan, [0.4, 0.4, 0.6, 0.6], nan, [0.1, 0.1, 0.3, 0.3], nan])
    times = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 2.0, 2.1])
    out, filled = fill_gaps(times, boxes, max_gap=2, max_seconds=1.0)
    assert filled.tolist() == [False, True, True, False, False, False, False]  # 0.3 -> 2.0 s is too far apart
    np.testing.assert_allclose(out[1], [0.4 / 3, 0.4 / 3, 0.2 + 0.4 / 3, 0.2 + 0.4 / 3])
    assert np.isnan(out[4]).all() and np.isnan(out[6]).all()  # never past the last frame that found the hand
    assert not fill_gaps(times, boxes, max_gap=1, max_seconds=1.0)[1].any()  # a run of two is longer than 1


def test_mediapipe_model_checks(tmp_path):
    pytest.importorskip("mediapipe")
    with pytest.raises(FileNotFoundError, match="--hand-model .*absent.task does not exist"):
        make_hand_provider("mediapipe", hand_model=str(tmp_path / "absent.task"))
    other = tmp_path / "other.task"
    other.write_bytes(b"not the known model")
    with pytest.warns(UserWarning, match="is not the known hand_landmarker.task"):
        make_hand_provider("mediapipe", hand_model=str(other)).close()


def test_mediapipe_on_the_real_ego4d_clip(hand_model):
    import av

    clips = sorted(shared_path("realdata", "media").glob("*.mp4"))
    if not clips:
        pytest.skip("no .mp4 under realdata/media")
    frames, pick = [], []
    with av.open(str(clips[0])) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else container.duration / av.time_base
        for t in np.linspace(0.05, 0.95, 16) * duration:  # seek to 16 evenly spaced times, keep the next frame
            container.seek(int(t / stream.time_base), stream=stream)
            frame = next(f for f in container.decode(stream) if f.time is None or f.time >= t - 1e-3)
            scale = 640 / max(frame.width, 640)
            small = frame.reformat(
                width=round(frame.width * scale) // 2 * 2, height=round(frame.height * scale) // 2 * 2
            )
            frames.append(small.to_ndarray(format="rgb24"))
            pick.append(round((frame.time or 0.0) * float(stream.average_rate or 30)))
    frames, pick = np.stack(frames), np.array(pick)
    with make_hand_provider("mediapipe", hand_model=str(hand_model)) as p:
        out = p.boxes(clips[0].stem, pick, frames)
    found = np.isfinite(out).all(axis=1)
    assert found.sum() >= 9, f"hands in {found.sum()}/16 frames of {clips[0].name}"
    assert (out[found] >= 0).all() and (out[found] <= 1).all()


# ------------------------------------------------------------------------------- choosing --hands in xmic extract


def test_choose_hands_without_a_silent_none(tmp_path, monkeypatch):
    from xmic.extract.hands.factory import NO_HAND_CHOICE, NoHandChoiceError, choose_hands

    monkeypatch.delenv("XMIC_HAND_MODEL", raising=False)
    monkeypatch.delenv("XMIC_MODEL_DIR", raising=False)
    with pytest.raises(NoHandChoiceError) as err:
        choose_hands(None, {"hand_margin": None})
    assert str(err.value) == NO_HAND_CHOICE and "--hands none" in NO_HAND_CHOICE
    assert choose_hands(None, {"hoa_dir": "hoa", "hoa_hand_threshold": 0.5}) == (
        "hoa",
        {"hoa_dir": "hoa", "hoa_hand_threshold": 0.5},
    )
    assert choose_hands(None, {"yolo_weights": "w.pt"})[0] == "yolo"
    assert choose_hands(None, {"hand_boxes": "boxes"})[0] == "given"
    assert choose_hands(None, {"hand_model": "m.task"}) == ("mediapipe", {"hand_model": "m.task"})
    with pytest.raises(NoHandChoiceError, match=r"several hand-box sources \(hoa, yolo\)"):
        choose_hands(None, {"hoa_dir": "hoa", "yolo_weights": "w.pt"})
    assert choose_hands("none", {}) == ("none", {})  # an explicit choice
    with pytest.raises(
        FileNotFoundError, match=r"no MediaPipe hand model .*\(looked for .*models/hand_landmarker.task\)"
    ):
        choose_hands("mediapipe", {}, tmp_path / "models")

    models = tmp_path / "models"
    models.mkdir()
    (models / "hand_landmarker.task").write_bytes(b"")
    found = str(models / "hand_landmarker.task")
    assert choose_hands(None, {}, models) == ("mediapipe", {"hand_model": found})  # in --model-dir
    assert choose_hands("mediapipe", {"hand_margin": 0.1}, models) == (
        "mediapipe",
        {"hand_margin": 0.1, "hand_model": found},
    )
    monkeypatch.setenv("XMIC_MODEL_DIR", str(models))
    assert choose_hands(None, {}) == ("mediapipe", {"hand_model": found})  # $XMIC_MODEL_DIR without --model-dir
    other = tmp_path / "other.task"
    other.write_bytes(b"")
    monkeypatch.setenv("XMIC_HAND_MODEL", str(other))
    assert choose_hands(None, {}, models) == ("mediapipe", {"hand_model": str(other)})  # the variable first
    assert choose_hands(None, {"yolo_weights": "w.pt"}, models)[0] == "yolo"  # a flag given beats a model found


def test_missing_hand_model_names_the_file_and_the_model_page(tmp_path):
    from xmic.extract.hands.factory import HAND_MODEL_PAGE, HAND_MODEL_URL

    with pytest.raises(FileNotFoundError) as err:
        make_hand_provider("mediapipe", hand_model=str(tmp_path / "absent.task"))
    msg = str(err.value)
    assert f"--hand-model {tmp_path / 'absent.task'} does not exist" in msg
    assert HAND_MODEL_PAGE in msg and HAND_MODEL_URL in msg and "never downloads" in msg


def test_hands_option_has_no_default():
    @click.command()
    @hand_options
    def cmd(hands, **kwargs):
        click.echo(repr(hands))

    res = CliRunner().invoke(cmd, [])
    assert res.exit_code == 0 and res.output.strip() == "None"
    assert "XMIC_HAND_MODEL" in CliRunner().invoke(cmd, ["--help"]).output


def test_mediapipe_native_log_lines_are_held_back(hand_model, capfd):
    """LiteRT/glog INFO and WARNING lines written to file descriptor 2 during detection do not reach the user."""
    hand, _ = _draw_hand()
    capfd.readouterr()
    with make_hand_provider("mediapipe", hand_model=str(hand_model), hand_gap=0) as p:
        p.boxes("synthetic", np.array([0, 3]), np.stack([hand, hand]))
    err = capfd.readouterr().err
    assert "INFO:" not in err and "LiteRT" not in err and "W0000" not in err, err


def test_quiet_native_logs_keeps_errors_only(capfd):
    import os
    import sys

    from xmic.extract.hands.mediapipe_hands import quiet_native_logs

    print("ours before", file=sys.stderr)
    with quiet_native_logs():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1.0 1 inference_runner_litert.cc:1433] Input tensor memory is not aligned\n")
        os.write(2, b"E0000 00:00:1.0 1 calculator_graph.cc:1] graph failed\n")
    print("ours after", file=sys.stderr)
    err = capfd.readouterr().err
    assert err.splitlines() == ["ours before", "E0000 00:00:1.0 1 calculator_graph.cc:1] graph failed", "ours after"]
