"""Events produced by the STOMP parser and accepted by the serializer."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Event", "Frame", "HeartBeat", "ProtocolViolation"]


@dataclass(slots=True, kw_only=True)
class Frame:
    """One STOMP frame.

    `headers` keeps the first occurrence of a repeated header (STOMP 1.2,
    section "Repeated Header Entries"); values are already unescaped.
    """

    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartBeat:
    """An end-of-line received between frames (a heart-beat from the peer)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolViolation:
    """The peer sent bytes that are not valid STOMP.

    `message` is short and becomes the ERROR frame's `message` header;
    `detail` may go in the ERROR body. `receipt` is the `receipt` header of
    the offending frame when it could be read, so the ERROR can carry
    `receipt-id`. After this event the parser yields nothing more.
    """

    message: str
    detail: str = ""
    receipt: str | None = None


Event = Frame | HeartBeat | ProtocolViolation
