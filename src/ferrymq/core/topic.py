"""Which subscription queues a message published to a topic goes to."""

from __future__ import annotations

from ferrymq.core.destination import pattern_matches
from ferrymq.core.queue import Queue

__all__ = ["TopicRouter"]


def _split(text: str) -> tuple[str, str]:
    """`/topic/a.b` -> (`/topic/`, `a.b`): wildcards apply to the name only."""
    cut = text.index("/", 1) + 1
    return text[:cut], text[cut:]


class TopicRouter:
    """Bindings from topic patterns (maybe wildcards) to subscription queues.

    Publishing looks up a per-topic-name cache of matching queues, so the
    wildcard matching runs once per distinct topic name until the bindings
    change, not once per message.
    """

    def __init__(self) -> None:
        self._bindings: dict[str, list[Queue]] = {}
        self._cache: dict[str, tuple[Queue, ...]] = {}

    def bind(self, pattern: str, queue: Queue) -> None:
        self._bindings.setdefault(pattern, []).append(queue)
        self._cache.clear()

    def unbind(self, pattern: str, queue: Queue) -> None:
        queues = self._bindings.get(pattern)
        if queues is None or queue not in queues:
            return
        queues.remove(queue)
        if not queues:
            del self._bindings[pattern]
        self._cache.clear()

    def match(self, topic: str) -> tuple[Queue, ...]:
        """Queues bound to a pattern matching `topic` (both in `/topic/NAME` form)."""
        hit = self._cache.get(topic)
        if hit is None:
            found: list[Queue] = []
            kind, name = _split(topic)
            for pattern, queues in self._bindings.items():
                pattern_kind, pattern_name = _split(pattern)
                if pattern_kind == kind and pattern_matches(pattern_name, name):
                    found.extend(queues)
            hit = tuple(found)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[topic] = hit
        return hit

    def bindings(self) -> dict[str, tuple[Queue, ...]]:
        """Every pattern and its subscription queues (a snapshot, for monitoring)."""
        return {pattern: tuple(queues) for pattern, queues in self._bindings.items()}

    @property
    def patterns(self) -> list[str]:
        return list(self._bindings)
