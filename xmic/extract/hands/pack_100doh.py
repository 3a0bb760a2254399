"""Pack the 100DOH hand-object detector's per-frame output into the pickle ``--hands hoa`` reads.

``python -m xmic.extract.hands.pack_100doh DETS_DIR OUT.pkl --video-id ID``

``DETS_DIR`` holds one ``.npz`` per frame of one video, named so that sorting the names gives the frame order
(``frame_0000000001.npz``, ...: the frame files ffmpeg wrote with ``-start_number 1``), each with

- ``hand_dets``: ``(K, 10)`` the detector's hand rows, in pixels of the frame: ``x0, y0, x1, y1, score,
  contact state (0 none, 1 self, 2 other person, 3 portable object, 4 stationary object), offset magnitude,
  offset unit x, offset unit y, side (0 left, 1 right)``; the object the hand touches is predicted at the hand
  centre plus ``magnitude * 10000 * (unit x, unit y)`` pixels (the detector's own matching rule);
- ``obj_dets``: ``(M, >= 5)`` object rows ``x0, y0, x1, y1, score, ...``;
- ``height``, ``width``: the frame size in pixels.

Missing keys or an empty array mean no detection. The k-th file (in name order) becomes frame number k + 1.
The pickle holds one serialised ``Detections`` message per frame with boxes and offsets normalised to [0, 1],
the format of the official EPIC-KITCHENS-100 release (:mod:`xmic.extract.hands.hoa_proto`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from xmic.extract.hands.base import HandBoxError
from xmic.extract.hands.hoa_proto import BBox, FrameDetections, HandDetection, ObjectDetection

DOH_HAND_COLUMNS = 10


def _box(row: np.ndarray, width: float, height: float) -> BBox:
    x0, y0, x1, y1 = (float(v) for v in row[:4])
    return BBox(x0 / width, y0 / height, x1 / width, y1 / height)


def frame_from_100doh(
    video_id: str, frame_number: int, hand_dets: np.ndarray | None, obj_dets: np.ndarray | None, height: int, width: int
) -> FrameDetections:
    """One frame's detector arrays (pixels) as a :class:`FrameDetections` (normalised), see the module docstring."""
    if height <= 0 or width <= 0:
        raise HandBoxError(f"{video_id} frame {frame_number}: frame size {width}x{height} is not positive")
    hands_px = np.zeros((0, DOH_HAND_COLUMNS)) if hand_dets is None else np.asarray(hand_dets, dtype=np.float64)
    objs_px = np.zeros((0, 5)) if obj_dets is None else np.asarray(obj_dets, dtype=np.float64)
    hands_px = hands_px.reshape(-1, hands_px.shape[-1]) if hands_px.size else np.zeros((0, DOH_HAND_COLUMNS))
    objs_px = objs_px.reshape(-1, objs_px.shape[-1]) if objs_px.size else np.zeros((0, 5))
    if hands_px.shape[1] != DOH_HAND_COLUMNS or objs_px.shape[1] < 5:
        raise HandBoxError(
            f"{video_id} frame {frame_number}: expected hand_dets (K, 10) and obj_dets (M, >=5), got "
            f"{hands_px.shape} and {objs_px.shape}"
        )
    hands = []
    for row in hands_px:
        magnitude, ux, uy = row[6], row[7], row[8]
        offset = (float(magnitude * 10000 * ux / width), float(magnitude * 10000 * uy / height))
        hands.append(
            HandDetection(_box(row, width, height), float(row[4]), int(round(row[5])), offset, int(round(row[9])))
        )
    objects = [ObjectDetection(_box(row, width, height), float(row[4])) for row in objs_px]
    return FrameDetections(video_id, int(frame_number), tuple(hands), tuple(objects))


def pack_100doh(dets_dir: str | Path, out: str | Path, video_id: str) -> tuple[Path, int]:
    """Pack every ``*.npz`` of ``dets_dir`` (name order = frame order) into ``out``; returns ``(out, frames)``."""
    from xmic.extract.hands.epic_hoa import write_hoa_pickle

    files = sorted(Path(dets_dir).glob("*.npz"))
    if not files:
        raise HandBoxError(f"{dets_dir}: no per-frame .npz detections")
    frames = []
    for k, path in enumerate(files):
        with np.load(path, allow_pickle=False) as z:
            if "height" not in z or "width" not in z:
                raise HandBoxError(f"{path}: needs the frame size (height, width)")
            frames.append(
                frame_from_100doh(
                    video_id,
                    k + 1,
                    z.get("hand_dets"),
                    z.get("obj_dets"),
                    int(z["height"]),
                    int(z["width"]),
                )
            )
    return write_hoa_pickle(out, frames), len(frames)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dets_dir", help="one .npz per frame (hand_dets, obj_dets, height, width)")
    parser.add_argument("out", help="the .pkl to write, e.g. hoa/ego4d/<clip_uid>.pkl")
    parser.add_argument("--video-id", required=True, help="the clip: Ego4D clip_uid, EGTEA clip name, EPIC video id")
    args = parser.parse_args(argv)
    out, n = pack_100doh(args.dets_dir, args.out, args.video_id)
    print(f"wrote {out} ({n} frames)")


if __name__ == "__main__":
    main()
