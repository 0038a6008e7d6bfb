"""Message rates: a task that reads the queues' counters once a second.

The core keeps only monotonic counters (enqueued, dequeued, redelivered per
queue); rates are the differences between two samples, worked out here, off
the hot path. A short history (`HISTORY` samples) feeds the console's charts.
Queues that appear or vanish between two samples contribute nothing to that
second's rate, so a deleted queue never makes a rate negative.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

from ferrymq.admin.snapshots import all_queues
from ferrymq.core import Broker

__all__ = ["HISTORY", "Point", "Rates", "Sampler"]

# Two minutes at one sample a second: what the console's charts show.
HISTORY = 120


@dataclass(frozen=True, slots=True)
class Rates:
    """Messages per second over the last sampling interval."""

    enqueue: float = 0.0
    dequeue: float = 0.0
    redeliver: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "enqueue": round(self.enqueue, 2),
            "dequeue": round(self.dequeue, 2),
            "redeliver": round(self.redeliver, 2),
        }


@dataclass(frozen=True, slots=True)
class Point:
    """One second of the whole broker, for the overview charts."""

    time: float  # epoch seconds
    rates: Rates
    depth: int
    in_flight: int

    def as_dict(self) -> dict[str, object]:
        return {
            "time": round(self.time, 3),
            "depth": self.depth,
            "in_flight": self.in_flight,
            **self.rates.as_dict(),
        }


_Counts = tuple[int, int, int]


class Sampler:
    """Call `sample()` periodically (`run()` does, every `interval` seconds)."""

    def __init__(self, broker: Broker, interval: float = 1.0) -> None:
        self.broker = broker
        self.interval = interval
        self.history: deque[Point] = deque(maxlen=HISTORY)
        self.total = Rates()
        self._rates: dict[str, Rates] = {}
        self._last: dict[str, _Counts] = {}
        self._last_time = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def rates(self, queue_name: str) -> Rates:
        return self._rates.get(queue_name, Rates())

    def sample(self) -> None:
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-3)
        self._last_time = now
        current: dict[str, _Counts] = {}
        rates: dict[str, Rates] = {}
        enq = deq = red = 0.0
        depth = in_flight = 0
        for queue in all_queues(self.broker):
            stats = queue.stats
            counts = (stats.enqueued, stats.dequeued, stats.redelivered)
            current[queue.name] = counts
            depth += queue.depth
            in_flight += queue.in_flight
            before = self._last.get(queue.name)
            if before is None:
                continue
            r = Rates(
                max(counts[0] - before[0], 0) / elapsed,
                max(counts[1] - before[1], 0) / elapsed,
                max(counts[2] - before[2], 0) / elapsed,
            )
            rates[queue.name] = r
            enq += r.enqueue
            deq += r.dequeue
            red += r.redeliver
        self._last = current
        self._rates = rates
        self.total = Rates(enq, deq, red)
        self.history.append(Point(time.time(), self.total, depth, in_flight))

    def start(self) -> None:
        self._last_time = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ferrymq-sampler")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sample()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
