"""What happens in a synthetic video: segment plans (verb, noun, timing, placement) and the poses they give.

A verb is a motion pattern of the manipulated object over the segment's progress ``p`` in [0, 1]
(:func:`object_motion`): take (up), put (down), push (sideways), pull (towards the camera: down and larger),
rotate (spins), open / close (the object splits in two halves that move apart / come together), shake
(fast small oscillation), flip (turns over: squashes vertically through zero and mirrors), squeeze (pressed
from both sides). The hands follow the object (:func:`hand_poses`). Between segments the hands leave the
frame downwards and come back for the next action (:func:`frame_state`).

Coordinates are scene pixels (x right, y down) before the camera offset; angles are radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from xmic.synth.datasets import VERBS, DatasetSpec

#: Where the hands go between actions: this fraction of the frame height below their working place.
HAND_AWAY = 0.65
#: Objects rest below this fraction of the frame height (above it is the wall).
TABLE_TOP = 0.32
#: Palm centre to fingertip, in hand units.
HAND_REACH = 1.3


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
        rest: Object pose at rest (before any motion).
        amp: Motion amplitude factor.
        sign: Motion direction (+1 / -1) where the verb has one.
        t0: Progress at which the motion starts.
        t1: Progress at which it ends.
        cycles: Oscillations of a shake.
        approach: Finger direction of the acting hand (one-hand verbs) or the tilt of both (two-hand verbs).
        left: The acting hand is the left hand (one-hand verbs).
        hand_s: Hand size unit in pixels.
        idle: The other hand resting in view, or None.
        distractors: Static objects of other classes.
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


def object_motion(seg: SegmentPlan, p: float) -> ObjectPose:
    """The manipulated object at progress ``p`` in [0, 1] of ``seg``."""
    w = min(max((p - seg.t0) / (seg.t1 - seg.t0), 0.0), 1.0)
    e, a, r, rest = smoothstep(w), seg.amp, seg.rest.r, seg.rest
    dx = dy = dangle = split = 0.0
    sx = sy = 1.0
    verb = seg.verb
    if verb == "take":
        dy = -2.2 * r * a * e
    elif verb == "put":
        dy = -2.2 * r * a * (1.0 - e)
    elif verb == "push":
        dx = seg.sign * 3.0 * r * a * e
    elif verb == "pull":
        dy = 1.2 * r * a * e
        sx = sy = 1.0 + 0.35 * a * e
    elif verb == "rotate":
        dangle = seg.sign * math.pi * a * e
    elif verb == "open":
        split = 0.75 * a * e
    elif verb == "close":
        split = 0.75 * a * (1.0 - e)
    elif verb == "shake":
        dx = seg.sign * 0.45 * r * a * math.sin(2.0 * math.pi * seg.cycles * w)
    elif verb == "flip":
        sy = math.cos(math.pi * e)
        dy = -0.9 * r * a * math.sin(math.pi * e)
    elif verb == "squeeze":
        bump = math.sin(math.pi * e)
        sx, sy = 1.0 - 0.45 * a * bump, 1.0 + 0.12 * a * bump
    else:
        raise ValueError(f"no motion for verb {verb!r}")
    return replace(rest, cx=rest.cx + dx, cy=rest.cy + dy, angle=rest.angle + dangle, sx=sx, sy=sy, split=split)


def hand_poses(seg: SegmentPlan, obj: ObjectPose) -> list[HandPose]:
    """The acting hand(s) holding ``obj``: fingertips over the object's near part."""
    reach = HAND_REACH * seg.hand_s
    if VERBS[seg.verb].hands == 1:
        phi = seg.approach  # the arm stays put; a rotated object turns under the fingers
        tip_depth = 0.2 * obj.r * max(obj.sx, 1.0)
        cx = obj.cx - math.cos(phi) * (tip_depth + reach)
        cy = obj.cy - math.sin(phi) * (tip_depth + reach)
        return [HandPose(cx, cy, phi, seg.hand_s, seg.left)]
    ux, uy = math.cos(obj.angle), math.sin(obj.angle)
    hands = []
    for h in (-1.0, 1.0):  # left half / left hand, right half / right hand
        phi = obj.angle + (0.0 if h < 0 else math.pi) + h * seg.approach  # inwards and upwards
        out = (obj.split + 0.5 * obj.sx) * obj.r
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
    return [replace(h, cy=h.cy + shift) for h in hands]


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


def _motion_extent(seg: SegmentPlan) -> tuple[float, float, float, float]:
    """``(min dx, max dx, min dy, max dy)`` of the object centre over the segment, plus its largest radius."""
    poses = [object_motion(seg, p) for p in np.linspace(0.0, 1.0, 21)]
    dxs = [o.cx - seg.rest.cx for o in poses]
    dys = [o.cy - seg.rest.cy for o in poses]
    return min(dxs), max(dxs), min(dys), max(dys)


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
    two_hands = VERBS[verb].hands == 2
    angle = rng.uniform(-0.3, 0.3) if two_hands else rng.uniform(-math.pi, math.pi)
    sign = 1 if rng.random() < 0.5 else -1
    left = bool(rng.random() < 0.3)
    if two_hands:
        approach = rng.uniform(0.5, 0.9)
    elif verb == "push":
        left = sign > 0
        approach = -rng.uniform(0.3, 0.7) if sign > 0 else math.pi + rng.uniform(0.3, 0.7)
    else:
        tilt = rng.uniform(0.15, 0.7)
        approach = -math.pi / 2 + (tilt if left else -tilt)
    seg = SegmentPlan(
        action_idx=action_idx,
        verb=verb,
        noun=noun,
        start=start,
        stop=stop,
        rest=ObjectPose(noun, 0.0, 0.0, r, angle),
        amp=rng.uniform(0.8, 1.2),
        sign=sign,
        t0=rng.uniform(0.05, 0.25),
        t1=rng.uniform(0.75, 0.95),
        cycles=float(rng.integers(3, 6)),
        approach=approach,
        left=left,
        hand_s=st.hand_scale * height * rng.uniform(0.9, 1.1),
        idle=None,
        distractors=(),
    )
    min_dx, max_dx, min_dy, max_dy = _motion_extent(seg)
    half = 1.3 * r if not two_hands else 2.3 * r
    x_lo, x_hi = half - min_dx, width - half - max_dx
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
    return replace(seg, idle=idle, distractors=_distractors(spec, rng, seg, (min_dx, max_dx, min_dy, max_dy)))


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
