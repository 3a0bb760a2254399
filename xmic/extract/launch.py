"""Processes of an extraction: ranks, creating or joining the store, decode workers, and the main process's loop.

Ranks: chunk ``c`` of a dataset group belongs to rank ``c % world_size``; every rank writes only its chunks, so
``torchrun`` (one process per GPU) or ``srun`` (several hosts on a shared filesystem) fill one Zarr store
together. Rank 0 creates the group; the others wait for its spec to appear and then join it, checking that they
would have created the same group.

Decode workers: :class:`DecodePool` runs :func:`xmic.extract.pipeline.decode_chunk` in ``workers`` spawned
processes that decode chunks ahead of the main process, through a bounded queue; ``workers=0`` decodes in the
main process. Workers watch their parent and exit when it is gone (a killed run leaves no orphans behind).
:class:`ChunkLoop` is the main process's half: hand boxes and encoders on the decoded pieces, one write per chunk.
"""

from __future__ import annotations

import os
import queue
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xmic.cache import layout
from xmic.cache.backend import Backend
from xmic.cache.errors import StoreError
from xmic.cache.schema import ROW_FAILED, ROW_OK, StoreSpec, chunk_rows_for, num_chunks
from xmic.cache.writer import StoreWriter
from xmic.extract.assemble import ChunkAssembler, Timings, encode_pieces
from xmic.extract.frame_cache import crop_frames
from xmic.extract.pipeline import ChunkDecoded, ChunkJob, DecodeSettings, Failed, Piece, decode_chunk
from xmic.sampling import parse_sampling_rule

#: Environment variables read by :func:`discover_rank`, in order of preference: (rank, world size).
RANK_ENV = (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS"))
#: Environment variables naming this process's GPU on its host: torchrun, then srun.
LOCAL_RANK_ENV = ("LOCAL_RANK", "SLURM_LOCALID")
#: Seconds a non-zero rank waits for rank 0 to create the store's group.
CREATE_TIMEOUT = 1800.0
_POLL = 0.2


def default_device(cuda_devices: int, env: Mapping[str, str] | None = None) -> str:
    """The device of this process when ``--device`` is not given: ``cuda:<local rank>`` on a GPU host.

    The local rank is ``LOCAL_RANK`` (torchrun) or ``SLURM_LOCALID`` (srun), else 0, wrapped onto the
    ``cuda_devices`` visible GPUs, so that ``torchrun --nproc_per_node=N`` puts one rank on each GPU. ``"cpu"``
    when there is no GPU.
    """
    if cuda_devices < 1:
        return "cpu"
    env = os.environ if env is None else env
    for name in LOCAL_RANK_ENV:
        if name in env:
            try:
                return f"cuda:{int(env[name]) % cuda_devices}"
            except ValueError:
                raise ValueError(f"{name}={env[name]!r} is not an integer") from None
    return "cuda:0"


def discover_rank(
    rank: int | None = None, world_size: int | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, int]:
    """This process's ``(rank, world_size)``.

    Explicit arguments win (both or neither), then ``RANK``/``WORLD_SIZE`` (torchrun), then
    ``SLURM_PROCID``/``SLURM_NTASKS`` (srun), else ``(0, 1)``.

    Raises:
        ValueError: only one of the pair given, a non-integer value, or not ``0 <= rank < world_size``.
    """
    env = os.environ if env is None else env
    if (rank is None) != (world_size is None):
        raise ValueError(f"give both --rank and --world-size, or neither (got rank={rank}, world_size={world_size})")
    source = "--rank/--world-size"
    if rank is None:
        rank, world_size, source = 0, 1, "default"
        for rank_var, world_var in RANK_ENV:
            if rank_var in env and world_var in env:
                try:
                    rank, world_size = int(env[rank_var]), int(env[world_var])
                except ValueError:
                    raise ValueError(
                        f"{rank_var}={env[rank_var]!r} / {world_var}={env[world_var]!r} are not integers"
                    ) from None
                source = f"{rank_var}/{world_var}"
                break
    assert world_size is not None
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size} (from {source})")
    return rank, world_size


def chunks_of_rank(chunks: list[int], rank: int, world_size: int) -> list[int]:
    """The chunks of ``chunks`` that belong to ``rank``: those with ``c % world_size == rank``."""
    return [c for c in chunks if c % world_size == rank]


def planned_chunks(
    path: str | os.PathLike,
    dataset: str,
    fmt: str | None,
    chunk_rows: int | None,
    num_frames: int,
    width: int,
    n_rows: int,
) -> tuple[int, int]:
    """``(chunk_rows, n_chunks)`` of a run: ``chunk_rows`` when given, else the existing group's (a re-run keeps
    them), else ~8 MiB chunks of ``(rows, num_frames, width)`` float16 features."""
    rows = chunk_rows or _existing_chunk_rows(Path(path), dataset, fmt) or chunk_rows_for(num_frames, width)
    return rows, num_chunks(n_rows, rows)


def _existing_chunk_rows(path: Path, dataset: str, fmt: str | None) -> int | None:
    try:
        if _group_state(path, dataset, fmt) != "ready":
            return None
        with Backend(path, fmt).session("r") as s:
            return layout.read_spec(s, dataset, str(path)).chunk_rows
    except StoreError:
        return None


def _group_state(path: Path, dataset: str, fmt: str | None) -> str:
    """``"absent"``, ``"partial"`` (group without a spec: creation interrupted or in progress) or ``"ready"``."""
    backend = Backend(path, fmt)
    if not backend.exists():
        return "absent"
    with backend.session("r") as s:
        if not s.is_group(dataset):
            return "absent"
        return "ready" if layout.SPEC_ATTR in s.get_attrs(dataset) else "partial"


def open_store(
    path: str | os.PathLike,
    spec: StoreSpec,
    segments: dict[str, Any],
    vocab: dict[str, list[str]],
    fmt: str | None,
    rank: int,
    *,
    overwrite: bool = False,
    timeout: float = CREATE_TIMEOUT,
) -> StoreWriter:
    """Create the dataset group (rank 0) or wait for it and join it (other ranks).

    Every rank ends in :meth:`StoreWriter.create`, which on an existing group checks that spec, segments and
    vocabulary equal what this rank would create (StoreSpecError otherwise). Rank 0 recreates a group left
    without a spec by an interrupted creation (no chunk can have been written into it).

    Raises:
        TimeoutError: rank > 0 and the group did not appear within ``timeout`` seconds.
        StoreSpecError: the group exists but was made differently.
    """
    path = Path(path)
    if rank == 0:
        partial = _group_state(path, spec.dataset, fmt) == "partial"
        return StoreWriter.create(path, spec, segments, vocab, fmt, overwrite=overwrite or partial)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            ready = _group_state(path, spec.dataset, fmt) == "ready"
        except (OSError, ValueError, StoreError) as exc:  # metadata caught mid-write by rank 0; try again
            ready, last_error = False, exc
        if ready:
            return StoreWriter.create(path, spec, segments, vocab, fmt)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"rank {rank}: group {spec.dataset!r} of {path} did not appear within {timeout:.0f} s; "
                f"is rank 0 running?" + (f" (last error: {last_error})" if last_error else "")
            )
        time.sleep(_POLL)


def _worker_main(tasks: Any, results: Any, settings: DecodeSettings, worker: int) -> None:
    """Decode the chunk jobs from ``tasks`` into ``results`` until a None arrives or the parent is gone."""
    import multiprocessing

    parent = multiprocessing.parent_process()

    def alive() -> bool:
        return parent is None or parent.is_alive()

    def put(item: Any) -> bool:
        while alive():
            try:
                results.put(item, timeout=1.0)
                return True
            except queue.Full:
                continue
        results.cancel_join_thread()  # nobody reads any more: exit without flushing
        return False

    job: ChunkJob | None = None
    try:
        while alive():
            try:
                job = tasks.get(timeout=1.0)
            except queue.Empty:
                continue
            if job is None:
                return
            for item in decode_chunk(job, settings):
                if not put(item):
                    return
    except BaseException:  # report anything to the parent, which raises it with the worker's traceback
        chunk = None if job is None else job.chunk
        put(("error", worker, chunk, traceback.format_exc()))


class DecodePool:
    """Decoded items of ``jobs`` (:func:`decode_chunk`'s output), from worker processes or in-process.

    Args:
        jobs: Chunks to decode, handed out in order.
        settings: Decode settings.
        workers: Worker processes; 0 decodes in the calling process, lazily, one item at a time.
        prefetch: Most decoded items waiting in the queue (default ``2 * workers``).

    Iterating yields every item of every job; items of one chunk come in order, chunks interleave when several
    workers run. ``wait_seconds`` accumulates the time the consumer spent waiting for the workers.
    """

    def __init__(self, jobs: list[ChunkJob], settings: DecodeSettings, workers: int = 0, prefetch: int | None = None):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.jobs = jobs
        self.settings = settings
        self.workers = min(workers, len(jobs))
        self.prefetch = max(1, prefetch if prefetch is not None else 2 * max(1, workers))
        self.wait_seconds = 0.0
        self._procs: list[Any] = []
        self._queues: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        if self.workers == 0:
            for job in self.jobs:
                yield from decode_chunk(job, self.settings)
            return
        yield from self._from_workers()

    def _from_workers(self) -> Iterator[Any]:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        tasks, results = ctx.Queue(), ctx.Queue(maxsize=self.prefetch)
        self._queues = [tasks, results]
        for job in self.jobs:
            tasks.put(job)
        for _ in range(self.workers):
            tasks.put(None)
        self._procs = [
            ctx.Process(
                target=_worker_main, args=(tasks, results, self.settings, w), daemon=True, name=f"xmic-decode-{w}"
            )
            for w in range(self.workers)
        ]
        for p in self._procs:
            p.start()
        remaining = len(self.jobs)
        try:
            while remaining:
                t0 = time.perf_counter()
                try:
                    item = results.get(timeout=0.5)
                except queue.Empty:
                    self.wait_seconds += time.perf_counter() - t0
                    self._check_workers()
                    continue
                self.wait_seconds += time.perf_counter() - t0
                if isinstance(item, tuple) and item and item[0] == "error":
                    _, worker, chunk, text = item
                    raise RuntimeError(f"decode worker {worker} failed on chunk {chunk}:\n{text}")
                if isinstance(item, ChunkDecoded):
                    remaining -= 1
                yield item
            for p in self._procs:  # every job is done: let the workers see their None and exit
                p.join(timeout=5)
        finally:
            self.close()

    def _check_workers(self) -> None:
        dead = [p for p in self._procs if not p.is_alive() and p.exitcode not in (0, None)]
        if dead:
            p = dead[0]
            raise RuntimeError(f"decode worker {p.name} died with exit code {p.exitcode}; re-run to resume")
        if self._procs and all(not p.is_alive() for p in self._procs):
            raise RuntimeError("every decode worker exited before all chunks were decoded")

    def close(self) -> None:
        """Stop the workers this pool started (a no-op in-process or when they are done)."""
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join(timeout=5)
        for q in self._queues:
            q.cancel_join_thread()
            q.close()
        self._procs, self._queues = [], []


class ChunkLoop:
    """The main process's half: encode decoded pieces chunk by chunk and write each chunk once it is complete.

    Pieces of a chunk wait until they hold an encoder batch of frames (or the chunk's decode ends), so short
    videos (one EGTEA clip per row) still fill the encoder's batches; only pieces of one chunk share a batch,
    which keeps the features of a chunk independent of how many workers decode.
    """

    def __init__(
        self,
        jobs: list[Any],
        writer: Any,
        provider: Any,
        encoders: dict[str, Any],
        records: list[Any],
        timings: Timings,
        on_chunk: Callable[[int, int, int], None] | None,
        *,
        frames_encoder: Any = None,
    ) -> None:
        self.jobs = {j.chunk: j for j in jobs}
        #: the encoder whose input frames go to the frame cache (``--frames-cache``), or None
        self.frames_encoder = frames_encoder
        self.writer, self.provider, self.encoders, self.records = writer, provider, encoders, records
        self.timings, self.on_chunk = timings, on_chunk
        self.dims = {n: e.dim for n, e in encoders.items()}
        self.batch = max(e.batch_size for e in encoders.values())
        self.open: dict[int, ChunkAssembler] = {}
        self.failures: list[dict[str, Any]] = []
        self.rows_ok = self.rows_failed = self.written = 0

    def run(self, items: Any, bar: Any) -> None:
        """Consume :class:`DecodePool` items until every chunk is written."""
        for item in items:
            if isinstance(item, Piece):
                acc = self._assembler(item.chunk)
                acc.waiting.append(item)
                if sum(p.frames.shape[0] * p.frames.shape[1] for p in acc.waiting) >= self.batch:
                    self._flush(acc, bar)
            elif isinstance(item, Failed):
                self._assembler(item.chunk).fail(item.rows, item.reasons)
                bar.update(len(item.rows))
            elif isinstance(item, ChunkDecoded):
                self.timings.decode += item.seconds
                acc = self._assembler(item.chunk)
                del self.open[item.chunk]
                self._flush(acc, bar)
                self._write(acc)

    def _assembler(self, chunk: int) -> ChunkAssembler:
        if chunk not in self.open:
            j = self.jobs[chunk]
            t = self.writer.spec.num_frames
            size = self.frames_encoder.spec.image_size if self.frames_encoder is not None else 0
            self.open[chunk] = ChunkAssembler(
                chunk, j.row_start, j.row_stop - j.row_start, t, self.dims, frame_size=size
            )
        return self.open[chunk]

    def _flush(self, acc: ChunkAssembler, bar: Any) -> None:
        waiting, acc.waiting = acc.waiting, []
        bins, _ = parse_sampling_rule(self.writer.spec.sampling)
        results = encode_pieces(waiting, self.provider, self.encoders, self.records, self.timings, bins)
        for piece, result in zip(waiting, results, strict=True):
            rows = [int(r) for r in piece.rows]
            if isinstance(result, Exception):
                acc.fail(rows, [f"hand boxes: {result}"] * len(rows))
            else:
                acc.add(piece.rows, piece.frame_index, *result)
                if self.frames_encoder is not None:  # the frame cache: the encoder's input, before normalisation
                    t0 = time.perf_counter()
                    acc.add_frames(piece.rows, crop_frames(self.frames_encoder, piece.frames))
                    self.timings.encode += time.perf_counter() - t0
            bar.update(len(rows))

    def _write(self, acc: ChunkAssembler) -> None:
        left = acc.pending_rows()
        if left:
            raise RuntimeError(f"chunk {acc.chunk}: rows {left[:10]} were neither decoded nor failed")
        t0 = time.perf_counter()
        self.writer.write_chunk(
            acc.chunk,
            frame_index=acc.frame_index,
            hand_box=acc.hand_box,
            hand_source=acc.hand_source,
            features=acc.features,
            row_status=acc.row_status,
            failures=acc.failures,
            frames=None if acc.frames is None else {self.frames_encoder.spec.name: acc.frames},
        )
        self.timings.write += time.perf_counter() - t0
        n_ok, n_bad = int((acc.row_status == ROW_OK).sum()), int((acc.row_status == ROW_FAILED).sum())
        self.rows_ok, self.rows_failed, self.written = self.rows_ok + n_ok, self.rows_failed + n_bad, self.written + 1
        self.failures += [
            {"segment_id": self.records[f["row"]].segment_id, "video_id": self.records[f["row"]].video_id, **f}
            for f in acc.failures
        ]
        if self.on_chunk is not None:
            self.on_chunk(acc.chunk, n_ok, n_bad)
