"""Binary encoding of what the broker stores: queues, messages, markers.

Each journal ADD entry's payload starts with a one-byte tag; the rest is a
fixed struct header and length-prefixed UTF-8 strings, then the body last so
that it is sliced, not copied, on decode. Layout (all little-endian):

    queue:     b"Q" | name | flags u8 | pattern (if flags & 1) | selector (if flags & 2)
    message:   b"M" | queue | id | destination | flags u8 | timestamp i64
                    | delivery_count u32 | header count u16 | seq u64 (if flag)
                    | (name | value)* | body (rest)
    delivered: b"D" | queue | highest delivered message key u64
    sequence:  b"S" | queue | last sequence number given u64
    id:        b"I" | scope | id          (a remembered dedup-id or transaction id)
    meta:      b"B" | JSON text
    count:     b"R" | queue | message key u64 | delivery_count u32
                    (a message given back for redelivery; replaces the
                    message's earlier count entry, removed with the message)
    scheduled: b"J" | destination | due i64 | remaining i32 | period i64
                    | fired u32 | cron | message (a whole b"M" payload)

where each string is u16 length + UTF-8 bytes (u32 for header values and
selectors). The queue flags byte was a 0/1 pattern flag before selectors,
so older records read the same.
Message flags: bit 0 persistent, bit 1 a queue sequence number follows,
bit 2 in a message group (`JMSXGroupID`), bit 3 a non-default priority in
bits 4-7. Priority and group sit in the flags (not only in the headers) so
that recovery learns them without decoding headers (`message_summary`);
records written before these bits existed read as priority 4, no group.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass
from typing import Any

from ferrymq.core.destination import Destination
from ferrymq.core.message import DEFAULT_PRIORITY, Message
from ferrymq.core.scheduler import ScheduledJob
from ferrymq.store.base import QueueSpec

__all__ = [
    "CodecError",
    "DeliveredMark",
    "RedeliveryCount",
    "RememberedId",
    "SequenceMark",
    "decode",
    "encode_delivered",
    "encode_id",
    "encode_message",
    "encode_meta",
    "encode_queue",
    "encode_redelivered",
    "encode_scheduled",
    "encode_sequence",
    "message_queue",
    "message_summary",
]

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_MSG_FIXED = struct.Struct("<BqIH")  # flags, timestamp, delivery_count, header count
_U64 = struct.Struct("<Q")
_COUNT = struct.Struct("<QI")  # message key, delivery count
_JOB_FIXED = struct.Struct("<qiqI")  # due, remaining, period, fired
_PERSISTENT = 1
_HAS_PATTERN = 1
_HAS_SELECTOR = 2
# message flags
_HAS_SEQ = 2
_GROUPED = 4
_HAS_PRIORITY = 8
GROUP_HEADER = "JMSXGroupID"


class CodecError(ValueError):
    """A stored payload that does not decode: the journal held bad data."""


@dataclass(frozen=True, slots=True)
class DeliveredMark:
    queue: str
    key: int


@dataclass(frozen=True, slots=True)
class SequenceMark:
    queue: str
    seq: int


@dataclass(frozen=True, slots=True)
class RedeliveryCount:
    queue: str
    key: int
    count: int


@dataclass(frozen=True, slots=True)
class RememberedId:
    scope: str
    ident: str


def _s16(text: str) -> bytes:
    raw = text.encode()
    return _U16.pack(len(raw)) + raw


def _s32(text: str) -> bytes:
    raw = text.encode()
    return _U32.pack(len(raw)) + raw


def encode_queue(spec: QueueSpec) -> bytes:
    flags = 0
    parts = [b"Q", _s16(spec.name), b""]
    if spec.topic_pattern is not None:
        flags |= _HAS_PATTERN
        parts.append(_s16(spec.topic_pattern))
    if spec.selector is not None:
        flags |= _HAS_SELECTOR
        parts.append(_s32(spec.selector))
    parts[2] = bytes([flags])
    return b"".join(parts)


def encode_message(queue: str, message: Message) -> bytes:
    parts = [b"M", _s16(queue), _s16(message.id), _s16(str(message.destination))]
    headers = message.headers
    flags = _PERSISTENT if message.persistent else 0
    if message.seq:
        flags |= _HAS_SEQ
    if GROUP_HEADER in headers:
        flags |= _GROUPED
    if message.priority != DEFAULT_PRIORITY:
        flags |= _HAS_PRIORITY | message.priority << 4
    parts.append(_MSG_FIXED.pack(flags, message.timestamp, message.delivery_count, len(headers)))
    if message.seq:
        parts.append(_U64.pack(message.seq))
    for name, value in headers.items():
        parts.append(_s16(name))
        parts.append(_s32(value))
    parts.append(message.body)
    return b"".join(parts)


def encode_delivered(queue: str, key: int) -> bytes:
    return b"D" + _s16(queue) + _U64.pack(key)


def encode_sequence(queue: str, seq: int) -> bytes:
    return b"S" + _s16(queue) + _U64.pack(seq)


def encode_redelivered(queue: str, key: int, count: int) -> bytes:
    return b"R" + _s16(queue) + _COUNT.pack(key, count)


def encode_scheduled(job: ScheduledJob) -> bytes:
    destination = str(job.destination)
    return b"".join(
        (
            b"J",
            _s16(destination),
            _JOB_FIXED.pack(job.due, job.remaining, job.period, job.fired),
            _s16(job.cron),
            encode_message(destination, job.message),
        )
    )


def encode_id(scope: str, ident: str) -> bytes:
    return b"I" + _s16(scope) + _s16(ident)


def encode_meta(meta: dict[str, Any]) -> bytes:
    return b"B" + json.dumps(meta, sort_keys=True).encode()


def message_queue(payload: bytes | memoryview) -> str:
    """The queue of a stored message, without decoding the rest; interned, so
    that a million recovered messages share one string per queue."""
    try:
        (n,) = _U16.unpack_from(payload, 1)
        return sys.intern(bytes(payload[3 : 3 + n]).decode())
    except (struct.error, UnicodeDecodeError) as exc:
        raise CodecError(f"undecodable stored message: {exc}") from None


def message_summary(payload: bytes | memoryview) -> str | tuple[str, int, bool]:
    """What recovery keeps of a stored message: its queue (interned), or for a
    message with a priority or a group, (queue, priority, grouped). Reads the
    flags only, never the headers or the body."""
    queue = message_queue(payload)
    try:
        pos = 1
        for _ in range(3):  # skip queue, id and destination
            (n,) = _U16.unpack_from(payload, pos)
            pos += 2 + n
        flags = payload[pos]
    except (struct.error, IndexError) as exc:
        raise CodecError(f"undecodable stored message: {exc}") from None
    if not flags & (_GROUPED | _HAS_PRIORITY):
        return queue
    priority = flags >> 4 if flags & _HAS_PRIORITY else DEFAULT_PRIORITY
    return queue, priority, bool(flags & _GROUPED)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def s16(self) -> str:
        (n,) = _U16.unpack_from(self.data, self.pos)
        start = self.pos + 2
        self.pos = start + n
        return self.data[start : self.pos].decode()

    def s32(self) -> str:
        (n,) = _U32.unpack_from(self.data, self.pos)
        start = self.pos + 4
        self.pos = start + n
        return self.data[start : self.pos].decode()


Decoded = (
    QueueSpec
    | tuple[str, Message]
    | DeliveredMark
    | SequenceMark
    | RememberedId
    | RedeliveryCount
    | ScheduledJob
    | dict[str, Any]
)


def decode(payload: bytes) -> Decoded:
    """Decode one stored payload; raises CodecError naming what is wrong."""
    try:
        return _decode(payload)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise CodecError(f"undecodable stored record ({payload[:1]!r}...): {exc}") from None


def _decode(payload: bytes) -> Decoded:
    tag = payload[:1]
    r = _Reader(payload, 1)
    if tag == b"M":
        queue = r.s16()
        message_id = r.s16()
        destination = Destination.parse(r.s16())
        flags, timestamp, delivery_count, n_headers = _MSG_FIXED.unpack_from(payload, r.pos)
        r.pos += _MSG_FIXED.size
        seq = 0
        if flags & _HAS_SEQ:
            (seq,) = _U64.unpack_from(payload, r.pos)
            r.pos += _U64.size
        headers = {}
        for _ in range(n_headers):
            name = r.s16()
            headers[name] = r.s32()
        body = payload[r.pos :]
        message = Message(
            message_id,
            destination,
            headers,
            body,
            persistent=bool(flags & _PERSISTENT),
            timestamp=timestamp,
            delivery_count=delivery_count,
            priority=flags >> 4 if flags & _HAS_PRIORITY else DEFAULT_PRIORITY,
            seq=seq,
        )
        return queue, message
    if tag == b"Q":
        name = r.s16()
        flags = payload[r.pos]
        r.pos += 1
        pattern = r.s16() if flags & _HAS_PATTERN else None
        selector = r.s32() if flags & _HAS_SELECTOR else None
        return QueueSpec(name, pattern, selector)
    if tag == b"D":
        queue = r.s16()
        (key,) = _U64.unpack_from(payload, r.pos)
        return DeliveredMark(queue, key)
    if tag == b"S":
        queue = r.s16()
        (seq,) = _U64.unpack_from(payload, r.pos)
        return SequenceMark(queue, seq)
    if tag == b"I":
        return RememberedId(r.s16(), r.s16())
    if tag == b"R":
        queue = r.s16()
        key, count = _COUNT.unpack_from(payload, r.pos)
        return RedeliveryCount(queue, key, count)
    if tag == b"J":
        destination = Destination.parse(r.s16())
        due, remaining, period, fired = _JOB_FIXED.unpack_from(payload, r.pos)
        r.pos += _JOB_FIXED.size
        cron = r.s16()
        inner = _decode(payload[r.pos :])
        if not isinstance(inner, tuple):
            raise ValueError("a scheduled record without its message")
        return ScheduledJob(
            destination,
            inner[1],
            due=due,
            remaining=remaining,
            period=period,
            cron=cron,
            fired=fired,
        )
    if tag == b"B":
        meta = json.loads(payload[1:])
        if not isinstance(meta, dict):
            raise ValueError("metadata is not an object")
        return meta
    raise ValueError(f"unknown record tag {tag!r}")
