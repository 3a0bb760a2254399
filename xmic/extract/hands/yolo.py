"""``--hands yolo``: an ultralytics YOLO detector from a weights file the user gives.

The detector is expected to find hands (and, if it was trained for it, the objects they hold); the box of
a frame is the union of its detections whose class is in ``classes`` (all classes when None) and whose
confidence is at least ``conf``. ultralytics (AGPL-3.0, optional extra ``xmic[yolo]``) is imported only
when a provider is built from a weights path; tests inject a model object instead.

A model object needs what ultralytics' ``YOLO`` has: ``names`` (``{class id: name}``) and
``predict(source=list of (H, W, 3) uint8 BGR arrays, conf=, classes=, verbose=, ...)`` returning one result
per image with ``boxes.xyxyn`` ``(K, 4)``, ``boxes.cls`` ``(K,)`` and ``boxes.conf`` ``(K,)`` (torch tensors
or numpy arrays).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xmic.extract.hands.base import BoxRequest, HandBoxError, HandBoxProvider, finalize_boxes, union_box

INSTALL_HINT = "pip install 'xmic[yolo]' (ultralytics, AGPL-3.0; it needs torchvision)"


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def parse_classes(classes: str | Sequence[int | str] | None, names: dict[int, str]) -> list[int] | None:
    """Class ids from ``"0,1"``, ``"hand,object"``, a list of ids/names, or None (all classes).

    Raises:
        ValueError: a name the model does not know (the message lists the model's classes) or a bad id.
    """
    if classes is None:
        return None
    items = [c.strip() for c in classes.split(",") if c.strip()] if isinstance(classes, str) else list(classes)
    if not items:
        return None
    by_name = {str(v).lower(): int(k) for k, v in names.items()}
    ids = []
    for item in items:
        if isinstance(item, (int, np.integer)) or str(item).isdigit():
            cid = int(item)
            if names and cid not in names:
                raise ValueError(f"--yolo-classes: class id {cid} is not in the model ({len(names)} classes)")
        elif str(item).lower() in by_name:
            cid = by_name[str(item).lower()]
        else:
            known = ", ".join(f"{k}:{v}" for k, v in sorted(names.items()))
            raise ValueError(f"--yolo-classes: unknown class {item!r}; the model has {known}")
        ids.append(cid)
    return sorted(set(ids))


def load_yolo(weights: str | Path) -> Any:
    """``ultralytics.YOLO(weights)``, with a clear error when ultralytics or the file is missing."""
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"--yolo-weights {path} does not exist (give a local YOLO weights file)")
    try:
        from ultralytics import YOLO
    except ImportError as err:
        raise ImportError(f"--hands yolo needs ultralytics, which is not installed: {INSTALL_HINT} ({err})") from None
    try:
        return YOLO(str(path))
    except Exception as err:  # ultralytics raises many kinds for a bad file
        raise HandBoxError(f"--yolo-weights {path}: cannot load the YOLO model ({type(err).__name__}: {err})") from err


class YoloProvider(HandBoxProvider):
    """Union of a YOLO detector's kept boxes per frame.

    Args:
        weights: Weights file (``--yolo-weights``); ignored when ``model`` is given.
        classes: Classes to keep: ``"0,1"``, names, a list, or None for all (``--yolo-classes``).
        conf: Minimum confidence (``--yolo-conf``).
        imgsz: Inference size passed to ultralytics.
        device: Torch device string for ultralytics (None: its default).
        batch_size: Frames per ``predict`` call.
        model: A ready model object (dependency injection; see the module docstring).
    """

    name = "yolo"
    needs_frames = True

    def __init__(
        self,
        weights: str | Path | None = None,
        classes: str | Sequence[int | str] | None = None,
        conf: float = 0.25,
        imgsz: int = 640,
        device: str | None = None,
        batch_size: int = 32,
        model: Any = None,
    ) -> None:
        if model is None:
            if weights is None:
                raise ValueError("--hands yolo needs --yolo-weights PATH (a YOLO weights file)")
            model = load_yolo(weights)
        if not 0 <= conf <= 1:
            raise ValueError(f"--yolo-conf must be in [0, 1], got {conf}")
        self.model = model
        self.weights = None if weights is None else str(weights)
        self.names = {int(k): str(v) for k, v in dict(getattr(model, "names", {}) or {}).items()}
        self.class_ids = parse_classes(classes, self.names)
        self.conf = float(conf)
        self.imgsz = int(imgsz)
        self.device = device
        self.batch_size = max(1, int(batch_size))

    def _predict(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """One union box ``(4,)`` per RGB frame."""
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = [np.ascontiguousarray(f[..., ::-1]) for f in frames[start : start + self.batch_size]]  # BGR
            kwargs: dict[str, Any] = {"conf": self.conf, "classes": self.class_ids, "verbose": False}
            kwargs["imgsz"] = self.imgsz
            if self.device is not None:
                kwargs["device"] = self.device
            results = self.model.predict(batch, **kwargs)
            if len(results) != len(batch):
                raise HandBoxError(f"YOLO returned {len(results)} results for {len(batch)} frames")
            for res in results:
                xyxyn = _numpy(res.boxes.xyxyn).reshape(-1, 4)
                keep = _numpy(res.boxes.conf).reshape(-1) >= self.conf
                if self.class_ids is not None:
                    keep &= np.isin(_numpy(res.boxes.cls).reshape(-1).astype(np.int64), self.class_ids)
                out.append(union_box(xyxyn[keep]))
        return out

    def _boxes(self, video_id: str, frame_indices: np.ndarray, frames: np.ndarray | None, segment: Any) -> np.ndarray:
        return np.stack(self._predict(list(frames)))

    def boxes_many(self, requests: Iterable[BoxRequest]) -> list[np.ndarray]:
        """All requests' frames in shared ``predict`` batches; one ``(T_i, 4)`` array per request."""
        checked = []
        for r in requests:
            r = BoxRequest(*r)
            idx, frames, where = self.check_inputs(r.video_id, r.frame_indices, r.frames, r.segment)
            checked.append((len(idx), frames, where))
        boxes = self._predict([f for n, frames, _ in checked if n for f in frames])
        out, start = [], 0
        for n, _, where in checked:
            chunk = np.stack(boxes[start : start + n]) if n else np.empty((0, 4), np.float32)
            out.append(finalize_boxes(chunk, n, where))
            start += n
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "hands": self.name,
            "weights": self.weights,
            "classes": self.class_ids,
            "class_names": None if self.class_ids is None else [self.names.get(c, str(c)) for c in self.class_ids],
            "conf": self.conf,
            "imgsz": self.imgsz,
        }
