"""How many bytes of message bodies the broker holds, against a budget.

Producers are blocked (their sockets stop being read) while the budget is
exceeded, and let go once use falls back under a low-water mark, so that a
burst does not flip them between blocked and not on every message.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MemoryMeter"]

# Resume producers at 90% of the budget: hysteresis against flapping.
LOW_WATER = 0.9


class MemoryMeter:
    __slots__ = ("_low", "blocked", "limit", "on_relief", "used")

    def __init__(self, limit: int, on_relief: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self._low = int(limit * LOW_WATER)
        self.used = 0
        # True while some producer is held back; set by the session that blocks one.
        self.blocked = False
        self.on_relief = on_relief

    @property
    def over(self) -> bool:
        return self.used >= self.limit

    def release(self, n: int) -> None:
        self.used -= n
        if self.blocked and self.used <= self._low:
            self.blocked = False
            if self.on_relief is not None:
                self.on_relief()
