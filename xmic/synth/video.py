"""A tiny deterministic video writer for tests and benchmarks.

Every frame shows its own index as a row of black/white bars (one bar per bit, most significant bit
on the left) across the top half, above a colour pattern that changes from frame to frame, so a test
can tell which source frame a decoder returned (:func:`read_frame_index`) even after lossy coding.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

#: Bits of the frame index drawn as bars; enough for 65535 frames (36 min at 30 fps).
INDEX_BITS = 16
_BAR_LOW, _BAR_HIGH = 16, 240


@lru_cache(maxsize=4)
def _base_pattern(width: int, height: int) -> np.ndarray:
    """``(height, width, 3)`` uint8 gradient; frame ``i`` adds ``(3i, 5i, 7i)`` to it modulo 256."""
    yy, xx = np.mgrid[0:height, 0:width]
    pattern = np.stack([xx * 2, yy * 3, xx + yy], axis=-1) % 256
    pattern = pattern.astype(np.uint8)
    pattern.flags.writeable = False
    return pattern


def index_frame(index: int, width: int = 456, height: int = 256) -> np.ndarray:
    """The RGB image of frame ``index``.

    Args:
        index: 0-based frame index, ``0 <= index < 2**INDEX_BITS``.
        width: Image width in pixels (at least 2 pixels per bar).
        height: Image height in pixels.

    Returns:
        ``(height, width, 3)`` uint8 image.
    """
    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"frame index {index} does not fit in {INDEX_BITS} bits")
    if width < 2 * INDEX_BITS or height < 8:
        raise ValueError(f"test frames need width >= {2 * INDEX_BITS} and height >= 8, got {width}x{height}")
    img = np.empty((height, width, 3), dtype=np.uint8)
    top = height // 2
    bits = (index >> np.arange(INDEX_BITS - 1, -1, -1)) & 1
    bar_of_column = np.minimum(np.arange(width) * INDEX_BITS // width, INDEX_BITS - 1)
    img[:top] = np.where(bits[bar_of_column] == 1, _BAR_HIGH, _BAR_LOW).astype(np.uint8)[None, :, None]
    # Lower half: a smooth pattern that drifts with the index (gives the encoder real motion to code).
    img[top:] = _base_pattern(width, height - top) + (np.array([3, 5, 7], dtype=np.uint64) * index % 256).astype(
        np.uint8
    )
    return img


def read_frame_index(image: np.ndarray) -> int:
    """Read back the index drawn by :func:`index_frame` from a decoded (possibly resized) image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.

    Returns:
        The frame index encoded in the bars.
    """
    height, width = image.shape[:2]
    band = image[height // 8 : height * 3 // 8].astype(np.float32).mean(axis=(0, 2))  # (W,)
    centres = ((np.arange(INDEX_BITS) + 0.5) * width / INDEX_BITS).astype(int)
    bits = band[centres] > (_BAR_LOW + _BAR_HIGH) / 2
    return int(sum(int(b) << (INDEX_BITS - 1 - i) for i, b in enumerate(bits)))


def write_test_video(
    path: str | Path,
    n_frames: int,
    width: int = 456,
    height: int = 256,
    fps: int = 30,
    gop: int = 12,
    codec: str = "h264",
    *,
    bframes: int = 0,
    crf: int = 23,
    preset: str = "ultrafast",
) -> Path:
    """Write a deterministic MP4 whose frame ``i`` is :func:`index_frame` ``(i)``.

    The keyframe interval is fixed at ``gop`` (scene-cut detection off), so seeks land on predictable
    keyframes. PyAV is imported here, not at module import.

    Args:
        path: Output file (``.mp4``); parent folders are created.
        n_frames: Number of frames.
        width: Frame width (even, for yuv420p).
        height: Frame height (even).
        fps: Constant frame rate.
        gop: Keyframe interval in frames.
        codec: Encoder name; ``"h264"`` uses libx264.
        bframes: Number of consecutive B-frames (0 = none; >0 makes presentation and decode order differ).
        crf: x264 constant rate factor (quality).
        preset: x264 preset (``"ultrafast"`` encodes fastest; slower presets enable CABAC etc., which makes
            decoding cost closer to camera footage).

    Returns:
        The path written.
    """
    import av

    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec in ("h264", "libx264"):
            stream.options = {
                "preset": preset,
                "crf": str(crf),
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:threads=1",
            }
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(i, width, height), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
