"""Whether a table row can run on the store's dataset groups, and with which TrainConfig overrides.

:func:`resolve_row` turns a :class:`~xmic.evaluate.table_specs.RowSpec` into overrides (the pinned encoders,
DINOv2 as the second encoder, the text encoder's weights for the prompt learners) or into the reason it is
"not run" (Vita-CLIP, LaViLa, missing features, prompts or weights, groups without hand boxes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xmic.evaluate.table_specs import DEFAULT_CLIP, RowSpec

PROMPT_LEARNERS = ("coop", "cocoop", "a5", "vita-clip")


def _clip_encoders(spec: Any) -> list[str]:
    from xmic.registry import text_encoders

    return text_encoders(spec.encoders)


def _weights_hint(encoder: str) -> str:
    """Where the weights of a LaViLa entry come from (its checkpoint is not on the Hugging Face hub)."""
    from xmic.registry import ENCODERS, LAVILA_ZOO
    from xmic.weights import lavila_checkpoint_name

    spec = ENCODERS.get(encoder)
    if spec is None or spec.family != "lavila" or spec.model_id.startswith("xmic-demo/"):
        return ""
    return f" --model-dir MODEL_DIR, MODEL_DIR holding {lavila_checkpoint_name(spec)} from {LAVILA_ZOO}"


def resolve_row(
    row: RowSpec, settings: Any, readers: list[Any], no_hands: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], str | None]:
    """The row's TrainConfig overrides (method included), or why it cannot run on these dataset groups.

    Args:
        row: the run configuration.
        settings: the rebuild's settings (``model_dir`` for the prompt learners' text encoder, ``allow_no_hands``).
        readers: :class:`~xmic.cache.reader.StoreReader` of every group the table trains or evaluates on.
        no_hands: group -> why it has no usable hand boxes (:func:`~xmic.cache.hand_info.no_hands_reason`);
            X-MIC rows refuse such groups unless ``settings.allow_no_hands``.
    """
    specs = [r.spec for r in readers]
    overrides: dict[str, Any] = {"method": row.method, **row.overrides}
    if row.unavailable:
        return overrides, row.unavailable
    if row.method == "xmic" and no_hands and not settings.allow_no_hands:
        return overrides, (
            "X-MIC conditions on hand crops: "
            + "; ".join(no_hands.values())
            + ". Or pass --allow-no-hands (make ALLOW_NO_HANDS=1) to run it on the full frame, marked in the table"
        )
    groups = ", ".join(s.dataset for s in specs)
    encoder = settings.backbones.get(row.encoder, row.encoder) if row.encoder is not None else None
    default_clip = settings.backbones.get(DEFAULT_CLIP, DEFAULT_CLIP)
    if encoder is not None:
        if not all(encoder in s.encoders for s in specs):
            have = ", ".join(sorted(specs[0].encoders))
            return overrides, (
                f"needs {encoder} features in every dataset group ({groups}); the store has {have}: extract "
                f"them with `xmic extract ... --extra-encoder {encoder}`{_weights_hint(encoder)}"
            )
        overrides["encoder"] = encoder
        if row.method == "xmic":
            overrides["second_encoder"] = encoder  # X-MIC without DINO: the backbone conditions itself
    elif all(default_clip in s.encoders for s in specs):
        overrides["encoder"] = default_clip
    if row.needs_dino:
        common = set.intersection(*({n for n, e in s.encoders.items() if e.family == "dinov2"} for s in specs))
        if not common:
            have = ", ".join(sorted(specs[0].encoders))
            fix = (
                "build the demo with the tiny demo-dinov2, `xmic demo --dino --out DIR`, and pass --cache DIR/cache"
                if settings.demo
                else "extract with `xmic extract ... --second-encoder dinov2-vitb14`"
            )
            return overrides, f"needs DINOv2 features in every dataset group; the store has {have}: {fix}"
        overrides["second_encoder"] = sorted(common)[0]
    clip = overrides.get("encoder") or next(iter(_clip_encoders(specs[0])), None)
    if clip is None:
        return overrides, f"needs a CLIP encoder, and the store groups ({groups}) hold none"
    template = overrides.get("template", "{}")
    lacking = [r.dataset for r in readers if template not in r.text_templates(clip, "noun")]
    if lacking:
        return overrides, (
            f"the store holds no {clip} text embeddings for the prompt {template!r} in {', '.join(lacking)}; "
            "re-run `xmic extract` on those groups (it adds the missing prompts and keeps the features)"
        )
    if row.method == "vita-clip":
        from xmic.cache.errors import StoreError

        for reader in readers:
            try:
                reader.frames_encoder(clip)
            except StoreError as exc:
                return overrides, f"trains on the frames (Vita-CLIP prompts inside the visual encoder): {exc}"
    if row.method in PROMPT_LEARNERS:
        from xmic.weights import ModelNotFoundError, find_model_dir

        entry = specs[0].encoders[clip]
        source = entry.source
        if settings.model_dir is None and source and (Path(source) / "config.json").is_file():
            overrides["text_model_dir"] = source  # the weights the store was extracted with, still in place
            return overrides, None
        try:
            overrides["text_model_dir"] = str(find_model_dir(entry, settings.model_dir))
        except ModelNotFoundError as exc:
            first = str(exc).splitlines()[0]
            return overrides, f"runs the frozen CLIP text encoder and needs its local weights (--model-dir): {first}"
    return overrides, None
