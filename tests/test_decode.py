"""Sparse per-video decoding (PyAV), the JPEG frame-folder reader and the synthetic test video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

from xmic import sampling
from xmic.extract.decode import (
    DecodeStats,
    VideoDecodeError,
    VideoFrameReader,
    decode_all_then_index,
    decode_video_segments,
    output_hw,
    probe_video,
)
from xmic.extract.frames import count_frames, frame_file, probe_frame_folder, read_frame_folder_segments
from xmic.synth.video import index_frame, read_frame_index, write_test_video

N_FRAMES, GOP, W, H = 600, 12, 128, 96


@pytest.fixture(scope="module", params=[0, 2], ids=["no-bframes", "bframes"])
def video(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / f"synthetic_b{request.param}.mp4"
    return write_test_video(path, N_FRAMES, width=W, height=H, fps=30, gop=GOP, bframes=request.param)


# overlapping (0, 1), far apart (2, 3, 4), short with repeats (5, 6), the last frame (4), out of input order


def slot_frames(start: int, stop: int) -> np.ndarray:
    """32 slots per segment: these tests pin the decoder's behaviour (seeks, memory) to fixed frame lists."""
    return sampling.slot_frames(start, stop, num_frames=32)


SEGMENTS = [
    slot_frames(10, 80),
    slot_frames(40, 120),
    slot_frames(400, 450),
    slot_frames(205, 211),
    slot_frames(590, 599),
    np.array([5, 5, 3, 3]),
    slot_frames(300, 301),
]


def decode_all(video: Path, frame_lists: list[np.ndarray], **kw) -> tuple[dict[int, np.ndarray], DecodeStats]:
    stats = DecodeStats()
    out = {}
    for s, frames in decode_video_segments(video, frame_lists, stats=stats, **kw):
        assert s not in out, f"segment {s} emitted twice"
        out[s] = frames
    return out, stats


def test_synthetic_frames_encode_their_index() -> None:
    for i in (0, 1, 2, 255, 256, 4095, 65535):
        assert read_frame_index(index_frame(i, 456, 256)) == i
        assert read_frame_index(index_frame(i, W, H)) == i
    assert not np.array_equal(index_frame(7, W, H), index_frame(8, W, H))


def test_probe(video: Path) -> None:
    info = probe_video(video)
    assert (info.fps, info.n_frames, info.width, info.height) == (30.0, N_FRAMES, W, H)
    assert info.duration == pytest.approx(N_FRAMES / 30, abs=0.05)
    assert info.codec == "h264"


def test_sparse_equals_decode_all_then_index(video: Path) -> None:
    ref = decode_all_then_index(video, SEGMENTS)
    out, stats = decode_all(video, SEGMENTS)
    assert sorted(out) == list(range(len(SEGMENTS)))
    for s, frames in enumerate(SEGMENTS):
        assert out[s].shape == (len(frames), H, W, 3) and out[s].dtype == np.uint8
        np.testing.assert_array_equal(out[s], ref[s], err_msg=f"segment {s}")
        assert [read_frame_index(f) for f in out[s]] == frames.tolist(), f"segment {s}"
    assert stats.seeks >= 3
    assert stats.seek_retries == 0 and stats.substituted == 0 and stats.clamped == 0
    assert stats.frames_converted == len(np.unique(np.concatenate(SEGMENTS)))
    assert stats.frames_decoded < N_FRAMES // 2


def test_resized_output_matches_reference(video: Path) -> None:
    frames = [slot_frames(100, 160), slot_frames(500, 530)]
    slots = len(frames[0])
    ref = decode_all_then_index(video, frames, size=(48, 64))
    out, _ = decode_all(video, frames, size=(48, 64))
    for s in range(2):
        assert out[s].shape == (slots, 48, 64, 3)
        np.testing.assert_array_equal(out[s], ref[s])
    out_short, _ = decode_all(video, frames[:1], size=48)
    assert out_short[0].shape == (slots, 48, 64, 3)
    assert output_hw(W, H, 48) == (48, 64) and output_hw(H, W, 48) == (64, 48) and output_hw(W, H, None) == (H, W)


@pytest.mark.parametrize(("start", "stop"), [(305, 345), (300, 301), (131, 290), (587, 599)])
def test_decoded_frames_bounded_by_span_plus_gop(video: Path, start: int, stop: int) -> None:
    frames = slot_frames(start, stop)
    _, stats = decode_all(video, [frames])
    first, last = int(frames[0]), int(frames[-1])
    span = last - first + 1
    lead_in = first - (first // GOP) * GOP  # frames from the keyframe before the first needed frame
    assert stats.frames_decoded == span + lead_in
    assert stats.frames_decoded <= span + GOP


def test_far_apart_segments_cost_their_spans(video: Path) -> None:
    segs = [(20, 50), (150, 170), (330, 360), (520, 540)]
    _, stats = decode_all(video, [slot_frames(a, b) for a, b in segs])
    assert stats.frames_decoded <= sum(b - a + 1 + GOP for a, b in segs)
    assert stats.seeks == 3  # the first segment is read from the stream start, the others after a seek


def test_no_seek_when_gap_is_large(video: Path) -> None:
    segs = [slot_frames(20, 50), slot_frames(520, 540)]
    out, stats = decode_all(video, segs, seek_gap_frames=10**9)
    assert stats.seeks == 0 and stats.frames_decoded == 541
    ref = decode_all_then_index(video, segs)
    for s in range(2):
        np.testing.assert_array_equal(out[s], ref[s])


def test_seeking_everywhere_gives_the_same_frames(video: Path) -> None:
    ref = decode_all_then_index(video, SEGMENTS)
    out, stats = decode_all(video, SEGMENTS, seek_gap_frames=1)  # a seek before almost every needed frame
    assert stats.seeks > 50
    for s in range(len(SEGMENTS)):
        np.testing.assert_array_equal(out[s], ref[s], err_msg=f"segment {s}")


def test_seek_gap_learns_a_long_keyframe_interval(tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "long_gop.mp4", 300, width=W, height=H, gop=100)
    segs = [slot_frames(90, 99), slot_frames(171, 181)]
    out, stats = decode_all(video, segs)
    # the seek to frame 90 lands on keyframe 0, so a 70-frame gap is then decoded through, not sought
    assert stats.seeks == 1 and stats.frames_decoded == int(segs[1][-1]) + 1
    assert [read_frame_index(f) for f in out[1]] == segs[1].tolist()


def test_memory_is_bounded_and_segments_stream_out(video: Path) -> None:
    segs = [slot_frames(a, a + 40) for a in range(0, 560, 50)]  # 12 disjoint segments
    stats = DecodeStats()
    it = decode_video_segments(video, segs, stats=stats)
    first, frames = next(it)
    assert first == 0 and frames.shape[0] == 32
    assert stats.frames_decoded <= 41  # emitted before the rest of the video was touched
    rest = dict(it)
    assert sorted(rest) == list(range(1, 12))
    assert stats.peak_frames_held == 32


def test_reader_can_be_reused(video: Path) -> None:
    with VideoFrameReader(video) as reader:
        late = dict(reader.read([slot_frames(400, 420)]))
        early = dict(reader.read([slot_frames(5, 30), slot_frames(2, 3)]))
    assert [read_frame_index(f) for f in late[0]] == slot_frames(400, 420).tolist()
    assert [read_frame_index(f) for f in early[0]] == slot_frames(5, 30).tolist()
    assert [read_frame_index(f) for f in early[1]] == slot_frames(2, 3).tolist()
    assert reader.stats.segments_emitted == 3


def test_index_beyond_end_names_file_and_index(video: Path) -> None:
    with pytest.raises(VideoDecodeError, match=rf"{video.name}: segment 1: frame 640 requested but the video has 600"):
        list(decode_video_segments(video, [slot_frames(10, 20), np.array([590, 640])]))
    with pytest.raises(VideoDecodeError, match=r"segment 0: frame 5000 requested but the video has 600 frames"):
        list(decode_video_segments(video, [np.array([5000])]))  # the seek lands past the end
    with pytest.raises(VideoDecodeError, match=r"segment 0: frame 600 requested but the video has 600"):
        decode_all_then_index(video, [np.array([599, 600])])


def test_small_overshoot_is_clamped_to_last_frame(video: Path) -> None:
    out, stats = decode_all(video, [np.array([597, 599, 600, 602])])
    assert [read_frame_index(f) for f in out[0]] == [597, 599, 599, 599]
    np.testing.assert_array_equal(out[0][3], decode_all_then_index(video, [np.array([599])])[0][0])
    assert stats.clamped == 2
    with pytest.raises(VideoDecodeError, match="frame 603 requested"):
        decode_all(video, [np.array([603])], overshoot_tolerance=3)


def test_skip_bad_segments_lists_them(video: Path) -> None:
    bad = slot_frames(580, 700)
    first_bad = int(bad[bad > 599 + 3][0])
    out, stats = decode_all(video, [slot_frames(0, 40), bad, slot_frames(570, 590)], skip_bad_segments=True)
    assert sorted(out) == [0, 2]
    assert list(stats.failed) == [1]
    assert stats.failed[1] == f"segment 1: frame {first_bad} requested but the video has 600 frames (0..599)"
    assert [read_frame_index(f) for f in out[2]] == slot_frames(570, 590).tolist()


def test_unreadable_files_name_the_file(video: Path, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    for call in (
        lambda: probe_video(bad),
        lambda: list(decode_video_segments(bad, [np.array([0])])),
        lambda: decode_all_then_index(bad, [np.array([0])]),
    ):
        with pytest.raises(VideoDecodeError, match=r"corrupt\.mp4: cannot open video") as info:
            call()
        assert info.value.path == str(bad)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match=r"truncated\.mp4: cannot open video"):
        list(decode_video_segments(truncated, [np.array([0])]))
    with pytest.raises(VideoDecodeError, match=r"missing\.mp4: cannot open video"):
        probe_video(tmp_path / "missing.mp4")


def test_bad_frame_list_names_the_segment(video: Path) -> None:
    with pytest.raises(ValueError, match=r"segment 1: frame list must be a non-empty 1-D array"):
        list(decode_video_segments(video, [np.array([1]), np.array([], dtype=np.int64)]))
    with pytest.raises(ValueError, match=r"segment 0"):
        list(decode_video_segments(video, [np.array([-1, 2])]))


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "P01_01"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(index_frame(i, W, H)).save(frame_file(folder, i), quality=95)
    return folder


def test_frame_folder_reader(frame_folder: Path) -> None:
    from PIL import Image

    assert frame_file(frame_folder, 0).name == "frame_0000000001.jpg"  # 0-based index -> 1-based file
    assert count_frames(frame_folder) == 40
    info = probe_frame_folder(frame_folder, fps=50)
    assert (info.n_frames, info.width, info.height, info.fps) == (40, W, H, 50.0)
    segs = [slot_frames(0, 20), slot_frames(10, 39), np.array([3, 3, 1])]
    stats = DecodeStats()
    out = dict(read_frame_folder_segments(frame_folder, segs, stats=stats))
    assert sorted(out) == [0, 1, 2]
    for s, frames in enumerate(segs):
        assert out[s].shape == (len(frames), H, W, 3) and out[s].dtype == np.uint8
        assert [read_frame_index(f) for f in out[s]] == frames.tolist()
        direct = np.stack([np.asarray(Image.open(frame_file(frame_folder, i)).convert("RGB")) for i in frames])
        np.testing.assert_array_equal(out[s], direct)
    assert stats.frames_decoded == len(np.unique(np.concatenate(segs)))
    small = dict(read_frame_folder_segments(frame_folder, segs[:1], size=48))
    assert small[0].shape == (32, 48, 64, 3)
    resized = Image.open(frame_file(frame_folder, int(segs[0][5]))).convert("RGB").resize((64, 48), Image.BOX)
    np.testing.assert_array_equal(small[0][5], np.asarray(resized))


def test_frame_folder_errors(frame_folder: Path) -> None:
    from PIL import Image

    frame_file(frame_folder, 25).unlink()
    missing = str(frame_file(frame_folder, 25))
    with pytest.raises(VideoDecodeError, match=rf"{missing}: missing frame file for frame index 25 .*segment 1"):
        list(read_frame_folder_segments(frame_folder, [slot_frames(0, 10), slot_frames(20, 30)]))
    stats = DecodeStats()
    out = dict(
        read_frame_folder_segments(
            frame_folder, [slot_frames(20, 30), slot_frames(0, 10)], skip_bad_segments=True, stats=stats
        )
    )
    assert sorted(out) == [1] and missing in stats.failed[0]
    clamped = dict(read_frame_folder_segments(frame_folder, [np.array([38, 39, 41])]))
    assert [read_frame_index(f) for f in clamped[0]] == [38, 39, 39]
    Image.fromarray(index_frame(7, W + 2, H)).save(frame_file(frame_folder, 7))
    with pytest.raises(
        VideoDecodeError, match=r"frame_0000000008\.jpg: frame size 130x96 differs from the folder's 128x96"
    ):
        list(read_frame_folder_segments(frame_folder, [np.array([6, 7])], size=32))
    frame_file(frame_folder, 5).write_bytes(b"not a jpeg")
    with pytest.raises(VideoDecodeError, match=r"frame_0000000006\.jpg: cannot read frame image"):
        list(read_frame_folder_segments(frame_folder, [np.array([5])]))


@pytest.mark.slow
def test_real_ego4d_clip_sparse_equals_decode_all() -> None:
    import av

    clips = sorted(shared_path("realdata", "media").rglob("*.mp4"))
    if not clips:
        pytest.skip("no *.mp4 under realdata/media")
    clip = clips[0]
    info = probe_video(clip)
    with av.open(str(clip)) as container:  # longest keyframe interval, from packet flags (no decoding)
        keys = [i for i, p in enumerate(container.demux(container.streams.video[0])) if p.is_keyframe and p.size]
    gop = max(np.diff(keys).max() if len(keys) > 1 else info.n_frames, 1)
    n = info.n_frames
    starts_stops = [(0, 45), (n // 3, n // 3 + 90), (n // 2 + 7, n // 2 + 40), (n - 60, n - 1)]
    windows = [(max(0, min(a, n - 1)), max(0, min(b, n - 1))) for a, b in starts_stops]
    frame_lists = [slot_frames(a, b) for a, b in windows]
    stats = DecodeStats()
    out = dict(decode_video_segments(clip, frame_lists, size=128, stats=stats))
    ref = decode_all_then_index(clip, frame_lists, size=128)
    for s in range(len(windows)):
        np.testing.assert_array_equal(out[s], ref[s], err_msg=f"{clip.name} window {windows[s]}")
    assert stats.frames_decoded <= sum(b - a + 1 + gop for a, b in windows)
