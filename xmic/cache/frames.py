"""The frame cache: the preprocessed full frames a CLIP encoder receives, for stage-two methods that run the frozen
visual encoder themselves (Vita-CLIP prompts inside it, so a feature cache cannot serve it).

``xmic extract ... --frames-cache`` adds to a dataset group, for the classified CLIP encoder (``--encoder``)::

    frames/<encoder>/full   (N, T, S, S, 3) uint8 RGB

every slot's full frame resized (shorter side to the encoder's ``resize``, with its interpolation) and centre-cropped
to ``image_size`` S: the encoder's input before normalisation (:func:`xmic.extract.preprocess.preprocess_uint8`).
Rows that failed hold zeros. The group's :class:`~xmic.cache.schema.StoreSpec` records it in ``frames``
(``{encoder: {"view", "image_size", "codec", "quality", "subsampling"}}``).

Storage (Zarr v3 only): zarr's sharding codec with one shard per store chunk (``chunk_rows`` rows, all T slots:
one object per chunk, written whole with the chunk's other arrays before its done flag, so the done flags, resume
and ``reset_damaged`` work unchanged) and one inner chunk per image ``(1, 1, S, S, 3)``, so a reader decodes only
the slots it asks for. Each image is encoded by imagecodecs' JPEG codec (libjpeg-turbo; its numcodecs class
``imagecodecs.numcodecs.Jpeg``, behind zarr's numcodecs adapter as the codec ``numcodecs.imagecodecs_jpeg``) and
followed by a crc32c checksum; the shard index carries zarr's own crc32c. No codec is written here: the classes
below only name imagecodecs' codec to zarr and import it lazily.

Loss: JPEG at quality 95 with 4:4:4 chroma (no subsampling) and optimised Huffman tables. On a real egocentric clip
(Ego4D, 384x288 -> 224x224) the decoded frames differ from the encoder's input by 1.2 levels on average (of 255),
PSNR >= 43 dB on every frame; ``tests/test_frame_cache.py`` checks mean error <= 2 levels and PSNR >= 35 dB.

HDF5 (``--format h5``) is refused: h5py has no image filter without third-party plugins (hdf5plugin ships none
for JPEG), and this package writes no codec of its own.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from xmic.cache.errors import StoreError
from xmic.cache.layout import frames_key

#: The only view stored: the full frame (Vita-CLIP runs the encoder on whole frames).
VIEW = "full"
CODEC = "jpeg"
DEFAULT_QUALITY = 95
SUBSAMPLING = "444"
#: numcodecs id of imagecodecs' JPEG codec, and the name zarr records for it in ``zarr.json``.
CODEC_ID = "imagecodecs_jpeg"
CODEC_NAME = f"numcodecs.{CODEC_ID}"
#: How to get the codec: the optional dependency group of pyproject.toml.
INSTALL_HINT = "pip install 'xmic[frames]' (the imagecodecs package)"
#: Fill value: what an image reads before its chunk is written (black).
FILL = 0

_registered: dict[str, Any] = {}


def codec_missing_message(what: str = "--frames-cache") -> str:
    return f"{what} needs the JPEG codec of imagecodecs, which is not installed: {INSTALL_HINT}"


def codec_available() -> bool:
    """Whether imagecodecs' JPEG codec can be imported here (the ``frames`` extra)."""
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(getattr(imagecodecs.JPEG8, "available", False))


def require_codec(what: str = "--frames-cache") -> None:
    """Raise StoreError (one line naming the extra to install) unless imagecodecs' JPEG codec can be used."""
    if not codec_available():
        raise StoreError(codec_missing_message(what))


def frame_spec(image_size: int, quality: int = DEFAULT_QUALITY) -> dict[str, Any]:
    """What ``StoreSpec.frames[encoder]`` records for frames of ``image_size`` pixels at JPEG ``quality``."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    return {
        "view": VIEW,
        "image_size": int(image_size),
        "codec": CODEC,
        "quality": int(quality),
        "subsampling": SUBSAMPLING,
    }


def register_codecs() -> type:
    """Name imagecodecs' JPEG codec to zarr (idempotent; imports zarr, not imagecodecs). Returns the codec class.

    The class is zarr's own numcodecs adapter for array-to-bytes codecs; it only resolves its numcodecs codec from
    imagecodecs lazily (a clear StoreError naming the extra when imagecodecs is missing) and keeps quiet about
    numcodecs codecs not being in the Zarr v3 specification (zarr warns on every metadata read otherwise).
    """
    cls = _registered.get(CODEC_NAME)
    if cls is not None:
        return cls
    from functools import cached_property

    import zarr.registry
    from zarr.codecs.numcodecs import _NumcodecsArrayBytesCodec

    class ImagecodecsJpeg(_NumcodecsArrayBytesCodec, codec_name=CODEC_ID):  # type: ignore[misc,call-arg]
        def __init__(self, **codec_config: Any) -> None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3")
                super().__init__(**codec_config)

        @cached_property
        def _codec(self) -> Any:
            require_codec("reading or writing a frame cache")
            from imagecodecs.numcodecs import Jpeg

            return Jpeg(**{k: v for k, v in self.codec_config.items() if k != "id"})

    ImagecodecsJpeg.__qualname__ = ImagecodecsJpeg.__name__
    zarr.registry.register_codec(CODEC_NAME, ImagecodecsJpeg)
    _registered[CODEC_NAME] = ImagecodecsJpeg
    return ImagecodecsJpeg


def _zarr_root(s: Any, what: str) -> Any:
    root = getattr(s, "root", None)
    if root is None or type(root).__module__.split(".")[0] != "zarr":
        raise StoreError(f"{what}: a frame cache needs a Zarr store (--format zarr); an HDF5 store cannot hold one")
    return root


def allocate(s: Any, spec: Any, n_rows: int) -> None:
    """Create the frame arrays of ``spec.frames`` in group ``spec.dataset`` (called while the group is allocated)."""
    for encoder, fs in spec.frames.items():
        if encoder not in spec.encoders:
            raise ValueError(
                f"frame cache for {encoder!r}, which is not among the spec's encoders {sorted(spec.encoders)}"
            )
        create_array(s, frames_key(spec.dataset, encoder), n_rows, spec.num_frames, fs, spec.chunk_rows)


def create_array(s: Any, key: str, n_rows: int, num_frames: int, fs: dict[str, Any], chunk_rows: int) -> None:
    """``key`` as an (N, T, S, S, 3) uint8 array: one shard per store chunk, one JPEG + crc32c per image."""
    from zarr.codecs import Crc32cCodec

    root = _zarr_root(s, key)
    if fs.get("codec") != CODEC:
        raise ValueError(f"{key}: unknown frame codec {fs.get('codec')!r}; this xmic writes {CODEC!r}")
    size, t = int(fs["image_size"]), int(num_frames)
    cls = register_codecs()
    parent = key.rpartition("/")[0]
    root.require_group(parent)
    rows = max(1, min(int(chunk_rows), int(n_rows)))
    root.create_array(
        key,
        shape=(n_rows, t, size, size, 3),
        chunks=(1, 1, size, size, 3),
        shards=(rows, t, size, size, 3),
        dtype="uint8",
        fill_value=FILL,
        serializer=cls(level=int(fs["quality"]), subsampling=str(fs.get("subsampling", SUBSAMPLING)), optimize=True),
        compressors=[Crc32cCodec()],
        config={"write_empty_chunks": True},  # every image of a written shard is stored: a lost one is damage
        overwrite=True,
    )


def checked(spec: Any, frames: dict[str, Any] | None, n: int, chunk: int) -> dict[str, np.ndarray]:
    """The frame arrays of one chunk by store key, checked against the spec: ``{encoder: (n, T, S, S, 3) uint8}``
    (numpy or torch) for every encoder of ``spec.frames``; ValueError otherwise."""
    frames = dict(frames or {})
    want = getattr(spec, "frames", None) or {}
    extra = sorted(set(frames) - set(want))
    if extra:
        have = sorted(want) or "none"
        raise ValueError(f"frames given for {extra} but the store's frame cache holds {have} (chunk {chunk})")
    out = {}
    for encoder, fs in want.items():
        if encoder not in frames:
            raise ValueError(f"chunk {chunk}: the store has a frame cache for {encoder!r}; write_chunk needs frames=")
        arr = frames[encoder]
        if type(arr).__module__.startswith("torch"):
            arr = arr.detach().cpu().numpy()
        arr = np.asarray(arr)
        size = int(fs["image_size"])
        shape = (n, spec.num_frames, size, size, 3)
        if arr.shape != shape or arr.dtype != np.uint8:
            raise ValueError(
                f"frames[{encoder!r}] of chunk {chunk}: expected uint8 {shape}, got {arr.dtype} {arr.shape}"
            )
        out[frames_key(spec.dataset, encoder)] = np.ascontiguousarray(arr)
    return out


def expected_shapes(dataset: str, spec: Any, n_rows: int) -> dict[str, tuple[int, ...]]:
    t = spec.num_frames
    return {
        frames_key(dataset, enc): (n_rows, t, int(fs["image_size"]), int(fs["image_size"]), 3)
        for enc, fs in (getattr(spec, "frames", None) or {}).items()
    }


def array_bytes(store_path: str | os.PathLike, key: str) -> int:
    """Bytes on disk of array ``key`` of a Zarr store (its folder, metadata included); 0 for an HDF5 file."""
    folder = Path(store_path) / key
    if not folder.is_dir():
        return 0
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def cache_info(s: Any, dataset: str, spec: Any, done: np.ndarray, store_path: str | os.PathLike) -> dict[str, Any]:
    """``xmic cache info``'s view of the frame cache: per encoder, its shape, codec, bytes and bytes per written clip
    (rows of done chunks)."""
    out: dict[str, Any] = {}
    n_rows = None
    for encoder, fs in (getattr(spec, "frames", None) or {}).items():
        key = frames_key(dataset, encoder)
        entry: dict[str, Any] = {k: fs.get(k) for k in ("view", "image_size", "codec", "quality", "subsampling")}
        if not s.has(key):
            entry["error"] = f"array {key} is missing"
            out[encoder] = entry
            continue
        info = s.info(key)
        n_rows = info.shape[0]
        rows_done = sum(
            min(n_rows, (int(c) + 1) * spec.chunk_rows) - int(c) * spec.chunk_rows for c in np.flatnonzero(done == 1)
        )
        size = array_bytes(store_path, key)
        entry.update(
            shape=list(info.shape),
            checksum=info.checksum,
            bytes=size,
            rows_written=int(rows_done),
            bytes_per_clip=(size / rows_done) if rows_done else None,
        )
        out[encoder] = entry
    return out


def read(s: Any, key: str, rows: np.ndarray, slots: np.ndarray | None, num_frames: int) -> np.ndarray:
    """``frames[rows][:, slots]`` as (B, T', S, S, 3) uint8 numpy; ``slots`` (T',) shared by every row or (B, T')
    per row, None for all T. Decodes only the images asked for (zarr reads single inner chunks of a shard)."""
    rows = np.asarray(rows, dtype=np.int64)
    if slots is None:
        slots = np.arange(num_frames)
    slots = np.asarray(slots, dtype=np.int64)
    root = getattr(s, "root", None)
    zarr_store = root is not None and type(root).__module__.split(".")[0] == "zarr"
    if slots.ndim == 1:
        if zarr_store:
            return np.asarray(root[key].oindex[rows, slots])
        slots = np.broadcast_to(slots, (len(rows), len(slots)))
    out = _empty(s, key, len(rows), slots.shape[1])
    if zarr_store:
        from concurrent.futures import ThreadPoolExecutor

        arr = root[key]

        def one(i: int) -> None:
            out[i] = arr.oindex[int(rows[i]), slots[i]]

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(rows)))) as pool:
            list(pool.map(one, range(len(rows))))
        return out
    for i, r in enumerate(rows):  # another backend (an exported copy): row by row
        out[i] = s.read(key, slice(int(r), int(r) + 1))[0][slots[i]]
    return out


def _empty(s: Any, key: str, b: int, t: int) -> np.ndarray:
    shape = s.info(key).shape
    return np.empty((b, t, *shape[2:]), np.uint8)
