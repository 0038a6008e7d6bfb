"""One event-loop timer standing for many due times: armed for the earliest,
re-armed by its owner after each firing. Due times are wall-clock epoch ms,
because they are stored and must mean the same after a restart.

Scheduled deliveries, delayed redeliveries and the expiry sweep each own one
Alarm, so the loop holds three timers however many messages wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

__all__ = ["Alarm", "now_ms"]

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


class Alarm:
    __slots__ = ("_callback", "_due", "_handle")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0

    def arm(self, due: int) -> None:
        """Fire at `due` (epoch ms) unless already armed for no later than that."""
        if self._handle is not None and self._due <= due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # A core driven synchronously (unit tests) has no loop: its owner
            # runs the due work by calling it directly.
            return
        if self._handle is not None:
            self._handle.cancel()
        self._due = due
        self._handle = loop.call_later(max(due - now_ms(), 0) / 1000, self._fire)

    def _fire(self) -> None:
        self._handle = None
        try:
            self._callback()
        except Exception:
            # E.g. the store refusing writes (fenced): nothing a timer can
            # answer; producers and consumers get the error on their frames.
            log.exception("delivery timer failed")

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
