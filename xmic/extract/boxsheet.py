"""``xmic cache show-boxes``: a contact sheet of a store group's sampled frames with their hand boxes and crops.

For a few segments (``rows``), the frames the store sampled (its ``frame_index``) are decoded again from the media
under the dataset root recorded by ``xmic extract`` (or ``root``), with the same reader and sampling rule as the
extraction, and drawn in two strips per segment:

- the frame with the stored hand box (green when detected, orange when interpolated across a short gap: the
  store's ``hand_source``; a frame without a box is marked ``full frame`` in red), and in yellow the square the
  encoder sees of the box (its preprocessing resizes the crop's shorter side and cuts the centre
  square, so a wide box loses its sides);
- the hand view itself: that centre square of the crop (or of the full frame when there is no box).

Each strip is labelled with the row, segment id, labels and the frame numbers; the title names the hand provider
recorded in the store. The decoded frames must be the ones the store sampled: a row whose media gives other frame
numbers (another sampling rule or media) is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Store config keys that :class:`xmic.extract.runner.ExtractConfig` needs to find the rows' media again.
_CONFIG_KEYS = (
    "dataset",
    "root",
    "splits",
    "annotations_dir",
    "center_sec",
    "media",
    "egtea_split",
    "num_frames",
    "bins",
    "decode_size",
)


#: Outline colours of the sheet, by the store's ``hand_source`` code (``LEGEND`` says what each means).
DETECTED_COLOUR = (0, 255, 0)
INTERPOLATED_COLOUR = (255, 140, 0)
NO_BOX_COLOUR = (255, 0, 0)
SQUARE_COLOUR = (255, 230, 0)
LEGEND = (
    (DETECTED_COLOUR, "detected box"),
    (INTERPOLATED_COLOUR, "interpolated box (hand lost, filled between two frames)"),
    (NO_BOX_COLOUR, "no box: full frame"),
    (SQUARE_COLOUR, "square the encoder sees"),
)


#: Height of the sheet's title and legend above the first segment's strips.
LEGEND_LINE_H = 14
HEADER_H = 24 + LEGEND_LINE_H * len(LEGEND)


def hand_sources(reader: Any, boxes: np.ndarray) -> np.ndarray:
    """``(N, T)`` ``HAND_SOURCE_*`` codes of the reader's slots; none / detected from the boxes when the store
    does not record them (an older store) or the reader cannot say."""
    from xmic.cache.schema import hand_source_from_boxes

    read = getattr(reader, "read_hand_source", None)
    codes = read() if read is not None else None
    return hand_source_from_boxes(boxes) if codes is None else np.asarray(codes)


def box_colour(code: int) -> tuple[int, int, int]:
    """Outline of a box by its ``HAND_SOURCE_*`` code."""
    from xmic.cache.schema import HAND_SOURCE_INTERPOLATED, HAND_SOURCE_NONE

    if code == HAND_SOURCE_INTERPOLATED:
        return INTERPOLATED_COLOUR
    return NO_BOX_COLOUR if code == HAND_SOURCE_NONE else DETECTED_COLOUR


class BoxSheetError(ValueError):
    """The sheet cannot be drawn (no root recorded, unknown rows, media that give other frames); says why."""


def pick_rows(ok: np.ndarray, count: int) -> list[int]:
    """``count`` rows spread evenly over the ok rows (all of them when there are fewer)."""
    rows = np.flatnonzero(ok)
    if len(rows) <= count:
        return rows.tolist()
    return rows[np.linspace(0, len(rows) - 1, count).round().astype(int)].tolist()


def pick_slots(frame_index: np.ndarray, count: int) -> list[int]:
    """``count`` slots of one row, spread evenly over its distinct frames in time order."""
    order = np.argsort(frame_index, kind="stable")
    distinct = [int(s) for k, s in enumerate(order) if k == 0 or frame_index[s] != frame_index[order[k - 1]]]
    if len(distinct) <= count:
        return distinct
    return [distinct[i] for i in np.linspace(0, len(distinct) - 1, count).round().astype(int)]


def encoder_square(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel ``(x0, y0, x1, y1)`` of the centre square of ``box`` (or of the frame when it is NaN)."""
    from xmic.extract.preprocess import box_pixels

    px = box_pixels(box, height, width) if np.isfinite(box).all() else None
    x0, y0, x1, y1 = px if px is not None else (0, 0, width, height)
    side = min(x1 - x0, y1 - y0)
    cx, cy = x0 + ((x1 - x0) - side) // 2, y0 + ((y1 - y0) - side) // 2
    return cx, cy, cx + side, cy + side


def _config(record: dict[str, Any], root: str | Path | None) -> Any:
    from xmic.extract.runner import ExtractConfig

    known = {f.name for f in dataclasses.fields(ExtractConfig)}
    kwargs = {k: record[k] for k in _CONFIG_KEYS if k in known and record.get(k) is not None}
    if root is not None:
        kwargs["root"] = Path(root)
    if not kwargs.get("root"):
        raise BoxSheetError("the store does not record the dataset root; pass --root DIR")
    if not Path(kwargs["root"]).is_dir():
        raise BoxSheetError(f"dataset root {kwargs['root']} is not a directory; pass --root DIR")
    return ExtractConfig(**kwargs)


def decode_rows(reader: Any, rows: Sequence[int], root: str | Path | None = None) -> dict[int, np.ndarray]:
    """``{row: (T, H, W, 3) uint8}``: the frames the store sampled for ``rows``, decoded again from the media.

    Raises:
        BoxSheetError: no root, a row out of range, missing media, or media that give other frame numbers.
    """
    from xmic.extract.pipeline import ChunkJob, DecodeSettings, Failed, Piece, VideoJob, decode_chunk
    from xmic.extract.plan import FIRST_FRAME, load_dataset

    config = _config(dict(reader.spec.config or {}), root)
    data = load_dataset(config)
    stored_ids = [str(s) for s in reader.segments["segment_id"]]
    by_id = {r.segment_id: r for r in data.records}
    frame_index = np.asarray(reader.frame_index)
    videos = []
    for row in rows:
        if not 0 <= row < len(stored_ids):
            raise BoxSheetError(f"row {row} is not in the store (it has rows 0..{len(stored_ids) - 1})")
        rec = by_id.get(stored_ids[row])
        if rec is None:
            raise BoxSheetError(f"segment {stored_ids[row]} (row {row}) is not in the annotations under {config.root}")
        first_frame = FIRST_FRAME.get(config.dataset, 0)
        clamp = config.dataset == "egtea"
        videos.append(VideoJob.for_records([rec], (row,), clamp_stop=clamp, first_frame=first_frame))
    settings = DecodeSettings(reader.spec.num_frames, config.resolved_bins(), config.decode_size or None)
    out: dict[int, np.ndarray] = {}
    for item in decode_chunk(ChunkJob(0, 0, len(stored_ids), tuple(videos)), settings):
        if isinstance(item, Failed):
            raise BoxSheetError(f"row {item.rows[0]}: {item.reasons[0]}")
        if isinstance(item, Piece):
            for k, row in enumerate(item.rows.tolist()):
                if not np.array_equal(item.frame_index[k], frame_index[row]):
                    raise BoxSheetError(
                        f"row {row}: the media give frames {item.frame_index[k].tolist()}, the store sampled "
                        f"{frame_index[row].tolist()} (another sampling rule or media?)"
                    )
                out[row] = item.frames[k]
    return out


def _label(reader: Any, row: int) -> str:
    seg = reader.segments
    vocab = reader.vocab
    parts = [f"row {row}", str(seg["segment_id"][row])]
    for kind in ("verb", "noun"):
        names = vocab.get(f"{kind}s") or vocab.get(kind) or []
        if kind in seg:
            label = int(seg[kind][row])
            parts.append(names[label] if 0 <= label < len(names) else f"{kind} {label}")
    return "  ".join(parts)


def draw_sheet(
    reader: Any,
    rows: Sequence[int],
    frames: dict[int, np.ndarray],
    per_row: int = 8,
    thumb: int = 160,
    title: str = "",
) -> Any:
    """The contact sheet as a PIL image (see the module docstring)."""
    from PIL import Image, ImageDraw

    from xmic.cache.schema import HAND_SOURCE_INTERPOLATED

    boxes = np.asarray(reader.hand_box)
    sources = hand_sources(reader, boxes)
    frame_index = np.asarray(reader.frame_index)
    height0, width0 = next(iter(frames.values())).shape[1:3] if frames else (thumb, thumb)
    tw, th = thumb, max(1, round(thumb * height0 / width0))
    label_h, pad = 16, 4
    cols = per_row
    strip_h = label_h + th + pad + thumb + 2 * pad
    top = HEADER_H
    sheet = Image.new("RGB", (cols * (tw + pad) + pad, top + len(rows) * strip_h), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), title, fill=(0, 0, 0))
    for k, (colour, text) in enumerate(LEGEND):
        ly = 22 + LEGEND_LINE_H * k
        draw.rectangle([pad, ly + 2, pad + 18, ly + 11], outline=colour, width=2)
        draw.text((pad + 24, ly), text, fill=(0, 0, 0))
    for n, row in enumerate(rows):
        y = top + n * strip_h
        slots = pick_slots(frame_index[row], per_row)
        found = int(np.isfinite(boxes[row]).all(axis=1).sum())
        filled = int((sources[row] == HAND_SOURCE_INTERPOLATED).sum())
        draw.text(
            (pad, y + 2),
            f"{_label(reader, row)}   boxes in {found}/{len(boxes[row])} frames ({filled} interpolated)",
            fill=(0, 0, 0),
        )
        for c, slot in enumerate(slots):
            img = frames[row][slot]
            h, w = img.shape[:2]
            box = boxes[row, slot]
            x = pad + c * (tw + pad)
            small = Image.fromarray(img).resize((tw, th))
            d = ImageDraw.Draw(small)
            sq = encoder_square(box, h, w)
            sx, sy = tw / w, th / h
            if np.isfinite(box).all():
                colour = box_colour(int(sources[row, slot]))
                d.rectangle([box[0] * tw, box[1] * th, box[2] * tw - 1, box[3] * th - 1], outline=colour, width=2)
                d.rectangle([sq[0] * sx, sq[1] * sy, sq[2] * sx - 1, sq[3] * sy - 1], outline=SQUARE_COLOUR, width=1)
                if sources[row, slot] == HAND_SOURCE_INTERPOLATED:
                    d.text((4, th - 14), "interpolated", fill=INTERPOLATED_COLOUR)
            else:
                d.rectangle([0, 0, tw - 1, th - 1], outline=NO_BOX_COLOUR, width=2)
                d.text((4, th - 14), "full frame", fill=NO_BOX_COLOUR)
            d.text((3, 2), f"f{int(frame_index[row, slot])}", fill=(255, 255, 255))
            sheet.paste(small, (x, y + label_h))
            crop = Image.fromarray(img[sq[1] : sq[3], sq[0] : sq[2]]).resize((thumb, thumb))
            sheet.paste(crop.resize((tw, tw)) if tw != thumb else crop, (x, y + label_h + th + pad))
    return sheet


def show_boxes(
    cache: str | Path,
    dataset: str,
    out: str | Path,
    rows: Sequence[int] | None = None,
    root: str | Path | None = None,
    count: int = 4,
    per_row: int = 8,
) -> tuple[Path, list[int]]:
    """Write the contact sheet of ``rows`` (default: ``count`` ok rows spread over the store) to ``out``.

    Returns:
        ``(out, rows drawn)``.
    """
    from xmic.cache.hand_info import hand_record, hand_source
    from xmic.cache.reader import StoreReader
    from xmic.cache.schema import ROW_OK

    reader = StoreReader(cache, dataset)
    if rows is None:
        rows = pick_rows(np.asarray(reader.row_status) == ROW_OK, count)
        if not rows:
            raise BoxSheetError(f"{cache} [{dataset}] has no extracted (ok) rows to show")
    rows = [int(r) for r in rows]
    frames = decode_rows(reader, rows, root)
    record = hand_record(reader)
    settings = ", ".join(
        f"{k} {record[k]}" for k in ("running_mode", "min_detection_confidence", "max_gap", "dataset") if k in record
    )
    title = f"{Path(cache).name} [{dataset}]  hand boxes: {hand_source(reader)}" + (
        f"  ({settings})" if settings else ""
    )
    sheet = draw_sheet(reader, rows, frames, per_row=per_row, title=title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out, rows
