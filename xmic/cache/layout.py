"""Where each array of :mod:`xmic.cache.schema` lives in the tree, and how a stored spec is read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xmic.cache.backend import Backend, Session
from xmic.cache.errors import StoreError
from xmic.cache.schema import StoreSpec, num_chunks, template_key

#: Attribute of a dataset group that holds its StoreSpec as JSON.
SPEC_ATTR = "xmic"
#: Attribute of a dataset group: JSON list of the annotation rows ``--skip-bad`` left out, with their reasons.
SKIPPED_ATTR = "xmic_skipped"
#: Attribute of the root group: layout version of the store.
LAYOUT_ATTR = "xmic_store_layout"
LAYOUT_VERSION = 1
TEXT_GROUP = "text"
#: Attribute of a text array holding its prompt template.
TEMPLATE_ATTR = "template"
#: StoreSpec fields that describe how, not what, was extracted: they may differ when a store is resumed.
RESUME_IGNORED_FIELDS = ("config", "xmic_version")


def segments_key(dataset: str, column: str = "") -> str:
    return f"{dataset}/segments/{column}" if column else f"{dataset}/segments"


def vocab_key(dataset: str, target: str) -> str:
    return f"{dataset}/vocab/{target}"


def features_key(dataset: str, encoder: str, view: str) -> str:
    return f"{dataset}/features/{encoder}/{view}"


def frames_key(dataset: str, encoder: str, view: str = "full") -> str:
    """The frame cache of ``encoder`` (:mod:`xmic.cache.frames`): ``<dataset>/frames/<encoder>/full``."""
    return f"{dataset}/frames/{encoder}/{view}"


def failed_group(dataset: str) -> str:
    return f"{dataset}/failed"


def failed_key(dataset: str, chunk: int) -> str:
    """One small string array of JSON records per chunk, so concurrent writers never share an object."""
    return f"{dataset}/failed/{chunk:06d}"


def text_key(encoder: str, dataset: str, target: str, template: str) -> str:
    return f"{TEXT_GROUP}/{encoder}/{dataset}/{target}/{template_key(template)}"


def spec_fields(spec: StoreSpec, *, for_resume: bool = False) -> dict[str, Any]:
    """The spec as a plain dict with encoders reduced to ``EncoderSpec.identity()`` (the load path dropped).

    With ``for_resume`` the fields in :data:`RESUME_IGNORED_FIELDS` are left out as well.
    """
    d = json.loads(spec.to_json())
    d["encoders"] = {name: enc.identity() for name, enc in spec.encoders.items()}
    if for_resume:
        for key in RESUME_IGNORED_FIELDS:
            d.pop(key, None)
    return d


def read_spec(session: Session, dataset: str, where: str) -> StoreSpec:
    """The StoreSpec of group ``dataset``; StoreError naming ``where`` when absent or unparsable."""
    if not session.is_group(dataset):
        raise StoreError(f"{where} has no dataset group {dataset!r}")
    text = session.get_attrs(dataset).get(SPEC_ATTR)
    if text is None:
        raise StoreError(f"{where}: group {dataset!r} has no {SPEC_ATTR!r} spec attribute (creation interrupted?)")
    try:
        return StoreSpec.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"{where}: the spec attribute of group {dataset!r} does not parse: {exc}") from None


def read_skipped(session: Session, dataset: str) -> list[dict[str, Any]]:
    """The skipped-row records of group ``dataset`` (``status``, ``file``, ``where``, ``reason``); [] when none."""
    text = session.get_attrs(dataset).get(SKIPPED_ATTR)
    return list(json.loads(text)) if text else []


def dataset_groups(session: Session) -> list[str]:
    """Names of the root's groups that carry a spec (every group but ``text/`` normally)."""
    groups, _ = session.children("")
    return [g for g in groups if g != TEXT_GROUP and SPEC_ATTR in session.get_attrs(g)]


class GroupView:
    """What the reader and the writer of one dataset group both know: the store, the spec, the row count."""

    _backend: Backend
    spec: StoreSpec
    n_rows: int

    @property
    def path(self) -> Path:
        return self._backend.path

    @property
    def fmt(self) -> str:
        return self._backend.fmt

    @property
    def n_chunks(self) -> int:
        return num_chunks(self.n_rows, self.spec.chunk_rows)
