"""`xmic bench store`: the store's write and load speed and its size on disk, against plain ``.npy`` files.

For each backend (Zarr v3, HDF5) the same fp16 feature arrays of an EPIC-like shape, scaled down, are:

* written chunk by chunk through :class:`~xmic.cache.writer.StoreWriter` (every array of a chunk with its
  checksum, then its done flag, as extraction writes them), against ``np.save`` of the same feature arrays, one
  ``.npy`` per (encoder, view): ``write_ratio`` = npy seconds / chunk-writing seconds (the writer goes through
  zarr's and h5py's own write paths; extraction produces features far slower than either writes). The chunk
  writing is :meth:`~xmic.cache.writer.StoreWriter.pending_chunks` and every
  :meth:`~xmic.cache.writer.StoreWriter.write_chunk`; creating the group (segment table, vocabulary, empty arrays),
  done once per store, is timed apart (``create_s``) and ``write_ratio_with_create`` counts it too. The store
  side also writes the per-row arrays (frame index, boxes, status: about 1 % more bytes) that ``np.save`` skips.
  Both write new files (the previous round's store and ``.npy`` files are deleted untimed) and neither calls
  fsync;
* loaded whole with :meth:`~xmic.cache.reader.StoreReader.load_features_numpy`, as stage two reads them, against
  ``np.load`` of the same bytes: ``load_ratio`` = npy seconds / store seconds (goal ≥ 0.5);
* measured on disk: the bytes of the feature arrays against N × T × V × D × 2 (goal within 2 %). Zarr and HDF5
  store the last, partial chunk of an array at full size, so the default N is a whole number of chunks; at
  EPIC's 67,217 rows the padding is under 0.3 %. ``disk_over_chunk_grid`` divides by the padded size.

Each measurement is the best of ``repeats`` interleaved rounds (store, then npy, in every round), so that load
from other processes hits both alike. The files stay in the OS page cache in both cases: this compares the
libraries' overhead, not the disk.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from xmic.cache.schema import ROW_OK, TARGET_CHUNK_BYTES, VIEWS, StoreSpec, chunk_rows_for
from xmic.owned import remove_owned, store_owned

BACKENDS = {"zarr": "store.zarr", "h5": "store.h5"}


def _segments(n: int) -> dict[str, np.ndarray]:
    start = np.arange(n, dtype=np.int64) * 100 + 1
    return {
        "segment_id": np.array([f"s{i:07d}" for i in range(n)]),
        "video_id": np.array([f"v{i // 64:05d}" for i in range(n)]),
        "start_frame": start,
        "stop_frame": start + 90,
        "fps": np.full(n, 50.0, np.float32),
        "verb": np.zeros(n, np.int64),
        "noun": np.zeros(n, np.int64),
        "split": np.full(n, "train"),
    }


def _features(n: int, frames: int, dim: int, encoders: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """``{encoder: {view: (N, T, D) float16}}``, unit-scale noise (incompressible, as real embeddings nearly are)."""
    rng = np.random.default_rng(seed)
    return {
        f"enc{e}": {v: rng.standard_normal((n, frames, dim), dtype=np.float32).astype(np.float16) for v in VIEWS}
        for e in range(encoders)
    }


def write_store(
    path: Path, fmt: str, feats: dict[str, dict[str, np.ndarray]], chunk_rows: int
) -> tuple[StoreSpec, float, float]:
    """Write every chunk of one dataset group holding ``feats`` through the store's writer; returns the spec, the
    seconds creating the group took and the seconds writing its chunks took."""
    from xmic.cache.synthetic import synthetic_encoder_spec
    from xmic.cache.writer import StoreWriter

    first = next(iter(feats.values()))["full"]
    n, frames, dim = first.shape
    spec = StoreSpec(
        dataset="bench",
        num_frames=frames,
        encoders={name: synthetic_encoder_spec(name, dim) for name in feats},
        sampling=f"synthetic:{frames}",
        chunk_rows=chunk_rows,
        hands="none",
    )
    segments = _segments(n)
    t0 = time.perf_counter()
    writer = StoreWriter.create(path, spec, segments, {"verb": ["v"], "noun": ["n"]}, fmt, overwrite=True)
    t1 = time.perf_counter()
    for chunk in writer.pending_chunks():
        sl = writer.chunk_slice(chunk)
        m = sl.stop - sl.start
        writer.write_chunk(
            chunk,
            frame_index=np.zeros((m, frames), np.int32),
            hand_box=np.zeros((m, frames, 4), np.float32),
            features={name: {v: arr[sl] for v, arr in views.items()} for name, views in feats.items()},
            row_status=np.full(m, ROW_OK, np.uint8),
        )
    return spec, t1 - t0, time.perf_counter() - t1


def feature_bytes_on_disk(path: Path, fmt: str, feats: dict[str, dict[str, np.ndarray]]) -> int:
    """Bytes the feature arrays take on disk: their chunk files without metadata (Zarr) or stored size (HDF5)."""
    if fmt == "zarr":
        folder = path / "bench" / "features"
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != "zarr.json")
    import h5py

    with h5py.File(path, "r") as f:
        return sum(f[f"bench/features/{name}/{v}"].id.get_storage_size() for name in feats for v in VIEWS)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_store_bench(
    *,
    segments: int = 4080,
    frames: int = 48,
    dim: int = 512,
    encoders: int = 1,
    repeats: int = 3,
    backends: tuple[str, ...] = tuple(BACKENDS),
    seed: int = 0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Write, load and size the same features through each backend and as ``.npy``; ratios as described above."""
    from xmic.cache.reader import StoreReader

    feats = _features(segments, frames, dim, encoders, seed)
    raw = sum(a.nbytes for views in feats.values() for a in views.values())  # N x T x V x D x 2 (x encoders)
    chunk_rows = min(segments, chunk_rows_for(frames, dim))
    out: dict[str, Any] = {
        "benchmark": "store",
        "shape": {"N": segments, "T": frames, "V": len(VIEWS), "D": dim, "encoders": encoders, "dtype": "float16"},
        "feature_bytes": raw,
        "chunk_rows": chunk_rows,
        "chunk_bytes": chunk_rows * frames * dim * 2,
        "chunk_why": (
            f"about {TARGET_CHUNK_BYTES // 2**20} MiB per feature chunk: big enough that per-chunk overhead "
            "(a file, a checksum, a codec call) is small against the bytes, small enough that a crash loses "
            "little and several ranks write disjoint chunks"
        ),
        "repeats": repeats,
        "backends": {},
    }
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        tiny = {name: {v: a[:2] for v, a in views.items()} for name, views in feats.items()}
        for fmt in backends:  # import the storage libraries and warm their code paths outside the timed rounds
            write_store(root / f"warm-{BACKENDS[fmt]}", fmt, tiny, 2)
            StoreReader(root / f"warm-{BACKENDS[fmt]}", "bench").load_features_numpy(next(iter(feats)), "full")
        npy = {(name, v): root / f"{name}-{v}.npy" for name in feats for v in VIEWS}
        for fmt in backends:
            path = root / BACKENDS[fmt]
            write_s = create_s = total_s = npy_write_s = load_s = npy_load_s = float("inf")
            for _ in range(repeats):
                owned = store_owned(root, path.name)  # the store of the last round, in this temporary folder
                remove_owned(root, owned, [path.name], what=f"the benchmark store {path}", fix="remove it yourself")
                _, create, chunks = write_store(path, fmt, feats, chunk_rows)
                write_s, create_s, total_s = min(write_s, chunks), min(create_s, create), min(total_s, create + chunks)
                for p in npy.values():  # new files on both sides: the store's old copy was removed untimed too
                    p.unlink(missing_ok=True)
                npy_write_s = min(npy_write_s, _timed(lambda: [np.save(p, feats[k[0]][k[1]]) for k, p in npy.items()]))
                reader = StoreReader(path, "bench")
                loaded: dict[tuple[str, str], np.ndarray] = {}

                def load_all(r=reader, into=loaded) -> None:
                    for name in feats:
                        for v in VIEWS:
                            into[(name, v)] = r.load_features_numpy(name, v)

                load_s = min(load_s, _timed(load_all))
                npy_load_s = min(npy_load_s, _timed(lambda: [np.load(p) for p in npy.values()]))
                for (name, v), arr in loaded.items():
                    if not np.array_equal(arr, feats[name][v]):
                        raise AssertionError(f"{fmt}: features/{name}/{v} read back differs from what was written")
            disk = feature_bytes_on_disk(path, fmt, feats)
            padded = -(-segments // chunk_rows) * chunk_rows * raw // segments  # edge chunks are stored whole
            out["backends"][fmt] = {
                "write_s": round(write_s, 4),
                "npy_save_s": round(npy_write_s, 4),
                "write_MBps": round(raw / write_s / 1e6, 1),
                "write_ratio": round(npy_write_s / write_s, 3),
                "create_s": round(create_s, 4),
                "write_ratio_with_create": round(npy_write_s / total_s, 3),
                "load_s": round(load_s, 4),
                "npy_load_s": round(npy_load_s, 4),
                "load_MBps": round(raw / load_s / 1e6, 1),
                "load_ratio": round(npy_load_s / load_s, 3),
                "disk_bytes": disk,
                "disk_over_raw": round(disk / raw, 4),
                "disk_over_chunk_grid": round(disk / padded, 4),
            }
    return out


@click.command("store")
@click.option(
    "--segments", type=int, default=4080, show_default=True, help="N rows (24 chunks of 170; EPIC train has 67,217)."
)
@click.option("--frames", type=int, default=48, show_default=True, help="T slots per row.")
@click.option("--dim", type=int, default=512, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True, help="Interleaved rounds; the best is kept.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def store_bench_cmd(segments: int, frames: int, dim: int, repeats: int, as_json: bool) -> None:
    """Store write and whole-array load speed against np.save / np.load of the same bytes; size on disk."""
    result = run_store_bench(segments=segments, frames=frames, dim=dim, repeats=repeats)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{segments} x {frames} x {len(VIEWS)} x {dim} fp16 = {result['feature_bytes'] / 1e6:.0f} MB; "
        f"chunks of {result['chunk_rows']} rows ({result['chunk_bytes'] / 2**20:.1f} MiB)"
    )
    click.echo(
        "| backend | write MB/s | write vs np.save | with group creation | load MB/s | load vs np.load | disk / raw |"
    )
    click.echo("|---|---:|---:|---:|---:|---:|---:|")
    for fmt, r in result["backends"].items():
        click.echo(
            f"| {fmt} | {r['write_MBps']} | {r['write_ratio']:.2f} | {r['write_ratio_with_create']:.2f} | "
            f"{r['load_MBps']} | {r['load_ratio']:.2f} | {r['disk_over_raw']:.4f} |"
        )
