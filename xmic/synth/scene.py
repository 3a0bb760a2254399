"""Drawing synthetic egocentric frames with vectorised numpy: background, objects, hands, camera, lighting.

Every shape is evaluated on the pixel grid of its own bounding square only (no per-pixel Python loops). The
draw functions return the pixel extent of what they painted, so the hand boxes are exact: the union of the
hands' and the manipulated object's painted pixels (:meth:`VideoRenderer.frame`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from xmic.synth.datasets import COLOURS, Style, noun_parts
from xmic.synth.motion import FrameState, HandPose, ObjectPose, VideoPlan, frame_state

PixelBox = tuple[int, int, int, int]  # x0, y0, x1, y1 inclusive pixel indices

#: Furthest point of each shape from its centre, in units of its radius.
SHAPE_EXTENT = {"cube": 1.42, "ball": 1.0, "ring": 1.0, "bar": 1.52, "pyramid": 1.3}
#: Thinnest drawn |scale| of a flipping object (it stays a visible sliver when seen edge-on).
MIN_SCALE = 0.08
_HAND_EXTENT = 1.45
_SLEEVE_LENGTH = 5.0
_FINGERS = ((-0.45, 0.62), (-0.15, 0.78), (0.15, 0.74), (0.45, 0.58))  # (u centre, length beyond 0.5)
#: ``(u_min, u_max, v_min, v_max)`` of :func:`hand_mask`'s shape, in hand units (palm, fingers and thumb).
_HAND_UV = (-0.98, 0.98, -0.72, 1.28)
#: Pixel centres ``0.5, 1.5, 2.5, ...`` as float32, sliced by :func:`_grid` (the values of a fresh
#: ``np.arange(..., dtype=np.float32) + 0.5``).
_CENTRES = np.arange(8192, dtype=np.float32) + 0.5
#: Extra pixels around a shape's computed extent in :func:`_grid`'s ``extent`` (float32 rounding of ``u, v``).
_PAD = 2
#: :data:`_FINGERS` as ``(4, 1, 1)`` float32: each finger's ``u`` centre and the ``v`` of its tip.
_FINGER_U = np.array([centre for centre, _ in _FINGERS], dtype=np.float32)[:, None, None]
_FINGER_TOP = np.array([0.5 + length for _, length in _FINGERS], dtype=np.float32)[:, None, None]
_CHANNELS = np.arange(3)


def _centres(start: int, stop: int) -> np.ndarray:
    """``np.arange(start, stop, dtype=np.float32) + 0.5`` (empty when ``stop <= start``)."""
    stop = max(stop, start)
    return _CENTRES[start:stop] if stop <= _CENTRES.size else np.arange(start, stop, dtype=np.float32) + 0.5


def _grid(
    cx: float,
    cy: float,
    radius: float,
    width: int,
    height: int,
    extent: tuple[float, float, float, float] | None = None,
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Pixel-centre offsets from ``(cx, cy)`` over the square of half-size ``radius`` clipped to the frame.

    Args:
        cx, cy: Centre in pixels.
        radius: Half-size of the square.
        width, height: Frame size.
        extent: ``(dx_min, dx_max, dy_min, dy_max)`` offsets from the centre that hold every pixel the caller can
            paint (:func:`_rect_extent`); the square is cut down to them plus :data:`_PAD` pixels. The offsets of
            the pixels kept are the same as without ``extent``.

    Returns:
        ``(x0, y0, dx (1, w), dy (h, 1))``; ``w`` or ``h`` is 0 when the square is off-frame.
    """
    x0, x1 = max(math.floor(cx - radius), 0), min(math.ceil(cx + radius) + 1, width)
    y0, y1 = max(math.floor(cy - radius), 0), min(math.ceil(cy + radius) + 1, height)
    if extent is not None:
        x0, x1 = max(x0, math.floor(cx + extent[0]) - _PAD), min(x1, math.ceil(cx + extent[1]) + _PAD)
        y0, y1 = max(y0, math.floor(cy + extent[2]) - _PAD), min(y1, math.ceil(cy + extent[3]) + _PAD)
    dx = (_centres(x0, x1) - cx)[None, :]
    dy = (_centres(y0, y1) - cy)[:, None]
    return x0, y0, dx, dy


def _rect_extent(
    c: float, s: float, unit: float, uv: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """``(dx_min, dx_max, dy_min, dy_max)`` of the rectangle ``uv = (u_min, u_max, v_min, v_max)`` in the frame of
    a hand: ``v = (dx c + dy s) / unit`` along the fingers, ``u = (dy c - dx s) / unit`` across."""
    uc, vc = (uv[0] + uv[1]) / 2, (uv[2] + uv[3]) / 2
    hu, hv = (uv[1] - uv[0]) / 2 * abs(unit), (uv[3] - uv[2]) / 2 * abs(unit)
    x, y = unit * (vc * c - uc * s), unit * (vc * s + uc * c)
    rx, ry = hv * abs(c) + hu * abs(s), hv * abs(s) + hu * abs(c)
    return x - rx, x + rx, y - ry, y + ry


_any = np.logical_or.reduce


def _paint(img: np.ndarray, x0: int, y0: int, mask: np.ndarray, colour: np.ndarray) -> PixelBox | None:
    """Set ``img`` to ``colour`` where ``mask`` (a window at ``(x0, y0)``) is True; the painted pixel extent."""
    if mask.size == 0:
        return None
    rows = _any(mask, axis=1)
    r0 = int(rows.argmax())
    if not rows[r0]:
        return None
    cols = _any(mask, axis=0)
    h, w = mask.shape
    _set(img[y0 : y0 + h, x0 : x0 + w], mask, colour)
    r1, c0, c1 = h - 1 - int(rows[::-1].argmax()), int(cols.argmax()), w - 1 - int(cols[::-1].argmax())
    return x0 + c0, y0 + r0, x0 + c1, y0 + r1


def _fill(img: np.ndarray, x0: int, y0: int, mask: np.ndarray, colour: np.ndarray) -> None:
    """:func:`_paint` without the extent."""
    h, w = mask.shape
    _set(img[y0 : y0 + h, x0 : x0 + w], mask, colour)


_RGB = np.dtype((np.void, 3))


def _set(window: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """``window[mask] = colour``; an RGB uint8 ``window`` ``(h, w, 3)`` is set as one 3-byte item per pixel (several
    times faster than numpy's broadcast of a colour over the channel axis)."""
    if window.dtype == np.uint8 and window.ndim == 3 and window.shape[2] == 3 and window.strides[2] == 1:
        pixel = np.ascontiguousarray(colour, dtype=np.uint8).reshape(3).view(_RGB)[0]
        window.view(_RGB)[..., 0][mask] = pixel
    else:
        window[mask] = colour


def shape_masks(shape: str, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body and marker masks of a unit shape at local coordinates ``(u, v)`` (radius 1, ``v`` down).

    The marker (a darker part on one side: a band, a cap or a segment) makes rotations and flips visible on
    symmetric shapes, also to a coarse encoder.
    """
    if shape == "cube":
        body = (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
        marker = v <= -0.35
    elif shape == "ball":
        body = u * u + v * v <= 1.0
        marker = v <= -0.3
    elif shape == "ring":
        rr = u * u + v * v
        body = (rr <= 1.0) & (rr >= 0.3)
        marker = v <= -0.45
    elif shape == "bar":
        body = (np.abs(u) <= 1.45) & (np.abs(v) <= 0.42)
        marker = u >= 0.55
    elif shape == "pyramid":
        body = (v <= 0.8) & (v >= -1.0 + 1.8 * np.abs(u))
        marker = v >= 0.25
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return body, body & marker


#: Colour of the inside of an object, shown on the cut faces of its halves when they are apart.
INSIDE = np.array((245, 245, 235), dtype=np.uint8)


def object_colours(noun: str, lut: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The body, marker and inside colours of ``noun``'s objects, each ``(3,)`` uint8; through the lighting table
    ``lut`` ``(3, 256)`` when given (:func:`apply_lut`)."""
    colour = np.array(COLOURS[noun_parts(noun)[0]], dtype=np.uint8)
    colours = (colour, (colour * 0.45).astype(np.uint8), INSIDE)
    if lut is None:
        return colours
    body, marker, inside = (lut[_CHANNELS, c] for c in colours)
    return body, marker, inside


def draw_object(
    img: np.ndarray, obj: ObjectPose, colours: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
) -> PixelBox | None:
    """Draw one object (both halves when ``obj.split > 0``, their cut faces in the inside colour) into ``img``
    ``(H, W, 3)`` uint8; its pixel extent. ``colours``: :func:`object_colours` of ``obj.noun`` (computed when
    None)."""
    shape = noun_parts(obj.noun)[1]
    colour, dark, inside = object_colours(obj.noun) if colours is None else colours
    sx = math.copysign(max(abs(obj.sx), MIN_SCALE), obj.sx)
    sy = math.copysign(max(abs(obj.sy), MIN_SCALE), obj.sy)
    radius = obj.r * max(abs(sx), abs(sy)) * (SHAPE_EXTENT[shape] + obj.split) + 1.0
    x0, y0, dx, dy = _grid(obj.cx, obj.cy, radius, img.shape[1], img.shape[0])
    if dx.size == 0 or dy.size == 0:
        return None
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    u = (dx * c + dy * s) / (obj.r * sx)
    v = (dy * c - dx * s) / (obj.r * sy)
    face = None
    if obj.split > 0:
        depth = min(0.3, 0.4 * obj.split)  # how much of a cut face shows: more as the halves part
        # The left half (h = -1) keeps uh <= 0 and shows its face where -uh <= depth, the right one mirrors it.
        uh = u - -1.0 * obj.split / sx
        b, m = shape_masks(shape, uh, v)
        half = uh <= 0
        body, marker = b & half, m & half
        face = body & (uh >= -depth)
        uh = u - 1.0 * obj.split / sx
        b, m = shape_masks(shape, uh, v)
        half = uh >= 0
        b &= half
        body |= b
        marker |= m & half
        face |= b & (uh <= depth)
    else:
        body, marker = shape_masks(shape, u, v)
    box = _paint(img, x0, y0, body, colour)
    if box is None:  # the marker and the cut faces are inside the body
        return None
    _fill(img, x0, y0, marker, dark)
    if face is not None:
        _fill(img, x0, y0, face, inside)
    return box


def hand_mask(u: np.ndarray, v: np.ndarray, left: bool) -> np.ndarray:
    """A hand seen from above at hand coordinates (``v`` along the fingers, ``u`` across, unit = hand size).

    Palm ellipse, four fingers and a thumb on the inner side (``-u`` for a right hand).
    """
    mask = (u / 0.62) ** 2 + (v / 0.72) ** 2 <= 1.0
    fingers = (np.abs(u - _FINGER_U) <= 0.12) & (v <= _FINGER_TOP)  # (4, h, w): the fingers at once
    mask |= fingers.any(axis=0) & (v >= 0.3)
    side = u if left else -u
    mask |= (side >= 0.4) & (side <= 0.98) & (v >= -0.08) & (v <= 0.2)
    return mask


def draw_sleeve(img: np.ndarray, hand: HandPose, colour: np.ndarray) -> None:
    """Draw the forearm's sleeve behind the wrist of ``hand`` (not part of the hand box)."""
    c, s = math.cos(hand.angle), math.sin(hand.angle)
    back = (_SLEEVE_LENGTH / 2 + 0.45) * hand.s
    cx, cy = hand.cx - c * back, hand.cy - s * back
    extent = _rect_extent(c, s, hand.s, (-0.55, 0.55, -_SLEEVE_LENGTH / 2, _SLEEVE_LENGTH / 2))
    x0, y0, dx, dy = _grid(cx, cy, (_SLEEVE_LENGTH / 2 + 0.7) * hand.s, img.shape[1], img.shape[0], extent)
    if dx.size == 0 or dy.size == 0:
        return
    v = (dx * c + dy * s) / hand.s
    u = (dy * c - dx * s) / hand.s
    _paint(img, x0, y0, (np.abs(u) <= 0.55) & (np.abs(v) <= _SLEEVE_LENGTH / 2), colour)


def draw_hand(img: np.ndarray, hand: HandPose, skin: np.ndarray) -> PixelBox | None:
    """Draw one hand into ``img`` ``(H, W, 3)`` uint8 in colour ``skin``; its pixel extent (None when off-frame)."""
    c, s = math.cos(hand.angle), math.sin(hand.angle)
    extent = _rect_extent(c, s, hand.s, _HAND_UV)
    x0, y0, dx, dy = _grid(hand.cx, hand.cy, _HAND_EXTENT * hand.s + 1.0, img.shape[1], img.shape[0], extent)
    if dx.size == 0 or dy.size == 0:
        return None
    v = (dx * c + dy * s) / hand.s
    u = (dy * c - dx * s) / hand.s
    return _paint(img, x0, y0, hand_mask(u, v, hand.left), skin)


#: The tool each verb is done with, held in the acting hand while the action lasts (``take`` / ``put``: none, the
#: bare grasp). ``open`` and ``close`` share one, as a jar's lid does: one frame tells the pair, only the order of
#: the frames tells which of the two it is, as for take / put.
VERB_TOOLS = {
    "push": "paddle",
    "pull": "hook",
    "rotate": "key",
    "shake": "shaker",
    "flip": "spatula",
    "squeeze": "tongs",
    "open": "blade",
    "close": "blade",
}
#: Tool geometry in hand units: the handle's half-width, where it starts and ends along the fingers (``v``), and
#: how far across (``u``, away from the thumb) it lies.
_TOOL_HALF, _TOOL_FROM, _TOOL_TO, _TOOL_ACROSS = 0.16, -0.5, 1.5, 0.8
#: Size of a tool's head against :func:`tool_head`'s unit shapes: about a hand's width, so that a coarse encoder sees it.
_HEAD_SCALE = 2.4


def tool_head(tool: str, a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    """The head of ``tool`` at local coordinates ``(a, b)``: ``a`` across, ``b`` beyond the handle's end (hand
    units); ``width`` scales its strokes."""
    w = 0.1 * width
    if tool == "paddle":
        return (np.abs(a) <= 0.55) & (np.abs(b - 0.1) <= w + 0.04)
    if tool == "hook":
        return ((np.abs(a) <= w) & (b >= 0) & (b <= 0.6)) | ((np.abs(b - 0.6) <= w) & (a >= -0.5) & (a <= 0))
    if tool == "key":
        rr = np.sqrt(a * a + (b - 0.4) ** 2)
        return (rr <= 0.4) & (rr >= 0.4 - 2 * w)
    if tool == "shaker":
        return a * a + (b - 0.35) ** 2 <= 0.35**2
    if tool == "spatula":
        return (np.abs(a) <= 0.32) & (b >= 0) & (b <= 0.75)
    if tool == "tongs":
        return (np.abs(np.abs(a) - 0.25) <= w) & (b >= -0.1) & (b <= 0.7)
    if tool == "blade":
        return (b >= 0) & (b <= 0.9) & (np.abs(a) <= (0.3 + 0.5 * w) * (1 - b / 0.9))
    raise ValueError(f"unknown tool {tool!r}")


def _tool_uv(across: float, width: float) -> tuple[float, float, float, float]:
    """``(u_min, u_max, v_min, v_max)`` holding the handle and any :func:`tool_head` of stroke ``width`` (hand
    units): every head lies within ``|a| <= 0.6 + w`` and ``-0.15 - w <= b <= 0.95 + w`` (``w = 0.1 width``)."""
    w = 0.1 * width
    half = max(_TOOL_HALF * width, _HEAD_SCALE * (0.6 + w))
    v_lo = min(_TOOL_FROM, _TOOL_TO - _HEAD_SCALE * (0.15 + w))
    return across - half, across + half, v_lo, _TOOL_TO + _HEAD_SCALE * (0.95 + w)


def draw_tool(img: np.ndarray, hand: HandPose, verb: str, colour: np.ndarray, width: float = 1.0) -> PixelBox | None:
    """Draw the tool of ``verb`` (:data:`VERB_TOOLS`) in ``hand``: a handle across the palm along the fingers, on the
    side away from the thumb, and the tool's head beyond the fingertips; its pixel extent (None: no tool)."""
    tool = VERB_TOOLS.get(verb)
    if tool is None:
        return None
    reach = (_TOOL_TO + 1.5 * _HEAD_SCALE) * hand.s + _TOOL_ACROSS * hand.s
    c, s = math.cos(hand.angle), math.sin(hand.angle)
    across = -_TOOL_ACROSS if hand.left else _TOOL_ACROSS
    extent = _rect_extent(c, s, hand.s, _tool_uv(across, width))
    x0, y0, dx, dy = _grid(hand.cx, hand.cy, reach + 1.0, img.shape[1], img.shape[0], extent)
    if dx.size == 0 or dy.size == 0:
        return None
    v = (dx * c + dy * s) / hand.s
    u = (dy * c - dx * s) / hand.s
    a = u - across
    handle = (np.abs(a) <= _TOOL_HALF * width) & (v >= _TOOL_FROM) & (v <= _TOOL_TO)
    head = tool_head(tool, a / _HEAD_SCALE, (v - _TOOL_TO) / _HEAD_SCALE, width)
    return _paint(img, x0, y0, handle | head, colour)


def union_pixel_boxes(boxes: list[PixelBox | None]) -> PixelBox | None:
    """The smallest pixel box holding every non-None box."""
    real = [b for b in boxes if b is not None]
    if not real:
        return None
    return min(b[0] for b in real), min(b[1] for b in real), max(b[2] for b in real), max(b[3] for b in real)


def normalised_box(box: PixelBox, width: int, height: int) -> list[float]:
    """Inclusive pixel box -> normalised ``[x0, y0, x1, y1]`` rounded outwards to 1e-4 (still holds every pixel)."""
    x0, y0, x1, y1 = box
    return [
        math.floor(x0 / width * 1e4) / 1e4,
        math.floor(y0 / height * 1e4) / 1e4,
        min(math.ceil((x1 + 1) / width * 1e4) / 1e4, 1.0),
        min(math.ceil((y1 + 1) / height * 1e4) / 1e4, 1.0),
    ]


def make_background(style: Style, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The scene behind the action, ``(height, width, 3)`` uint8 (larger than a frame, for camera motion)."""
    base = np.array(style.bg_base, dtype=np.float32)
    alt = np.array(style.bg_alt, dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if style.background == "tiles":
        t = style.tile_px
        shade = rng.uniform(-8.0, 8.0, size=(height // t + 2, width // t + 2)).astype(np.float32)
        img = base + shade[(yy // t).astype(int), (xx // t).astype(int)][..., None]
        grout = ((yy.astype(int) % t) < 2) | ((xx.astype(int) % t) < 2)
        img[grout] = base * 0.72
        wall = yy < height * rng.uniform(0.16, 0.24)
        img[wall] = alt + rng.uniform(-4.0, 4.0, size=(int(wall.sum()), 1)).astype(np.float32)
    elif style.background == "grain":
        t = style.tile_px
        coarse = rng.uniform(0.0, 1.0, size=(height // t + 2, width // t + 2)).astype(np.float32)
        fy, fx = yy / t, xx / t
        iy, ix = fy.astype(int), fx.astype(int)
        wy, wx = (fy - iy)[..., None], (fx - ix)[..., None]
        c00, c01 = coarse[iy, ix][..., None], coarse[iy, ix + 1][..., None]
        c10, c11 = coarse[iy + 1, ix][..., None], coarse[iy + 1, ix + 1][..., None]
        blot = (c00 * (1 - wx) + c01 * wx) * (1 - wy) + (c10 * (1 - wx) + c11 * wx) * wy
        phase = rng.uniform(0.0, 2 * math.pi)
        grain = 0.5 + 0.5 * np.sin(0.45 * xx + 0.12 * yy + 3.0 * blot[..., 0] + phase)[..., None]
        mix = np.clip(0.6 * blot + 0.4 * grain, 0.0, 1.0)
        img = base * (1 - mix) + alt * mix + rng.normal(0.0, 3.0, size=(height, width, 1)).astype(np.float32)
    elif style.background == "steel":
        img = _steel(style, yy, xx, rng)
    else:
        raise ValueError(f"unknown background {style.background!r}")
    return np.clip(img, 0, 255).astype(np.uint8)


def _steel(style: Style, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A brushed steel counter lit by a lamp, below a backsplash band: ``(H, W, 3)`` float32 (unclipped).

    ``yy`` / ``xx`` are the ``(H, W)`` pixel coordinates; brushing runs along x, one streak level per row (plus
    a slow ripple of period ``~6 * tile_px``), and the light falls off away from a random spot near the top.
    """
    height, width = yy.shape
    base = np.array(style.bg_base, dtype=np.float32)
    alt = np.array(style.bg_alt, dtype=np.float32)
    rows = rng.normal(0.0, 7.0, size=(height, 1)).astype(np.float32)
    ripple = 4.0 * np.sin(xx / style.tile_px + rng.uniform(0.0, 2 * math.pi) + 0.3 * rows)
    lamp_x, lamp_y = rng.uniform(0.3, 0.7) * width, rng.uniform(0.0, 0.3) * height
    fall = ((xx - lamp_x) / width) ** 2 + ((yy - lamp_y) / height) ** 2
    light = (1.12 - 0.45 * np.clip(fall, 0.0, 1.0))[..., None]
    img = base * light + (rows + ripple)[..., None]
    wall = yy < height * rng.uniform(0.12, 0.2)
    img[wall] = alt + rng.normal(0.0, 2.5, size=(int(wall.sum()), 1)).astype(np.float32)
    return img


def camera_path(style: Style, n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Camera offset of every frame, ``(n_frames, 2)`` int ``(x, y)`` in ``[-margin, margin]``."""
    t = np.arange(n_frames) / fps
    shake = rng.normal(0.0, style.jitter_px, size=(n_frames, 2))
    if style.shake_smooth > 0:  # a slow wander instead of per-frame shake
        alpha = style.shake_smooth
        for i in range(1, n_frames):
            shake[i] = alpha * shake[i - 1] + (1 - alpha) * shake[i] * 4.0
    phase = rng.uniform(0.0, 2 * math.pi, size=2)
    pan = style.pan_px * np.stack(
        [np.sin(2 * math.pi * t / style.pan_period_s + phase[0]), 0.4 * np.sin(2 * math.pi * t / 1.7 + phase[1])],
        axis=1,
    )
    m = camera_margin(style)
    return np.clip(np.rint(pan + shake), -m, m).astype(np.int64)


def camera_margin(style: Style) -> int:
    """Extra background pixels on each side for the camera motion."""
    return int(math.ceil(style.pan_px + 4 * style.jitter_px)) + 1


def lighting_lut(style: Style, rng: np.random.Generator) -> np.ndarray:
    """Per-channel lookup table ``(3, 256)`` uint8: contrast around mid-grey, brightness (plus a per-video
    change) and tint."""
    level = np.arange(256, dtype=np.float32)
    bright = style.brightness + rng.uniform(-style.light_jitter, style.light_jitter)
    lit = (level - 128.0) * style.contrast + 128.0 + bright
    lut = lit[None, :] * np.asarray(style.tint, dtype=np.float32)[:, None]
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)


#: Where each channel's table starts in a flattened ``(3, 256)`` lookup table.
_LUT_OFFSETS = np.array((0, 256, 512), dtype=np.intp)


def apply_lut(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``img`` ``(H, W, 3)`` uint8 through the per-channel table ``lut`` ``(3, 256)``: ``out[..., k] =
    lut[k, img[..., k]]``."""
    return np.take(np.ascontiguousarray(lut).reshape(-1), img + _LUT_OFFSETS)


class VideoRenderer:
    """Renders the frames of one :class:`VideoPlan` in one :class:`Style`, deterministically.

    Args:
        style: The dataset's look.
        plan: The video; ``plan.render_seed`` seeds the background, the camera path and the lighting.
    """

    def __init__(self, style: Style, plan: VideoPlan) -> None:
        self.style, self.plan = style, plan
        rng = np.random.default_rng(list(plan.render_seed))
        self.margin = camera_margin(style)
        m = self.margin
        self.background = make_background(style, style.height + 2 * m, style.width + 2 * m, rng)
        self.camera = camera_path(style, plan.n_frames, plan.fps, rng)
        self.lut = lighting_lut(style, rng)
        self.skin = np.array(style.skin, dtype=np.uint8)
        self.sleeve = np.array(style.sleeve, dtype=np.uint8)
        self.tool = np.array(style.tool, dtype=np.uint8)
        # The lighting maps each channel's level on its own, so painting lit colours on the lit background gives
        # the lit frame: the table is applied once per video, not once per frame.
        self._lit_background = apply_lut(self.background, self.lut)
        self._lit_sleeve, self._lit_tool = (self.lut[_CHANNELS, c] for c in (self.sleeve, self.tool))
        self._lit_objects: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._lit_skin = self.lit_skin
        self._offsets = [(int(x), int(y)) for x, y in self.camera]

    @property
    def lit_skin(self) -> np.ndarray:
        """The hand colour as it appears in the frames (after lighting), ``(3,)`` uint8."""
        return self.lut[_CHANNELS, self.skin]

    def state(self, frame: int) -> FrameState:
        """What frame ``frame`` shows (scene coordinates)."""
        return frame_state(self.plan, frame, self.style.height)

    def frame(self, index: int) -> tuple[np.ndarray, list[list[float]]]:
        """Render frame ``index``.

        Returns:
            ``(image (H, W, 3) uint8 RGB, boxes)``: normalised xyxy boxes of each visible hand, the tool in the
            acting hand and the manipulated object (their union is the hand box); empty when nothing is in view.
        """
        st, m = self.style, self.margin
        ox, oy = self._offsets[index]
        img = self._lit_background[m + oy : m + oy + st.height, m + ox : m + ox + st.width].copy()
        state = self.state(index)
        boxes: list[PixelBox | None] = []
        for obj in state.objects:
            colours = self._lit_objects.get(obj.noun)
            if colours is None:
                colours = self._lit_objects[obj.noun] = object_colours(obj.noun, self.lut)
            box = draw_object(img, _shifted(obj, ox, oy), colours)
            if obj is state.target:
                boxes.append(box)
        hands = [_shifted(hand, ox, oy) for hand in state.hands]
        for hand in hands:
            draw_sleeve(img, hand, self._lit_sleeve)
        for hand in hands:
            boxes.append(draw_hand(img, hand, self._lit_skin))
        if state.segment is not None and hands:  # the tool in the acting hand is part of the hand's box
            boxes.append(draw_tool(img, hands[-1], state.segment.verb, self._lit_tool, st.tool_width))
        out = [normalised_box(b, st.width, st.height) for b in boxes if b is not None]
        return img, out

    def frames(self) -> Iterator[tuple[int, np.ndarray, list[list[float]]]]:
        """``(index, image, boxes)`` of every frame in order."""
        for i in range(self.plan.n_frames):
            img, boxes = self.frame(i)
            yield i, img, boxes


def _shifted(item: ObjectPose | HandPose, ox: int, oy: int) -> ObjectPose | HandPose:
    """Scene -> frame coordinates for a camera offset ``(ox, oy)``."""
    if isinstance(item, HandPose):
        return HandPose(item.cx - ox, item.cy - oy, item.angle, item.s, item.left)
    return ObjectPose(item.noun, item.cx - ox, item.cy - oy, item.r, item.angle, item.sx, item.sy, item.split)
