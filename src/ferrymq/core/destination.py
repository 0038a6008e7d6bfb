"""Destination names: kinds, validation and wildcard matching.

Names follow ActiveMQ: dot-separated segments; subscriptions may use `*` for
exactly one segment and `>` for one or more trailing segments (`#` is taken as
`>` for AMQP habits). The `/queue/NAME` text form is ActiveMQ's and is what
STOMP clients, the HTTP API and the CLI all use.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

from ferrymq.core.errors import InvalidDestination

__all__ = ["MAX_NAME_LENGTH", "Destination", "DestinationKind", "pattern_matches"]

# Long enough for any sane name, short enough to bound per-message header cost.
MAX_NAME_LENGTH = 512


class DestinationKind(enum.Enum):
    QUEUE = "queue"
    TOPIC = "topic"
    TEMP_QUEUE = "temp-queue"
    TEMP_TOPIC = "temp-topic"

    @property
    def is_topic(self) -> bool:
        return self is DestinationKind.TOPIC or self is DestinationKind.TEMP_TOPIC

    @property
    def is_temporary(self) -> bool:
        return self is DestinationKind.TEMP_QUEUE or self is DestinationKind.TEMP_TOPIC


_PREFIXES = {f"/{kind.value}/": kind for kind in DestinationKind}
_FORBIDDEN = frozenset(" \t\r\n\x00,")


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    name: str

    @staticmethod
    def parse(text: str) -> Destination:
        """Parse `/queue/a.b`, `/topic/a.*`, ... into a validated Destination."""
        return _parse_cached(text)

    @staticmethod
    def of(kind: DestinationKind, name: str) -> Destination:
        """A validated destination from a kind and a bare name."""
        _validate_name(name, kind)
        return Destination(kind, _normalise(name))

    @property
    def is_wildcard(self) -> bool:
        return _has_wildcard(self.name)

    def __str__(self) -> str:
        return f"/{self.kind.value}/{self.name}"


def _normalise(name: str) -> str:
    if "#" in name:
        name = ".".join(">" if seg == "#" else seg for seg in name.split("."))
    return name


def _has_wildcard(name: str) -> bool:
    return "*" in name or ">" in name


def _validate_name(name: str, kind: DestinationKind) -> None:
    if not name:
        raise InvalidDestination(f"empty {kind.value} name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidDestination(f"destination name longer than {MAX_NAME_LENGTH} characters")
    bad = _FORBIDDEN.intersection(name)
    if bad:
        shown = ", ".join(repr(c) for c in sorted(bad))
        raise InvalidDestination(f"destination name {name!r} contains {shown}")
    segments = name.split(".")
    for i, seg in enumerate(segments):
        if not seg:
            raise InvalidDestination(f"destination name {name!r} has an empty segment")
        if seg in (">", "#") and i != len(segments) - 1:
            raise InvalidDestination(f"'{seg}' must be the last segment in {name!r}")
        if len(seg) > 1 and ("*" in seg or ">" in seg or "#" in seg):
            raise InvalidDestination(f"wildcard must be a whole segment in {name!r}")


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Destination:
    for prefix, kind in _PREFIXES.items():
        if text.startswith(prefix):
            name = text[len(prefix) :]
            _validate_name(name, kind)
            return Destination(kind, _normalise(name))
    raise InvalidDestination(
        f"invalid destination {text!r}: expected /queue/NAME, /topic/NAME, "
        "/temp-queue/NAME or /temp-topic/NAME"
    )


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether a subscription pattern (maybe with `*` / `>`) matches a topic name."""
    if not _has_wildcard(pattern):
        return pattern == name
    pat = pattern.split(".")
    segs = name.split(".")
    for i, p in enumerate(pat):
        if p == ">":
            return len(segs) > i
        if i >= len(segs):
            return False
        if p != "*" and p != segs[i]:
            return False
    return len(pat) == len(segs)
