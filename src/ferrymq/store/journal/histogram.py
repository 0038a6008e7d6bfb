"""A fixed-bucket histogram cheap enough for the writer thread's hot path:
a bisect and two additions per observation, read as a Prometheus histogram."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BATCH_BUCKETS", "FSYNC_BUCKETS", "Histogram", "HistogramSnapshot"]

# fsync latency, seconds: SSD fsyncs take tens of µs to ms, disks and network
# file systems up to seconds.
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Appends (operations) per group-commit write round.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    bounds: tuple[float, ...]  # upper bounds; one more bucket (+Inf) follows
    counts: tuple[int, ...]  # per bucket, not cumulative; len(bounds) + 1
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)


class Histogram:
    __slots__ = ("_bounds", "_counts", "_total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._total = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._total += value

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self._bounds, tuple(self._counts), self._total)
