"""``xmic predict VIDEO --run RUN``: classify one clip with a trained run, stage one and stage two in one go.

Stage one runs exactly as the run's store was extracted: the same slots (the store's sampling rule and ``T``),
the same decode size, hand boxes from a ``--hands`` provider chosen by the rule of ``xmic extract`` (a provider
named, implied by its flag, or MediaPipe when a hand model is found; otherwise it stops and says how to choose;
``--hands none`` classifies the full frame as the hand view), and the frozen encoders the run was trained on,
loaded from the folder the store recorded (``EncoderSpec.source``) or ``--model-dir``; an encoder whose identity
(width, preprocessing, model id) differs is refused. Stage two is the run's adapter over the class text of a
vocabulary: by default the run's own (text embeddings from its store, or the encoder's text tower when the store
has moved), a dataset group of the run's store named exactly as the store names it, or a class file (EPIC class
CSV, Ego4D taxonomy JSON, EGTEA idx TXT) embedded with the text tower; the printed header says which. Scores are
softmax probabilities over the vocabulary. A run whose encoder is one of the demo's tiny random encoders warns
when the video is not part of a generated benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from xmic.extract.hands.factory import hand_options, pop_hand_options


@dataclass
class Prediction:
    """The ranked classes of one clip.

    Attributes:
        video: The media file.
        start_frame: First frame of the clip (0-based, inclusive).
        stop_frame: Last frame (inclusive).
        fps: The video's frame rate.
        frame_index: ``(T,)`` source frame of each slot.
        boxes: ``(T, 4)`` hand boxes (normalised xyxy, NaN = full frame).
        vocab_source: Where the class names and their text came from.
        classes: K class names.
        probs: ``(K,)`` softmax probabilities.
        top: The ``top`` best ``(class name, probability)``, best first.
        run: The run folder.
        method: The run's method and target, e.g. "xmic · nouns".
        hands: The hand-box provider used (``--hands``).
        warnings: What the user should know about this answer (e.g. a demo encoder on a real video).
    """

    video: str
    start_frame: int
    stop_frame: int
    fps: float
    frame_index: np.ndarray
    boxes: np.ndarray
    vocab_source: str
    classes: list[str]
    probs: np.ndarray
    top: list[tuple[str, float]] = field(default_factory=list)
    run: str = ""
    method: str = ""
    hands: str = ""
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The header line and one ``" 1. name  0.4123"`` line per ranked class."""
        t0, t1 = self.start_frame / self.fps, (self.stop_frame + 1) / self.fps
        boxed = int((~np.isnan(self.boxes).any(axis=1)).sum())
        width = max((len(n) for n, _ in self.top), default=4)
        out = [
            f"{self.video} [{t0:.2f}-{t1:.2f} s, frames {self.start_frame}-{self.stop_frame}, "
            f"{boxed}/{len(self.boxes)} slots with a hand box, --hands {self.hands}] · "
            f"run {self.run} ({self.method}) · "
            f"vocabulary {self.vocab_source} ({len(self.classes)} classes)"
        ]
        out += [f"{k:>2}. {name:<{width}}  {p:.4f}" for k, (name, p) in enumerate(self.top, start=1)]
        return out


def load_run_encoders(meta: dict[str, Any], names: set[str], model_dir: str | Path | None, device: str) -> dict:
    """The frozen encoders ``names`` of a run, checked against the identities recorded in ``run.json``.

    Raises:
        ModelNotFoundError: the weights are not where the store said and no ``model_dir`` holds them.
        ValueError: a loaded encoder differs from the one the run was trained on.
    """
    from xmic.cache.schema import StoreSpec, same_identity
    from xmic.extract.encoders import load_encoder

    spec = StoreSpec.from_json(meta["store"]["spec"])
    out = {}
    for name in sorted(names):
        folder = model_dir if model_dir is not None else (spec.encoders[name].source or None)
        enc = load_encoder(name, folder, device)
        trained = meta["encoders"][name]
        if not same_identity(enc.spec.identity(), trained):  # the weights' hash too, when the run recorded one
            diff = {k: (trained.get(k), v) for k, v in enc.spec.identity().items() if trained.get(k) != v}
            raise ValueError(
                f"encoder {name} loaded from {enc.spec.source} is not the one the run was trained on "
                f"(field: (trained, loaded)): {diff}; pass --model-dir with the model the store was extracted with"
            )
        out[name] = enc
    return out


def clip_frames(
    video: Path, start: float | None, end: float | None, spec: Any
) -> tuple[int, int, np.ndarray, np.ndarray, Any]:
    """Decode the store's slots of ``[start, end)`` seconds of ``video``.

    Returns:
        ``(first frame, last frame, frame_index (T,), frames (T, H, W, 3) uint8, VideoInfo)``.
    """
    from xmic.extract.decode import decode_video_segments, probe_video
    from xmic.sampling import parse_sampling_rule, slot_frames

    info = probe_video(video)
    last = max(info.n_frames - 1, 0)
    first = 0 if start is None else round(start * info.fps)
    stop = last if end is None else min(last, math.ceil(end * info.fps - 1e-6) - 1)
    if not 0 <= first <= stop:
        raise ValueError(
            f"{video}: empty clip: --start {start} --end {end} give frames {first}..{stop} "
            f"(the video has {info.n_frames} frames at {info.fps:.3f} fps, {info.duration:.2f} s)"
        )
    bins, _ = parse_sampling_rule(spec.sampling)
    frame_index = slot_frames(first, stop, spec.num_frames, bins)
    size = spec.config.get("decode_size")
    size = size if size and min(info.width, info.height) > size else None  # never upscale, as extraction
    [(_, frames)] = list(decode_video_segments(video, [frame_index], size=size))
    return first, stop, frame_index, frames, info


def clip_features(
    encoders: dict[str, Any], frames: np.ndarray, boxes: np.ndarray, bins: int
) -> dict[str, dict[str, Any]]:
    """``{encoder: {"full": (T, D), "hand": (T, D)}}`` float16 tensors, as the store would hold them."""
    import torch

    from xmic.extract.assemble import encoder_views

    out = {}
    for name, enc in encoders.items():
        full, hand = encoder_views(enc, frames[None], boxes[None], bins)
        out[name] = {"full": torch.from_numpy(full[0]).half(), "hand": torch.from_numpy(hand[0]).half()}
    return out


def resolve_vocab(vocab: str | None, cfg: Any, meta: dict[str, Any], clip: Any) -> tuple[Any, str]:
    """The :class:`~xmic.adapt.base.ClassText` to classify among, and where it came from (see the module doc)."""
    import torch

    from xmic.adapt.base import ClassText
    from xmic.cache.reader import StoreReader, list_datasets
    from xmic.extract.text import text_embeddings

    def from_text_tower(names: list[str], source: str) -> tuple[ClassText, str]:
        emb = text_embeddings(clip, names, [cfg.template])[cfg.template]
        return ClassText(emb=torch.from_numpy(emb), names=names, template=cfg.template), source

    store = Path(meta["store"]["path"])
    tower = f"embedded by {cfg.encoder}'s text tower, template {cfg.template!r}"
    if vocab is not None and Path(vocab).is_file():
        from xmic.evaluate.vocab_files import read_vocab

        v = read_vocab(vocab, cfg.target)
        return from_text_tower(list(v.prompt), f"class file {vocab} ({v.source} {cfg.target}s, {tower})")
    if vocab is None:
        group = meta["store"]["dataset"]
        if not store.exists():
            return from_text_tower(
                list(meta["vocab"]), f"the run's own {cfg.target}s (group {group}; {tower}: store {store} is absent)"
            )
        how = f"the run's own classes, store group {group}"
    else:
        if Path(vocab).suffix.lower() in (".csv", ".json", ".txt") or "/" in vocab:
            raise ValueError(f"--vocab {vocab}: no such class file")
        groups = list_datasets(store) if store.exists() else []
        if vocab not in groups:
            near = [g for g in groups if g.split("-")[-1] == vocab]
            hint = f"; a store group is named exactly: --vocab {near[0]}" if near else ""
            raise ValueError(
                f"--vocab {vocab!r} is neither a file nor a dataset group of the run's store {store} "
                f"(groups: {', '.join(groups) or 'none, the store is absent'}){hint}"
            )
        group = vocab
        how = f"store group {group}"
    reader = StoreReader(store, group)
    emb = reader.load_text(cfg.encoder, cfg.target, cfg.template)
    names = list(reader.vocab[cfg.target])
    source = f"{how} of {store} ({cfg.target}s, stored text of {cfg.encoder}, template {cfg.template!r})"
    return ClassText(emb=emb, names=names, template=cfg.template), source


DEMO_ON_REAL_VIDEO = (
    "warning: this run's encoders ({encoder}) are the demo's tiny random encoders, trained on generated clips; on a "
    "video outside a generated benchmark its ranking means nothing. Train a run on a store extracted with a real "
    "encoder (`xmic models` lists them)"
)


def generated_benchmark(video: Path) -> Path | None:
    """The ``xmic synth`` benchmark folder (one holding its ``manifest.json``) that ``video`` lies in, or None."""
    import json

    for folder in Path(video).resolve().parents:
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                content = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(content, dict) and "datasets" in content and "shared" in content:
                return folder
    return None


def demo_warnings(encoders: dict[str, Any], video: Path) -> list[str]:
    """:data:`DEMO_ON_REAL_VIDEO` for each demo encoder of the run when ``video`` is not a generated one."""
    from xmic.registry import DEMO_MODEL_PREFIX

    demo = [name for name, enc in encoders.items() if enc.spec.model_id.startswith(DEMO_MODEL_PREFIX)]
    if not demo or generated_benchmark(video) is not None:
        return []
    return [DEMO_ON_REAL_VIDEO.format(encoder=", ".join(sorted(demo)))]


def predict_clip(
    video: str | Path,
    run_dir: str | Path,
    *,
    vocab: str | None = None,
    top: int = 5,
    start: float | None = None,
    end: float | None = None,
    model_dir: str | Path | None = None,
    hands: str | None = None,
    hand_opts: dict[str, Any] | None = None,
    device: str = "cpu",
) -> Prediction:
    """Classify ``[start, end)`` seconds of ``video`` (default: all of it) with the run in ``run_dir``.

    Args:
        video: A video file (MP4, ...).
        run_dir: A trained run folder.
        vocab: None (the run's classes), a dataset group of the run's store by its exact name (``synth-ego4d``),
            or a class file (EPIC CSV, Ego4D taxonomy, EGTEA idx).
        top: How many classes to return.
        start: Clip start in seconds.
        end: Clip end in seconds (exclusive).
        model_dir: Where the frozen encoders are (default: the folder the store recorded).
        hands: Hand-box provider (``xmic extract --hands``); None: chosen as ``xmic extract`` chooses
            (:func:`~xmic.extract.hands.factory.choose_hands`: implied by a flag in ``hand_opts`` or a hand model
            found, else an error saying how to choose); "none" uses the full frame as the hand view.
        hand_opts: The provider's options by flag name (``hand_boxes=...``).
        device: Torch device.

    Returns:
        The :class:`Prediction`.
    """
    import torch

    from xmic.adapt.baselines import FRAME_METHODS
    from xmic.adapt.data import FeatureBank, cond_views
    from xmic.adapt.run_io import load_run
    from xmic.cache.schema import StoreSpec
    from xmic.evaluate.evaluator import predict_logits
    from xmic.extract.hands import make_hand_provider
    from xmic.extract.hands.factory import NoHandChoiceError, choose_hands

    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    video, run_dir = Path(video), Path(run_dir)
    model, cfg, meta = load_run(run_dir, device=device, model_dir=model_dir)
    spec = StoreSpec.from_json(meta["store"]["spec"])
    try:
        hands, hand_opts = choose_hands(hands, hand_opts or {}, model_dir)
    except NoHandChoiceError as exc:
        raise NoHandChoiceError(f"{exc}; the run's store was extracted with --hands {spec.hands}") from None
    encoders = load_run_encoders(meta, {cfg.encoder, cfg.second_encoder}, model_dir, device)
    first, last, frame_index, frames, info = clip_frames(video, start, end, spec)
    with make_hand_provider(hands, **hand_opts) as provider:
        boxes = provider.boxes(video.stem, frame_index, frames if provider.needs_frames else None)
    from xmic.sampling import parse_sampling_rule

    if cfg.method in FRAME_METHODS:  # Vita-CLIP runs the encoder itself: the frames as the frame cache holds them
        from xmic.adapt.frame_bank import FrameBank
        from xmic.extract.preprocess import preprocess_uint8

        enc_spec = encoders[cfg.encoder].spec
        images = preprocess_uint8(frames, enc_spec, device)  # (T, 3, S, S) uint8
        bank = FrameBank(
            reader=None, encoder=cfg.encoder, spec=enc_spec, labels=torch.tensor([-1], device=device),
            rows=torch.tensor([0], device=device), store_frames=len(frame_index), device=torch.device(device),
            frames=images[None],
        )  # fmt: skip
    else:
        feats = clip_features(encoders, frames, boxes, parse_sampling_rule(spec.sampling)[0])
        bank = FeatureBank(
            cls=feats[cfg.encoder][cfg.classified_view][None].to(device),
            cond=[feats[cfg.second_encoder][v][None].to(device) for v in cond_views(cfg.views)],
            labels=torch.tensor([-1], device=device),
            rows=torch.tensor([0], device=device),
        )
    classes, source = resolve_vocab(vocab, cfg, meta, encoders[cfg.encoder])
    classes.emb = classes.emb.to(device)
    logits = predict_logits(model, bank, classes, frames=cfg.frames)[0]
    probs = torch.softmax(logits.double(), dim=0).cpu().numpy()
    order = np.argsort(-probs, kind="stable")[:top]
    return Prediction(
        video=str(video),
        start_frame=first,
        stop_frame=last,
        fps=info.fps,
        frame_index=frame_index,
        boxes=boxes,
        vocab_source=source,
        classes=classes.names,
        probs=probs,
        top=[(classes.names[i], float(probs[i])) for i in order],
        run=str(run_dir),
        method=f"{cfg.method} · {cfg.target}s",
        hands=hands,
        warnings=demo_warnings(encoders, video),
    )


@click.command("predict")
@click.argument("video", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--run", "run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option(
    "--vocab",
    default=None,
    help="Class names: the run's (default), a group of its store by its exact name (e.g. synth-ego4d), or a class "
    "file (EPIC CSV, Ego4D taxonomy JSON, EGTEA idx TXT). The header line says which was used.",
)
@click.option("--top", type=int, default=5, show_default=True, help="How many classes to print.")
@click.option("--start", type=float, default=None, help="Clip start in seconds (default: 0).")
@click.option("--end", type=float, default=None, help="Clip end in seconds (default: the end of the video).")
@click.option(
    "--model-dir", default=None, help="Folder of the frozen encoders (default: where the store recorded them)."
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON.")
@hand_options
def predict_cmd(video: Path, run_dir: Path, as_json: bool, **kw: Any) -> None:
    """Top classes of one VIDEO clip under a trained run (softmax probabilities over the vocabulary)."""
    import json

    from transformers.utils import logging as hf_logging

    from xmic.cache.errors import StoreError
    from xmic.extract.segplan import VideoDecodeError
    from xmic.weights import ModelNotFoundError

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per encoder would bury the ranking
    opts = pop_hand_options(kw)
    hands = kw.pop("hands")
    try:
        pred = predict_clip(video, run_dir, hands=hands, hand_opts=opts, **kw)
    except (ModelNotFoundError, VideoDecodeError, StoreError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for warning in pred.warnings:
        click.echo(warning, err=True)
    if as_json:
        top = [{"class": n, "prob": p} for n, p in pred.top]
        click.echo(
            json.dumps({"header": pred.lines()[0], "vocab": pred.vocab_source, "warnings": pred.warnings, "top": top})
        )
    else:
        click.echo("\n".join(pred.lines()))


if __name__ == "__main__":
    predict_cmd()
