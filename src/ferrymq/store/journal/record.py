"""The on-disk byte layout: segment header, frames, batch entries; encode and decode.

All integers are little-endian. This module is the single place that knows the
layout; docs/durability.md describes the same thing in prose.

Segment header (32 bytes, at offset 0 of every ``.seg`` file)::

    0   magic        4s   b"FMQJ"
    4   version      u16  1
    6   header_len   u16  32
    8   first_seq    u64  sequence number of the first frame in this file
    16  next_key     u64  every key used before this file was created is < this
    24  reserved     u32  0
    28  header_crc   u32  zlib.crc32 of bytes 0..27

Frame (one per ``append`` call, or per compaction step)::

    0   length       u32  number of bytes after the crc: 1 (type) + len(payload)
    4   crc          u32  zlib.crc32 over type + payload
    8   type         u8   1 = BATCH
    9   payload      ...

BATCH payload::

    0   seq          u64  frame sequence number, +1 per frame in a segment
    8   count        u32  number of entries (>= 1)
    12  entries      count x (kind u8, key u64, payload_len u32, payload)

An entry header is 13 bytes, so a frame costs 21 bytes plus 13 per entry plus
the payloads. A REMOVE entry has payload_len 0.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BATCH_HEADER",
    "ENTRY_HEADER",
    "FRAME_HEADER",
    "FRAME_OVERHEAD",
    "FRAME_TYPE_BATCH",
    "MAX_KEY",
    "MIN_FRAME",
    "SEGMENT_HEADER",
    "Entry",
    "EntryKind",
    "FrameError",
    "ParsedEntry",
    "SegmentHeader",
    "decode_header",
    "encode_frame",
    "encode_header",
    "parse_frame",
]

MAGIC = b"FMQJ"
FORMAT_VERSION = 1
FRAME_TYPE_BATCH = 1
MAX_KEY = (1 << 64) - 1
MAX_PAYLOAD = (1 << 32) - 1

_HEADER_BODY = struct.Struct("<4sHHQQI")
_U32 = struct.Struct("<I")
SEGMENT_HEADER = _HEADER_BODY.size + _U32.size  # 32
FRAME_HEADER = struct.Struct("<II")  # length, crc
BATCH_HEADER = struct.Struct("<BQI")  # type, seq, count: the first 13 bytes under the crc
ENTRY_HEADER = struct.Struct("<BQI")  # kind, key, payload length
FRAME_OVERHEAD = FRAME_HEADER.size + BATCH_HEADER.size  # 21
MIN_FRAME = FRAME_OVERHEAD + ENTRY_HEADER.size  # 34: a frame holds at least one entry
# Where the type byte sits in a frame: recovery searches for it when resyncing.
TYPE_OFFSET = FRAME_HEADER.size
# A one-entry batch's type, seq, count and entry header, packed at once.
_SINGLE_HEAD = struct.Struct("<BQIBQI")
_SINGLE_OFFSETS = [MIN_FRAME]  # shared, never mutated


class EntryKind(enum.IntEnum):
    ADD = 1
    REMOVE = 2


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal entry. ADD: a new live record under ``key``. REMOVE: that ADD is dead."""

    kind: EntryKind
    key: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    first_seq: int
    next_key: int


class FrameError(Exception):
    """A frame that does not verify; the message says why (recovery adds file and offset)."""


def encode_header(first_seq: int, next_key: int) -> bytes:
    body = _HEADER_BODY.pack(MAGIC, FORMAT_VERSION, SEGMENT_HEADER, first_seq, next_key, 0)
    return body + _U32.pack(zlib.crc32(body))


def decode_header(data: bytes | memoryview) -> SegmentHeader:
    """Decode and verify a segment header; FrameError says what is wrong."""
    if len(data) < SEGMENT_HEADER:
        raise FrameError(f"incomplete segment header ({len(data)} of {SEGMENT_HEADER} bytes)")
    magic, version, header_len, first_seq, next_key, _ = _HEADER_BODY.unpack_from(data, 0)
    (crc,) = _U32.unpack_from(data, _HEADER_BODY.size)
    if magic != MAGIC:
        raise FrameError(f"bad segment magic {bytes(magic)!r}")
    if zlib.crc32(data[: _HEADER_BODY.size]) != crc:
        raise FrameError("segment header CRC mismatch")
    if version != FORMAT_VERSION or header_len != SEGMENT_HEADER:
        raise FrameError(f"unsupported segment format version {version} (header {header_len})")
    return SegmentHeader(first_seq, next_key)


def encode_frame(seq: int, entries: Sequence[Entry], parts: list[bytes]) -> tuple[int, list[int]]:
    """Append the frame's byte strings to ``parts``; return (frame size, payload offsets).

    Payload offsets are relative to the start of the frame, for the index.
    The payloads go into ``parts`` uncopied: the caller's single
    ``b"".join`` is their only copy, and the CRC is computed incrementally
    over the same objects.
    """
    crc32 = zlib.crc32
    if len(entries) == 1:  # the common case, kept to a handful of C calls
        entry = entries[0]
        payload = entry.payload
        head = _SINGLE_HEAD.pack(FRAME_TYPE_BATCH, seq, 1, entry.kind, entry.key, len(payload))
        crc = crc32(payload, crc32(head))
        parts.append(FRAME_HEADER.pack(_SINGLE_HEAD.size + len(payload), crc) + head)
        if payload:
            parts.append(payload)
        return MIN_FRAME + len(payload), _SINGLE_OFFSETS
    pack_entry = ENTRY_HEADER.pack
    head = BATCH_HEADER.pack(FRAME_TYPE_BATCH, seq, len(entries))
    crc = crc32(head)
    body_parts: list[bytes] = [head]
    offsets: list[int] = []
    pos = FRAME_OVERHEAD
    for entry in entries:
        payload = entry.payload
        eh = pack_entry(entry.kind, entry.key, len(payload))
        crc = crc32(payload, crc32(eh, crc))
        body_parts.append(eh)
        pos += ENTRY_HEADER.size
        offsets.append(pos)
        if payload:
            body_parts.append(payload)
            pos += len(payload)
    length = pos - FRAME_HEADER.size
    parts.append(FRAME_HEADER.pack(length, crc))
    parts.extend(body_parts)
    return pos, offsets


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    kind: int
    key: int
    offset: int  # absolute offset of the payload in the buffer that was parsed
    length: int


def parse_frame(
    data: bytes, pos: int, seq_lo: int, seq_hi: int
) -> tuple[int, int, list[ParsedEntry]]:
    """Verify the frame at ``pos``; return (end offset, seq, entries).

    The frame's seq must lie in ``[seq_lo, seq_hi]``: recovery passes the one
    expected value while scanning, a range while resyncing. A CRC-valid frame
    with the wrong seq is not ours to replay (e.g. a stale block of a deleted
    segment exposed by a crash), so it is rejected like a bad CRC.
    """
    n = len(data)
    if n - pos < FRAME_OVERHEAD:
        raise FrameError(f"incomplete frame header ({n - pos} bytes left)")
    length, crc = FRAME_HEADER.unpack_from(data, pos)
    if length < MIN_FRAME - FRAME_HEADER.size:
        raise FrameError(f"bad frame length {length}")
    end = pos + FRAME_HEADER.size + length
    if end > n:
        raise FrameError(f"incomplete frame: length {length} runs {end - n} bytes past the end")
    if zlib.crc32(memoryview(data)[pos + FRAME_HEADER.size : end]) != crc:
        raise FrameError("frame CRC mismatch")
    ftype, seq, count = BATCH_HEADER.unpack_from(data, pos + FRAME_HEADER.size)
    if ftype != FRAME_TYPE_BATCH:
        raise FrameError(f"unknown frame type {ftype}")
    if not seq_lo <= seq <= seq_hi:
        expected = str(seq_lo) if seq_lo == seq_hi else f"{seq_lo}..{seq_hi}"
        raise FrameError(f"frame sequence {seq}, expected {expected}")
    entries: list[ParsedEntry] = []
    p = pos + FRAME_OVERHEAD
    unpack_entry = ENTRY_HEADER.unpack_from
    for _ in range(count):
        if p + ENTRY_HEADER.size > end:
            raise FrameError(f"malformed batch: entry header past the frame end ({count} entries)")
        kind, key, plen = unpack_entry(data, p)
        p += ENTRY_HEADER.size
        if kind not in (EntryKind.ADD, EntryKind.REMOVE) or key == 0:
            raise FrameError(f"malformed batch: entry kind {kind} key {key}")
        if p + plen > end or (kind == EntryKind.REMOVE and plen):
            raise FrameError(f"malformed batch: entry payload length {plen}")
        entries.append(ParsedEntry(kind, key, p, plen))
        p += plen
    if p != end or count == 0:
        raise FrameError(f"malformed batch: {count} entries do not fill the frame")
    return end, seq, entries
