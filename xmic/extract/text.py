"""Class-name prompt embeddings with the frozen CLIP text tower (computed once at extract time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from xmic.cache.schema import PROMPT_TEMPLATES

if TYPE_CHECKING:
    from xmic.extract.encoders import FrozenEncoder


def fill_template(template: str, class_name: str) -> str:
    """``template`` with its "{}" replaced by ``class_name`` (braces in the name are kept literally)."""
    return template.replace("{}", class_name)


def text_embeddings(
    encoder: FrozenEncoder,
    class_names: Sequence[str],
    templates: Sequence[str] = PROMPT_TEMPLATES,
) -> dict[str, np.ndarray]:
    """Embed every class name under every prompt template.

    Args:
        encoder: A CLIP :class:`~xmic.extract.encoders.FrozenEncoder` (it needs a text tower).
        class_names: C class names in label order (already normalised, e.g. "chopping board").
        templates: Prompt templates, each with one "{}" for the class name (default: the paper's Table 7).

    Returns:
        template -> ``(C, D)`` float32 post-projection text embeddings (not normalised), rows in label order.

    Raises:
        ValueError: no class names, an empty name, or a template without "{}".
    """
    names = list(class_names)
    if not names:
        raise ValueError("no class names to embed")
    empty = [i for i, n in enumerate(names) if not str(n).strip()]
    if empty:
        raise ValueError(f"empty class name at label index {empty[0]} (of {len(names)})")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"prompt template {bad[0]!r} has no '{{}}' for the class name")
    prompts = [fill_template(t, n) for t in templates for n in names]
    emb = encoder.encode_texts(prompts).numpy().astype(np.float32, copy=False)
    c = len(names)
    return {t: np.ascontiguousarray(emb[i * c : (i + 1) * c]) for i, t in enumerate(templates)}
