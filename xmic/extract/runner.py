"""Stage one end to end: annotations -> decoded frames -> hand boxes -> frozen features -> the store.

``run_extraction(ExtractConfig(...))`` is what ``xmic extract`` runs, usable from Python (the demo calls it).
Every split given goes into one dataset group named after the dataset (the ``split`` column tells them apart),
rows sorted by video and time. The work unit is one store chunk: decode its videos (each once, sparse), hand
boxes, encoders on full frames and hand crops, then one ``write_chunk`` that flags the chunk done last. A re-run
computes only the pending chunks; with several ranks each takes the chunks ``c % world_size == rank``.
Rows whose media is missing, unreadable or shorter than the annotation are marked failed with the reason
(never written as zeros) and the run goes on. ``dry_run`` reads the annotations and describes the work only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xmic
from xmic.cache.backend import detect_format
from xmic.cache.schema import StoreSpec
from xmic.extract.assemble import Timings
from xmic.extract.frame_cache import check_existing as check_frames_existing
from xmic.extract.frame_cache import check_request as check_frames_request
from xmic.extract.frame_cache import frames_spec
from xmic.extract.launch import (
    ChunkLoop,
    DecodePool,
    chunks_of_rank,
    default_device,
    discover_rank,
    open_store,
    planned_chunks,
)
from xmic.extract.pipeline import DecodeSettings
from xmic.extract.plan import (  # noqa: F401 - API
    FIRST_FRAME,
    Dataset,
    center_window,
    check_media,
    egtea_options,
    load_dataset,
    plan_chunks,
)
from xmic.sampling import DEFAULT_BINS, DEFAULT_NUM_FRAMES, check_bin_centres, sampling_rule

Echo = Callable[[str], None]


@dataclass
class ExtractConfig:
    """Everything ``xmic extract`` takes (see its ``--help``); paths may be str or Path.

    ``hand_options`` holds the ``--hands`` provider's flags by name (:data:`xmic.extract.hands.HAND_OPTIONS`).
    ``bins`` defaults to 16 when ``num_frames`` is a multiple of 16, else ``num_frames`` (one frame per bin); the
    candidates per bin must be odd so that one is the bin's centre frame (default 48 = 16 x 3).
    ``center_sec`` (Ego4D): None keeps the authors' central 4 s of each action window, 0 the whole window; the
    store records the resolved value (:func:`xmic.extract.plan.center_window`) as ``config["center_sec"]``.
    ``decode_size`` is the shorter side frames are decoded at (None: the source size). ``chunk_rows`` defaults to
    the store's when it exists, else ~8 MiB feature chunks.
    """

    dataset: str
    root: Path
    splits: tuple[str, ...] = ("train",)
    cache: Path = Path("cache")
    encoder: str = "clip-vit-b16"
    second_encoder: str | None = None
    extra_encoders: tuple[str, ...] = ()  # more encoders filled in the same decode pass (Table 5's backbones)
    hands: str = "none"
    hand_options: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    num_frames: int = DEFAULT_NUM_FRAMES
    bins: int | None = None
    workers: int = 0
    prefetch: int | None = None
    rank: int | None = None
    world_size: int | None = None
    fmt: str | None = None
    annotations_dir: Path | None = None
    center_sec: float | None = None
    media: str | None = None  # EPIC: "auto" | "video" | "frames"
    egtea_split: str | None = None  # EGTEA partition "1" | "2" | "3" | "all"; None: train 1, test all three
    skip_bad: bool = False
    device: str | None = None
    batch_size: int | None = None
    chunk_rows: int | None = None
    decode_size: int | None = 256
    piece_rows: int = 8
    overwrite: bool = False
    dry_run: bool = False
    progress: bool = True
    ignore_lock: bool = False  # take over the store lock of this rank even when it looks held
    frames_cache: bool = False  # also store --encoder's preprocessed input frames (xmic.extract.frame_cache)
    frames_quality: int = 95  # JPEG quality of the frame cache

    def __post_init__(self) -> None:
        self.root, self.cache = Path(self.root), Path(self.cache)
        self.model_dir = None if self.model_dir is None else Path(self.model_dir)
        self.annotations_dir = None if self.annotations_dir is None else Path(self.annotations_dir)
        if isinstance(self.splits, str):
            self.splits = tuple(s.strip() for s in self.splits.split(",") if s.strip())
        self.splits = tuple(self.splits)
        self.extra_encoders = tuple(self.extra_encoders)
        self.decode_size = self.decode_size or None  # 0 = the source size
        if self.num_frames < 1 or self.workers < 0 or self.piece_rows < 1:
            raise ValueError(
                f"need frames >= 1, workers >= 0 and piece_rows >= 1; got {self.num_frames}, {self.workers}, "
                f"{self.piece_rows}"
            )

    def resolved_bins(self) -> int:
        if self.bins is not None:
            return self.bins
        return DEFAULT_BINS if self.num_frames % DEFAULT_BINS == 0 else self.num_frames

    def encoder_names(self) -> list[str]:
        names = [self.encoder] + ([self.second_encoder] if self.second_encoder else []) + list(self.extra_encoders)
        if len(set(names)) != len(names):
            raise ValueError(f"an encoder is named twice among --encoder, --second-encoder, --extra-encoder: {names}")
        return names

    def as_record(self) -> dict[str, Any]:
        """The config as JSON-able values, without the fields that only say how this process runs."""
        skip = {"rank", "world_size", "dry_run", "progress", "overwrite", "ignore_lock"}
        out = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = _jsonable(value)
        out["center_sec"] = center_window(self)  # resolved: 4.0 (ego4d default), None (whole window / not ego4d)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)


@dataclass
class ExtractReport:
    """What one ``run_extraction`` did (this rank only)."""

    store: str
    dataset: str
    rank: int
    world_size: int
    n_rows: int
    n_chunks: int
    chunks_pending: int  # this rank's chunks left before the run
    chunks_written: int
    rows_ok: int
    rows_failed: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: rows of this rank's chunks recorded as failed in the store after the run: this run's and any earlier run's
    rows_failed_total: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # annotation rows --skip-bad left out, with reasons
    timings: dict[str, float] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    clips_per_second: float = 0.0
    dry_run: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def build_spec(
    config: ExtractConfig, data: Dataset, encoders: dict[str, Any], chunk_rows: int, hands: Any
) -> StoreSpec:
    """The store spec of this extraction (encoders as loaded, sampling rule, hands, annotation hashes, config)."""
    from xmic.extract.resume import RECORD_KEY, stored_options

    record = config.as_record()
    record["hand_provider"] = _jsonable(hands.describe())
    record[RECORD_KEY] = stored_options(config)
    return StoreSpec(
        dataset=config.dataset,
        num_frames=config.num_frames,
        encoders={name: enc.spec for name, enc in encoders.items()},
        sampling=sampling_rule(config.num_frames, config.resolved_bins()),
        chunk_rows=chunk_rows,
        hands=config.hands,
        annotations=data.annotations,
        config=record,
        xmic_version=xmic.__version__,
        frames=frames_spec(config, encoders),
    )


def skipped_records(data: Dataset) -> list[dict[str, Any]]:
    """The annotation rows ``--skip-bad`` left out, as the store and the report record them."""
    return [
        {"status": "skipped", "split": s.split, "file": str(k.file), "where": k.where, "reason": k.reason}
        for s in data.splits
        for k in s.skipped
    ]


def make_provider(config: ExtractConfig) -> Any:
    """The hand-box provider; ``hoa`` / ``epic-hoa`` read the pickles in this dataset's layout and frame numbering."""
    from xmic.extract.hands import make_hand_provider

    options = dict(config.hand_options)
    if config.hands in ("hoa", "epic-hoa") and options.get("hoa_dataset") is None:
        options["hoa_dataset"] = config.dataset
    return make_hand_provider(config.hands, **options)


def write_text_embeddings(writer: Any, encoders: dict[str, Any], dataset: str, vocab: dict[str, list[str]]) -> int:
    """Prompt embeddings of every vocabulary x PROMPT_TEMPLATES for every encoder with a text tower (CLIP,
    LaViLa); returns arrays written. A vocabulary whose arrays are all stored, whole and readable is left as it is;
    otherwise its embeddings are computed and every missing or damaged array of it is (re)written."""
    from xmic.cache.schema import PROMPT_TEMPLATES
    from xmic.extract.text import text_embeddings
    from xmic.registry import TEXT_FAMILIES

    written = 0
    for name, enc in encoders.items():
        if enc.spec.family not in TEXT_FAMILIES:
            continue
        for target in ("verb", "noun"):
            broken = writer.damaged_texts(name, dataset, target, PROMPT_TEMPLATES)
            if not broken:
                continue
            for template, emb in text_embeddings(enc, vocab[target], broken).items():
                writer.write_text(name, dataset, target, template, emb)
                written += 1
    return written


def run_extraction(
    config: ExtractConfig, *, echo: Echo = print, on_chunk: Callable[[int, int, int], None] | None = None
) -> ExtractReport:
    """Extract the features of ``config`` into its store (or only describe the work, with ``dry_run``).

    Args:
        config: What to extract.
        echo: Where progress lines and the final summary go.
        on_chunk: Called after each chunk is written with ``(chunk, rows ok, rows failed)``.

    Returns:
        The :class:`ExtractReport` of this rank.

    Raises:
        StoreSpecError: the store already holds this dataset made differently (another encoder, T, hands, ...).
        StoreLockedError: another live process extracts this rank into this store.
        OSError: the store or the folder it would be created in is not writable (checked before decoding).
        ModelNotFoundError, FileNotFoundError, AnnotationError, ValueError: bad inputs, with the file named.
    """
    t_start = time.perf_counter()
    rank, world = discover_rank(config.rank, config.world_size)
    names = config.encoder_names()
    check_bin_centres(config.num_frames, config.resolved_bins())  # a store without bin centres is never made
    check_frames_request(config)  # --frames-cache: a Zarr store, the codec installed, a CLIP --encoder
    data = load_dataset(config)  # also checks --center-sec
    if config.dry_run:
        from xmic.extract.extract_cli import dry_run_info

        info = dry_run_info(config, data, rank, world, echo)
        return ExtractReport(
            str(config.cache), config.dataset, rank, world, len(data.records), info["chunks_total"],
            info["chunks_pending_rank"], 0, 0, 0, dry_run=info,
        )  # fmt: skip
    check_media(data, Path(config.root), config.skip_bad, config.media)
    fmt = config.fmt
    if world > 1 and config.overwrite:
        raise ValueError("--overwrite with several ranks could discard chunks another rank writes; run it with one")
    if world > 1 and detect_format(config.cache, fmt) == "h5":
        raise ValueError("an HDF5 store takes one writing process; use --format zarr with several ranks")
    from xmic.extract.storelock import check_writable, store_lock

    check_writable(config.cache)  # before any model is loaded or frame decoded
    check_frames_existing(config)  # a group's frame cache is as asked, or --overwrite
    if config.dataset == "egtea":  # the clip names' stop frames, clamped to the clips' lengths before they are stored
        data = fit_egtea_stops(data, config, echo)
    with store_lock(config.cache, config.dataset, rank, ignore=config.ignore_lock):
        return _extract(config, data, rank, world, names, t_start, echo, on_chunk)


def _set_aside_unreadable_h5(config: ExtractConfig) -> Path | None:
    """With ``--overwrite``, an HDF5 store that no longer opens is renamed (never deleted) so a new one can be made;
    returns the new name, or None when nothing was renamed."""
    from xmic.cache.backend import h5_opens
    from xmic.cache.errors import StoreError

    path = Path(config.cache)
    if not config.overwrite or not path.is_file():
        return None
    try:
        if detect_format(path, None) != "h5" or h5_opens(path):
            return None
    except StoreError:  # not HDF5 at all: not ours to rename; the store's own error says so
        return None
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(aside)
    return aside


def fit_egtea_stops(data: Dataset, config: ExtractConfig, echo: Echo) -> Dataset:
    """``data`` with each EGTEA row's ``stop_frame`` the one sampling uses (see ``plan.fit_stops_to_media``)."""
    from xmic.extract.plan import fit_stops_to_media

    records, changed = fit_stops_to_media(data.records, workers=max(config.workers, 8))
    if changed:
        seg, named, used = changed[0]
        echo(
            f"egtea: {len(changed)} clips have fewer frames than their names say (e.g. {seg}: stop frame {named} "
            f"by its name, {used} in the clip); the store records the stop frame the clip has"
        )
    return dataclasses.replace(data, records=records)


def _extract(
    config: ExtractConfig,
    data: Dataset,
    rank: int,
    world: int,
    names: list[str],
    t_start: float,
    echo: Echo,
    on_chunk: Callable[[int, int, int], None] | None,
) -> ExtractReport:
    """The body of :func:`run_extraction` once the arguments are checked and the store lock is held."""
    fmt = config.fmt
    import torch

    from xmic.cache.tempfiles import remove_stale_partial_files
    from xmic.extract.encoders import load_encoder

    timings = Timings()
    device = config.device or default_device(torch.cuda.device_count() if torch.cuda.is_available() else 0)
    provider = make_provider(config)
    encoders = {n: load_encoder(n, config.model_dir, device, batch_size=config.batch_size) for n in names}
    width = max(e.dim for e in encoders.values())
    chunk_rows = planned_chunks(config.cache, config.dataset, fmt, config.chunk_rows, config.num_frames, width, 1)[0]
    spec = build_spec(config, data, encoders, chunk_rows, provider)
    if world == 1:
        removed = remove_stale_partial_files(config.cache, config.dataset)
        if removed:
            echo(f"removed {removed} temporary files of an interrupted write from {config.cache}")
    set_aside = _set_aside_unreadable_h5(config)
    if set_aside is not None:
        echo(f"{config.cache}: the HDF5 file could not be opened (damaged); --overwrite renamed it to {set_aside}")
    writer = open_store(config.cache, spec, data.columns(), data.vocab, fmt, rank, overwrite=config.overwrite)
    if not config.overwrite:  # after the spec, segments and vocabulary were compared: the options that change chunks
        from xmic.extract.resume import RECORD_KEY, check_resume

        check_resume(writer.spec.config, spec.config[RECORD_KEY], f"{config.cache} / {config.dataset}")
    timings.setup = time.perf_counter() - t_start
    skipped = skipped_records(data)
    if rank == 0:
        writer.record_skipped(skipped)
        t0 = time.perf_counter()
        write_text_embeddings(writer, encoders, config.dataset, data.vocab)
        timings.text = time.perf_counter() - t0
    pending = chunks_of_rank(writer.pending_chunks(retry_failed=not config.skip_bad), rank, world)
    jobs = plan_chunks(
        data.records,
        writer.spec.chunk_rows,
        pending,
        clamp_stop=config.dataset == "egtea",
        first_frame=FIRST_FRAME.get(config.dataset, 0),
    )
    settings = DecodeSettings(
        config.num_frames, config.resolved_bins(), config.decode_size, piece_rows=config.piece_rows
    )
    n_rows = sum(j.row_stop - j.row_start for j in jobs)
    echo(
        f"extract {config.dataset}: {len(data.records)} rows, {writer.n_chunks} chunks; rank {rank}/{world}: "
        f"{len(pending)} chunks to do ({n_rows} rows), device {device}"
    )
    pool = DecodePool(jobs, settings, config.workers, config.prefetch)
    frames_encoder = encoders[config.encoder] if config.frames_cache else None
    loop = ChunkLoop(jobs, writer, provider, encoders, data.records, timings, on_chunk, frames_encoder=frames_encoder)
    t_loop = time.perf_counter()
    from tqdm import tqdm

    try:
        with tqdm(total=n_rows, unit="clip", disable=not config.progress) as bar:
            loop.run(pool, bar)
    finally:
        pool.close()
        provider.close()
    timings.wait = pool.wait_seconds
    loop_seconds = time.perf_counter() - t_loop
    report = ExtractReport(
        store=str(config.cache),
        dataset=config.dataset,
        rank=rank,
        world_size=world,
        n_rows=len(data.records),
        n_chunks=writer.n_chunks,
        chunks_pending=len(pending),
        chunks_written=loop.written,
        rows_ok=loop.rows_ok,
        rows_failed=loop.rows_failed,
        failures=loop.failures,
        rows_failed_total=writer.failed_rows(chunks_of_rank(list(range(writer.n_chunks)), rank, world)),
        skipped=skipped,
        timings=dataclasses.asdict(timings),
        shares=timings.shares(),
        wall_seconds=time.perf_counter() - t_start,
        clips_per_second=(loop.rows_ok + loop.rows_failed) / loop_seconds if loop_seconds > 0 else 0.0,
    )
    from xmic.extract.extract_cli import summary_lines

    for line in summary_lines(report):
        echo(line)
    return report
