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
from xmic.cache.schema import ROW_FAILED, ROW_OK, StoreSpec, chunk_rows_for, num_chunks
from xmic.extract.datasets import DatasetAnnotations, read_annotations, records_to_columns
from xmic.extract.datasets.records import sort_records
from xmic.extract.launch import DecodePool, chunks_of_rank, discover_rank, open_store, plan_chunks
from xmic.extract.pipeline import (
    ChunkAssembler,
    ChunkDecoded,
    DecodeSettings,
    Failed,
    Piece,
    Timings,
    encode_piece,
)
from xmic.extract.sampling import DEFAULT_BINS, sampling_rule

Echo = Callable[[str], None]


@dataclass
class ExtractConfig:
    """Everything ``xmic extract`` takes (see its ``--help``); paths may be str or Path.

    ``hand_options`` holds the ``--hands`` provider's flags by name (:data:`xmic.extract.hands.HAND_OPTIONS`).
    ``bins`` defaults to 16 when ``num_frames`` is a multiple of 16, else ``num_frames`` (one frame per bin).
    ``decode_size`` is the shorter side frames are decoded at (None: the source size). ``chunk_rows`` defaults to
    the store's when it exists, else ~8 MiB feature chunks.
    """

    dataset: str
    root: Path
    splits: tuple[str, ...] = ("train",)
    cache: Path = Path("cache")
    encoder: str = "clip-vit-b16"
    second_encoder: str | None = None
    hands: str = "none"
    hand_options: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    num_frames: int = 32
    bins: int | None = None
    workers: int = 0
    prefetch: int | None = None
    rank: int | None = None
    world_size: int | None = None
    fmt: str | None = None
    annotations_dir: Path | None = None
    center_sec: float | None = None
    media: str | None = None  # EPIC: "auto" | "video" | "frames"
    skip_bad: bool = False
    device: str | None = None
    batch_size: int | None = None
    chunk_rows: int | None = None
    decode_size: int | None = 256
    piece_rows: int = 8
    overwrite: bool = False
    dry_run: bool = False
    progress: bool = True

    def resolved_bins(self) -> int:
        if self.bins is not None:
            return self.bins
        return DEFAULT_BINS if self.num_frames % DEFAULT_BINS == 0 else self.num_frames

    def encoder_names(self) -> list[str]:
        names = [self.encoder] + ([self.second_encoder] if self.second_encoder else [])
        if len(set(names)) != len(names):
            raise ValueError(f"--second-encoder {self.second_encoder} is the same as --encoder")
        return names

    def as_record(self) -> dict[str, Any]:
        """The config as JSON-able values, without the fields that only say how this process runs."""
        skip = {"rank", "world_size", "dry_run", "progress", "overwrite"}
        out = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = _jsonable(value)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


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
    timings: dict[str, float] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    clips_per_second: float = 0.0
    dry_run: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Dataset:
    """All splits of one dataset as the rows of one store group."""

    records: list[Any]
    vocab: dict[str, list[str]]
    splits: list[DatasetAnnotations]
    annotations: dict[str, str]  # file -> sha256

    def columns(self) -> dict[str, Any]:
        """The store's segment columns, ``{column: (N,) array}``."""
        return records_to_columns(self.records)


def load_dataset(config: ExtractConfig) -> Dataset:
    """Read every split, check they share one vocabulary, and sort all rows by video and time."""
    options: dict[str, Any] = {"skip_bad": config.skip_bad}
    if config.center_sec is not None:
        if config.dataset != "ego4d":
            raise ValueError(f"--center-sec applies to ego4d only, not {config.dataset}")
        options["center_sec"] = config.center_sec
    if config.media is not None:
        if config.dataset != "epic":
            raise ValueError(f"--media applies to epic only, not {config.dataset}")
        options["media"] = config.media
    splits = [
        read_annotations(config.dataset, Path(config.root), s, config.annotations_dir, **options) for s in config.splits
    ]
    vocab = splits[0].vocab
    for other in splits[1:]:
        if other.vocab != vocab:
            raise ValueError(f"splits {splits[0].split} and {other.split} of {config.dataset} have other vocabularies")
    records = sort_records([r for s in splits for r in s.records])
    if not records:
        raise ValueError(f"no segments in {config.dataset} splits {', '.join(config.splits)} under {config.root}")
    annotations: dict[str, str] = {}
    for s in splits:
        annotations.update(s.annotation_sha256())
    return Dataset(records, vocab, splits, annotations)


def build_spec(
    config: ExtractConfig, data: Dataset, encoders: dict[str, Any], chunk_rows: int, hands: Any
) -> StoreSpec:
    """The store spec of this extraction (encoders as loaded, sampling rule, hands, annotation hashes, config)."""
    record = config.as_record()
    record["hand_provider"] = _jsonable(hands.describe())
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
    )


def make_provider(config: ExtractConfig) -> Any:
    """The hand-box provider; EPIC's frame numbers name the RGB files, so epic-hoa counts frames from 1."""
    from xmic.extract.hands import make_hand_provider

    options = dict(config.hand_options)
    if config.hands == "epic-hoa" and config.dataset == "epic" and options.get("hoa_first_frame") is None:
        options["hoa_first_frame"] = 1
    return make_hand_provider(config.hands, **options)


def write_text_embeddings(writer: Any, encoders: dict[str, Any], dataset: str, vocab: dict[str, list[str]]) -> int:
    """Prompt embeddings of every vocabulary x PROMPT_TEMPLATES for every CLIP encoder; returns arrays written."""
    from xmic.cache.reader import StoreReader
    from xmic.cache.schema import PROMPT_TEMPLATES
    from xmic.extract.text import text_embeddings

    reader = StoreReader(writer.path, dataset, writer.fmt)
    written = 0
    for name, enc in encoders.items():
        if enc.spec.family != "clip":
            continue
        for target in ("verb", "noun"):
            if set(PROMPT_TEMPLATES) <= set(reader.text_templates(name, target)):
                continue
            for template, emb in text_embeddings(enc, vocab[target], PROMPT_TEMPLATES).items():
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
        ModelNotFoundError, FileNotFoundError, AnnotationError, ValueError: bad inputs, with the file named.
    """
    t_start = time.perf_counter()
    rank, world = discover_rank(config.rank, config.world_size)
    names = config.encoder_names()
    data = load_dataset(config)
    if config.dry_run:
        from xmic.extract.extract_cli import dry_run_info

        info = dry_run_info(config, data, rank, world, echo)
        return ExtractReport(
            str(config.cache), config.dataset, rank, world, len(data.records), info["chunks_total"],
            info["chunks_pending_rank"], 0, 0, 0, dry_run=info,
        )  # fmt: skip
    fmt = config.fmt
    if world > 1 and (fmt == "h5" or str(config.cache).endswith((".h5", ".hdf5"))):
        raise ValueError("an HDF5 store takes one writing process; use --format zarr with several ranks")
    import torch

    from xmic.extract.encoders import load_encoder
    from xmic.extract.hands import HandBoxError

    timings = Timings()
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    provider = make_provider(config)
    encoders = {n: load_encoder(n, config.model_dir, device, batch_size=config.batch_size) for n in names}
    chunk_rows = (
        config.chunk_rows
        or _existing_chunk_rows(config)
        or chunk_rows_for(config.num_frames, max(e.dim for e in encoders.values()))
    )
    spec = build_spec(config, data, encoders, chunk_rows, provider)
    writer = open_store(config.cache, spec, data.columns(), data.vocab, fmt, rank, overwrite=config.overwrite)
    timings.setup = time.perf_counter() - t_start
    if rank == 0:
        t0 = time.perf_counter()
        write_text_embeddings(writer, encoders, config.dataset, data.vocab)
        timings.text = time.perf_counter() - t0
    pending = chunks_of_rank(writer.pending_chunks(), rank, world)
    settings = DecodeSettings(
        config.num_frames, config.resolved_bins(), config.decode_size or None, piece_rows=config.piece_rows
    )
    jobs = plan_chunks(data.records, writer.spec.chunk_rows, pending, clamp_stop=config.dataset == "egtea")
    dims = {n: e.dim for n, e in encoders.items()}
    echo(
        f"extract {config.dataset}: {len(data.records)} rows, {writer.n_chunks} chunks; rank {rank}/{world}: "
        f"{len(pending)} chunks to do ({sum(j.row_stop - j.row_start for j in jobs)} rows), device {device}"
    )
    pool = DecodePool(jobs, settings, config.workers, config.prefetch)
    open_chunks: dict[int, ChunkAssembler] = {}
    by_chunk = {j.chunk: j for j in jobs}
    failures: list[dict[str, Any]] = []
    rows_ok = rows_failed = written = 0
    t_loop = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=sum(j.row_stop - j.row_start for j in jobs), unit="clip", disable=not config.progress)

    def assembler(c: int) -> ChunkAssembler:
        if c not in open_chunks:
            j = by_chunk[c]
            open_chunks[c] = ChunkAssembler(c, j.row_start, j.row_stop - j.row_start, config.num_frames, dims)
        return open_chunks[c]

    try:
        for item in pool:
            if isinstance(item, Piece):
                acc = assembler(item.chunk)
                try:
                    boxes, feats = encode_piece(item, provider, encoders, data.records, timings)
                    acc.add(item.rows, item.frame_index, boxes, feats)
                except HandBoxError as exc:
                    acc.fail([int(r) for r in item.rows], [f"hand boxes: {exc}"] * len(item.rows))
                bar.update(len(item.rows))
            elif isinstance(item, Failed):
                assembler(item.chunk).fail(item.rows, item.reasons)
                bar.update(len(item.rows))
            elif isinstance(item, ChunkDecoded):
                timings.decode += item.seconds
                acc = assembler(item.chunk)
                del open_chunks[item.chunk]
                left = acc.pending_rows()
                if left:
                    raise RuntimeError(f"chunk {item.chunk}: rows {left[:10]} were neither decoded nor failed")
                t0 = time.perf_counter()
                writer.write_chunk(
                    item.chunk,
                    frame_index=acc.frame_index,
                    hand_box=acc.hand_box,
                    features=acc.features,
                    row_status=acc.row_status,
                    failures=acc.failures,
                )
                timings.write += time.perf_counter() - t0
                n_ok, n_bad = int((acc.row_status == ROW_OK).sum()), int((acc.row_status == ROW_FAILED).sum())
                rows_ok, rows_failed, written = rows_ok + n_ok, rows_failed + n_bad, written + 1
                failures += _with_ids(acc.failures, data.records)
                if on_chunk is not None:
                    on_chunk(item.chunk, n_ok, n_bad)
    finally:
        bar.close()
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
        chunks_written=written,
        rows_ok=rows_ok,
        rows_failed=rows_failed,
        failures=failures,
        timings=dataclasses.asdict(timings),
        shares=timings.shares(),
        wall_seconds=time.perf_counter() - t_start,
        clips_per_second=(rows_ok + rows_failed) / loop_seconds if loop_seconds > 0 else 0.0,
    )
    from xmic.extract.extract_cli import summary_lines

    for line in summary_lines(report):
        echo(line)
    return report


def _existing_chunk_rows(config: ExtractConfig) -> int | None:
    """The chunk rows of the store's group when it exists (a re-run keeps them), else None."""
    from xmic.cache.backend import Backend
    from xmic.cache.errors import StoreError
    from xmic.cache.layout import read_spec

    try:
        backend = Backend(config.cache, config.fmt)
        if not backend.exists():
            return None
        with backend.session("r") as s:
            return read_spec(s, config.dataset, str(config.cache)).chunk_rows if s.is_group(config.dataset) else None
    except StoreError:
        return None


def _with_ids(failures: list[dict[str, Any]], records: list[Any]) -> list[dict[str, Any]]:
    return [
        {"row": f["row"], "segment_id": records[f["row"]].segment_id, "video_id": records[f["row"]].video_id, **f}
        for f in failures
    ]


def planned_chunks(config: ExtractConfig, n_rows: int, dim: int) -> tuple[int, int]:
    """``(chunk_rows, n_chunks)`` a run of ``config`` would use for ``n_rows`` rows and feature width ``dim``."""
    rows = config.chunk_rows or _existing_chunk_rows(config) or chunk_rows_for(config.num_frames, dim)
    return rows, num_chunks(n_rows, rows)
