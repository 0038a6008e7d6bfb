"""Resource limits the STOMP parser enforces on what a peer may send.

Every limit is a constructor argument of :class:`StompParser` (through
:class:`Limits`), so the server can expose them as settings. Each default
names the implementation it follows, so an operator migrating from ActiveMQ
or RabbitMQ gets the behaviour they already know.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Upper bounds on one incoming frame, in bytes or counts.

    A peer that exceeds one gets a ``ProtocolViolation`` naming the limit, and
    the parser never buffers more than ``max_frame_size`` bytes of one frame
    (plus at most the last read) while waiting for it to end.
    """

    # Whole frame, command line to NUL. ActiveMQ's StompWireFormat caps the
    # body alone at MAX_DATA_LENGTH = 100 MiB; we stay below that so a broker
    # that accepts a frame can also hand it on to ActiveMQ-era clients.
    max_frame_size: int = 64 * _MIB
    # ActiveMQ's StompWireFormat.MAX_HEADERS = 1000.
    max_headers: int = 1000
    # ActiveMQ's StompWireFormat.MAX_HEADER_LENGTH = 10 KiB, per line
    # (command line included), not counting the line ending.
    max_header_line: int = 10 * 1024
    # ActiveMQ's MAX_DATA_LENGTH plays this role (100 MiB); we use the frame
    # limit, so by default only max_frame_size bites. Kept separate so an
    # operator can cap bodies without touching header room.
    max_body: int = 64 * _MIB

    def __post_init__(self) -> None:
        for name in ("max_frame_size", "max_headers", "max_header_line", "max_body"):
            value = getattr(self, name)
            # bool is an int subclass; Limits(max_headers=True) is a bug.
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Limits.{name} must be a non-negative int, got {value!r}")


# A module constant, so it can serve as a default argument value.
DEFAULT_LIMITS = Limits()
