"""What a bench message carries, and SEND frames built without per-frame encoding.

Each body starts with a fixed-size stamp (magic, run id, producer id,
sequence number, send time in `perf_counter_ns`) and is padded to `--size`.
The stamp lives in the body rather than in headers so it survives any
broker's header handling, and so a consumer reads it with one
`unpack_from` instead of parsing header strings. The run id keeps messages
left in a queue by an earlier run out of this run's accounting.

Producers never serialise a Frame per message: the codec serialises a
template once, and each message is the template's head, a fresh stamp and
the template's constant tail (padding plus NUL) joined into one buffer.
"""

from __future__ import annotations

import struct

from ferrymq.protocol.stomp import Frame, serialize_frame

__all__ = ["MAGIC", "STAMP", "STAMP_SIZE", "SendTemplate", "decode_stamp", "make_body"]

MAGIC = b"FMQB"
# magic, run id, producer id, sequence number, send time (ns, this process's clock)
STAMP = struct.Struct("<4sIIQq")
STAMP_SIZE = STAMP.size


def make_body(size: int, run_id: int, producer: int, seq: int, sent_ns: int) -> bytes:
    """One whole body (tests and odd cases; producers use SendTemplate)."""
    return STAMP.pack(MAGIC, run_id, producer, seq, sent_ns) + b"." * (size - STAMP_SIZE)


def decode_stamp(body: bytes) -> tuple[int, int, int, int] | None:
    """(run id, producer, seq, sent_ns) of a bench body, or None if it is not one."""
    if len(body) < STAMP_SIZE:
        return None
    magic, run_id, producer, seq, sent_ns = STAMP.unpack_from(body)
    if magic != MAGIC:
        return None
    return run_id, producer, seq, sent_ns


class SendTemplate:
    """The bytes of a SEND frame to one destination, split around the stamp.

    `head` ends where the body starts; `tail` is the padding and the frame's
    NUL. A message is `head + STAMP.pack(...) + tail`.
    """

    __slots__ = ("head", "headers", "joint", "size", "tail", "version")

    def __init__(self, destination: str, size: int, *, persistent: bool, version: str) -> None:
        headers = {"destination": destination}
        if persistent:
            headers["persistent"] = "true"
        self.headers = headers
        self.size = size
        self.version = version
        self.head, self.tail = self._split(headers)
        # Between two stamps in a batch: one frame's tail, the next one's head.
        self.joint = self.tail + self.head

    def _split(self, headers: dict[str, str]) -> tuple[bytes, bytes]:
        # A body of a byte that cannot occur in the head, so the split is exact.
        body = b"\x01" * self.size
        wire = serialize_frame(Frame(command="SEND", headers=headers, body=body), self.version)
        start = len(wire) - self.size - 1
        assert wire[start:-1] == body and wire[-1:] == b"\0"
        return wire[:start], b"." * (self.size - STAMP_SIZE) + b"\0"

    def frames(self, stamps: list[bytes]) -> bytes:
        """Consecutive SEND frames, one per stamp, in one buffer (one join of C speed)."""
        if not stamps:
            return b""
        return b"".join((self.head, self.joint.join(stamps), self.tail))

    def with_receipt(self, receipt: str) -> bytes:
        """The head of a SEND that also asks for a RECEIPT (rare: serialised each time)."""
        head, _ = self._split({**self.headers, "receipt": receipt})
        return head
