"""`xmic synth`: the synthetic benchmark in the real EPIC-100 / Ego4D formats, read back by the real readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import decode_mp4

from xmic.classnames import normalise_name
from xmic.extract.datasets import read_annotations
from xmic.extract.hands.given import GivenBoxProvider
from xmic.sampling import slot_frames
from xmic.synth import KITCHEN_A, KITCHEN_B, generate
from xmic.synth.cli import synth
from xmic.synth.datasets import VERBS
from xmic.synth.generate import Sizes, plan_dataset
from xmic.synth.motion import object_motion
from xmic.synth.scene import VideoRenderer

TINY = Sizes(train=6, val=3, segments_per_video=(2, 4), segment_seconds=(0.5, 1.0), gap_seconds=(0.2, 0.5))
SPECS = {"epic": KITCHEN_A, "ego4d": KITCHEN_B}
SPLITS = {"epic": ("train", "validation"), "ego4d": ("train", "val")}


def annotation_files(out: Path) -> list[Path]:
    files = sorted((out / "epic" / "annotations").glob("*.csv")) + sorted(
        (out / "ego4d" / "v2" / "annotations").glob("*.json")
    )
    return [*files, out / "manifest.json"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    return generate(tmp_path_factory.mktemp("synth") / "a", seed=0, sizes=TINY, workers=0)


@pytest.fixture(scope="module")
def bench_again(tmp_path_factory: pytest.TempPathFactory):
    """Same seed, other worker count (spawned processes): must give the same files and frames."""
    return generate(tmp_path_factory.mktemp("synth") / "b", seed=0, sizes=TINY, workers=2)


def test_readers_parse_both_datasets(bench) -> None:
    for name, spec in SPECS.items():
        for split in SPLITS[name]:
            ann = read_annotations(name, root=bench.out / name, split=split)
            planned = bench.plans[name][split]
            assert len(ann) == sum(len(v.segments) for v in planned) == (TINY.train if split == "train" else TINY.val)
            assert ann.vocab == {"verb": list(spec.verbs), "noun": list(spec.nouns)}
            assert ann.raw_vocab == {"verb": spec.raw_verbs(), "noun": spec.raw_nouns()}
            assert ann.missing_media == [] and ann.skipped == []
            assert all(r.fps == spec.fps and r.video_path is not None and r.video_path.is_file() for r in ann.records)
            assert all(0 <= r.verb < len(spec.verbs) and 0 <= r.noun < len(spec.nouns) for r in ann.records)
            by_id = {
                (v.video_id, s.action_idx): s for v in planned for s in v.segments
            }  # records match the plan exactly
            for r in ann.records:
                key = (r.video_id, int(r.segment_id.rsplit("_", 1)[1]))
                seg = by_id[key]
                base = 1 if name == "epic" else 0  # EPIC counts frames from 1 (frame_0000000001.jpg)
                assert (r.start_frame, r.stop_frame) == (seg.start + base, seg.stop + base)
                assert (spec.verbs[r.verb], spec.nouns[r.noun]) == (seg.verb, seg.noun)
                assert r.start_sec == pytest.approx(seg.start / spec.fps, abs=0.006)


def test_raw_names_in_dataset_style(bench) -> None:
    a = read_annotations("epic", root=bench.out / "epic", split="train")
    b = read_annotations("ego4d", root=bench.out / "ego4d", split="val")
    assert "cube:red" in a.raw_vocab["noun"] and "take" in a.raw_vocab["verb"]
    assert "take_(pick,_grab)" in b.raw_vocab["verb"] and "red_cube_(red_block)" in b.raw_vocab["noun"]
    header = (bench.out / "epic" / "annotations" / "EPIC_100_train.csv").read_text().splitlines()[0].split(",")
    assert len(header) == 15 and header[0] == "narration_id" and header[-1] == "all_noun_classes"
    assert a.native_fps and set(a.native_fps.values()) == {50.0}  # from EPIC_100_video_info.csv


def test_shared_classes_match_manifest(bench) -> None:
    manifest = json.loads((bench.out / "manifest.json").read_text())
    assert manifest == bench.manifest
    a = read_annotations("epic", root=bench.out / manifest["datasets"]["epic"]["root"], split="train")
    b = read_annotations("ego4d", root=bench.out / manifest["datasets"]["ego4d"]["root"], split="train")
    for kind in ("verb", "noun"):
        names_b = {normalise_name(n) for n in b.vocab[kind]}
        shared = [n for n in a.vocab[kind] if normalise_name(n) in names_b]
        assert shared == manifest["shared"][kind]
        assert 0 < len(shared) < len(a.vocab[kind])  # some shared, some novel on each side
        novel_a = manifest["datasets"]["epic"]["novel"][kind]
        assert sorted(shared + novel_a) == sorted(a.vocab[kind])
    assert manifest["shared"] == {
        "verb": ["take", "put", "push", "rotate", "open", "shake"],
        "noun": ["red cube", "blue ball", "green ring", "yellow bar", "purple pyramid"],
    }
    for name in ("epic", "ego4d"):
        info = manifest["datasets"][name]
        assert (bench.out / info["annotations"]).is_dir() and (bench.out / info["hand_boxes"]).is_dir()
        train, val = SPLITS[name]
        assert info["splits"] == {"train": train, "val": val}
        assert info["counts"][train]["segments"] == TINY.train and info["counts"][val]["segments"] == TINY.val


def test_videos_decode_with_expected_frames_and_size(bench) -> None:
    for name, spec in SPECS.items():
        results = bench.videos[name]
        assert len(results) == sum(len(v) for v in bench.plans[name].values())
        plans = {v.video_id: v for vs in bench.plans[name].values() for v in vs}
        for result in results:
            frames, fps = decode_mp4(result.path)
            assert frames.shape == (plans[result.video_id].n_frames, spec.style.height, spec.style.width, 3)
            assert fps == spec.fps


def test_decoded_frame_i_is_rendered_frame_i(bench) -> None:
    """Frame numbering: MP4 frame i is the rendered frame i (the one the boxes of frame i describe)."""
    for name, spec in SPECS.items():
        plan = bench.plans[name][SPLITS[name][0]][0]
        frames, _ = decode_mp4(next(r.path for r in bench.videos[name] if r.video_id == plan.video_id))
        renderer = VideoRenderer(spec.style, plan)
        seg = plan.segments[0]
        rendered = {j: renderer.frame(j)[0].astype(int) for j in range(seg.start - 1, seg.stop + 2)}
        checked = 0
        for i in range(seg.start, seg.stop + 1):
            if np.array_equal(rendered[i], rendered[i - 1]) or np.array_equal(rendered[i], rendered[i + 1]):
                continue  # nothing moved: frames i-1, i, i+1 cannot be told apart
            errors = [np.abs(frames[i].astype(int) - rendered[j]).mean() for j in (i - 1, i, i + 1)]
            assert errors[1] < 6.0 and errors[1] < min(errors[0], errors[2]), (name, i, errors)
            checked += 1
        assert checked >= 5


def test_given_boxes_cover_every_annotated_frame(bench) -> None:
    for name in SPECS:
        provider = GivenBoxProvider(bench.out / name / "hand_boxes")
        for split in SPLITS[name]:
            for r in read_annotations(name, root=bench.out / name, split=split).records:
                doc = json.loads((bench.out / name / "hand_boxes" / f"{r.video_id}.json").read_text())
                assert all(str(f) in doc["frames"] for f in range(r.start_frame, r.stop_frame + 1))
                boxes = provider.boxes(r.video_id, slot_frames(r.start_frame, r.stop_frame, 8, 8), segment=r)
                assert boxes.shape == (8, 4) and np.isfinite(boxes).all()
                assert (boxes >= 0).all() and (boxes <= 1).all()
                assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
                assert ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean() < 0.6  # a crop, not the frame


def test_hand_box_holds_the_hand_pixels(bench) -> None:
    """Rendered frames: every pixel of the (lit) hand colour lies inside the union of the frame's boxes."""
    for name, spec in SPECS.items():
        plan = bench.plans[name][SPLITS[name][0]][0]
        renderer = VideoRenderer(spec.style, plan)
        height, width = spec.style.height, spec.style.width
        checked = 0
        for seg in plan.segments:
            for i in np.linspace(seg.start, seg.stop, 4).astype(int):
                img, boxes = renderer.frame(int(i))
                skin = np.all(img == renderer.lit_skin, axis=-1)
                ys, xs = np.nonzero(skin)
                assert xs.size > 20, f"{name} frame {i}: no hand in view"
                x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
                x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
                assert (xs / width >= x0 - 1e-9).all() and ((xs + 1) / width <= x1 + 1e-9).all()
                assert (ys / height >= y0 - 1e-9).all() and ((ys + 1) / height <= y1 + 1e-9).all()
                assert 0 <= x0 < x1 <= 1 and (x1 - x0) * (y1 - y0) < 0.6
                checked += 1
        assert checked >= 8
    saved = json.loads(
        (bench.out / "epic" / "hand_boxes" / f"{bench.plans['epic']['train'][0].video_id}.json").read_text()
    )
    seg = bench.plans["epic"]["train"][0].segments[0]
    _, boxes = VideoRenderer(KITCHEN_A.style, bench.plans["epic"]["train"][0]).frame(seg.start)
    assert saved["frames"][str(seg.start + 1)] == boxes  # keyed in EPIC's 1-based numbering, as its CSV says


def test_same_seed_same_files_and_frames(bench, bench_again) -> None:
    for a, b in zip(annotation_files(bench.out), annotation_files(bench_again.out), strict=True):
        assert a.relative_to(bench.out) == b.relative_to(bench_again.out)
        assert a.read_bytes() == b.read_bytes(), a.name
    for name in SPECS:
        one, other = bench.videos[name][0], bench_again.videos[name][0]
        assert one.video_id == other.video_id
        np.testing.assert_array_equal(decode_mp4(one.path)[0], decode_mp4(other.path)[0])
        box_a = (bench.out / name / "hand_boxes" / f"{one.video_id}.json").read_bytes()
        assert box_a == (bench_again.out / name / "hand_boxes" / f"{one.video_id}.json").read_bytes()


def test_other_seed_differs(bench, tmp_path: Path) -> None:
    other = generate(tmp_path / "c", seed=1, sizes=TINY, videos=False)
    assert not list((tmp_path / "c").rglob("*.mp4")) and not list((tmp_path / "c").rglob("*.MP4"))
    for a, b in zip(annotation_files(bench.out), annotation_files(other.out), strict=True):
        if a.name not in ("EPIC_100_verb_classes.csv", "EPIC_100_noun_classes.csv", "fho_lta_taxonomy.json"):
            assert a.read_bytes() != b.read_bytes(), a.name
    frame_a, _ = VideoRenderer(KITCHEN_B.style, bench.plans["ego4d"]["train"][0]).frame(0)
    frame_b, _ = VideoRenderer(KITCHEN_B.style, other.plans["ego4d"]["train"][0]).frame(0)
    assert not np.array_equal(frame_a, frame_b)


def test_domains_differ_in_look() -> None:
    """Kitchen B is darker, lower in contrast and shakier than kitchen A."""
    stats = {}
    for name, spec in SPECS.items():
        plan = plan_dataset(spec, 0 if name == "epic" else 1, 0, 1.0, TINY)[spec.splits[0]][0]
        renderer = VideoRenderer(spec.style, plan)
        img = renderer.frame(0)[0].astype(float)
        stats[name] = (img.mean(), img.std(), np.abs(np.diff(renderer.camera, axis=0)).mean())
    assert stats["ego4d"][0] < stats["epic"][0] - 40
    assert stats["ego4d"][2] > stats["epic"][2]


@pytest.mark.parametrize("verb", sorted(set(KITCHEN_A.verbs) | set(KITCHEN_B.verbs)))
def test_verbs_are_distinct_motions(verb: str) -> None:
    """Each verb's object trajectory has its own signature over time."""
    spec = KITCHEN_A if verb in KITCHEN_A.verbs else KITCHEN_B
    rng = np.random.default_rng(5)
    from xmic.synth.motion import plan_segment

    seg = plan_segment(spec, rng, 0, verb, spec.nouns[0], 10, 109)
    poses = [object_motion(seg, p) for p in np.linspace(0, 1, 101)]
    r, first, last = seg.rest.r, poses[0], poses[-1]
    dx = np.array([o.cx - first.cx for o in poses])
    turn = abs(last.angle - first.angle)
    still = last.cx == first.cx and last.cy == first.cy and last.r == first.r
    checks = {
        "take": last.cy < first.cy - 1.2 * r and last.r > 1.15 * first.r,
        "put": last.cy > first.cy + 1.2 * r and last.r < first.r / 1.15,
        "push": last.cy < first.cy - 0.8 * r and last.r < 0.8 * first.r,
        "pull": last.cy > first.cy + 0.8 * r and last.r > 1.2 * first.r,
        "rotate": turn > 1.5 and still,
        "open": last.split > first.split + 0.5,
        "close": first.split > last.split + 0.5,
        "shake": np.count_nonzero(np.diff(np.sign(dx[np.abs(dx) > 1e-6])) != 0) >= 4 and abs(dx[-1]) < 1e-6,
        "flip": turn == pytest.approx(math.pi) and min(o.cy for o in poses) < first.cy - 0.5 * r and still,
        "squeeze": min(o.r for o in poses) < 0.8 * first.r and still,
    }
    assert checks[verb]
    if verb not in ("open", "close"):
        assert {o.split for o in poses} == {first.split}  # the gap is a state the verb holds
    if verb not in ("rotate", "flip", "shake"):
        assert {o.angle for o in poses} == {first.angle}


def test_one_frame_does_not_tell_the_verb() -> None:
    """Hands and held states are drawn independently of the verb, and mirror verbs pass through the same states."""
    from xmic.synth.motion import plan_segment

    rng = np.random.default_rng(0)
    stats = {}
    for verb in ("take", "put", "push", "pull", "open", "close", "rotate", "shake"):
        segs = [plan_segment(KITCHEN_A, rng, 0, verb, "red cube", 0, 49) for _ in range(400)]
        poses = [(s, object_motion(s, p)) for s in segs for p in (0.25, 0.5, 0.75)]
        stats[verb] = {
            "two_hands": np.mean([s.two_hands for s in segs]),
            "lift": np.mean([(s.rest.cy - o.cy) / s.rest.r for s, o in poses]),
            "size": np.mean([o.r / s.rest.r for s, o in poses]),
            "gap": np.mean([o.split for _, o in poses]),
        }
    for verb, st in stats.items():
        assert 0.4 < st["two_hands"] < 0.6, verb
    for a, b in (("take", "put"), ("push", "pull"), ("open", "close")):
        for key in ("lift", "size", "gap"):
            assert stats[a][key] == pytest.approx(stats[b][key], rel=0.15, abs=0.05), (a, b, key)
    assert all(st["gap"] > 0.15 for st in stats.values())  # every verb shows objects in halves, not only open/close


def test_every_class_in_both_splits_at_default_scale() -> None:
    for index, spec in enumerate(SPECS.values()):
        plans = plan_dataset(spec, index, 0, 1.0)
        for split, videos in plans.items():
            segs = [s for v in videos for s in v.segments]
            assert len(segs) == (200 if split == "train" else 200)
            assert {s.verb for s in segs} == set(spec.verbs) and {s.noun for s in segs} == set(spec.nouns)
            assert all(6 <= len(v.segments) <= 10 for v in videos[:-1])
            for v in videos:
                starts = [s.start for s in v.segments]
                assert starts == sorted(starts) and all(
                    a.stop < b.start for a, b in zip(v.segments[:-1], v.segments[1:], strict=True)
                )
                assert v.segments[-1].stop < v.n_frames and v.segments[0].start > 0
                assert all(0.7 - 0.5 / spec.fps <= s.num_frames / spec.fps <= 1.4 + 1 / spec.fps for s in v.segments)


def test_sizes_reject_bad_scale() -> None:
    with pytest.raises(ValueError, match="scale must be a positive number"):
        Sizes().scaled(0.0)
    with pytest.raises(ValueError, match="scale"):
        Sizes().scaled(math.nan)
    assert Sizes().scaled(0.1) == (20, 20)


def test_cli_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "bench"
    first = runner.invoke(synth, ["--out", str(out), "--small", "--annotations-only", "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "shared classes: 6 verbs, 5 nouns" in first.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scale"] == 0.1 and manifest["datasets"]["epic"]["counts"]["train"]["segments"] == 20
    again = runner.invoke(synth, ["--out", str(out), "--small", "--annotations-only", "--no-progress"])
    assert again.exit_code != 0 and "--overwrite" in again.output and "manifest.json" in again.output
    forced = runner.invoke(
        synth, ["--out", str(out), "--seed", "2", "--annotations-only", "--overwrite", "--scale", "0.05"]
    )
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    bad = runner.invoke(synth, ["--out", str(out), "--scale", "-1", "--overwrite"])
    assert bad.exit_code != 0 and "scale" in bad.output


def test_verb_tools_are_drawn_in_the_hand_and_tell_verbs_apart_but_not_mirror_pairs() -> None:
    from xmic.synth.motion import HandPose
    from xmic.synth.scene import VERB_TOOLS, draw_tool

    hand = HandPose(cx=32.0, cy=40.0, angle=-math.pi / 2, s=8.0, left=False)  # fingers point up
    colour = np.array([10, 200, 30], np.uint8)
    masks = {}
    for verb in sorted(VERBS):
        img = np.zeros((64, 64, 3), np.uint8)
        box = draw_tool(img, hand, verb, colour)
        masks[verb] = (img == colour).all(axis=-1)
        if verb not in VERB_TOOLS:
            assert box is None and not masks[verb].any(), verb  # take / put: the bare grasp
            continue
        x0, y0, x1, y1 = box
        assert masks[verb].sum() >= 20 and y0 < 40 - 8 * 1.3, (verb, box)  # beyond the fingertips
    assert (masks["open"] == masks["close"]).all()  # one tool for the pair: only the frames' order tells them
    tools = [v for v in sorted(VERB_TOOLS) if v != "close"]
    for i, a in enumerate(tools):
        for b in tools[i + 1 :]:
            assert (masks[a] != masks[b]).sum() >= 6, (a, b)
    thick = np.zeros((64, 64, 3), np.uint8)
    draw_tool(thick, hand, "push", colour, width=1.5)  # kitchen B's thicker tools
    assert (thick == colour).all(axis=-1).sum() > masks["push"].sum()
