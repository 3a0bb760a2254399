"""EGTEA: a clip with fewer frames than its name says is stored with the stop frame sampling used (issue 9).

The clip name encodes its first and last frame; the reader takes ``stop_frame = last - first`` from it. A
generated EGTEA clip is renamed so that its name claims 12 more frames than it has; after extraction the
store's ``segments/stop_frame`` is the clip's real last frame, and every sampled slot lies inside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_clip_extract_config

from xmic.extract.datasets.egtea import parse_clip_name
from xmic.sampling import slot_frames
from xmic.synth import KITCHEN_C, generate
from xmic.synth.generate import Sizes
from xmic.synth.writers import egtea_clip_path

TINY = Sizes(train=3, val=3, segments_per_video=(2, 4), segment_seconds=(0.5, 1.0), gap_seconds=(0.2, 0.5))
EXTRA = 12  # frames the renamed clip's name claims beyond what it holds


def _longer_name(clip: str, extra: int) -> str:
    name = parse_clip_name(clip)
    last = name.last_frame + extra
    end_ms = round(last * 1000 / 24)
    return f"{name.session}-{name.start_ms}-{end_ms}-F{name.first_frame:06d}-F{last:06d}"


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A generated EGTEA root whose first test clip is named 12 frames longer than it is: (root, old, new)."""
    out = tmp_path_factory.mktemp("egtea_stop") / "b"
    generate(out, seed=0, sizes=TINY, workers=0, datasets=("egtea",))
    root = out / "egtea"
    folder = root / "action_annotation"
    old = (folder / "test_split1.txt").read_text().split()[0]
    new = _longer_name(old, EXTRA)
    assert parse_clip_name(new).last_frame - parse_clip_name(old).last_frame == EXTRA
    egtea_clip_path(root, old).rename(egtea_clip_path(root, new))
    for path in folder.glob("*_split*.txt"):
        path.write_text(path.read_text().replace(old, new))
    return root, old, new


def test_fit_stops_clamps_only_the_short_clip(short_clip) -> None:
    from xmic.extract.datasets import read_annotations
    from xmic.extract.plan import fit_stops_to_media

    root, old, new = short_clip
    ann = read_annotations("egtea", root=root, split="test")
    by_id = {r.segment_id: r for r in ann.records}
    named = by_id[new].stop_frame
    assert named == parse_clip_name(new).last_frame - parse_clip_name(new).first_frame
    records, changed = fit_stops_to_media(ann.records, workers=2)
    fitted = {r.segment_id: r for r in records}
    assert changed == [(new, named, named - EXTRA)]
    assert fitted[new].stop_frame == named - EXTRA and fitted[new].stop_sec == pytest.approx((named - EXTRA) / 24)
    for seg, r in fitted.items():
        if seg != new:
            assert r == by_id[seg]  # clips as long as their names: untouched
    # no media: the name's stop is kept (the row fails with its reason during extraction)
    from dataclasses import replace

    bare = [replace(r, video_path=None) for r in ann.records]
    assert fit_stops_to_media(bare) == (bare, [])


def test_store_records_the_stop_frame_sampling_used(short_clip, tmp_path: Path) -> None:
    from xmic.cache.reader import StoreReader
    from xmic.extract.runner import run_extraction

    root, _old, new = short_clip
    words = {w for n in KITCHEN_C.verbs + KITCHEN_C.nouns for w in n.split()}
    config = tiny_clip_extract_config(tmp_path, "egtea", root, ("test",), words)
    lines: list[str] = []
    report = run_extraction(config, echo=lines.append)
    assert report.rows_failed == 0 and report.rows_ok == TINY.val
    assert any(line.startswith("egtea: 1 clips have fewer frames than their names say") for line in lines)
    reader = StoreReader(tmp_path / "cache.zarr", "egtea")
    segs = reader.segments
    ids = [str(s) for s in segs["segment_id"]]
    row = ids.index(new)
    name = parse_clip_name(new)
    real_last = name.last_frame - name.first_frame - EXTRA
    stops = np.asarray(segs["stop_frame"])
    assert stops[row] == real_last  # the stop sampling used, not the name's
    frame_index = np.asarray(reader.frame_index)
    bins = config.resolved_bins()
    assert frame_index[row].max() <= real_last
    np.testing.assert_array_equal(frame_index[row], slot_frames(0, real_last, 8, bins))
    for r, seg in enumerate(ids):  # every row: the slots are the sampling rule on the stored span
        np.testing.assert_array_equal(frame_index[r], slot_frames(int(segs["start_frame"][r]), int(stops[r]), 8, bins))
        if seg != new:
            n = parse_clip_name(seg)
            assert stops[r] == n.last_frame - n.first_frame

    # re-running the same command finds the same segment table (the probe is deterministic): nothing to redo
    again = run_extraction(config, echo=lambda _m: None)
    assert again.rows_failed == 0
