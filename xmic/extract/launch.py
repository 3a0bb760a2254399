"""Processes of an extraction: rank discovery, creating or joining the store, and the decode worker pool.

Ranks: chunk ``c`` of a dataset group belongs to rank ``c % world_size``; every rank writes only its chunks, so
``torchrun`` (one process per GPU) or ``srun`` (several hosts on a shared filesystem) fill one Zarr store
together. Rank 0 creates the group; the others wait for its spec to appear and then join it, checking that they
would have created the same group.

Decode workers: :class:`DecodePool` runs :func:`xmic.extract.pipeline.decode_chunk` in ``workers`` spawned
processes that decode chunks ahead of the main process, through a bounded queue; ``workers=0`` decodes in the
main process. Workers watch their parent and exit when it is gone (a killed run leaves no orphans behind).
"""

from __future__ import annotations

import os
import queue
import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from xmic.cache import layout
from xmic.cache.backend import Backend
from xmic.cache.schema import StoreSpec
from xmic.cache.writer import StoreWriter
from xmic.extract.pipeline import ChunkDecoded, ChunkJob, DecodeSettings, VideoJob, decode_chunk

#: Environment variables read by :func:`discover_rank`, in order of preference: (rank, world size).
RANK_ENV = (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS"))
#: Seconds a non-zero rank waits for rank 0 to create the store's group.
CREATE_TIMEOUT = 1800.0
_POLL = 0.2


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


def plan_chunks(records: list[Any], chunk_rows: int, chunks: list[int], clamp_stop: bool = False) -> list[ChunkJob]:
    """Group the rows of each chunk in ``chunks`` by video.

    Args:
        records: The store's rows in order (:class:`~xmic.extract.datasets.SegmentRecord`).
        chunk_rows: Rows per store chunk.
        chunks: Which chunks to plan.
        clamp_stop: Clamp every row's stop frame to its media's length (EGTEA).

    Returns:
        One :class:`ChunkJob` per chunk, in the order given.
    """
    jobs = []
    for c in chunks:
        lo, hi = c * chunk_rows, min(len(records), (c + 1) * chunk_rows)
        videos: list[VideoJob] = []
        row = lo
        while row < hi:
            first = records[row]
            end = row
            while end < hi and records[end].video_id == first.video_id:
                end += 1
            group = records[row:end]
            videos.append(
                VideoJob(
                    video_id=first.video_id,
                    path=None if first.video_path is None else str(first.video_path),
                    media_kind=first.media_kind,
                    annot_fps=float(first.fps),
                    clamp_stop=clamp_stop,
                    rows=tuple(range(row, end)),
                    starts=tuple(int(r.start_frame) for r in group),
                    stops=tuple(int(r.stop_frame) for r in group),
                )
            )
            row = end
        jobs.append(ChunkJob(c, lo, hi, tuple(videos)))
    return jobs


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
            if _group_state(path, spec.dataset, fmt) == "ready":
                return StoreWriter.create(path, spec, segments, vocab, fmt)
        except (OSError, ValueError) as exc:  # metadata caught mid-write by rank 0; try again
            last_error = exc
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
