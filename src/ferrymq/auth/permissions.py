"""Destination permissions: which actions a pattern grants on which names.

A pattern is `>` (every destination) or a destination with the broker's
wildcards: `/queue/orders.>`, `/topic/prices.*`, `/queue/DLQ.orders`. A
request names a destination, which for a topic subscription may itself hold
wildcards; the pattern must cover all of it (`/topic/a.>` covers a
subscription to `/topic/a.*`, but `/topic/a.*` does not cover `/topic/a.>`).
"""

from __future__ import annotations

__all__ = ["ACTIONS", "covers"]

# read: SUBSCRIBE, browse, receive; write: SEND; admin: purge, move, delete,
# close connections (the last needs admin on `>`).
ACTIONS = ("read", "write", "admin")

_ALL = (">", "#")


def _split(text: str) -> tuple[str, list[str]]:
    """`/queue/a.b` -> (`/queue/`, [`a`, `b`])."""
    cut = text.find("/", 1) + 1
    if not text.startswith("/") or cut <= 0:
        return "", text.split(".")
    return text[:cut], text[cut:].split(".")


def covers(pattern: str, destination: str) -> bool:
    if pattern in _ALL:
        return True
    pattern_kind, pattern_segs = _split(pattern)
    kind, segs = _split(destination)
    if pattern_kind != kind:
        return False
    if pattern_segs in ([">"], ["#"]):
        return True
    for i, p in enumerate(pattern_segs):
        if p in _ALL:
            return len(segs) > i
        if i >= len(segs):
            return False
        seg = segs[i]
        if seg in _ALL:
            return False  # asks for the rest of the tree; the pattern grants less
        if p != "*" and p != seg:
            return False
    return len(pattern_segs) == len(segs)
