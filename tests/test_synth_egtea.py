"""`xmic synth` kitchen C: the synthetic benchmark's third dataset in the real EGTEA Gaze+ format, read back by the
real reader (through `read_annotations`, the entry point `xmic extract` uses) and extracted by the real runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import decode_mp4, tiny_clip_extract_config

from xmic.classnames import normalise_name
from xmic.extract.datasets import read_annotations
from xmic.extract.datasets.egtea import parse_clip_name
from xmic.extract.hands.given import GivenBoxProvider
from xmic.sampling import slot_frames
from xmic.synth import KITCHEN_A, KITCHEN_B, KITCHEN_C, class_split, generate
from xmic.synth.cli import synth
from xmic.synth.generate import Sizes, plan_dataset
from xmic.synth.scene import VideoRenderer
from xmic.synth.writers import egtea_clip_path

TINY = Sizes(train=6, val=3, segments_per_video=(2, 4), segment_seconds=(0.5, 1.0), gap_seconds=(0.2, 0.5))
ALL = ("epic", "ego4d", "egtea")
SPLIT_FILES = [f"{s}_split{k}.txt" for s in ("train", "test") for k in (1, 2, 3)]


def files_under(folder: Path) -> dict[str, bytes]:
    """``{relative path: bytes}`` of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bench3(tmp_path_factory: pytest.TempPathFactory):
    """All three datasets."""
    return generate(tmp_path_factory.mktemp("synth3") / "all", seed=0, sizes=TINY, workers=0, datasets=ALL)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    """The default datasets (epic, ego4d), same seed."""
    return generate(tmp_path_factory.mktemp("synth3") / "pair", seed=0, sizes=TINY, workers=0)


def egtea_root(report) -> Path:
    return report.out / report.manifest["datasets"]["egtea"]["root"]


def planned_clips(report, split: str) -> dict:
    return {v.video_id: v for v in report.plans["egtea"][split]}


@pytest.mark.parametrize("split", ["train", "test"])
def test_reader_reads_kitchen_c_as_planned(bench3, split: str) -> None:
    root = egtea_root(bench3)
    ann = read_annotations("egtea", root=root, split=split)
    clips = planned_clips(bench3, split)
    assert ann.dataset == "egtea" and ann.split == f"{split}_split1"
    assert len(ann) == len(clips) == (TINY.train if split == "train" else TINY.val)
    assert ann.vocab == {"verb": list(KITCHEN_C.verbs), "noun": list(KITCHEN_C.nouns)}
    assert ann.raw_vocab == {"verb": KITCHEN_C.raw_verbs(), "noun": KITCHEN_C.raw_nouns()}
    assert "Take" in ann.raw_vocab["verb"] and "Red_cube" in ann.raw_vocab["noun"]
    assert ann.skipped == [] and ann.missing_media == []
    for r in ann.records:
        clip = clips[r.video_id]
        (seg,) = clip.segments
        assert r.segment_id == r.video_id and r.fps == 24.0 and r.split == f"{split}_split1"
        assert (r.start_frame, r.stop_frame) == (seg.start, seg.stop) == (0, clip.n_frames - 1)
        assert (KITCHEN_C.verbs[r.verb], KITCHEN_C.nouns[r.noun]) == (seg.verb, seg.noun)
        assert r.video_path == egtea_clip_path(root, r.video_id) and r.video_path.is_file()
        assert r.video_path.parent.name == parse_clip_name(r.video_id).session
        assert r.video_path.parent.parent == root / "cropped_clips"


def test_split_files_two_and_three_repeat_split_one(bench3) -> None:
    root = egtea_root(bench3)
    folder = root / "action_annotation"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*SPLIT_FILES, "verb_idx.txt", "noun_idx.txt", "action_idx.txt"]
    )
    for split in ("train", "test"):
        one = read_annotations("egtea", root=root, split=split)
        key = [(r.segment_id, r.verb, r.noun) for r in one.records]
        for k in (2, 3):
            other = read_annotations("egtea", root=root, split=split, split_id=k)
            assert other.split == f"{split}_split{k}" and [(r.segment_id, r.verb, r.noun) for r in other.records] == key
    assert len(read_annotations("egtea", root=root, split="test", test_splits="all")) == TINY.val
    assert len(read_annotations("egtea", root=root, split="test", test_splits="all", dedupe=False)) == 3 * TINY.val


def test_action_ids_name_the_verb_and_noun(bench3) -> None:
    folder = egtea_root(bench3) / "action_annotation"
    actions = dict(line.rsplit(" ", 1)[::-1] for line in (folder / "action_idx.txt").read_text().splitlines())
    verbs, nouns = KITCHEN_C.raw_verbs(), KITCHEN_C.raw_nouns()
    seen = set()
    for name in ("train_split1.txt", "test_split1.txt"):
        for line in (folder / name).read_text().splitlines():
            _clip, action, verb, noun = line.split()
            assert actions[action] == f"{verbs[int(verb) - 1]} {nouns[int(noun) - 1]}"
            seen.add(action)
    assert seen == set(actions)  # only actions that occur, ids 1..A
    assert sorted(map(int, actions)) == list(range(1, len(actions) + 1))


def test_clip_names_match_the_decoded_clips(bench3) -> None:
    results = {r.video_id: r for r in bench3.videos["egtea"]}
    plans = {**planned_clips(bench3, "train"), **planned_clips(bench3, "test")}
    assert set(results) == set(plans) and len(plans) == TINY.train + TINY.val
    spans: dict[str, list[tuple[int, int]]] = {}
    for clip, plan in plans.items():
        name = parse_clip_name(clip)
        frames, fps = decode_mp4(results[clip].path)
        assert frames.shape == (name.last_frame - name.first_frame + 1, 96, 128, 3) and fps == 24.0
        assert frames.shape[0] == plan.n_frames == results[clip].n_frames
        assert name.start_ms == round(name.first_frame * 1000 / 24) and name.end_ms == round(
            name.last_frame * 1000 / 24
        )
        spans.setdefault(name.session, []).append((name.first_frame, name.last_frame))
    for session, ranges in spans.items():
        ranges.sort()
        assert all(a[1] < b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True)), session  # no overlaps
    assert len(spans) > 1


def test_decoded_clip_shows_the_rendered_frames(bench3) -> None:
    plan = bench3.plans["egtea"]["train"][0]
    frames, _ = decode_mp4(next(r.path for r in bench3.videos["egtea"] if r.video_id == plan.video_id))
    renderer = VideoRenderer(KITCHEN_C.style, plan)
    for i in (0, plan.n_frames // 2, plan.n_frames - 1):
        assert np.abs(frames[i].astype(int) - renderer.frame(i)[0].astype(int)).mean() < 6.0


def test_given_boxes_cover_every_clip_frame(bench3) -> None:
    root = egtea_root(bench3)
    provider = GivenBoxProvider(root / "hand_boxes")
    for split in ("train", "test"):
        for r in read_annotations("egtea", root=root, split=split).records:
            doc = json.loads((root / "hand_boxes" / f"{r.video_id}.json").read_text())
            assert doc["video_id"] == r.video_id and set(doc["frames"]) == {str(f) for f in range(r.stop_frame + 1)}
            boxes = provider.boxes(r.video_id, slot_frames(r.start_frame, r.stop_frame, 8, 8), segment=r)
            assert boxes.shape == (8, 4) and np.isfinite(boxes).all()
            assert (boxes >= 0).all() and (boxes <= 1).all()
            assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
            assert ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).mean() < 0.7


def test_hand_box_holds_the_hand_pixels_in_kitchen_c(bench3) -> None:
    checked = 0
    for plan in bench3.plans["egtea"]["train"][:3]:
        renderer = VideoRenderer(KITCHEN_C.style, plan)
        for i in np.linspace(0, plan.n_frames - 1, 3).astype(int):
            img, boxes = renderer.frame(int(i))
            ys, xs = np.nonzero(np.all(img == renderer.lit_skin, axis=-1))
            assert xs.size > 20, f"{plan.video_id} frame {i}: no hand in view"
            x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
            x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
            assert (xs / 128 >= x0 - 1e-9).all() and ((xs + 1) / 128 <= x1 + 1e-9).all()
            assert (ys / 96 >= y0 - 1e-9).all() and ((ys + 1) / 96 <= y1 + 1e-9).all()
            checked += 1
    assert checked == 9


def test_epic_and_ego4d_files_do_not_depend_on_egtea(bench3, pair) -> None:
    for name in ("epic", "ego4d"):
        with_c, without = files_under(bench3.out / name), files_under(pair.out / name)
        assert with_c.keys() == without.keys() and any(k.lower().endswith(".mp4") for k in with_c)
        assert [k for k in with_c if with_c[k] != without[k]] == []
    assert not (pair.out / "egtea").exists()
    assert set(pair.manifest["datasets"]) == {"epic", "ego4d"}
    for name in ("epic", "ego4d"):  # "novel" is the only entry that depends on the other datasets
        with_c = {k: v for k, v in bench3.manifest["datasets"][name].items() if k != "novel"}
        assert with_c == {k: v for k, v in pair.manifest["datasets"][name].items() if k != "novel"}


def test_same_seed_same_egtea_files_alone_or_with_the_others(bench3, tmp_path: Path) -> None:
    alone = generate(tmp_path / "c", seed=0, sizes=TINY, workers=0, datasets=("egtea",))
    assert files_under(egtea_root(alone)) == files_under(egtea_root(bench3))
    assert alone.manifest["datasets"]["egtea"]["seed"] == bench3.manifest["datasets"]["egtea"]["seed"] == [0, 2]
    other = generate(tmp_path / "d", seed=1, sizes=TINY, videos=False, datasets=("egtea",))
    assert not (egtea_root(other) / "cropped_clips").exists() and not (egtea_root(other) / "hand_boxes").exists()
    folder, other_folder = egtea_root(bench3) / "action_annotation", egtea_root(other) / "action_annotation"
    for name in SPLIT_FILES:
        assert (folder / name).read_bytes() != (other_folder / name).read_bytes(), name
    assert (folder / "verb_idx.txt").read_bytes() == (other_folder / "verb_idx.txt").read_bytes()


def test_manifest_egtea_entry(bench3) -> None:
    manifest = json.loads((bench3.out / "manifest.json").read_text())
    assert manifest == bench3.manifest and list(manifest["datasets"]) == list(ALL)
    info = manifest["datasets"]["egtea"]
    assert info.keys() == manifest["datasets"]["epic"].keys() == manifest["datasets"]["ego4d"].keys()
    assert info["title"] == "kitchen C" and info["format"] == "EGTEA Gaze+" and info["fps"] == 24.0
    assert (info["width"], info["height"]) == (128, 96) and info["style"]["background"] == "steel"
    assert info["splits"] == {"train": "train", "test": "test"}
    assert (bench3.out / info["annotations"] / "train_split1.txt").is_file()
    assert (bench3.out / info["hand_boxes"]).is_dir() and info["root"] == "egtea"
    for split, n in (("train", TINY.train), ("test", TINY.val)):
        everything = {"test_splits": "all"} if split == "test" else {}  # as `xmic extract` reads the test files
        ann = read_annotations("egtea", root=bench3.out / info["root"], split=info["splits"][split], **everything)
        assert info["counts"][ann.split] == {
            "videos": n,
            "segments": n,
            "frames": sum(r.num_frames for r in ann.records),
        }
    assert list(info["counts"]) == ["train_split1", "test_split1+2+3"]
    assert info["raw_verbs"] == KITCHEN_C.raw_verbs() and info["raw_nouns"] == KITCHEN_C.raw_nouns()
    assert "--dataset egtea" in info["extract_hint"] and "--split train,test" in info["extract_hint"]
    # shared: in all three; novel: in no other generated dataset
    assert manifest["shared"] == {
        "verb": ["take", "put", "push", "open"],
        "noun": list(KITCHEN_C.nouns[:4]),
    }  # epic order
    assert info["novel"] == {"verb": [], "noun": ["cyan ring", "purple ball"]}
    assert manifest["datasets"]["epic"]["novel"]["verb"] == ["flip"]  # close: also in C
    assert manifest["datasets"]["ego4d"]["novel"]["verb"] == ["pull"]  # squeeze: also in C
    assert manifest["pairs"] == [
        {"source": "epic", "target": "ego4d"},
        {"source": "epic", "target": "egtea"},
        {"source": "ego4d", "target": "egtea"},
    ]


def test_default_manifest_is_unchanged(pair) -> None:
    manifest = pair.manifest
    assert manifest["pairs"] == [{"source": "epic", "target": "ego4d"}]
    assert manifest["shared"] == {
        "verb": ["take", "put", "push", "rotate", "open", "shake"],
        "noun": ["red cube", "blue ball", "green ring", "yellow bar", "purple pyramid"],
    }
    assert manifest["datasets"]["epic"]["novel"] == {
        "verb": ["flip", "close"],
        "noun": ["red ball", "blue cube", "green pyramid", "yellow ring", "purple bar"],
    }
    assert list(manifest["datasets"]["ego4d"]["counts"]) == ["train", "val"]


def test_class_split_of_three_datasets() -> None:
    assert class_split(KITCHEN_A, KITCHEN_B)["shared"]["verb"] == list(KITCHEN_A.verbs[:6])
    split = class_split(KITCHEN_A, KITCHEN_B, KITCHEN_C)
    assert list(split) == ["shared", "novel_epic", "novel_ego4d", "novel_egtea"]
    for kind in ("verb", "noun"):
        names = [set(map(normalise_name, s.verbs if kind == "verb" else s.nouns)) for s in (KITCHEN_A, KITCHEN_B)]
        own = KITCHEN_C.verbs if kind == "verb" else KITCHEN_C.nouns
        assert split["novel_egtea"][kind] == [n for n in own if not any(normalise_name(n) in s for s in names)]
        assert set(split["shared"][kind]) == set.intersection(*names, set(own))
    alone = class_split(KITCHEN_C)
    assert alone["shared"]["noun"] == alone["novel_egtea"]["noun"] == list(KITCHEN_C.nouns)


def test_raw_names_normalise_to_the_prompt_names() -> None:
    for raw, name in zip(KITCHEN_C.raw_verbs() + KITCHEN_C.raw_nouns(), KITCHEN_C.verbs + KITCHEN_C.nouns, strict=True):
        assert raw[0].isupper() and " " not in raw
        assert normalise_name(raw) == normalise_name(name)


def test_kitchen_c_looks_like_a_third_domain() -> None:
    """Its own frame size, frame rate and look: greener light and a steel counter, unlike A and B."""
    means = {}
    for index, spec in enumerate((KITCHEN_A, KITCHEN_B, KITCHEN_C)):
        plan = plan_dataset(spec, index, 0, 1.0, TINY)[spec.splits[0]][0]
        means[spec.name] = VideoRenderer(spec.style, plan).frame(0)[0].reshape(-1, 3).mean(axis=0)
    assert means["egtea"][1] > means["egtea"][0] + 10  # green over red; A is warm, B is dark
    assert means["epic"][0] > means["epic"][1] and means["egtea"].mean() > means["ego4d"].mean() + 40
    assert len({(s.style.width, s.style.height, s.fps) for s in (KITCHEN_A, KITCHEN_B, KITCHEN_C)}) == 3


def test_every_class_in_both_splits_at_default_scale() -> None:
    plans = plan_dataset(KITCHEN_C, 2, 0, 1.0)
    assert list(plans) == ["train", "test"]
    names = [v.video_id for vs in plans.values() for v in vs]
    assert len(set(names)) == len(names) == 400
    for split, clips in plans.items():
        assert len(clips) == (200 if split == "train" else 200)
        segs = [s for c in clips for s in c.segments]
        assert {s.verb for s in segs} == set(KITCHEN_C.verbs) and {s.noun for s in segs} == set(KITCHEN_C.nouns)
        for c in clips:
            name = parse_clip_name(c.video_id)
            assert [(s.start, s.stop) for s in c.segments] == [(0, c.n_frames - 1)]
            assert name.last_frame - name.first_frame == c.n_frames - 1
            assert 0.7 - 0.5 / 24 <= c.n_frames / 24 <= 1.4 + 1 / 24


def test_generate_rejects_unknown_datasets_before_touching_out(tmp_path: Path) -> None:
    generate(tmp_path, seed=0, sizes=TINY, videos=False, datasets=("egtea",))
    with pytest.raises(ValueError, match="unknown synthetic dataset.*'kinetics'"):
        generate(tmp_path, sizes=TINY, videos=False, overwrite=True, datasets=("epic", "kinetics"))
    with pytest.raises(ValueError, match="at least one"):
        generate(tmp_path, sizes=TINY, videos=False, overwrite=True, datasets=())
    assert (tmp_path / "egtea" / "action_annotation" / "train_split1.txt").is_file()
    with pytest.raises(FileExistsError, match="egtea"):
        generate(tmp_path, sizes=TINY, videos=False)
    generate(tmp_path, sizes=TINY, videos=False, overwrite=True)  # the default pair replaces kitchen C
    assert not (tmp_path / "egtea").exists() and (tmp_path / "epic").is_dir()


def test_cli_datasets_option(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "bench"
    base = ["--out", str(out), "--small", "--annotations-only", "--no-progress"]
    bad = runner.invoke(synth, [*base, "--datasets", "epic,kinetics"])
    assert bad.exit_code == 2 and "unknown dataset(s) kinetics" in bad.output and "epic, ego4d, egtea" in bad.output
    assert not out.exists()
    empty = runner.invoke(synth, [*base, "--datasets", " , "])
    assert empty.exit_code == 2 and "give at least one of" in empty.output
    ok = runner.invoke(synth, [*base, "--datasets", "egtea,epic"])
    assert ok.exit_code == 0, ok.output
    assert "egtea (kitchen C): train_split1 20 segments in 20 videos, test_split1+2+3 20 segments" in ok.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["datasets"]) == ["epic", "egtea"] and not (out / "ego4d").exists()
    assert manifest["pairs"] == [{"source": "epic", "target": "egtea"}]


def test_extraction_of_kitchen_c_with_given_boxes(bench3, tmp_path: Path) -> None:
    """`xmic extract`'s runner on kitchen C with a tiny random CLIP: every clip extracts, every box is found."""
    from xmic.cache.reader import StoreReader
    from xmic.extract.runner import run_extraction

    info = bench3.manifest["datasets"]["egtea"]
    words = {w for n in KITCHEN_C.verbs + KITCHEN_C.nouns for w in n.split()}
    config = tiny_clip_extract_config(
        tmp_path,
        "egtea",
        bench3.out / info["root"],
        info["splits"].values(),
        words,
        hands="given",
        hand_options={"hand_boxes": str(bench3.out / info["hand_boxes"])},
    )
    report = run_extraction(config, echo=lambda _m: None)
    assert report.rows_ok == TINY.train + TINY.val and report.rows_failed == 0
    reader = StoreReader(tmp_path / "cache.zarr", "egtea")
    assert sorted(set(map(str, reader.segments["split"]))) == sorted(info["counts"])
    assert np.isfinite(np.asarray(reader.hand_box)).all()  # the given provider found a box for every sampled frame


def test_extraction_reads_the_egtea_partitions_it_is_asked_for(tmp_path: Path) -> None:
    """Default: the three test files together (each clip once), train split 1; --egtea-split picks one."""
    from xmic.extract.runner import ExtractConfig, load_dataset

    generate(tmp_path / "b", seed=0, sizes=TINY, workers=0, datasets=("egtea",), videos=False)
    root = tmp_path / "b" / "egtea"
    folder = root / "action_annotation"
    lines = (folder / "test_split1.txt").read_text().splitlines(keepends=True)
    assert len(lines) >= 3
    (folder / "test_split2.txt").write_text(lines[0] + lines[1])  # overlaps split 1
    (folder / "test_split3.txt").write_text(lines[2])

    def segments(split: str, egtea_split: str | None = None) -> tuple[str, list[str]]:
        data = load_dataset(ExtractConfig(dataset="egtea", root=root, splits=(split,), egtea_split=egtea_split))
        return data.splits[0].split, sorted(r.segment_id for r in data.records)

    clips = sorted(line.split()[0] for line in lines)
    assert segments("test") == ("test_split1+2+3", clips)  # the union, no clip twice
    assert segments("test", "2") == ("test_split2", sorted(line.split()[0] for line in lines[:2]))
    assert segments("train")[0] == "train_split1"
    with pytest.raises(ValueError, match="a train split takes 1, 2 or 3"):
        segments("train", "all")
    with pytest.raises(ValueError, match="applies to egtea only"):
        load_dataset(ExtractConfig(dataset="ego4d", root=root, egtea_split="2"))
