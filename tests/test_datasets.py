"""Dataset readers: EPIC-KITCHENS-100, Ego4D FHO LTA, EGTEA Gaze+ (synthetic files in the real formats)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import find_realdata

from xmic.cache.schema import SEGMENT_COLUMNS
from xmic.extract.datasets import AnnotationError, read_annotations, records_to_columns
from xmic.extract.datasets.ego4d import read_ego4d
from xmic.extract.datasets.egtea import parse_clip_name, read_egtea
from xmic.extract.datasets.epic import read_epic, read_epic_classes
from xmic.extract.datasets.epic_media import (
    annotation_fps,
    builtin_native_fps,
    find_epic_media,
    read_video_info,
    to_native_frames,
)

# ----------------------------------------------------------------------------------------------- EPIC

EPIC_HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
    "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes"
)
EPIC_ROWS = [
    "P01_01_0,P01,P01_01,00:00:01.089,00:00:00.14,00:00:03.37,8,202,open door,open,2,door,2,['door'],[2]",
    "P01_01_1,P01,P01_01,00:00:02.629,00:00:04.37,00:00:06.17,262,370,take board,take,0,board:chopping,1,"
    "['board:chopping'],[1]",
    "P01_101_0,P01,P01_101,00:00:02.851,00:00:02.86,00:00:03.87,143,193,put down tap,put-down,1,tap,0,"
    "\"['tap', 'board:chopping']\",\"[0, 1]\"",
    "P02_01_5,P02,P02_01,00:01:00.000,00:01:00.00,00:01:02.00,3600,3720,turn on tap,turn-on,3,tap,0,['tap'],[0]",
]
VERB_CLASSES = [("take", "['take', 'grab']", "take"), ("put-down", "['put-down']", "leave"),
                ("open", "['open']", "access"), ("turn-on", "['turn-on']", "activate")]  # fmt: skip
NOUN_CLASSES = [("tap", "['tap', 'tap:water']", "appliances"), ("board:chopping", "['board:chopping']", "utensils"),
                ("cupboard", "['cupboard', 'door']", "storage")]  # fmt: skip


def write_classes(path: Path, classes: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "key", "instances", "category"])
        for i, (key, instances, category) in enumerate(classes):
            writer.writerow([i, key, instances, category])
    return path


@pytest.fixture
def epic(tmp_path: Path) -> dict[str, Path]:
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "EPIC_100_train.csv").write_text("\n".join([EPIC_HEADER, *EPIC_ROWS]) + "\n")
    write_classes(ann / "EPIC_100_verb_classes.csv", VERB_CLASSES)
    write_classes(ann / "EPIC_100_noun_classes.csv", NOUN_CLASSES)
    (tmp_path / "P01" / "videos").mkdir(parents=True)
    (tmp_path / "P01" / "videos" / "P01_01.MP4").write_bytes(b"")
    (tmp_path / "P01" / "rgb_frames" / "P01_101").mkdir(parents=True)
    return {
        "root": tmp_path,
        "train": ann / "EPIC_100_train.csv",
        "verbs": ann / "EPIC_100_verb_classes.csv",
        "nouns": ann / "EPIC_100_noun_classes.csv",
    }


def write_epic(epic: dict[str, Path], rows: list[str], header: str = EPIC_HEADER) -> Path:
    path = epic["train"]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_epic_records_labels_fps_and_media(epic):
    ann = read_annotations("epic", epic["root"], "train")
    ids = [r.segment_id for r in ann.records]
    assert ids == ["P01_01_0", "P01_01_1", "P01_101_0", "P02_01_5"]  # sorted by (video, start, stop, id)
    r0, r1, r2, r3 = ann.records
    assert (r0.verb, r0.noun, r1.verb, r1.noun, r2.verb, r2.noun) == (2, 2, 0, 1, 1, 0)
    assert (r0.start_frame, r0.stop_frame, r0.num_frames) == (8, 202, 195)
    assert (r0.fps, r2.fps, r3.fps) == (60.0, 50.0, 60.0)  # PXX_YY at 60, PXX_1YY at 50
    assert r0.start_sec == pytest.approx(0.14) and r0.stop_sec == pytest.approx(3.37)
    assert r3.start_sec == pytest.approx(60.0) and r3.stop_sec == pytest.approx(62.0)
    assert (r0.media_kind, r0.video_path) == ("video", epic["root"] / "P01" / "videos" / "P01_01.MP4")
    assert (r2.media_kind, r2.video_path) == ("frames", epic["root"] / "P01" / "rgb_frames" / "P01_101")
    assert r3.video_path is None and ann.missing_media == ["P02_01"]
    assert {r.split for r in ann.records} == {"train"}
    assert ann.raw_vocab == {
        "verb": ["take", "put-down", "open", "turn-on"],
        "noun": ["tap", "board:chopping", "cupboard"],
    }
    assert ann.vocab["noun"] == ["tap", "chopping board", "cupboard"]
    assert ann.vocab["verb"] == ["take", "put down", "open", "turn on"]
    assert ann.native_fps["P01_01"] == pytest.approx(60000 / 1001) and ann.native_fps["P01_101"] == 50.0
    assert ann.skipped == []


def test_epic_fps_rule_and_native_conversion():
    assert annotation_fps("P01_01") == 60.0 and annotation_fps("P37_103") == 50.0 and annotation_fps("P22_17") == 60.0
    with pytest.raises(ValueError, match="not an EPIC-KITCHENS video id"):
        annotation_fps("video1")
    assert builtin_native_fps("P18_09") == 90.0 and builtin_native_fps("P09_07") == pytest.approx(29.97, abs=1e-3)
    assert to_native_frames(8, 202, 60.0, 60.0) == (8, 202)
    # one hour in at 60 -> 59.94 fps: 3.6 s of drift if not converted; reference by time, rounding half up
    native = 60000 / 1001
    start, stop = to_native_frames(216_000, 216_120, 60.0, native)
    assert (start, stop) == (math.floor(3600.0 * native + 0.5), math.floor(3602.0 * native + 0.5)) == (215784, 215904)
    assert to_native_frames(1, 2, 60.0, 30000 / 1001) == (0, 1)  # stays ordered at a lower rate
    assert to_native_frames(10, 11, 60.0, 30.0) == (5, 6)  # 5.5 rounds up
    with pytest.raises(ValueError, match="positive"):
        to_native_frames(1, 2, 0.0, 30.0)


def test_epic_video_info_overrides_builtin_table(epic):
    info = epic["root"] / "annotations" / "EPIC_100_video_info.csv"
    info.write_text("video_id,duration,fps,resolution\nP01_01,1652.15,29.97002997002997,1920x1080\n")
    assert read_video_info(info) == {"P01_01": pytest.approx(29.97002997)}
    ann = read_annotations("epic", epic["root"], "train")
    assert ann.native_fps["P01_01"] == pytest.approx(29.97002997)  # from the file
    assert ann.native_fps["P02_01"] == pytest.approx(60000 / 1001)  # built-in table
    assert info in ann.annotation_files


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("P03/videos/P03_04.MP4", "video"),
        ("videos/P03/P03_04.MP4", "video"),
        ("videos/train/P03/P03_04.MP4", "video"),
        ("videos/P03_04.mp4", "video"),
        ("P03/rgb_frames/P03_04/", "frames"),
        ("rgb_frames/P03/P03_04/", "frames"),
        ("frames_rgb_flow/rgb/test/P03/P03_04/", "frames"),
        ("P03/P03_04/", "frames"),
    ],
)
def test_epic_media_layouts(tmp_path, rel, kind):
    target = tmp_path / rel
    if rel.endswith("/"):
        target.mkdir(parents=True)
    else:
        target.parent.mkdir(parents=True)
        target.write_bytes(b"")
    assert find_epic_media(tmp_path, "P03_04") == (target, kind, None)


def test_epic_errata_and_packed_frames(tmp_path):
    frames = tmp_path / "P01" / "rgb_frames" / "P01_109"
    frames.mkdir(parents=True)
    path, kind, note = find_epic_media(tmp_path, "P01_109", "frames")
    assert (path, kind) == (frames, "frames") and "erratum" in note
    video = tmp_path / "P01" / "videos" / "P01_109.MP4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"")
    assert find_epic_media(tmp_path, "P01_109", "frames") == (video, "video", None)  # MP4 wins for errata
    (tmp_path / "P05" / "rgb_frames").mkdir(parents=True)
    (tmp_path / "P05" / "rgb_frames" / "P05_02.tar").write_bytes(b"")
    path, kind, note = find_epic_media(tmp_path, "P05_02", "frames")
    assert path is None and kind == "frames" and "P05_02.tar" in note


def test_epic_missing_column_names_file_and_header(epic):
    write_epic(
        epic, [r.replace(",2,door,2,", ",2,door,") for r in EPIC_ROWS[:1]], EPIC_HEADER.replace(",noun_class", "")
    )
    with pytest.raises(
        AnnotationError, match=r"EPIC_100_train\.csv: line 1 \(header\): missing column\(s\) \['noun_class'\]"
    ):
        read_epic(epic["train"], epic["verbs"], epic["nouns"])


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (EPIC_ROWS[1].replace(",board:chopping,1,", ",board:chopping,7,"), r"unknown noun class 7 .*0\.\.2"),
        (EPIC_ROWS[1].replace(",262,370,", ",370,370,"), r"stop frame 370 <= start frame 370"),
        (EPIC_ROWS[1].replace(",262,370,", ",262,abc,"), r"column 'stop_frame': expected an integer, got 'abc'"),
        (EPIC_ROWS[1].replace(",take,0,", ",take,,"), r"column 'verb_class': missing value"),
        (EPIC_ROWS[1] + ",extra", r"16 cells but the header has 15"),
    ],
)
def test_epic_bad_row_names_file_and_row(epic, bad_row, message):
    write_epic(epic, [EPIC_ROWS[0], bad_row, EPIC_ROWS[2]])
    with pytest.raises(AnnotationError, match=r"EPIC_100_train\.csv: data row 2 \(line 3\): " + message):
        read_epic(epic["train"], epic["verbs"], epic["nouns"])


def test_epic_skip_bad_lists_rows_and_keeps_the_rest(epic):
    rows = [EPIC_ROWS[0], EPIC_ROWS[1].replace(",262,370,", ",370,262,"), EPIC_ROWS[2], EPIC_ROWS[0]]
    write_epic(epic, rows)
    ann = read_epic(epic["train"], epic["verbs"], epic["nouns"], skip_bad=True)
    assert [r.segment_id for r in ann.records] == ["P01_01_0", "P01_101_0"]
    assert [(s.where, s.file) for s in ann.skipped] == [
        ("data row 2 (line 3)", epic["train"]),
        ("data row 4 (line 5)", epic["train"]),
    ]
    assert "stop frame 262 <= start frame 370" in ann.skipped[0].reason
    assert "repeats data row 1 (line 2)" in ann.skipped[1].reason
    assert str(ann.skipped[0]).startswith(f"{epic['train']}: data row 2 (line 3): ")


def test_epic_unlabelled_test_file_and_uda_uid_column(epic):
    ann_dir = epic["root"] / "annotations"
    header = (
        "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,stop_frame"
    )
    (ann_dir / "EPIC_100_test_timestamps.csv").write_text(
        f"{header}\nP01_101_0,P01,P01_101,00:00:02.851,00:00:02.86,00:00:03.87,143,193\n"
    )
    test = read_annotations("epic", epic["root"], "test")
    assert [(r.segment_id, r.verb, r.noun, r.split) for r in test.records] == [("P01_101_0", -1, -1, "test")]
    uda = ann_dir / "UDA_annotations"
    uda.mkdir()
    (uda / "EPIC_100_uda_source_train.csv").write_text(
        "uid," + EPIC_HEADER + "\n" + "\n".join(f"{i},{row}" for i, row in enumerate(EPIC_ROWS)) + "\n"
    )
    source = read_annotations("epic", epic["root"], "uda_source_train")
    assert [(r.segment_id, r.verb, r.noun) for r in source.records] == [
        ("P01_01_0", 2, 2), ("P01_01_1", 0, 1), ("P01_101_0", 1, 0), ("P02_01_5", 3, 0)
    ]  # fmt: skip
    assert source.split == "uda_source_train"
    val = read_annotations("epic", epic["root"], str(epic["train"]))  # a path works as the split
    assert len(val) == 4 and val.split == "train"


def test_epic_classes_need_contiguous_ids(tmp_path):
    path = tmp_path / "EPIC_100_verb_classes.csv"
    path.write_text("id,key,instances,category\n0,take,['take'],take\n2,open,['open'],access\n")
    with pytest.raises(AnnotationError, match=r"class ids must be 0\.\.1 without gaps; missing \[1\]"):
        read_epic_classes(path)


def test_epic_pickle_without_pandas_says_so(epic, monkeypatch):
    pkl = epic["root"] / "EPIC_100_train.pkl"
    pkl.write_bytes(b"not used")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"EPIC_100_train\.pkl needs pandas.*or use the CSV"):
        read_epic(pkl, epic["verbs"], epic["nouns"])


class _FakeFrame:
    """The part of a pandas DataFrame the pickle reader uses (pandas is not a dependency)."""

    def __init__(self, rows: list[dict], index_name: str) -> None:
        self.index_name, self.rows = index_name, rows
        self.columns = [k for k in rows[0] if k != index_name]
        self.index = type("Index", (), {"name": index_name})()

    def reset_index(self) -> _FakeFrame:
        frame = _FakeFrame(self.rows, "")
        frame.columns = list(self.rows[0])
        return frame

    def to_dict(self, orient: str) -> list[dict]:
        assert orient == "records"
        return [{c: row[c] for c in self.columns} for row in self.rows]


def test_epic_pickle_rows_with_narration_id_index(epic, monkeypatch):
    header = EPIC_HEADER.split(",")
    rows = [dict(zip(header, next(csv.reader([line])), strict=True)) for line in EPIC_ROWS[:3]]
    for row in rows:
        row.update(start_frame=int(row["start_frame"]), stop_frame=int(row["stop_frame"]))
        row.update(verb_class=int(row["verb_class"]), noun_class=int(row["noun_class"]))
    rows[1]["noun_class"] = 9
    fake = type(sys)("pandas")
    fake.read_pickle = lambda path: _FakeFrame(rows, "narration_id")
    monkeypatch.setitem(sys.modules, "pandas", fake)
    pkl = epic["root"] / "EPIC_100_train.pkl"
    pkl.write_bytes(b"")
    with pytest.raises(AnnotationError, match=r"row 1 \(0-based position in the DataFrame\): unknown noun class 9"):
        read_epic(pkl, epic["verbs"], epic["nouns"])
    ann = read_epic(pkl, epic["verbs"], epic["nouns"], skip_bad=True)
    assert [(r.segment_id, r.start_frame, r.verb, r.noun) for r in ann.records] == [
        ("P01_01_0", 8, 2, 2),
        ("P01_101_0", 143, 1, 0),
    ]
    assert ann.split == "train"


def test_read_annotations_lists_places_searched(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        read_annotations("epic", tmp_path, "validation", annotations_dir=tmp_path)
    assert "EPIC_100_validation.csv" in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="fho_lta_val.json"):
        read_annotations("ego4d", tmp_path, "val")
    with pytest.raises(ValueError, match="unknown dataset"):
        read_annotations("kinetics", tmp_path, "train")
    with pytest.raises(
        TypeError, match=r"unknown option\(s\) \['media'\] for dataset 'ego4d'; accepted: .*'center_sec'"
    ):
        read_annotations("ego4d", tmp_path, "val", media="frames")


def test_records_to_columns_and_sha256(epic):
    ann = read_annotations("epic", epic["root"], "train")
    cols = records_to_columns(ann.records)
    assert list(cols) == list(SEGMENT_COLUMNS)
    for name, dtype in SEGMENT_COLUMNS.items():
        assert cols[name].shape == (4,)
        if dtype != "str":
            assert cols[name].dtype == np.dtype(dtype)
    assert list(cols["segment_id"]) == [r.segment_id for r in ann.records]
    np.testing.assert_array_equal(cols["stop_frame"], [202, 370, 193, 3720])
    np.testing.assert_array_equal(cols["fps"], np.array([60, 60, 50, 60], dtype=np.float32))
    np.testing.assert_array_equal(cols["noun"], [2, 1, 0, 0])
    digests = ann.annotation_sha256()
    assert digests["EPIC_100_train.csv"] == hashlib.sha256(epic["train"].read_bytes()).hexdigest()
    assert set(digests) == {"EPIC_100_train.csv", "EPIC_100_verb_classes.csv", "EPIC_100_noun_classes.csv"}


# ---------------------------------------------------------------------------------------------- Ego4D

TAXONOMY = {"verbs": ["put_(place,_leave,_drop)", "take_(pick,_grab,_get)"],
            "nouns": ["bag_(bag,_grocery,_nylon,_polythene,_pouch,_sachet,_sack,_suitcase)", "knife", "nut_(food)"]}  # fmt: skip


def ego_clip(uid, idx, start, end, verb=1, noun=0, **extra):
    return {
        "clip_id": 17, "clip_uid": uid, "video_uid": "vid-" + uid, "action_idx": idx,
        "clip_parent_start_sec": 0.0, "clip_parent_end_sec": 480.0,
        "action_clip_start_sec": start, "action_clip_end_sec": end,
        "action_clip_start_frame": round(start * 30), "action_clip_end_frame": round(end * 30),
        "verb": TAXONOMY["verbs"][verb] if verb < 2 else "x", "noun": TAXONOMY["nouns"][noun] if noun < 3 else "y",
        "verb_label": verb, "noun_label": noun, **extra,
    }  # fmt: skip


@pytest.fixture
def ego(tmp_path: Path) -> dict[str, Path]:
    ann = tmp_path / "v2" / "annotations"
    ann.mkdir(parents=True)
    clips = [ego_clip("c2", 0, 2.5, 10.5, 0, 1), ego_clip("c1", 1, 8.0, 16.0, 1, 2), ego_clip("c1", 0, 0.0, 8.0)]
    (ann / "fho_lta_train.json").write_text(json.dumps({"version": "v2", "split": "train", "clips": clips}))
    (ann / "fho_lta_taxonomy.json").write_text(json.dumps(TAXONOMY))
    (tmp_path / "v2" / "clips").mkdir()
    (tmp_path / "v2" / "clips" / "c1.mp4").write_bytes(b"")
    return {"root": tmp_path, "train": ann / "fho_lta_train.json", "taxonomy": ann / "fho_lta_taxonomy.json"}


def test_ego4d_records_labels_and_media(ego):
    ann = read_annotations("ego4d", ego["root"], "train")
    assert [r.segment_id for r in ann.records] == ["c1_0", "c1_1", "c2_0"]
    r = {x.segment_id: x for x in ann.records}
    assert (r["c1_1"].verb, r["c1_1"].noun, r["c2_0"].verb, r["c2_0"].noun) == (1, 2, 0, 1)
    assert (r["c2_0"].start_frame, r["c2_0"].stop_frame, r["c2_0"].fps) == (75, 315, 30.0)
    assert (r["c2_0"].start_sec, r["c2_0"].stop_sec) == (2.5, 10.5)
    assert r["c1_0"].video_path == ego["root"] / "v2" / "clips" / "c1.mp4" and r["c1_0"].video_id == "c1"
    assert r["c2_0"].video_path is None and ann.missing_media == ["c2"]
    assert ann.vocab == {"verb": ["put", "take"], "noun": ["bag", "knife", "nut"]}
    assert ann.raw_vocab["noun"][0].startswith("bag_(")
    assert ann.split == "train" and ann.dataset == "ego4d"


def test_ego4d_center_window(ego):
    ann = read_ego4d(ego["train"], ego["taxonomy"], center_sec=4.0)
    r = {x.segment_id: x for x in ann.records}
    # 8 s windows keep their central 4 s; frames move by the same offsets at 30 fps
    assert (r["c2_0"].start_sec, r["c2_0"].stop_sec) == (4.5, 8.5)
    assert (r["c2_0"].start_frame, r["c2_0"].stop_frame) == (75 + 60, 315 - 60)
    c11 = r["c1_1"]
    assert (c11.start_sec, c11.stop_sec, c11.start_frame, c11.stop_frame) == (10.0, 14.0, 300, 420)
    short = read_ego4d(ego["train"], ego["taxonomy"], center_sec=20.0)  # longer than the window: unchanged
    assert [(x.start_frame, x.stop_frame) for x in short.records] == [(0, 240), (240, 480), (75, 315)]
    with pytest.raises(ValueError, match="center_sec"):
        read_ego4d(ego["train"], ego["taxonomy"], center_sec=0.0)


def _spans(root: Path, dataset: str = "ego4d", **kw) -> dict[str, tuple[int, int]]:
    """Segment id -> (start_frame, stop_frame) as ``xmic extract`` would read them (``load_dataset``)."""
    from xmic.extract.plan import load_dataset
    from xmic.extract.runner import ExtractConfig

    data = load_dataset(ExtractConfig(dataset=dataset, root=root, splits=kw.pop("splits", ("train",)), **kw))
    return {r.segment_id: (r.start_frame, r.stop_frame) for r in data.records}


def _central(start_frame: int, stop_frame: int, start_sec: float, stop_sec: float, keep: float, fps: float = 30):
    """The central ``keep`` seconds of an action window, in the window's own frame numbers (independent formula)."""
    cut = max(0.0, (stop_sec - start_sec) - keep) / 2
    return start_frame + round(cut * fps), stop_frame - round(cut * fps)


def test_extract_keeps_the_central_4_s_of_ego4d_windows_by_default(ego):
    whole = {"c1_0": (0, 240), "c1_1": (240, 480), "c2_0": (75, 315)}
    assert _spans(ego["root"], center_sec=0) == whole  # 0: the whole 8 s window
    assert _spans(ego["root"]) == {k: (a + 60, b - 60) for k, (a, b) in whole.items()}  # default: central 4 s
    assert _spans(ego["root"], center_sec=4.0) == _spans(ego["root"])
    assert _spans(ego["root"], center_sec=2.0)["c2_0"] == (75 + 90, 315 - 90)
    with pytest.raises(ValueError, match=r"--center-sec must be a number of seconds >= 0"):
        _spans(ego["root"], center_sec=-1.0)


def test_center_sec_is_ego4d_only():
    from xmic.extract.plan import center_window
    from xmic.extract.runner import ExtractConfig

    for dataset in ("epic", "egtea"):
        config = ExtractConfig(dataset=dataset, root=".")
        assert center_window(config) is None and config.as_record()["center_sec"] is None  # unaffected
        with pytest.raises(ValueError, match=f"--center-sec applies to ego4d only, not {dataset}"):
            center_window(ExtractConfig(dataset=dataset, root=".", center_sec=4.0))
    assert ExtractConfig(dataset="ego4d", root=".").as_record()["center_sec"] == 4.0
    assert ExtractConfig(dataset="ego4d", root=".", center_sec=0).as_record()["center_sec"] is None


def test_real_ego4d_windows_keep_their_central_4_s(realdata):
    root = realdata / "ego4d"
    if not (root / "v2" / "annotations" / "fho_lta_train.json").is_file():
        pytest.skip(f"no v2/annotations/fho_lta_train.json under {root}")
    splits = ("train", "val")
    files = [root / "v2" / "annotations" / f"fho_lta_{s}.json" for s in splits]
    clips = [c for f in files for c in json.loads(f.read_text())["clips"]]
    assert clips
    whole = _spans(root, splits=splits, center_sec=0)
    default = _spans(root, splits=splits)
    for c in clips:
        key = f"{c['clip_uid']}_{c['action_idx']}"
        a, b, sa, sb = (c[k] for k in ("action_clip_start_frame", "action_clip_end_frame",
                                       "action_clip_start_sec", "action_clip_end_sec"))  # fmt: skip
        assert whole[key] == (a, b)
        assert default[key] == _central(a, b, sa, sb, 4.0)
        assert sb - sa == pytest.approx(8.0) and default[key] == (a + 60, b - 60)  # real windows are 8 s


def test_synthetic_ego4d_annotations_keep_their_central_4_s(tmp_path):
    from xmic.synth.generate import Sizes, generate

    sizes = Sizes(train=6, val=2, segments_per_video=(2, 3), segment_seconds=(2.0, 9.0), gap_seconds=(0.2, 0.5))
    generate(tmp_path, seed=0, sizes=sizes, datasets=("ego4d",), videos=False)
    root = tmp_path / "ego4d"
    clips = json.loads((root / "v2" / "annotations" / "fho_lta_train.json").read_text())["clips"]
    whole, default = _spans(root, center_sec=0), _spans(root)
    lengths = []
    for c in clips:
        key = f"{c['clip_uid']}_{c['action_idx']}"
        a, b, sa, sb = (c[k] for k in ("action_clip_start_frame", "action_clip_end_frame",
                                       "action_clip_start_sec", "action_clip_end_sec"))  # fmt: skip
        assert whole[key] == (a, b) and default[key] == _central(a, b, sa, sb, 4.0)
        lengths.append(sb - sa)
    assert min(lengths) < 4 < max(lengths)  # both kinds occur: short windows are kept whole


def test_ego4d_truncated_json_names_file_and_position(ego):
    text = ego["train"].read_text()
    ego["train"].write_text(text[: len(text) // 2])
    with pytest.raises(
        AnnotationError, match=r"fho_lta_train\.json: invalid JSON at line 1 column \d+ \(character \d+\)"
    ):
        read_ego4d(ego["train"], ego["taxonomy"])


@pytest.mark.parametrize(
    ("clip", "message"),
    [
        (ego_clip("c3", 0, 1.0, 9.0, verb=2), r"unknown verb class 2 \(the verb classes in fho_lta_taxonomy\.json are 0\.\.1\)"),
        (ego_clip("c3", 0, 9.0, 9.0), r"action_clip_end_sec 9\.0 <= action_clip_start_sec 9\.0"),
        ({k: v for k, v in ego_clip("c3", 0, 1.0, 9.0).items() if k != "action_idx"}, r"missing field\(s\) \['action_idx'\]"),
        ({**ego_clip("c3", 0, 1.0, 9.0), "noun": "knife"}, r"noun 'knife' does not match noun class 0"),
    ],
)  # fmt: skip
def test_ego4d_bad_clip_names_file_and_index(ego, clip, message):
    data = json.loads(ego["train"].read_text())
    data["clips"].insert(1, clip)
    ego["train"].write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"fho_lta_train\.json: clips\[1\]: " + message):
        read_ego4d(ego["train"], ego["taxonomy"])
    ann = read_ego4d(ego["train"], ego["taxonomy"], skip_bad=True)
    assert len(ann) == 3 and [s.where for s in ann.skipped] == ["clips[1]"]


def test_ego4d_unannotated_test_file(ego):
    clips = [
        {k: v for k, v in ego_clip("c9", 0, 1.0, 9.0).items() if k not in ("verb", "noun", "verb_label", "noun_label")}
    ]
    path = ego["train"].with_name("fho_lta_test_unannotated.json")
    path.write_text(json.dumps({"clips": clips}))
    ann = read_annotations("ego4d", ego["root"], "test")
    assert [(r.segment_id, r.verb, r.noun, r.split) for r in ann.records] == [("c9_0", -1, -1, "test")]


# ---------------------------------------------------------------------------------------------- EGTEA

CLIPS = {
    "a": "OP01-R01-PastaSalad-1002316-1004005-F024051-F024101",
    "b": "OP01-R01-PastaSalad-66680-68130-F001597-F001639",
    "c": "P20-R03-BaconAndEggs-120000-123000-F002880-F002952",
}


@pytest.fixture
def egtea(tmp_path: Path) -> Path:
    ann = tmp_path / "action_annotation"
    ann.mkdir()
    (ann / "verb_idx.txt").write_text("Take 1\nPut 2\nCut/Slice 3\n")
    (ann / "noun_idx.txt").write_text("Cutting_board 1\nBowl 2\nEgg 3\nPasta salad 4\n")
    (ann / "action_idx.txt").write_text("Take Bowl 1\nPut Egg 2\nCut Pasta 3\n")
    (ann / "train_split1.txt").write_text(f"{CLIPS['a']} 1 1 2\n{CLIPS['b']} 3 3 4 1\n")
    (ann / "test_split1.txt").write_text(f"{CLIPS['c']} 2 2 3\n\n")
    (ann / "test_split2.txt").write_text(f"{CLIPS['a']} 1 1 2\n")
    (ann / "test_split3.txt").write_text(f"{CLIPS['c']} 2 2 3\n{CLIPS['b']} 3 3 4\n")
    session = tmp_path / "cropped_clips" / "OP01-R01-PastaSalad"
    session.mkdir(parents=True)
    (session / f"{CLIPS['a']}.mp4").write_bytes(b"")
    return tmp_path


def test_egtea_clip_names():
    name = parse_clip_name(CLIPS["a"])
    assert (name.session, name.start_ms, name.end_ms, name.first_frame, name.last_frame) == (
        "OP01-R01-PastaSalad", 1002316, 1004005, 24051, 24101
    )  # fmt: skip
    assert parse_clip_name(CLIPS["c"]).session == "P20-R03-BaconAndEggs"
    with pytest.raises(ValueError, match="not an EGTEA clip name"):
        parse_clip_name("OP01-R01-PastaSalad")


def test_egtea_records_labels_and_media(egtea):
    ann = read_annotations("egtea", egtea, "train")
    r = {x.segment_id: x for x in ann.records}
    assert list(r) == sorted([CLIPS["a"], CLIPS["b"]])
    assert (r[CLIPS["a"]].verb, r[CLIPS["a"]].noun, r[CLIPS["b"]].verb, r[CLIPS["b"]].noun) == (0, 1, 2, 3)
    a = r[CLIPS["a"]]
    assert (a.start_frame, a.stop_frame, a.fps, a.start_sec, a.stop_sec) == (0, 50, 24.0, 0.0, 50 / 24)
    assert a.video_path == egtea / "cropped_clips" / "OP01-R01-PastaSalad" / f"{CLIPS['a']}.mp4"
    assert ann.missing_media == [CLIPS["b"]] and ann.split == "train_split1"
    assert ann.vocab == {"verb": ["take", "put", "cut slice"], "noun": ["cutting board", "bowl", "egg", "pasta salad"]}
    assert ann.raw_vocab["verb"] == ["Take", "Put", "Cut/Slice"]


def test_egtea_all_test_splits_dedupe_or_concatenate(egtea):
    ann = read_annotations("egtea", egtea, "test", test_splits="all")
    assert sorted(r.segment_id for r in ann.records) == sorted(CLIPS.values())
    assert ann.split == "test_split1+2+3" and any("kept once" in n for n in ann.notes)
    both = read_annotations("egtea", egtea, "test", test_splits="all", dedupe=False)
    assert sorted(r.segment_id for r in both.records) == sorted(
        [
            f"{CLIPS['c']}@test_split1",
            f"{CLIPS['a']}@test_split2",
            f"{CLIPS['c']}@test_split3",
            f"{CLIPS['b']}@test_split3",
        ]
    )
    assert read_annotations("egtea", egtea, "test", split_id=2).records[0].segment_id == CLIPS["a"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"{CLIPS['b']} 3 4 4", r"unknown verb id 4 \(the verb ids are 1\.\.3\)"),
        (f"{CLIPS['b']} 3 3 x", r"expected integer ids"),
        ("OP01-R01 3 3 4", r"not an EGTEA clip name"),
        (f"{CLIPS['b']} 3 3", r"expected '<clip> <action> <verb> <noun>\.\.\.'"),
    ],
)
def test_egtea_bad_line_names_file_and_line(egtea, line, message):
    path = egtea / "action_annotation" / "train_split1.txt"
    path.write_text(f"{CLIPS['a']} 1 1 2\n{line}\n")
    with pytest.raises(AnnotationError, match=r"train_split1\.txt: line 2: " + message):
        read_egtea(path.parent, split="train")
    ann = read_egtea(path.parent, split="train", skip_bad=True)
    assert len(ann) == 1 and [s.where for s in ann.skipped] == ["line 2"]


def test_egtea_conflicting_labels_across_test_files(egtea):
    (egtea / "action_annotation" / "test_split2.txt").write_text(f"{CLIPS['c']} 1 1 2\n")
    with pytest.raises(AnnotationError, match=r"test_split2\.txt: line 1 of test_split2\.txt: .*other labels"):
        read_annotations("egtea", egtea, "test", test_splits="all")


# ----------------------------------------------------------------------------------------- real data


def _real_counts(path: Path, column: str) -> Counter:
    with open(path, newline="") as f:
        return Counter(int(row[column]) for row in csv.DictReader(f))


@pytest.mark.parametrize("name", ["EPIC_100_validation.csv", "EPIC_100_uda_source_train.csv"])
def test_real_epic_every_row_parses(name):
    path = find_realdata(name)
    verbs, nouns = find_realdata("EPIC_100_verb_classes.csv"), find_realdata("EPIC_100_noun_classes.csv")
    ann = read_epic(path, verbs, nouns)
    with open(path, newline="") as f:
        n_rows = sum(1 for _ in csv.DictReader(f))
    assert len(ann) == n_rows and ann.skipped == []
    assert (len(ann.vocab["verb"]), len(ann.vocab["noun"])) == (97, 300)
    assert Counter(r.verb for r in ann.records) == _real_counts(path, "verb_class")
    assert Counter(r.noun for r in ann.records) == _real_counts(path, "noun_class")
    assert all(r.fps == (50.0 if len(r.video_id.split("_")[1]) == 3 else 60.0) for r in ann.records)


def test_real_ego4d_sample_and_taxonomy(realdata):
    taxonomy = find_realdata("fho_lta_taxonomy.json")
    files = sorted(p for name in ("fho_lta_train.json", "fho_lta_val.json") for p in realdata.rglob(name))
    if not files:
        pytest.skip(f"no fho_lta_{{train,val}}.json under {realdata}")
    ann = read_ego4d(files[0], taxonomy)
    clips = json.loads(files[0].read_text())["clips"]
    assert len(ann) == len(clips) and ann.skipped == []
    assert (len(ann.vocab["verb"]), len(ann.vocab["noun"])) == (117, 521)
    assert Counter(r.verb for r in ann.records) == Counter(c["verb_label"] for c in clips)
    assert len(set(ann.vocab["noun"])) == 521  # prompts stay distinct


def test_real_egtea_split1_sizes():
    folder = find_realdata("train_split1.txt").parent
    assert len(read_egtea(folder, split="train", split_id=1)) == 8299
    assert len(read_egtea(folder, split="test", split_id=1)) == 2022
