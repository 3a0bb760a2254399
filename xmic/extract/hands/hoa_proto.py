"""The EPIC-KITCHENS-100 hand-object detection messages, read and written without protoc or ``protobuf``.

The official detections (epic-kitchens-100-hand-object-bboxes, library ``epic_kitchens.hoa``) are one
pickle per video holding a list, one entry per RGB frame, of serialised protobuf messages. Their proto3
schema (package ``model.detections``), with the field numbers this codec reads::

    FloatVector     { float x = 1; float y = 2; }
    BBox            { float left = 1; float top = 2; float right = 3; float bottom = 4; }  # normalised [0, 1]
    HandDetection   { BBox bbox = 1; float score = 2; HandState state = 3;
                      FloatVector object_offset = 4; HandSide side = 5; }
    ObjectDetection { BBox bbox = 1; float score = 2; }
    Detections      { string video_id = 1; int32 frame_number = 2;
                      repeated HandDetection hands = 3; repeated ObjectDetection objects = 4; }

    HandState: NO_CONTACT 0, SELF_CONTACT 1, ANOTHER_PERSON 2, PORTABLE_OBJECT 3, STATIONARY_OBJECT 4
    HandSide:  LEFT 0, RIGHT 1

``frame_number`` is 1-based (list position + 1). ``object_offset`` points from the hand box centre to the
centre of the object the hand touches, in normalised units.

Why a hand-written codec: the wire format needs only varints, fixed32 floats and length-delimited
fields, about 100 lines, and this keeps ``--hands epic-hoa`` free of the ``protobuf`` package (which
is not a dependency of xmic). Proto3 rules are followed: absent fields take their zero default,
unknown fields are skipped, a repeated singular scalar keeps its last value and a repeated singular
message field is merged (decoded from the concatenation of its parts).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

NO_CONTACT, SELF_CONTACT, ANOTHER_PERSON, PORTABLE_OBJECT, STATIONARY_OBJECT = range(5)
HAND_STATES = ("no_contact", "self_contact", "another_person", "portable_object", "stationary_object")
LEFT, RIGHT = 0, 1

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_F32 = struct.Struct("<f")


class ProtoDecodeError(ValueError):
    """Bytes that are not a valid message of the schema above."""


@dataclass(frozen=True)
class BBox:
    """Normalised box: ``left`` (``top_left_x`` in the proto), ``top``, ``right``, ``bottom``."""

    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass(frozen=True)
class HandDetection:
    bbox: BBox = field(default_factory=BBox)
    score: float = 0.0
    state: int = NO_CONTACT
    object_offset: tuple[float, float] = (0.0, 0.0)
    side: int = LEFT


@dataclass(frozen=True)
class ObjectDetection:
    bbox: BBox = field(default_factory=BBox)
    score: float = 0.0


@dataclass(frozen=True)
class FrameDetections:
    video_id: str = ""
    frame_number: int = 0
    hands: tuple[HandDetection, ...] = ()
    objects: tuple[ObjectDetection, ...] = ()


# ---------------------------------------------------------------------------------------------- decoding


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoDecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtoDecodeError("varint longer than 10 bytes")


def _fields(buf: bytes):
    """Yield ``(field_number, wire_type, value)``: int for varints, bytes for the other wire types."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoDecodeError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire in (_I32, _I64):
            size = 4 if wire == _I32 else 8
            if pos + size > end:
                raise ProtoDecodeError(f"truncated fixed{size * 8} field {number}")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise ProtoDecodeError(f"truncated length-delimited field {number}")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ProtoDecodeError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _expect(number: int, wire: int, wanted: int, message: str) -> None:
    if wire != wanted:
        raise ProtoDecodeError(f"{message}.{number}: wire type {wire}, expected {wanted}")


def _float(value: bytes) -> float:
    return _F32.unpack(value)[0]


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _decode_floats(buf: bytes, n: int, message: str) -> list[float]:
    """A message whose fields 1..n are all floats (BBox, FloatVector)."""
    values = [0.0] * n
    for number, wire, value in _fields(buf):
        if 1 <= number <= n:
            _expect(number, wire, _I32, message)
            values[number - 1] = _float(value)
    return values


def _decode_bbox(buf: bytes) -> BBox:
    return BBox(*_decode_floats(buf, 4, "BBox"))


def _decode_hand(buf: bytes) -> HandDetection:
    bbox, offset = bytearray(), bytearray()
    score, state, side = 0.0, NO_CONTACT, LEFT
    for number, wire, value in _fields(buf):
        if number == 1:
            _expect(number, wire, _LEN, "HandDetection")
            bbox += value
        elif number == 2:
            _expect(number, wire, _I32, "HandDetection")
            score = _float(value)
        elif number == 3:
            _expect(number, wire, _VARINT, "HandDetection")
            state = _int32(value)
        elif number == 4:
            _expect(number, wire, _LEN, "HandDetection")
            offset += value
        elif number == 5:
            _expect(number, wire, _VARINT, "HandDetection")
            side = _int32(value)
    x, y = _decode_floats(bytes(offset), 2, "FloatVector")
    return HandDetection(_decode_bbox(bytes(bbox)), score, state, (x, y), side)


def _decode_object(buf: bytes) -> ObjectDetection:
    bbox = bytearray()
    score = 0.0
    for number, wire, value in _fields(buf):
        if number == 1:
            _expect(number, wire, _LEN, "ObjectDetection")
            bbox += value
        elif number == 2:
            _expect(number, wire, _I32, "ObjectDetection")
            score = _float(value)
    return ObjectDetection(_decode_bbox(bytes(bbox)), score)


def decode_frame_detections(data: bytes) -> FrameDetections:
    """Parse one serialised ``Detections`` message.

    Raises:
        ProtoDecodeError: the bytes do not follow the schema.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtoDecodeError(f"expected serialised message bytes, got {type(data).__name__}")
    data = bytes(data)
    video_id, frame_number = "", 0
    hands: list[HandDetection] = []
    objects: list[ObjectDetection] = []
    for number, wire, value in _fields(data):
        if number == 1:
            _expect(number, wire, _LEN, "Detections")
            try:
                video_id = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ProtoDecodeError("Detections.video_id is not UTF-8") from None
        elif number == 2:
            _expect(number, wire, _VARINT, "Detections")
            frame_number = _int32(value)
        elif number == 3:
            _expect(number, wire, _LEN, "Detections")
            hands.append(_decode_hand(value))
        elif number == 4:
            _expect(number, wire, _LEN, "Detections")
            objects.append(_decode_object(value))
    return FrameDetections(video_id, frame_number, tuple(hands), tuple(objects))


def peek_frame_number(data: bytes) -> int:
    """``frame_number`` of a serialised ``Detections`` without decoding its detections."""
    frame_number = 0
    for number, wire, value in _fields(bytes(data)):
        if number == 2 and wire == _VARINT:
            frame_number = _int32(value)
    return frame_number


# ---------------------------------------------------------------------------------------------- encoding


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 values are sign-extended to 10 bytes, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _enc_float(number: int, value: float) -> bytes:
    return _key(number, _I32) + _F32.pack(value) if value != 0.0 else b""


def _enc_int(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _varint(value) if value else b""


def _enc_len(number: int, payload: bytes, always: bool = False) -> bytes:
    return _key(number, _LEN) + _varint(len(payload)) + payload if payload or always else b""


def _enc_bbox(box: BBox) -> bytes:
    return b"".join(_enc_float(i + 1, v) for i, v in enumerate(box.xyxy))


def encode_frame_detections(det: FrameDetections) -> bytes:
    """Serialise ``det`` as a proto3 ``Detections`` message (default values omitted, as protobuf does)."""
    out = [_enc_len(1, det.video_id.encode("utf-8")), _enc_int(2, det.frame_number)]
    for hand in det.hands:
        offset = _enc_float(1, hand.object_offset[0]) + _enc_float(2, hand.object_offset[1])
        body = (
            _enc_len(1, _enc_bbox(hand.bbox))
            + _enc_float(2, hand.score)
            + _enc_int(3, hand.state)
            + _enc_len(4, offset)
            + _enc_int(5, hand.side)
        )
        out.append(_enc_len(3, body, always=True))
    for obj in det.objects:
        out.append(_enc_len(4, _enc_len(1, _enc_bbox(obj.bbox)) + _enc_float(2, obj.score), always=True))
    return b"".join(out)
