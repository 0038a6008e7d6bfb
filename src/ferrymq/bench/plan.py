"""Who sends how much where, and who must receive what: pure arithmetic.

Producer `i` sends to destination `i % K` and consumer `j` listens on
destination `j % K`. On a queue the consumers of one destination share one
copy of its messages (one `Tally` between them); on a topic each consumer
must see every message of its destination (one `Tally` each).
"""

from __future__ import annotations

from dataclasses import dataclass

from ferrymq.bench.options import Workload
from ferrymq.bench.stats import Tally

__all__ = ["Plan", "split"]


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal shares, the larger ones first."""
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


@dataclass(frozen=True, slots=True)
class Plan:
    destinations: list[str]
    producer_destination: list[int]
    consumer_destination: list[int]
    warmup: list[int]  # per producer: sequence numbers 0 .. warmup-1 are not measured
    measured: list[int]  # per producer: then this many measured messages

    @classmethod
    def of(cls, w: Workload) -> Plan:
        k = w.destinations
        return cls(
            destinations=w.destination_names,
            producer_destination=[i % k for i in range(w.producers)],
            consumer_destination=[j % k for j in range(w.consumers)],
            warmup=split(w.warmup, w.producers),
            measured=split(w.count, w.producers),
        )

    def tallies(self, run_id: int, pubsub: bool) -> tuple[list[Tally], list[Tally]]:
        """(every tally, the tally each consumer records into)."""

        def tally_for(dest: int) -> Tally:
            expected = [
                self.warmup[p] + self.measured[p] if d == dest else 0
                for p, d in enumerate(self.producer_destination)
            ]
            return Tally(run_id, expected, self.warmup)

        if pubsub:
            per_consumer = [tally_for(d) for d in self.consumer_destination]
            return per_consumer, per_consumer
        shared = [tally_for(d) for d in range(len(self.destinations))]
        return shared, [shared[d] for d in self.consumer_destination]

    @staticmethod
    def warmup_deliveries(tallies: list[Tally]) -> int:
        """Deliveries that complete the warm-up phase, over all tallies."""
        return sum(sum(w for w, e in zip(t.warmup, t.expected, strict=True) if e) for t in tallies)
