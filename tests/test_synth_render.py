"""The synthetic renderer against a slow reference: every shape evaluated on the whole frame, painted with numpy's
broadcast, the lighting applied per channel at the end. The renderer cuts windows to each shape, lights the
background and the colours once per video and paints 3-byte pixels; frames and boxes must be the same, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xmic.synth import KITCHEN_A, KITCHEN_B
from xmic.synth.datasets import COLOURS, noun_parts
from xmic.synth.generate import Sizes, plan_dataset
from xmic.synth.motion import HandPose, ObjectPose
from xmic.synth.scene import (
    _FINGERS,
    _HEAD_SCALE,
    _SLEEVE_LENGTH,
    _TOOL_ACROSS,
    _TOOL_FROM,
    _TOOL_HALF,
    _TOOL_TO,
    INSIDE,
    MIN_SCALE,
    VERB_TOOLS,
    VideoRenderer,
    apply_lut,
    normalised_box,
    shape_masks,
    tool_head,
)

TINY = Sizes(train=4, val=2, segments_per_video=(2, 3), segment_seconds=(0.5, 0.8), gap_seconds=(0.2, 0.4))


def _frame_grid(height: int, width: int, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre offsets from ``(cx, cy)`` over the whole frame: ``dx (1, W)``, ``dy (H, 1)`` float32."""
    return (
        (np.arange(width, dtype=np.float32) + 0.5 - cx)[None, :],
        (np.arange(height, dtype=np.float32) + 0.5 - cy)[:, None],
    )


def _extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    return None if ys.size == 0 else (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def _ref_object(img: np.ndarray, obj: ObjectPose) -> tuple[int, int, int, int] | None:
    colour_name, shape = noun_parts(obj.noun)
    colour = np.array(COLOURS[colour_name], dtype=np.uint8)
    sx = math.copysign(max(abs(obj.sx), MIN_SCALE), obj.sx)
    sy = math.copysign(max(abs(obj.sy), MIN_SCALE), obj.sy)
    dx, dy = _frame_grid(*img.shape[:2], obj.cx, obj.cy)
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    u = (dx * c + dy * s) / (obj.r * sx)
    v = (dy * c - dx * s) / (obj.r * sy)
    body = np.zeros(img.shape[:2], dtype=bool)
    marker, face = body.copy(), body.copy()
    if obj.split > 0:
        depth = min(0.3, 0.4 * obj.split)
        for h in (-1.0, 1.0):
            uh = u - h * obj.split / sx
            b, m = shape_masks(shape, uh, v)
            half = uh * h >= 0
            body |= b & half
            marker |= m & half
            face |= b & half & (uh * h <= depth)
    else:
        body, marker = shape_masks(shape, u, v)
    img[body] = colour
    img[marker] = (colour * 0.45).astype(np.uint8)
    img[face] = INSIDE
    return _extent(body)


def _hand_uv(img: np.ndarray, cx: float, cy: float, hand: HandPose) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = _frame_grid(*img.shape[:2], cx, cy)
    c, s = math.cos(hand.angle), math.sin(hand.angle)
    return (dy * c - dx * s) / hand.s, (dx * c + dy * s) / hand.s


def _ref_hand(img: np.ndarray, hand: HandPose, skin: np.ndarray) -> tuple[int, int, int, int] | None:
    u, v = _hand_uv(img, hand.cx, hand.cy, hand)
    mask = (u / 0.62) ** 2 + (v / 0.72) ** 2 <= 1.0
    for centre, length in _FINGERS:
        mask |= (np.abs(u - centre) <= 0.12) & (v >= 0.3) & (v <= 0.5 + length)
    side = u if hand.left else -u
    mask |= (side >= 0.4) & (side <= 0.98) & (v >= -0.08) & (v <= 0.2)
    img[mask] = skin
    return _extent(mask)


def _ref_sleeve(img: np.ndarray, hand: HandPose, colour: np.ndarray) -> None:
    back = (_SLEEVE_LENGTH / 2 + 0.45) * hand.s
    cx, cy = hand.cx - math.cos(hand.angle) * back, hand.cy - math.sin(hand.angle) * back
    u, v = _hand_uv(img, cx, cy, hand)
    img[(np.abs(u) <= 0.55) & (np.abs(v) <= _SLEEVE_LENGTH / 2)] = colour


def _ref_tool(img: np.ndarray, hand: HandPose, verb: str, colour: np.ndarray, width: float):
    if verb not in VERB_TOOLS:
        return None
    u, v = _hand_uv(img, hand.cx, hand.cy, hand)
    a = u - (-_TOOL_ACROSS if hand.left else _TOOL_ACROSS)
    handle = (np.abs(a) <= _TOOL_HALF * width) & (v >= _TOOL_FROM) & (v <= _TOOL_TO)
    mask = handle | tool_head(VERB_TOOLS[verb], a / _HEAD_SCALE, (v - _TOOL_TO) / _HEAD_SCALE, width)
    img[mask] = colour
    return _extent(mask)


def _reference_frame(renderer: VideoRenderer, index: int) -> tuple[np.ndarray, list[list[float]]]:
    """Frame ``index`` of ``renderer``'s video drawn the slow way, unlit, then lit channel by channel."""
    st, m = renderer.style, renderer.margin
    ox, oy = (int(x) for x in renderer.camera[index])
    img = renderer.background[m + oy : m + oy + st.height, m + ox : m + ox + st.width].copy()
    state = renderer.state(index)
    boxes = []
    for obj in state.objects:
        moved = ObjectPose(obj.noun, obj.cx - ox, obj.cy - oy, obj.r, obj.angle, obj.sx, obj.sy, obj.split)
        box = _ref_object(img, moved)
        if obj is state.target:
            boxes.append(box)
    hands = [HandPose(h.cx - ox, h.cy - oy, h.angle, h.s, h.left) for h in state.hands]
    for hand in hands:
        _ref_sleeve(img, hand, renderer.sleeve)
    for hand in hands:
        boxes.append(_ref_hand(img, hand, renderer.skin))
    if state.segment is not None and hands:
        boxes.append(_ref_tool(img, hands[-1], state.segment.verb, renderer.tool, st.tool_width))
    lit = np.stack([renderer.lut[k][img[..., k]] for k in range(3)], axis=-1)
    return lit, [normalised_box(b, st.width, st.height) for b in boxes if b is not None]


@pytest.mark.parametrize("spec", [KITCHEN_A, KITCHEN_B], ids=["kitchen_a", "kitchen_b"])
def test_frames_and_boxes_match_the_slow_reference(spec) -> None:
    plans = plan_dataset(spec, 0, seed=3, scale=1.0, sizes=TINY)
    video = plans[spec.splits[0]][0]
    renderer = VideoRenderer(spec.style, video)
    seen_split = seen_tool = seen_gap = False
    for index in range(0, video.n_frames, 2):
        img, boxes = renderer.frame(index)
        ref, ref_boxes = _reference_frame(renderer, index)
        diff = np.argwhere(img != ref)
        assert diff.size == 0, f"frame {index}: {len(diff)} values differ, first at {diff[0].tolist()}"
        assert boxes == ref_boxes, (index, boxes, ref_boxes)
        state = renderer.state(index)
        seen_split |= state.target.split > 0
        seen_tool |= state.segment is not None and state.segment.verb in VERB_TOOLS
        seen_gap |= state.segment is None
    assert seen_split and seen_tool and seen_gap  # the frames checked hold halves, tools and hands leaving


def test_apply_lut_is_a_per_channel_lookup() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    lut = rng.integers(0, 256, size=(3, 256), dtype=np.uint8)
    out = apply_lut(img, lut)
    assert out.dtype == np.uint8 and out.shape == img.shape
    for y, x, k in np.ndindex(*img.shape):
        assert out[y, x, k] == lut[k, img[y, x, k]]
