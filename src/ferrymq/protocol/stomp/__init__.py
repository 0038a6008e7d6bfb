"""STOMP 1.0/1.1/1.2 codec, sans-IO: a parser fed bytes, a pure serializer.

The server feeds each socket read to a `StompParser` and gets Frame,
HeartBeat and ProtocolViolation events back; it writes frames with
`serialize_frame` and heart-beats as `HEARTBEAT_BYTES`.
"""

from __future__ import annotations

from ._parser import StompParser
from ._versions import SUPPORTED_VERSIONS, negotiate_version
from ._writer import HEARTBEAT_BYTES, serialize_frame
from .events import Event, Frame, HeartBeat, ProtocolViolation
from .limits import Limits

__all__ = [
    "HEARTBEAT_BYTES",
    "SUPPORTED_VERSIONS",
    "Event",
    "Frame",
    "HeartBeat",
    "Limits",
    "ProtocolViolation",
    "StompParser",
    "negotiate_version",
    "serialize_frame",
]
