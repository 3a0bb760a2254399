"""`--hands hoa` on Ego4D- and EGTEA-format data: 100DOH-format pickles written by our own writer from the synthetic
benchmark's true boxes are read back in each dataset's file layout and frame numbering, through the real runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_clip_extract_config

from xmic.extract.datasets.egtea import parse_clip_name
from xmic.extract.hands import HandBoxError, make_hand_provider
from xmic.extract.hands.epic_hoa import EpicHoaProvider, write_hoa_pickle
from xmic.extract.hands.given import GivenBoxProvider
from xmic.extract.hands.hoa_proto import (
    NO_CONTACT,
    PORTABLE_OBJECT,
    BBox,
    FrameDetections,
    HandDetection,
    ObjectDetection,
)
from xmic.synth import KITCHEN_B, KITCHEN_C, generate
from xmic.synth.generate import Sizes

TINY = Sizes(train=4, val=2, segments_per_video=(2, 3), segment_seconds=(0.5, 1.0), gap_seconds=(0.2, 0.5))


def detections_from_boxes(video_id: str, frame_number: int, boxes: list[list[float]]) -> FrameDetections:
    """One frame as the 100DOH detector would report it: the last box is the held object, the others hands touching
    it (offset pointing at it); plus a weak hand and a weak far object that the paper's thresholds drop."""
    if not boxes:
        return FrameDetections(video_id, frame_number)
    *hand_boxes, obj = boxes if len(boxes) > 1 else (boxes[0], None)
    hands, objects = [], []
    for b in hand_boxes:
        centre = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        if obj is None:
            hands.append(HandDetection(BBox(*b), 0.95, NO_CONTACT))
            continue
        target = ((obj[0] + obj[2]) / 2, (obj[1] + obj[3]) / 2)
        offset = (target[0] - centre[0], target[1] - centre[1])
        hands.append(HandDetection(BBox(*b), 0.95, PORTABLE_OBJECT, offset))
    if obj is not None:
        objects.append(ObjectDetection(BBox(*obj), 0.5))
    hands.append(HandDetection(BBox(0.0, 0.0, 0.05, 0.05), 0.3, PORTABLE_OBJECT, (0.9, 0.9)))  # below 0.8: dropped
    objects.append(ObjectDetection(BBox(0.9, 0.0, 1.0, 0.05), 0.02))  # far from where any hand points: not matched
    return FrameDetections(video_id, frame_number, tuple(hands), tuple(objects))


def write_hoa_from_given(boxes_dir: Path, hoa_dir: Path, dataset: str) -> list[Path]:
    """A pickle per video from the benchmark's given boxes (keys: 0-based frames; frame_number = key + 1)."""
    written = []
    for path in sorted(boxes_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        video_id, frames = doc["video_id"], {int(k): v for k, v in doc["frames"].items()}
        dets = [detections_from_boxes(video_id, i + 1, frames.get(i, [])) for i in range(max(frames) + 1)]
        folder = hoa_dir / parse_clip_name(video_id).session if dataset == "egtea" else hoa_dir
        written.append(write_hoa_pickle(folder / f"{video_id}.pkl", dets))
    return written


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    """Synthetic Ego4D- (kitchen B) and EGTEA-format (kitchen C) data with HOA pickles next to the given boxes."""
    report = generate(tmp_path_factory.mktemp("hoa") / "b", seed=3, sizes=TINY, workers=0, datasets=("ego4d", "egtea"))
    for name in ("ego4d", "egtea"):
        info = report.manifest["datasets"][name]
        written = write_hoa_from_given(report.out / info["hand_boxes"], report.out / f"hoa_{name}", name)
        assert written
    return report


@pytest.mark.parametrize("dataset", ["ego4d", "egtea"])
def test_hoa_pickles_give_the_true_boxes_in_the_dataset_numbering(bench, dataset):
    from xmic.extract.runner import ExtractConfig, load_dataset

    info = bench.manifest["datasets"][dataset]
    hoa_dir = bench.out / f"hoa_{dataset}"
    if dataset == "egtea":  # the session folder layout
        assert all(p.parent.parent == hoa_dir for p in hoa_dir.rglob("*.pkl"))
    given = GivenBoxProvider(bench.out / info["hand_boxes"])
    hoa = make_hand_provider("hoa", hoa_dir=str(hoa_dir), hoa_dataset=dataset)
    epic_numbering = EpicHoaProvider(hoa_dir, dataset=dataset, first_frame=1)  # the wrong rule for these datasets
    data = load_dataset(
        ExtractConfig(dataset=dataset, root=bench.out / info["root"], splits=tuple(info["splits"].values()))
    )
    shifted = 0
    for r in data.records:
        idx = np.arange(r.start_frame, r.stop_frame + 1)
        want = given.boxes(r.video_id, idx)
        assert np.isfinite(want).all()
        np.testing.assert_allclose(hoa.boxes(r.video_id, idx, segment=r), want, atol=1e-6)
        shifted += not np.allclose(epic_numbering.boxes(r.video_id, idx[1:]), want[1:], atol=1e-6)
    assert shifted == len(data.records)  # off by one frame: other boxes (the hands move)
    assert hoa.describe()["dataset"] == dataset and not hoa.missing_videos and not hoa.missing_frames


@pytest.mark.parametrize("dataset", ["ego4d", "egtea"])
def test_extraction_with_hoa_boxes(bench, tmp_path: Path, dataset: str) -> None:
    """`xmic extract`'s runner with --hands hoa --hoa-dir: the store holds the true box of every sampled frame and
    records the provider with its dataset numbering."""
    from xmic.cache.reader import StoreReader
    from xmic.extract.runner import run_extraction

    spec = KITCHEN_B if dataset == "ego4d" else KITCHEN_C
    info = bench.manifest["datasets"][dataset]
    words = {w for n in spec.verbs + spec.nouns for w in n.replace("_", " ").replace("/", " ").split()}
    config = tiny_clip_extract_config(
        tmp_path,
        dataset,
        bench.out / info["root"],
        info["splits"].values(),
        words,
        hands="hoa",
        hand_options={"hoa_dir": str(bench.out / f"hoa_{dataset}")},
    )
    report = run_extraction(config, echo=lambda _m: None)
    assert report.rows_failed == 0 and report.rows_ok > 0
    reader = StoreReader(tmp_path / "cache.zarr", dataset)
    given = GivenBoxProvider(bench.out / info["hand_boxes"])
    frame_index, boxes = np.asarray(reader.frame_index), np.asarray(reader.hand_box)
    for row, video in enumerate(map(str, reader.segments["video_id"])):
        np.testing.assert_allclose(boxes[row], given.boxes(video, frame_index[row]), atol=1e-6)
    record = reader.spec.config["hand_provider"]
    assert (record["hands"], record["dataset"], record["first_frame"]) == ("hoa", dataset, 0)


# ------------------------------------------------------------------------------------------ xmic cache show-boxes


def _extract(bench, tmp_path: Path, dataset: str, hands: str, options: dict) -> Path:
    from xmic.extract.runner import run_extraction

    spec = KITCHEN_B if dataset == "ego4d" else KITCHEN_C
    info = bench.manifest["datasets"][dataset]
    words = {w for n in spec.verbs + spec.nouns for w in n.replace("_", " ").replace("/", " ").split()}
    cache = tmp_path / "cache.zarr"
    config = tiny_clip_extract_config(
        tmp_path,
        dataset,
        bench.out / info["root"],
        info["splits"].values(),
        words,
        hands=hands,
        hand_options=options,
        num_frames=16,
    )
    run_extraction(config, echo=lambda _m: None)
    return cache


def test_show_boxes_draws_the_stored_boxes_on_the_decoded_frames(bench, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from xmic.cache.cli import cache as cache_cli
    from xmic.cache.reader import StoreReader
    from xmic.extract.boxsheet import HEADER_H, decode_rows, pick_slots

    cache = _extract(bench, tmp_path, "egtea", "hoa", {"hoa_dir": str(bench.out / "hoa_egtea")})
    reader = StoreReader(cache, "egtea")
    # extraction records each slot's box source: the hoa pickles' boxes are detected, the rest have no box
    no_box = np.isnan(np.asarray(reader.hand_box)).any(-1)
    assert reader.has_hand_source and ((reader.hand_source == 0) == no_box).all() and (reader.hand_source <= 1).all()
    # the frames decoded again are the extraction's: the synthetic renderer draws each frame's true boxes there
    frames = decode_rows(reader, [0, 2])
    assert set(frames) == {0, 2} and frames[0].shape[0] == 16

    out = tmp_path / "sheet" / "boxes.png"
    res = CliRunner().invoke(
        cache_cli,
        ["show-boxes", str(cache), "--dataset", "egtea", "--rows", "0,2", "--per-row", "4", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert "rows 0, 2" in res.output
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    h, w = frames[0].shape[1:3]
    th = round(160 * h / w)
    assert img.shape[1] == 4 * (160 + 4) + 4  # four frames per segment
    assert img.shape[0] == HEADER_H + 2 * (16 + th + 4 + 160 + 8)  # two segments, each a frame strip and a crop strip
    # the first frame of row 0: the stored box's left edge is drawn green on the thumbnail
    box = np.asarray(reader.hand_box)[0, pick_slots(np.asarray(reader.frame_index)[0], 4)[0]]
    x = 4 + int(box[0] * 160)
    ys = slice(HEADER_H + 16 + int(box[1] * th) + 3, HEADER_H + 16 + int(box[3] * th) - 3)
    column = img[ys, x - 1 : x + 2]
    green = (column[..., 1] > 200) & (column[..., 0] < 80) & (column[..., 2] < 80)
    assert green.any(axis=1).mean() > 0.9

    # default rows, --root override, and the errors
    res = CliRunner().invoke(
        cache_cli, ["show-boxes", str(cache), "--dataset", "egtea", "--count", "3", "--out", str(out)]
    )
    assert res.exit_code == 0 and res.output.count(",") == 2, res.output
    bad = CliRunner().invoke(
        cache_cli, ["show-boxes", str(cache), "--dataset", "egtea", "--rows", "999", "--out", str(out)]
    )
    assert bad.exit_code == 1 and "row 999 is not in the store" in bad.output
    bad = CliRunner().invoke(
        cache_cli,
        ["show-boxes", str(cache), "--dataset", "egtea", "--root", str(tmp_path / "nowhere"), "--out", str(out)],
    )
    assert bad.exit_code == 1 and "nowhere is not a directory; pass --root DIR" in bad.output


def test_sheet_marks_frames_without_a_box_and_shows_the_encoder_square():
    from types import SimpleNamespace

    from xmic.extract.boxsheet import HEADER_H, draw_sheet, encoder_square

    assert encoder_square(np.array([0.0, 0.0, 1.0, 0.5]), 100, 200) == (75, 0, 125, 50)  # wide box: its centre square
    assert encoder_square(np.full(4, np.nan), 100, 200) == (50, 0, 150, 100)  # no box: the frame's centre square
    frames = np.full((1, 2, 90, 160, 3), 128, np.uint8)
    reader = SimpleNamespace(
        hand_box=np.array([[[0.25, 0.25, 0.75, 0.75], [np.nan] * 4]], np.float32),
        frame_index=np.array([[3, 9]]),
        segments={"segment_id": np.array(["s0"]), "verb": np.array([0]), "noun": np.array([1])},
        vocab={"verbs": ["cut"], "nouns": ["x", "knife"]},
    )
    img = np.asarray(draw_sheet(reader, [0], {0: frames[0]}, per_row=2, title="t")).astype(int)
    th = round(160 * 90 / 160)
    second = img[HEADER_H + 16 : HEADER_H + 16 + th, 4 + 164 : 4 + 164 + 160]
    red = (second[..., 0] > 200) & (second[..., 1] < 60)
    assert red[:, :2].all()  # a frame without a box: a red border ("full frame")
    first = img[HEADER_H + 16 : HEADER_H + 16 + th, 4 : 4 + 160]
    assert ((first[..., 1] > 200) & (first[..., 0] < 80)).any() and not (
        (first[..., 0] > 200) & (first[..., 1] < 60)
    ).any()


def test_sheet_draws_interpolated_boxes_orange_and_says_so_in_the_legend():
    from types import SimpleNamespace

    from PIL import ImageDraw

    from xmic.cache.schema import HAND_SOURCE_DETECTED, HAND_SOURCE_INTERPOLATED
    from xmic.extract import boxsheet

    frames = np.full((1, 2, 90, 160, 3), 128, np.uint8)
    box = [0.25, 0.25, 0.75, 0.75]
    reader = SimpleNamespace(
        hand_box=np.array([[box, box]], np.float32),
        frame_index=np.array([[3, 9]]),
        segments={"segment_id": np.array(["s0"]), "verb": np.array([0]), "noun": np.array([1])},
        vocab={"verbs": ["cut"], "nouns": ["x", "knife"]},
        read_hand_source=lambda: np.array([[HAND_SOURCE_DETECTED, HAND_SOURCE_INTERPOLATED]], np.uint8),
    )
    texts = []
    real_text = ImageDraw.ImageDraw.text

    def spy(self, xy, text, *args, **kwargs):
        texts.append(text)
        return real_text(self, xy, text, *args, **kwargs)

    ImageDraw.ImageDraw.text = spy
    try:
        img = np.asarray(boxsheet.draw_sheet(reader, [0], {0: frames[0]}, per_row=2, title="t")).astype(int)
    finally:
        ImageDraw.ImageDraw.text = real_text
    assert any("interpolated box" in t for t in texts) and any("detected box" in t for t in texts)
    assert any("(1 interpolated)" in t for t in texts)
    th = round(160 * 90 / 160)
    y0, x_left = boxsheet.HEADER_H + 16, 4 + int(0.25 * 160)
    ys = slice(y0 + int(0.25 * th) + 3, y0 + int(0.75 * th) - 3)

    def colour_share(x: int, rgb: tuple[int, int, int]) -> float:
        column = img[ys, x - 1 : x + 2]
        hit = (np.abs(column - np.array(rgb)) < 40).all(axis=-1)
        return float(hit.any(axis=1).mean())

    assert colour_share(x_left, boxsheet.DETECTED_COLOUR) > 0.9  # first frame: detected, green
    assert colour_share(x_left, boxsheet.INTERPOLATED_COLOUR) == 0
    assert colour_share(x_left + 164, boxsheet.INTERPOLATED_COLOUR) > 0.9  # second frame: interpolated, orange
    assert colour_share(x_left + 164, boxsheet.DETECTED_COLOUR) == 0
    # the legend swatches: one per colour, in the header
    header = img[22 : boxsheet.HEADER_H, :30]
    for colour, _ in boxsheet.LEGEND:
        assert (np.abs(header - np.array(colour)) < 40).all(axis=-1).any(), colour


# ------------------------------------------------------------------------------- packing the 100DOH detector output


def test_pack_100doh_arrays_into_a_pickle_the_provider_reads(tmp_path: Path) -> None:
    """Detector rows in pixels -> normalised messages; the hand's offset picks the touched object (its own rule)."""
    from xmic.extract.hands.pack_100doh import main, pack_100doh

    h, w = 200, 400
    dets = tmp_path / "dets"
    dets.mkdir()
    # frame 1: a right hand at (40..80, 100..160) holding the object at (160..240, 100..140): centre (200, 120);
    # hand centre (60, 130) + 0.00142 * 10000 * (0.9859, -0.0704) px = (74 + 60, -1 + 130) ~ (200, 120)
    magnitude = np.hypot(140, -10) / 10000
    unit = np.array([140, -10]) / np.hypot(140, -10)
    hand = [40, 100, 80, 160, 0.97, 3, magnitude, unit[0], unit[1], 1]
    weak = [300, 0, 340, 40, 0.4, 3, magnitude, unit[0], unit[1], 0]  # below 0.8: dropped
    objects = [[160, 100, 240, 140, 0.6], [0, 0, 20, 20, 0.9]]  # the second is far from where the hand points
    np.savez(
        dets / "frame_0000000001.npz", hand_dets=np.array([hand, weak]), obj_dets=np.array(objects), height=h, width=w
    )
    np.savez(dets / "frame_0000000002.npz", hand_dets=np.zeros((0, 10)), obj_dets=np.zeros((0, 5)), height=h, width=w)
    no_contact = [40, 100, 80, 160, 0.9, 0, 0, 0, 0, 0]
    np.savez(
        dets / "frame_0000000003.npz", hand_dets=np.array([no_contact]), obj_dets=np.array(objects), height=h, width=w
    )
    out, n = pack_100doh(dets, tmp_path / "hoa" / "clip-a.pkl", "clip-a")
    assert n == 3 and out.is_file()
    p = make_hand_provider("hoa", hoa_dir=str(tmp_path / "hoa"), hoa_dataset="ego4d")
    boxes = p.boxes("clip-a", np.array([0, 1, 2]))  # Ego4D: 0-based frames
    np.testing.assert_allclose(boxes[0], [40 / w, 100 / h, 240 / w, 160 / h], rtol=1e-5)  # hand + touched object
    assert np.isnan(boxes[1]).all()
    np.testing.assert_allclose(boxes[2], [40 / w, 100 / h, 80 / w, 160 / h], rtol=1e-5)  # no contact: the hand only
    det = p.detections("clip-a", 0)
    assert det.frame_number == 1 and det.hands[0].side == 1 and det.hands[1].side == 0
    main([str(dets), str(tmp_path / "cli.pkl"), "--video-id", "clip-a"])
    assert (tmp_path / "cli.pkl").read_bytes() == out.read_bytes()
    np.savez(dets / "frame_0000000004.npz", hand_dets=np.zeros((1, 9)), height=h, width=w)
    with pytest.raises(HandBoxError, match=r"frame 4: expected hand_dets \(K, 10\)"):
        pack_100doh(dets, tmp_path / "bad.pkl", "clip-a")
