"""Accounting without I/O: exactly-once checks, progress, latency percentiles.

A `Tally` follows one copy of a message stream: for a queue, the stream of
one destination shared by its competing consumers; for a topic, what one
subscriber receives. It keeps one bitmap per producer (a bytearray indexed by
sequence number), so a duplicate or a hole is found in O(1) per message and
the memory is one byte per expected message.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence

from ferrymq.bench.payload import MAGIC, STAMP

__all__ = ["Progress", "Tally", "latency_summary", "percentile"]


class Tally:
    """Exactly-once accounting for one copy of the messages of one destination.

    `expected[p]` is how many messages producer `p` sends to this copy's
    destination (0 for producers sending elsewhere); the first `warmup[p]` of
    them are not measured for latency.
    """

    __slots__ = (
        "duplicates",
        "expected",
        "foreign",
        "run_id",
        "seen",
        "unexpected",
        "unique",
        "warmup",
    )

    def __init__(self, run_id: int, expected: Sequence[int], warmup: Sequence[int]) -> None:
        self.run_id = run_id
        self.expected = list(expected)
        self.warmup = list(warmup)
        self.seen = [bytearray(n) for n in self.expected]
        self.unique = 0
        self.duplicates = 0
        # A stamp of this run naming a producer or sequence number that was
        # never sent here: misrouted or corrupted, counted against `ok`.
        self.unexpected = 0
        # Not a bench message of this run (left over in the queue from an
        # earlier run, or sent by someone else): reported, ignored.
        self.foreign = 0

    @property
    def total_expected(self) -> int:
        return sum(self.expected)

    def lost(self, sent: Sequence[int] | None = None) -> int:
        """Messages sent here that never arrived.

        `sent[p]` is how many producer `p` actually sent, for a run cut short;
        by default every expected message counts as sent.
        """
        if sent is None:
            return self.total_expected - self.unique
        return sum(bits[: sent[p]].count(0) for p, bits in enumerate(self.seen))

    def record(self, bodies: Iterable[bytes], now_ns: int, latencies: list[int]) -> int:
        """Account for `bodies` received at `now_ns`; return how many were new.

        The latency of each new, measured message (`now_ns` minus its stamp)
        is appended to `latencies`. This is the consumer's hot loop, hence
        the local names.
        """
        unpack = STAMP.unpack_from
        seen = self.seen
        warmup = self.warmup
        run = self.run_id
        n_producers = len(seen)
        new = 0
        for body in bodies:
            try:
                magic, run_id, producer, seq, sent_ns = unpack(body)
            except struct.error:
                self.foreign += 1
                continue
            if magic != MAGIC or run_id != run:
                self.foreign += 1
                continue
            if producer >= n_producers or seq >= len(bits := seen[producer]):
                self.unexpected += 1
                continue
            if bits[seq]:
                self.duplicates += 1
                continue
            bits[seq] = 1
            new += 1
            if seq >= warmup[producer]:
                latencies.append(now_ns - sent_ns)
        self.unique += new
        return new

    def missing(self, limit: int = 10, sent: Sequence[int] | None = None) -> list[tuple[int, int]]:
        """Up to `limit` (producer, seq) pairs sent but never received, for diagnostics."""
        out: list[tuple[int, int]] = []
        for producer, bits in enumerate(self.seen):
            end = len(bits) if sent is None else min(len(bits), sent[producer])
            start = 0
            while len(out) < limit:
                seq = bits.find(0, start, end)
                if seq < 0:
                    break
                out.append((producer, seq))
                start = seq + 1
        return out


class Progress:
    """Counts new deliveries across all consumers and calls `on_reached` once
    when `target` is met. The run moves `target` from phase to phase."""

    __slots__ = ("delivered", "last_ns", "on_reached", "target")

    def __init__(self, on_reached: Callable[[], None]) -> None:
        self.delivered = 0
        self.target = 0
        self.last_ns = 0  # when the last new delivery arrived
        self.on_reached = on_reached

    def add(self, new: int, now_ns: int) -> None:
        if not new:
            return
        self.delivered += new
        self.last_ns = now_ns
        if self.delivered >= self.target and self.delivered - new < self.target:
            self.on_reached()

    def expect(self, target: int) -> bool:
        """Set the next target; True if it is already met."""
        self.target = target
        return self.delivered >= target


def percentile(ordered: Sequence[int], p: float) -> int:
    """Nearest-rank percentile of an ascending sequence (what HdrHistogram reports)."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(latencies_ns: list[int]) -> dict[str, float] | None:
    """p50/p90/p99/p99.9/max/mean in milliseconds; None without samples.

    Sorts `latencies_ns` in place: it is called once, at the end of a run.
    """
    if not latencies_ns:
        return None
    latencies_ns.sort()
    ms = 1e-6
    out = {
        name: round(percentile(latencies_ns, p) * ms, 3)
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9))
    }
    out["max"] = round(latencies_ns[-1] * ms, 3)
    out["mean"] = round(sum(latencies_ns) / len(latencies_ns) * ms, 3)
    return out
