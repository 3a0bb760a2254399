"""What happens in a synthetic video: segment plans (verb, noun, timing, placement) and the poses they give.

A verb is a motion over time of the manipulated object and the hands holding it (:func:`object_motion`), over the
segment's progress ``p`` in [0, 1]. The verbs move through the same states, so that one frame shows next to nothing
of the verb and only the order of the frames tells it:

- every segment has the object's *lift* (raised off its resting place, towards the camera: higher in the frame and
  larger), *depth* (further away: higher and smaller against the hands) and *gap* (in two halves this far apart,
  their cut faces showing). A verb that does not move one of them holds it at a random level drawn like the levels
  the verbs that move it pass through (:func:`static_level`);
- take / put raise / lower the object, push / pull move it away / towards the camera, open / close move its halves
  apart / together: three pairs of mirror motions whose single frames have the same distribution;
- rotate spins it in place, flip turns it over in an arc (up and back down while it spins half a turn), shake
  moves it quickly from side to side, rocking, squeeze presses it smaller and lets it go;
- one or two hands hold the object whatever the verb (the one hand's wrist turns with the object), from a random
  side; the motion starts and ends at a random moment of the segment (``t0``, ``t1``, so its speed varies too),
  from a random start level, over a random extent (``amp``).

Between segments the hands leave the frame downwards and come back for the next action (:func:`frame_state`).
Coordinates are scene pixels (x right, y down) before the camera offset; angles are radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from xmic.synth.datasets import VERBS, DatasetSpec

#: Where the hands go between actions: this fraction of the frame height below their working place.
HAND_AWAY = 0.65
#: Objects rest below this fraction of the frame height (above it is the wall).
TABLE_TOP = 0.32
#: Palm centre to fingertip, in hand units.
HAND_REACH = 1.3
#: Rise of a fully lifted object, in object radii (times the segment's ``amp``), and how much larger it gets (it
#: comes up towards the camera).
LIFT, LIFT_GROW = 2.5, 0.3
#: Rise and shrink of an object at full depth: up by this many radii, scaled by ``1 - DEPTH_SHRINK``.
DEPTH_RISE, DEPTH_SHRINK = 1.5, 0.4
#: Half-gap between the halves of a fully opened object, in radii (times ``amp``).
GAP = 0.9
#: How much smaller a squeezed object gets at the height of the squeeze (times ``amp``).
SQUEEZE = 0.4
#: The states every segment has (:attr:`SegmentPlan.levels`).
STATES = ("lift", "depth", "gap")
#: Each verb that moves a state, and which way: ``(state, +1 rising / -1 falling)``.
STATE_VERBS = {
    "take": ("lift", 1),
    "put": ("lift", -1),
    "push": ("depth", 1),
    "pull": ("depth", -1),
    "open": ("gap", 1),
    "close": ("gap", -1),
}


@dataclass(frozen=True)
class ObjectPose:
    """One object in one frame: centre, radius, rotation, axis scales and the gap between its halves."""

    noun: str
    cx: float
    cy: float
    r: float
    angle: float
    sx: float = 1.0
    sy: float = 1.0
    split: float = 0.0  # half-gap in units of r (open / close)


@dataclass(frozen=True)
class HandPose:
    """One hand: palm centre, finger direction ``angle`` (0 = pointing right), size unit ``s``, which hand."""

    cx: float
    cy: float
    angle: float
    s: float
    left: bool


@dataclass(frozen=True)
class SegmentPlan:
    """One annotated action and how it is drawn.

    Attributes:
        action_idx: Position of the action in its video (0-based, time order).
        verb: Canonical verb name.
        noun: Canonical noun name.
        start: First frame (0-based, inclusive).
        stop: Last frame (inclusive).
        rest: Object pose on the table (lift, depth and gap 0, before any motion).
        amp: Motion extent factor.
        sign: Motion direction (+1 / -1) where the verb has one (rotate, flip, shake).
        t0: Progress at which the motion starts.
        t1: Progress at which it ends.
        cycles: Oscillations of a shake.
        approach: Finger direction of the hand (one hand) or the tilt of both (two hands).
        left: The one holding hand is the left hand.
        hand_s: Hand size unit in pixels.
        idle: The other hand resting in view (one hand only), or None.
        distractors: Static objects of other classes.
        two_hands: Both hands hold the object (any verb).
        levels: ``(lift, depth, gap)`` in [0, 1], held for the whole segment; the entry of the state the verb
            moves (:data:`STATE_VERBS`) is unused.
        span: ``(from, to)`` levels of the state the verb moves (``(0, 1)`` and unused for the other verbs).
    """

    action_idx: int
    verb: str
    noun: str
    start: int
    stop: int
    rest: ObjectPose
    amp: float
    sign: int
    t0: float
    t1: float
    cycles: float
    approach: float
    left: bool
    hand_s: float
    idle: HandPose | None
    distractors: tuple[ObjectPose, ...]
    two_hands: bool = False
    levels: tuple[float, float, float] = (0.0, 0.0, 0.0)
    span: tuple[float, float] = (0.0, 1.0)

    @property
    def num_frames(self) -> int:
        return self.stop - self.start + 1


@dataclass(frozen=True)
class VideoPlan:
    """One video: its segments in time order, its length and the seed of its look (background, camera, light)."""

    video_id: str
    split: str
    n_frames: int
    fps: float
    segments: tuple[SegmentPlan, ...]
    render_seed: tuple[int, ...]


def smoothstep(x: float) -> float:
    """``3x^2 - 2x^3`` of ``x`` clipped to [0, 1]."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def static_level(rng: np.random.Generator) -> float:
    """A state level held still, drawn like the level a moving verb shows at a random moment: often at either end,
    else anywhere between (the moving verbs rest at their ends before ``t0`` and after ``t1``)."""
    return smoothstep(rng.uniform(-0.3, 1.3))


def draw_motion(rng: np.random.Generator, verb: str, *, still: bool = True) -> dict[str, Any]:
    """The motion fields of one :class:`SegmentPlan` of ``verb`` (all randomness from ``rng``).

    Args:
        rng: The generator.
        verb: One of :data:`~xmic.synth.datasets.VERBS`.
        still: Draw the states the verb does not move at random (:func:`static_level`); False keeps them at 0
            and the motion over the whole segment (``t0 = 0``, ``t1 = 1``), for the pretraining stills.
    """
    if verb not in VERBS:
        raise ValueError(f"no motion for verb {verb!r}")
    two = bool(rng.random() < 0.5)
    left = bool(rng.random() < 0.5)
    fields: dict[str, Any] = {
        "amp": rng.uniform(0.8, 1.2),
        "sign": 1 if rng.random() < 0.5 else -1,
        "t0": rng.uniform(0.0, 0.3) if still else 0.0,
        "t1": rng.uniform(0.7, 1.0) if still else 1.0,
        "cycles": float(rng.integers(3, 6)),
        "approach": rng.uniform(0.5, 0.9) if two else -math.pi / 2 + rng.uniform(-0.8, 0.8),
        "left": left,
        "two_hands": two,
    }
    levels = [static_level(rng) if still else 0.0 for _ in range(3)]
    span = (0.0, 1.0)
    if verb in STATE_VERBS:
        state, way = STATE_VERBS[verb]
        low, high = (rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)) if still else (0.0, 1.0)
        span = (low, high) if way > 0 else (high, low)
        levels[STATES.index(state)] = 0.0
    fields["levels"], fields["span"] = tuple(levels), span
    return fields


def object_motion(seg: SegmentPlan, p: float) -> ObjectPose:
    """The manipulated object at progress ``p`` in [0, 1] of ``seg``."""
    w = min(max((p - seg.t0) / max(seg.t1 - seg.t0, 1e-6), 0.0), 1.0)
    e, a, rest = smoothstep(w), seg.amp, seg.rest
    lift, depth, gap = seg.levels
    moving = seg.span[0] + (seg.span[1] - seg.span[0]) * e
    verb = seg.verb
    dx = dy = dangle = 0.0
    scale = 1.0
    if verb in STATE_VERBS:
        index = STATES.index(STATE_VERBS[verb][0])
        lift, depth, gap = (moving if i == index else v for i, v in enumerate(seg.levels))
    elif verb == "rotate":
        dangle = seg.sign * 0.8 * math.pi * a * e
    elif verb == "flip":
        dangle = seg.sign * math.pi * e
        dy = -1.2 * rest.r * a * math.sin(math.pi * e)
    elif verb == "shake":
        wave = math.sin(2.0 * math.pi * seg.cycles * w)
        dx = seg.sign * 0.8 * rest.r * a * wave
        dangle = 0.35 * a * wave  # it rocks as it goes
    elif verb == "squeeze":
        scale = 1.0 - SQUEEZE * a * math.sin(math.pi * e)
    else:
        raise ValueError(f"no motion for verb {verb!r}")
    dy -= rest.r * (LIFT * a * lift + DEPTH_RISE * depth)
    r = rest.r * (1.0 + LIFT_GROW * lift) * (1.0 - DEPTH_SHRINK * depth) * scale
    return ObjectPose(rest.noun, rest.cx + dx, rest.cy + dy, r, rest.angle + dangle, rest.sx, rest.sy, GAP * a * gap)


def hand_poses(seg: SegmentPlan, obj: ObjectPose) -> list[HandPose]:
    """The hand(s) holding ``obj``: fingertips on its near part (one hand, on the half on its side when the object
    is in two halves) or on both sides (two hands, turning with the object)."""
    reach = HAND_REACH * seg.hand_s
    ux, uy = math.cos(obj.angle), math.sin(obj.angle)
    if not seg.two_hands:
        phi = seg.approach + 0.5 * (obj.angle - seg.rest.angle)  # the wrist turns half as far as the object
        side = -1.0 if seg.left else 1.0
        ax, ay = obj.cx + side * obj.split * obj.r * ux, obj.cy + side * obj.split * obj.r * uy
        tip_depth = 0.2 * obj.r
        cx = ax - math.cos(phi) * (tip_depth + reach)
        cy = ay - math.sin(phi) * (tip_depth + reach)
        return [HandPose(cx, cy, phi, seg.hand_s, seg.left)]
    # Both hands take the object by the ends of its axis from below, whichever end is which: the axis folded into
    # (-pi/2, pi/2] (an object turned past upright is taken the other way round, as a regrip).
    axis = obj.angle - math.pi * math.floor(obj.angle / math.pi + 0.5)
    ux, uy = math.cos(axis), math.sin(axis)
    hands = []
    for h in (-1.0, 1.0):  # left end / left hand, right end / right hand
        phi = axis + (0.0 if h < 0 else math.pi) + h * seg.approach  # inwards and upwards
        out = (obj.split + 0.5) * obj.r
        tip_x, tip_y = obj.cx + h * out * ux, obj.cy + h * out * uy
        hands.append(HandPose(tip_x - math.cos(phi) * reach, tip_y - math.sin(phi) * reach, phi, seg.hand_s, h < 0))
    return hands


@dataclass(frozen=True)
class FrameState:
    """Everything drawn in one frame, and the segment it belongs to (None in a gap)."""

    objects: tuple[ObjectPose, ...]  # distractors first, the manipulated object last
    target: ObjectPose
    hands: tuple[HandPose, ...]
    segment: SegmentPlan | None


def _away(hands: list[HandPose], shift: float) -> list[HandPose]:
    return [HandPose(h.cx, h.cy + shift, h.angle, h.s, h.left) for h in hands]


def frame_state(video: VideoPlan, frame: int, height: int) -> FrameState:
    """What frame ``frame`` of ``video`` shows.

    Inside a segment the action runs with progress ``(frame - start) / (stop - start)``. In the first half of
    the gap after a segment its scene stays at the end pose while the hands leave downwards; in the second
    half the next segment's scene is shown at its start pose while the hands come back.
    """
    segs = video.segments
    k = next((i for i, s in enumerate(segs) if s.stop >= frame), len(segs))
    if k < len(segs) and frame >= segs[k].start:
        seg = segs[k]
        p = (frame - seg.start) / max(seg.stop - seg.start, 1)
        obj = object_motion(seg, p)
        return FrameState((*seg.distractors, obj), obj, tuple(_idle(seg) + hand_poses(seg, obj)), seg)
    prev_stop = segs[k - 1].stop if k > 0 else -1
    next_start = segs[k].start if k < len(segs) else video.n_frames
    middle = (prev_stop + next_start) / 2.0
    if k == len(segs) or (k > 0 and frame <= middle):
        seg, p = segs[k - 1], 1.0
        q = (frame - prev_stop) / max(middle - prev_stop, 1.0)
    else:
        seg, p = segs[k], 0.0
        q = (next_start - frame) / max(next_start - middle, 1.0)
    obj = object_motion(seg, p)
    hands = _away(hand_poses(seg, obj), HAND_AWAY * height * smoothstep(q))
    return FrameState((*seg.distractors, obj), obj, tuple(_idle(seg) + hands), None)


def _idle(seg: SegmentPlan) -> list[HandPose]:
    return [seg.idle] if seg.idle is not None else []


def _motion_extent(seg: SegmentPlan) -> tuple[float, float, float, float, float]:
    """``(min dx, max dx, min dy, max dy, max split)`` of the object centre (and its gap) over the segment."""
    poses = [object_motion(seg, p) for p in np.linspace(0.0, 1.0, 21)]
    dxs = [o.cx - seg.rest.cx for o in poses]
    dys = [o.cy - seg.rest.cy for o in poses]
    return min(dxs), max(dxs), min(dys), max(dys), max(o.split for o in poses)


def plan_segment(
    spec: DatasetSpec,
    rng: np.random.Generator,
    action_idx: int,
    verb: str,
    noun: str,
    start: int,
    stop: int,
) -> SegmentPlan:
    """Draw the placement and the motion parameters of one action (all randomness from ``rng``)."""
    st = spec.style
    width, height = st.width, st.height
    r = st.object_scale * height * rng.uniform(0.85, 1.15)
    motion = draw_motion(rng, verb)
    two_hands = motion["two_hands"]
    # Two hands hold the object along its axis: it lies roughly across (either way round); one hand: any angle.
    angle = (
        rng.uniform(-0.5, 0.5) + (math.pi if rng.random() < 0.5 else 0.0)
        if two_hands
        else rng.uniform(-math.pi, math.pi)
    )
    seg = SegmentPlan(
        action_idx=action_idx,
        verb=verb,
        noun=noun,
        start=start,
        stop=stop,
        rest=ObjectPose(noun, 0.0, 0.0, r, angle),
        hand_s=st.hand_scale * height * rng.uniform(0.9, 1.1),
        idle=None,
        distractors=(),
        **motion,
    )
    min_dx, max_dx, min_dy, max_dy, max_split = _motion_extent(seg)
    half = (1.3 + max_split) * r + (1.0 * r if two_hands else 0.0)
    # In front of the camera wearer: the action stays in the middle of the frame (and in a centre crop of it).
    x_lo, x_hi = max(half, 0.35 * width) - min_dx, min(width - half, 0.65 * width) - max_dx
    y_lo, y_hi = max(1.2 * r - min_dy, TABLE_TOP * height), 0.72 * height - max_dy  # rest on the table
    cx = rng.uniform(x_lo, x_hi) if x_hi > x_lo else width / 2 - (min_dx + max_dx) / 2
    cy = rng.uniform(y_lo, y_hi) if y_hi > y_lo else height / 2 - (min_dy + max_dy) / 2
    seg = replace(seg, rest=replace(seg.rest, cx=cx, cy=cy))
    idle = None
    if not two_hands and rng.random() < st.idle_hand_prob:
        idle_left = not seg.left
        x = cx + (-1.0 if idle_left else 1.0) * rng.uniform(1.5, 3.0) * r
        idle = HandPose(
            cx=min(max(x, 0.05 * width), 0.95 * width),
            cy=height * rng.uniform(0.92, 1.02),
            angle=-math.pi / 2 + (0.35 if idle_left else -0.35) + rng.uniform(-0.2, 0.2),
            s=seg.hand_s,
            left=idle_left,
        )
    extent = (min_dx - max_split * r, max_dx + max_split * r, min_dy, max_dy)
    return replace(seg, idle=idle, distractors=_distractors(spec, rng, seg, extent))


def _distractors(
    spec: DatasetSpec, rng: np.random.Generator, seg: SegmentPlan, extent: tuple[float, float, float, float]
) -> tuple[ObjectPose, ...]:
    """Static objects of other classes placed away from the action's path (and the hands below it)."""
    st = spec.style
    lo, hi = st.distractors
    count = int(rng.integers(lo, hi + 1))
    others = [n for n in spec.nouns if n != seg.noun]
    r = seg.rest.r
    pad = 2.4 * r + 1.5 * seg.hand_s
    box = (seg.rest.cx + extent[0] - pad, seg.rest.cx + extent[1] + pad, seg.rest.cy + extent[2] - pad, st.height)
    out: list[ObjectPose] = []
    for _ in range(count):
        noun = others[int(rng.integers(len(others)))]
        size = r * rng.uniform(0.85, 1.1)
        for _try in range(20):
            cx = rng.uniform(1.2 * size, st.width - 1.2 * size)
            cy = rng.uniform(0.25 * st.height, 0.8 * st.height)
            inside = box[0] - size < cx < box[1] + size and box[2] - size < cy < box[3]
            clash = any((o.cx - cx) ** 2 + (o.cy - cy) ** 2 < (2.4 * max(o.r, size)) ** 2 for o in out)
            if not inside and not clash:
                out.append(ObjectPose(noun, cx, cy, size, rng.uniform(-math.pi, math.pi)))
                break
    return tuple(out)
