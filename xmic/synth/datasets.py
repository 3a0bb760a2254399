"""The synthetic datasets: class lists (verbs, nouns), raw names in each format, and their visual styles.

"kitchen A" is written as EPIC-KITCHENS-100, "kitchen B" as Ego4D FHO (LTA v2) and "kitchen C" as EGTEA Gaze+.
They share some classes and each has some of its own (:func:`class_split`), and they differ in appearance
(:class:`Style`): background texture and colours, lighting (contrast, brightness, tint), camera motion (steady,
handheld with a pan, head-mounted drift), object size, skin tone, frame size, frame rate and clutter.

Kitchens A and B are the default pair (:data:`DEFAULT_DATASETS`); kitchen C is written on request. Its verbs are
drawn from the ten verbs of :data:`VERBS` only (shared ones plus one verb of A and one of B), because those ten
are the vocabulary of the demo's tiny CLIP (:mod:`xmic.demo.webdata`); its own classes are two new nouns
(colour x shape combinations neither A nor B uses).

A noun is a shape and a colour (``"red cube"``); a verb is a motion pattern over time (:mod:`xmic.synth.motion`).
"""

from __future__ import annotations

from dataclasses import dataclass

from xmic.classnames import normalise_name

RGB = tuple[int, int, int]

#: Object colours (RGB). None of them is close to a skin colour.
COLOURS: dict[str, RGB] = {
    "red": (205, 40, 45),
    "green": (40, 165, 70),
    "blue": (45, 75, 215),
    "yellow": (235, 210, 35),
    "purple": (135, 55, 180),
    "cyan": (35, 190, 205),
}
#: Shapes, each with the Ego4D-style synonym written in parentheses.
SHAPES: dict[str, str] = {"cube": "block", "ball": "sphere", "ring": "hoop", "bar": "stick", "pyramid": "cone"}


@dataclass(frozen=True)
class VerbInfo:
    """Names of one verb in both formats.

    Attributes:
        name: Canonical (prompt) name, also the EPIC ``key``.
        synonyms: Ego4D parenthesised synonyms (``"take_(pick,_grab)"``) and EPIC ``instances``.
        category: EPIC ``category`` column.
    """

    name: str
    synonyms: tuple[str, ...]
    category: str


VERBS: dict[str, VerbInfo] = {
    v.name: v
    for v in (
        VerbInfo("take", ("pick", "grab"), "retrieve"),
        VerbInfo("put", ("place", "leave"), "leave"),
        VerbInfo("push", ("shove", "slide"), "move"),
        VerbInfo("pull", ("drag", "draw"), "move"),
        VerbInfo("rotate", ("turn", "spin"), "rotate"),
        VerbInfo("open", ("split", "separate"), "access"),
        VerbInfo("close", ("join", "shut"), "block"),
        VerbInfo("shake", ("jiggle", "wobble"), "shake"),
        VerbInfo("flip", ("turn-over", "invert"), "rotate"),
        VerbInfo("squeeze", ("press", "compress"), "squeeze"),
    )
}


def noun_parts(noun: str) -> tuple[str, str]:
    """``"red cube"`` -> ``("red", "cube")``."""
    colour, shape = noun.split(" ")
    if colour not in COLOURS or shape not in SHAPES:
        raise ValueError(f"unknown synthetic noun {noun!r}: colours {sorted(COLOURS)}, shapes {sorted(SHAPES)}")
    return colour, shape


def epic_verb_key(verb: str) -> str:
    """EPIC ``key`` of a verb (the name itself, ``-`` for spaces)."""
    return verb.replace(" ", "-")


def epic_noun_key(noun: str) -> str:
    """EPIC ``key`` of a noun: ``"red cube"`` -> ``"cube:red"`` (noun first, modifier after the colon)."""
    colour, shape = noun_parts(noun)
    return f"{shape}:{colour}"


def ego4d_verb_name(verb: str) -> str:
    """Ego4D taxonomy name: ``"take"`` -> ``"take_(pick,_grab)"``."""
    return f"{verb}_({',_'.join(VERBS[verb].synonyms)})"


def ego4d_noun_name(noun: str) -> str:
    """Ego4D taxonomy name: ``"red cube"`` -> ``"red_cube_(red_block)"``."""
    colour, shape = noun_parts(noun)
    return f"{colour}_{shape}_({colour}_{SHAPES[shape]})"


def egtea_verb_name(verb: str) -> str:
    """EGTEA ``verb_idx.txt`` name: capitalised, ``_`` between words (``"take"`` -> ``"Take"``)."""
    return verb.replace(" ", "_").capitalize()


def egtea_noun_name(noun: str) -> str:
    """EGTEA ``noun_idx.txt`` name, as ``Cutting_board``: ``"red cube"`` -> ``"Red_cube"``.

    :func:`xmic.classnames.egtea_prompt` maps it back to the canonical name.
    """
    colour, shape = noun_parts(noun)
    return f"{colour.capitalize()}_{shape}"


_RAW_VERB = {"epic": epic_verb_key, "ego4d": ego4d_verb_name, "egtea": egtea_verb_name}
_RAW_NOUN = {"epic": epic_noun_key, "ego4d": ego4d_noun_name, "egtea": egtea_noun_name}


@dataclass(frozen=True)
class Style:
    """The look of one dataset (its domain).

    Attributes:
        width: Frame width in pixels (even).
        height: Frame height in pixels (even).
        background: ``"tiles"`` (counter tiles under a wall band), ``"grain"`` (blotchy wood-like table) or
            ``"steel"`` (brushed steel counter under a lamp, below a backsplash band).
        bg_base: Main background colour.
        bg_alt: Second background colour (grout lines / wall, or the grain's dark tone).
        tile_px: Tile size or grain scale in pixels.
        contrast: Lighting contrast around mid-grey.
        brightness: Added after the contrast, in 0..255 units.
        tint: Per-channel gain ``(r, g, b)``.
        light_jitter: Per-video brightness change, uniform in ``±light_jitter``.
        skin: Hand colour before lighting.
        sleeve: Colour of the forearm sleeves.
        jitter_px: Camera shake, standard deviation in pixels per frame.
        shake_smooth: 0 = independent shake per frame (handheld), close to 1 = slow drift.
        pan_px: Amplitude of a slow sinusoidal pan in pixels.
        pan_period_s: Period of the pan in seconds.
        object_scale: Object radius as a fraction of the frame height.
        hand_scale: Hand size unit as a fraction of the frame height.
        distractors: ``(min, max)`` static objects of other classes in the scene.
        idle_hand_prob: Chance that the hand not acting rests in view (it is in the hand box then).
        tool: Colour of the tools the hands hold (:data:`xmic.synth.scene.VERB_TOOLS`): each kitchen has its own.
        tool_width: Thickness of the tools' handles and heads, relative to the default.
    """

    width: int
    height: int
    background: str
    bg_base: RGB
    bg_alt: RGB
    tile_px: int
    contrast: float
    brightness: float
    tint: tuple[float, float, float]
    light_jitter: float
    skin: RGB
    sleeve: RGB
    jitter_px: float
    shake_smooth: float
    pan_px: float
    pan_period_s: float
    object_scale: float
    hand_scale: float
    distractors: tuple[int, int]
    idle_hand_prob: float
    tool: RGB = (190, 196, 206)
    tool_width: float = 1.0


@dataclass(frozen=True)
class DatasetSpec:
    """One synthetic dataset.

    Attributes:
        name: Reader name and folder: ``"epic"``, ``"ego4d"`` or ``"egtea"``.
        title: Human name (``"kitchen A"``).
        verbs: Canonical verb names in label order.
        nouns: Canonical noun names (``"red cube"``) in label order.
        fps: Frame rate of the annotations and of the MP4 files.
        style: The look.
        splits: ``(train split name, evaluation split name)`` as the reader is asked for them
            (``read_annotations(name, root, split)``).
        split_roles: Keys of the manifest's ``splits`` entry for the two splits (``("train", "val")``, EGTEA
            ``("train", "test")``).
        format_name: The real dataset format the files follow.
    """

    name: str
    title: str
    verbs: tuple[str, ...]
    nouns: tuple[str, ...]
    fps: float
    style: Style
    splits: tuple[str, str]
    split_roles: tuple[str, str] = ("train", "val")
    format_name: str = ""

    def raw_verbs(self) -> list[str]:
        """Verb names as spelled in this dataset's class file."""
        return [_RAW_VERB[self.name](v) for v in self.verbs]

    def raw_nouns(self) -> list[str]:
        """Noun names as spelled in this dataset's class file."""
        return [_RAW_NOUN[self.name](n) for n in self.nouns]


SHARED_VERBS = ("take", "put", "push", "rotate", "open", "shake")
SHARED_NOUNS = ("red cube", "blue ball", "green ring", "yellow bar", "purple pyramid")

KITCHEN_A = DatasetSpec(
    name="epic",
    title="kitchen A",
    verbs=(*SHARED_VERBS, "flip", "close"),
    nouns=(*SHARED_NOUNS, "red ball", "blue cube", "green pyramid", "yellow ring", "purple bar"),
    fps=50.0,  # extension-style ids PXX_1YY: the EPIC reader reads their frame numbers at 50 fps
    style=Style(
        width=192,
        height=108,
        background="tiles",
        bg_base=(214, 204, 178),
        bg_alt=(150, 162, 172),
        tile_px=24,
        contrast=1.1,
        brightness=12.0,
        tint=(1.04, 1.0, 0.93),
        light_jitter=6.0,
        skin=(226, 168, 132),
        sleeve=(40, 52, 96),
        jitter_px=0.4,
        shake_smooth=0.9,
        pan_px=0.0,
        pan_period_s=8.0,
        object_scale=0.15,
        hand_scale=0.13,
        distractors=(1, 2),
        idle_hand_prob=0.2,
    ),
    splits=("train", "validation"),
    format_name="EPIC-KITCHENS-100",
)

KITCHEN_B = DatasetSpec(
    name="ego4d",
    title="kitchen B",
    verbs=(*SHARED_VERBS, "pull", "squeeze"),
    nouns=(*SHARED_NOUNS, "cyan cube", "red ring", "blue bar", "green ball", "yellow pyramid"),
    fps=30.0,
    style=Style(
        width=160,
        height=120,
        background="grain",
        bg_base=(72, 92, 86),
        bg_alt=(38, 52, 58),
        tile_px=10,
        contrast=0.8,
        brightness=-18.0,
        tint=(0.9, 0.98, 1.1),
        light_jitter=14.0,
        skin=(186, 128, 96),
        sleeve=(120, 36, 40),
        tool=(132, 84, 44),
        tool_width=1.5,
        jitter_px=1.5,
        shake_smooth=0.0,
        pan_px=7.0,
        pan_period_s=5.0,
        object_scale=0.15,
        hand_scale=0.13,
        distractors=(1, 3),
        idle_hand_prob=0.35,
    ),
    splits=("train", "val"),
    format_name="Ego4D FHO LTA v2",
)

KITCHEN_C = DatasetSpec(
    name="egtea",
    title="kitchen C",
    verbs=("take", "put", "open", "push", "close", "squeeze"),  # 4 shared, close (as A), squeeze (as B)
    nouns=("red cube", "blue ball", "green ring", "yellow bar", "cyan ring", "purple ball"),  # 4 shared, 2 own
    fps=24.0,  # the EGTEA reader reads clip frame numbers at 24 fps
    style=Style(
        width=128,  # 4:3 like EGTEA's 1280x960
        height=96,
        background="steel",
        bg_base=(172, 176, 182),
        bg_alt=(104, 80, 60),
        tile_px=6,
        contrast=1.3,
        brightness=2.0,
        tint=(0.93, 1.07, 0.88),  # greenish fluorescent light
        light_jitter=10.0,
        skin=(208, 146, 114),
        sleeve=(92, 104, 40),
        tool=(40, 40, 44),
        tool_width=1.25,
        jitter_px=0.9,
        shake_smooth=0.75,  # head-mounted: a quick wander, between A's drift and B's per-frame shake
        pan_px=3.0,
        pan_period_s=3.0,
        object_scale=0.17,  # closer to the hands than in A and B
        hand_scale=0.15,
        distractors=(0, 2),
        idle_hand_prob=0.5,
    ),
    splits=("train", "test"),
    split_roles=("train", "test"),
    format_name="EGTEA Gaze+",
)

#: Every synthetic dataset. A dataset's position here is part of its seed (epic 0, ego4d 1, egtea 2), so a
#: dataset's files do not depend on which others are generated with it.
ALL_DATASET_SPECS: tuple[DatasetSpec, ...] = (KITCHEN_A, KITCHEN_B, KITCHEN_C)
#: The datasets :func:`xmic.synth.generate.generate` and ``xmic synth`` write by default.
DEFAULT_DATASETS: tuple[str, ...] = ("epic", "ego4d")
#: The default pair (kitchens A and B), at their seed positions 0 and 1.
DATASET_SPECS: tuple[DatasetSpec, ...] = tuple(s for s in ALL_DATASET_SPECS if s.name in DEFAULT_DATASETS)
DATASET_NAMES: tuple[str, ...] = tuple(s.name for s in ALL_DATASET_SPECS)


def dataset_index(spec: DatasetSpec) -> int:
    """Position of ``spec`` in :data:`ALL_DATASET_SPECS` (its seed index)."""
    return DATASET_NAMES.index(spec.name)


def specs_for(names: str | tuple[str, ...] | list[str]) -> tuple[DatasetSpec, ...]:
    """The specs of ``names`` in :data:`ALL_DATASET_SPECS` order, without repeats.

    Raises:
        ValueError: An unknown name (the message lists the known ones), or no name at all.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in DATASET_NAMES]
    if unknown:
        raise ValueError(f"unknown synthetic dataset(s) {', '.join(map(repr, unknown))}; choose from {DATASET_NAMES}")
    if not names:
        raise ValueError(f"choose at least one synthetic dataset of {DATASET_NAMES}")
    return tuple(s for s in ALL_DATASET_SPECS if s.name in names)


def _names(spec: DatasetSpec, kind: str) -> list[str]:
    return list(spec.verbs if kind == "verb" else spec.nouns)


def class_split(*specs: DatasetSpec) -> dict[str, dict[str, list[str]]]:
    """Shared and novel classes of datasets, compared by :func:`normalise_name` of the prompt names.

    A class is shared when every dataset has it, and novel in a dataset when no other of ``specs`` has it (so
    with three datasets a class of two of them is neither). For two datasets this is the usual split: shared
    classes plus each side's own. With a single dataset both lists hold all of its classes.

    Returns:
        ``{"shared": {"verb": [...], "noun": [...]}, "novel_<name>": {...} for each dataset}``; shared names
        in the first dataset's label order, novel names in their own dataset's label order.
    """
    if not specs:
        raise ValueError("class_split needs at least one dataset")
    out: dict[str, dict[str, list[str]]] = {"shared": {}, **{f"novel_{s.name}": {} for s in specs}}
    for kind in ("verb", "noun"):
        keys = [{normalise_name(n) for n in _names(s, kind)} for s in specs]
        out["shared"][kind] = [n for n in _names(specs[0], kind) if all(normalise_name(n) in k for k in keys)]
        for i, spec in enumerate(specs):
            others = set().union(*(k for j, k in enumerate(keys) if j != i))
            out[f"novel_{spec.name}"][kind] = [n for n in _names(spec, kind) if normalise_name(n) not in others]
    return out
