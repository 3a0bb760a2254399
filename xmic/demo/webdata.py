"""Third-person "web" image–caption pairs for pretraining the demo's tiny CLIP.

Real CLIP learnt from photos on the web: objects shown plainly and centred, captions that name them, and next
to no egocentric footage. These pairs imitate that: each image shows one object of the synthetic world
(:mod:`xmic.synth`) on a plain neutral background, large and centred, with no hands, no clutter and no camera
motion. Three kinds:

- noun images: one motion-free object, caption its name ("red cube", or a prompt template around it);
- verb images: a stroboscopic still of the verb's motion (:func:`xmic.synth.motion.object_motion` drawn at
  several moments, fainter for earlier ones, the hands at the last, holding the verb's tool,
  :data:`xmic.synth.scene.VERB_TOOLS`, in a colour of no kitchen), caption the verb ("rotate"), sometimes with the
  object ("rotate red cube");
- state images: one moment of an action, the hands holding the object, captioned with the state it is in
  ("far red cube in halves", :func:`state_caption`), so that the image features tell a far object from a near
  one and a whole one from one in halves, the states the synthetic verbs move through.

Egocentric frames of the demo differ in everything the adapters must bridge: textured backgrounds, lighting,
small objects among distractors, hands, a moving camera and, for verbs, a single instant per frame instead of
the whole motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from xmic.cache.schema import PROMPT_TEMPLATES
from xmic.synth.datasets import COLOURS, SHAPES, VERBS
from xmic.synth.motion import ObjectPose, SegmentPlan, draw_motion, hand_poses, object_motion
from xmic.synth.scene import draw_hand, draw_object, draw_sleeve, draw_tool

#: Plain backgrounds of the "web" photos: studio whites and greys, a few darker and coloured backdrops.
BACKGROUNDS = (
    (236, 236, 236), (222, 222, 218), (245, 242, 235), (210, 214, 220), (228, 224, 216),
    (150, 150, 150), (96, 96, 100), (60, 64, 66), (120, 100, 80), (70, 90, 85), (180, 170, 150),
)  # fmt: skip
SKIN = (214, 160, 128)
SLEEVE = (70, 70, 80)
#: Colours of the tools in the "web" stills: none of the kitchens' own (their tools differ in colour and
#: thickness, :attr:`xmic.synth.datasets.Style.tool`), so the tool's shape is what names the verb.
WEB_TOOLS = ((96, 96, 96), (228, 228, 228), (180, 130, 80), (60, 70, 160), (200, 60, 60))
#: The tools of the stills are drawn this much larger than in the hand, to stay legible at 64 px.
WEB_TOOL_SCALE = 3.0
#: Verbs whose moments the state images show (any of them: every segment has every state).
VERBS_WITH_STATES = ("push", "pull", "open", "close")
#: Moments of a verb drawn into one still (progress in [0, 1]) and their opacity.
STROBE = ((0.0, 0.15), (0.25, 0.3), (0.5, 0.45), (0.75, 0.65), (1.0, 1.0))


@dataclass
class CaptionPairs:
    """Rendered pairs.

    Attributes:
        images: ``(N, S, S, 3)`` uint8 RGB.
        captions: N caption strings.
        kinds: N of ``"noun"`` / ``"verb"``.
        classes: N class names (the noun or verb each image shows).
    """

    images: np.ndarray
    captions: list[str]
    kinds: list[str]
    classes: list[str]


def all_nouns() -> list[str]:
    """Every colour x shape of the synthetic world ("red cube", ...), not only the demo datasets' classes."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def all_verbs() -> list[str]:
    return list(VERBS)


def caption_words() -> list[str]:
    """Words the tiny CLIP's tokenizer should hold as single tokens: classes and prompt templates."""
    words = set(COLOURS) | set(SHAPES) | set(VERBS) | {"far", "in", "halves"}
    for template in PROMPT_TEMPLATES:
        words.update(template.replace("{}", " ").lower().split())
    return sorted(words)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = np.array(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], dtype=np.float32)
    shade = np.linspace(-6.0, 6.0, size, dtype=np.float32)[:, None, None] * rng.uniform(-1.0, 1.0)
    img = base + shade + rng.normal(0.0, 2.0, size=(size, size, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _template(rng: np.random.Generator, name: str, p_template: float) -> str:
    if rng.random() >= p_template:
        return name
    return PROMPT_TEMPLATES[int(rng.integers(len(PROMPT_TEMPLATES)))].replace("{}", name)


def _segment(rng: np.random.Generator, verb: str, noun: str, size: int) -> SegmentPlan:
    """A verb's whole motion around the image centre, scaled so that it stays in view; no other state is set. The
    object is small against the image, so that the moments of the motion stand apart."""
    r = size * rng.uniform(0.07, 0.11)
    motion = draw_motion(rng, verb, still=False)
    angle = rng.uniform(-0.3, 0.3) if motion["two_hands"] else rng.uniform(-math.pi, math.pi)
    seg = SegmentPlan(
        action_idx=0, verb=verb, noun=noun, start=0, stop=1, rest=ObjectPose(noun, 0.0, 0.0, r, angle),
        hand_s=r * rng.uniform(0.8, 0.95), idle=None, distractors=(), **motion,
    )  # fmt: skip
    xs, ys = zip(*((o.cx, o.cy) for o in (object_motion(seg, p) for p in np.linspace(0, 1, 9))), strict=True)
    cx = size / 2 - (min(xs) + max(xs)) / 2 + rng.uniform(-0.05, 0.05) * size
    cy = size / 2 - (min(ys) + max(ys)) / 2 + rng.uniform(-0.05, 0.05) * size
    return replace(seg, rest=ObjectPose(noun, cx, cy, r, angle))


def _light(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Photographic variation: contrast, brightness and a colour cast, ``(S, S, 3)`` uint8 in and out."""
    contrast, bright = rng.uniform(0.7, 1.2), rng.uniform(-35.0, 20.0)
    tint = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    out = ((img.astype(np.float32) - 128.0) * contrast + 128.0 + bright) * tint
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_noun(rng: np.random.Generator, noun: str, size: int) -> np.ndarray:
    """One motion-free object, roughly centred, on a plain background: ``(size, size, 3)`` uint8."""
    img = _background(rng, size)
    r = size * rng.uniform(0.1, 0.3)
    cx, cy = size * rng.uniform(0.35, 0.65), size * rng.uniform(0.35, 0.65)
    draw_object(img, ObjectPose(noun, cx, cy, r, rng.uniform(-math.pi, math.pi)))
    return _light(rng, img)


def render_verb(rng: np.random.Generator, verb: str, noun: str, size: int) -> np.ndarray:
    """A stroboscopic still of ``verb`` done to ``noun``: earlier moments fainter, hands at the last one."""
    seg = _segment(rng, verb, noun, size)
    base = _background(rng, size)
    out = base.astype(np.float32)
    for p, alpha in STROBE:
        layer = base.copy()
        obj = object_motion(seg, p)
        draw_object(layer, obj)
        if p == STROBE[-1][0]:
            for hand in hand_poses(seg, obj):
                draw_sleeve(layer, hand, np.array(SLEEVE, np.uint8))
            hands = hand_poses(seg, obj)
            for hand in hands:
                draw_hand(layer, hand, np.array(SKIN, np.uint8))
            colour = np.array(WEB_TOOLS[int(rng.integers(len(WEB_TOOLS)))], np.uint8)
            big = replace(hands[-1], s=hands[-1].s * WEB_TOOL_SCALE)
            draw_tool(layer, big, verb, colour, width=float(rng.uniform(0.8, 1.6)))
        changed = (layer != base).any(axis=-1, keepdims=True)
        out = np.where(changed, (1 - alpha) * out + alpha * layer, out)
    return _light(rng, np.clip(np.rint(out), 0, 255).astype(np.uint8))


def state_caption(noun: str, obj: ObjectPose, rest_r: float) -> str:
    """The caption of a state image: the noun, "far" when the object is well away (small against the hands) and
    "in halves" when its halves are apart."""
    far = "far " if obj.r < 0.8 * rest_r else ""
    halves = " in halves" if obj.split > 0.4 else ""
    return f"{far}{noun}{halves}"


def render_state(rng: np.random.Generator, noun: str, size: int) -> tuple[np.ndarray, str]:
    """One moment of a random action on ``noun`` held by the hands, on a plain background, and its caption
    (:func:`state_caption`): near or far, whole or in halves, at any angle."""
    verb = VERBS_WITH_STATES[int(rng.integers(len(VERBS_WITH_STATES)))]
    r = size * rng.uniform(0.1, 0.16)
    motion = draw_motion(rng, verb)
    angle = rng.uniform(-0.5, 0.5) if motion["two_hands"] else rng.uniform(-math.pi, math.pi)
    seg = SegmentPlan(
        action_idx=0, verb=verb, noun=noun, start=0, stop=1, rest=ObjectPose(noun, 0.0, 0.0, r, angle),
        hand_s=r * rng.uniform(0.8, 0.95), idle=None, distractors=(), **motion,
    )  # fmt: skip
    obj = object_motion(seg, rng.uniform(0.0, 1.0))
    cx = size * rng.uniform(0.4, 0.6) - (obj.cx - seg.rest.cx)
    cy = size * rng.uniform(0.35, 0.5) - (obj.cy - seg.rest.cy)
    seg = replace(seg, rest=replace(seg.rest, cx=cx, cy=cy))
    obj = replace(obj, cx=obj.cx + cx, cy=obj.cy + cy)
    img = _background(rng, size)
    draw_object(img, obj)
    hands = hand_poses(seg, obj)
    for hand in hands:
        draw_sleeve(img, hand, np.array(SLEEVE, np.uint8))
    for hand in hands:
        draw_hand(img, hand, np.array(SKIN, np.uint8))
    return _light(rng, img), state_caption(noun, obj, r)


def render_pairs(
    n: int,
    *,
    size: int = 64,
    seed: int = 0,
    verb_fraction: float = 0.4,
    state_fraction: float = 0.25,
    p_template: float = 0.3,
    p_verb_noun: float = 0.3,
) -> CaptionPairs:
    """Render ``n`` image–caption pairs, classes drawn evenly from :func:`all_nouns` / :func:`all_verbs`.

    Args:
        n: Number of pairs.
        size: Square image side in pixels.
        seed: Seed of everything drawn.
        verb_fraction: Share of verb images (stroboscopic stills of a whole motion).
        state_fraction: Share of state images (one moment of an action, hands holding the object; kind
            ``"state"``, class the noun, caption :func:`state_caption`).
        p_template: Chance that a noun or verb caption is a prompt template around the class name.
        p_verb_noun: Chance that a verb caption also names the object ("rotate red cube").

    Returns:
        The :class:`CaptionPairs`.
    """
    rng = np.random.default_rng([seed, 7])
    nouns, verbs = all_nouns(), all_verbs()
    n_verb, n_state = round(n * verb_fraction), round(n * state_fraction)
    kinds = ["verb"] * n_verb + ["state"] * n_state + ["noun"] * (n - n_verb - n_state)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions, classes = [], []
    for i, kind in enumerate(kinds):
        noun = nouns[int(rng.integers(len(nouns)))]
        if kind == "noun":
            images[i] = render_noun(rng, noun, size)
            classes.append(noun)
            captions.append(_template(rng, noun, p_template))
        elif kind == "state":
            images[i], caption = render_state(rng, noun, size)
            classes.append(noun)
            captions.append(caption)
        else:
            verb = verbs[i % len(verbs)]
            images[i] = render_verb(rng, verb, noun, size)
            classes.append(verb)
            name = f"{verb} {noun}" if rng.random() < p_verb_noun else verb
            captions.append(_template(rng, name, p_template))
    return CaptionPairs(images, captions, kinds, classes)
