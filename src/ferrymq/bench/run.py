"""One bench run: connect, subscribe, warm up, measure, check, report.

The order matters for honest figures. Consumers subscribe (and the broker
confirms with RECEIPTs) before any producer connects, so nothing is sent to
a destination without listeners. The clock starts when producers start
sending the measured messages and stops at the last delivery, or, when
consumers ack, at the RECEIPT of an UNSUBSCRIBE sent after the last ACK: the
broker has then processed every ack too.

With `--backlog` the consumers connect first but subscribe only once every
producer has sent all its messages and the broker has confirmed the last one
(a RECEIPT): the run then has two clocks, the produce phase (first send to
last RECEIPT) and the drain (SUBSCRIBE to the last delivery or ack).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from ferrymq.bench.connection import BenchError, StompClient
from ferrymq.bench.consumer import Consumer
from ferrymq.bench.options import Workload
from ferrymq.bench.plan import Plan
from ferrymq.bench.producer import Producer
from ferrymq.bench.stats import Progress, Tally, latency_summary

__all__ = ["run_bench"]

T = TypeVar("T")

# How long the goodbyes (DISCONNECT receipts) may take once figures are in.
_CLOSE_TIMEOUT = 5.0


class _Stalled(Exception):
    """Sending is done but deliveries stopped short of what was expected."""


class _Run:
    def __init__(self, workload: Workload) -> None:
        self.w = workload
        self.plan = Plan.of(workload)
        # Tells this run's messages from leftovers of earlier runs in the queue.
        self.run_id = random.getrandbits(32)
        self.tallies, consumer_tallies = self.plan.tallies(self.run_id, workload.pubsub)
        self.latencies: list[int] = []
        self.receipt_latencies: list[int] = []
        loop = asyncio.get_running_loop()
        self.failed: asyncio.Future[BenchError] = loop.create_future()
        self.reached = asyncio.Event()
        self.progress = Progress(self.reached.set)
        self.consumers = [
            Consumer(
                j,
                self.plan.destinations[d],
                workload,
                tally=consumer_tallies[j],
                progress=self.progress,
                latencies=self.latencies,
                on_failure=self._on_failure,
            )
            for j, d in enumerate(self.plan.consumer_destination)
        ]
        self.producers = [
            Producer(
                i,
                self.plan.destinations[d],
                workload,
                run_id=self.run_id,
                receipt_latencies=self.receipt_latencies,
                on_failure=self._on_failure,
            )
            for i, d in enumerate(self.plan.producer_destination)
        ]
        self.start_ns = 0
        self.end_ns = 0
        self.produced_ns = 0  # --backlog: the broker confirmed the last message
        self.drain_ns = 0  # --backlog: consumers began to subscribe
        self.warmup_target = self.plan.warmup_deliveries(self.tallies)
        self.measured_from = 0  # deliveries already counted when measuring began

    def _on_failure(self, error: BenchError) -> None:
        if not self.failed.done():
            self.failed.set_result(error)

    async def _until(self, aw: Awaitable[T]) -> T:
        """Await `aw`, unless some connection fails first: then raise its error."""
        task = asyncio.ensure_future(aw)
        waiting: set[asyncio.Future[Any]] = {task, self.failed}
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # the overall timeout: stop the senders too
            raise
        if task in done:
            return task.result()
        task.cancel()
        raise self.failed.result()

    async def _phase(self, counts: list[int], first: list[int], target: int) -> None:
        """Every producer sends its `counts[i]` messages from `first[i]`; wait
        until `target` deliveries in all have arrived."""
        self._expect(target)
        await self._send(counts, first)
        await self._wait_deliveries()

    async def _backlog(self, counts: list[int], first: list[int], target: int) -> None:
        """Produce everything with nobody subscribed, then subscribe and drain."""
        self.produced_ns = await self._send(counts, first, confirm_last=True)
        self.drain_ns = time.perf_counter_ns()
        self._expect(target)
        await self._until(asyncio.gather(*(c.subscribe() for c in self.consumers)))
        await self._wait_deliveries()

    def _expect(self, target: int) -> None:
        self.reached.clear()
        if self.progress.expect(target):
            self.reached.set()

    async def _send(
        self, counts: list[int], first: list[int], *, confirm_last: bool = False
    ) -> int:
        """Every producer sends its `counts[i]` messages from `first[i]`; returns
        when the last send (or, with `confirm_last`, RECEIPT) completed."""
        w = self.w
        interval_ns = 0
        start_ns = time.perf_counter_ns()
        if w.rate:
            interval_ns = max(1, round(1e9 * w.producers / w.rate))
        sends = [
            p.send(
                first[i],
                counts[i],
                # Stagger producers over one interval so the total rate is smooth.
                start_ns=start_ns + interval_ns * i // w.producers,
                interval_ns=interval_ns,
                confirm_last=confirm_last,
            )
            for i, p in enumerate(self.producers)
            if counts[i]
        ]
        done: list[int] = await self._until(asyncio.gather(*sends))
        return max(done, default=time.perf_counter_ns())

    async def _wait_deliveries(self) -> None:
        """Until the expected deliveries arrived; `_Stalled` if they stop coming."""
        w = self.w
        while not self.reached.is_set():
            before = self.progress.delivered
            try:
                await self._until(asyncio.wait_for(self.reached.wait(), w.idle_timeout))
            except TimeoutError:
                if self.progress.delivered == before:
                    raise _Stalled from None

    async def execute(self) -> None:
        await self._until(asyncio.gather(*(c.open() for c in self.consumers)))
        if not self.w.backlog:
            await self._until(asyncio.gather(*(c.subscribe() for c in self.consumers)))
        await self._until(asyncio.gather(*(p.open() for p in self.producers)))
        plan = self.plan
        if self.warmup_target:
            await self._phase(plan.warmup, [0] * len(plan.warmup), self.warmup_target)
        self.measured_from = self.progress.delivered
        total = sum(t.total_expected for t in self.tallies)
        self.start_ns = time.perf_counter_ns()
        if self.w.backlog:
            await self._backlog(plan.measured, plan.warmup, total)
        else:
            await self._phase(plan.measured, plan.warmup, total)
        self.end_ns = self.progress.last_ns
        if self.w.ack != "auto":
            acked = await self._until(asyncio.gather(*(c.finish() for c in self.consumers)))
            self.end_ns = max(self.end_ns, *acked)

    async def close(self, clean: bool) -> None:
        clients: list[StompClient] = [*self.producers, *self.consumers]
        if clean:
            await asyncio.gather(*(c.close(_CLOSE_TIMEOUT) for c in clients))
        else:
            for c in clients:
                c.abort()

    def _backlog_figures(self, sent: int, received: int) -> dict[str, float]:
        """Both phases of a --backlog run; 0 for a phase that did not finish."""
        produce = (self.produced_ns - self.start_ns) / 1e9 if self.produced_ns else 0.0
        drain = (self.end_ns - self.drain_ns) / 1e9 if self.drain_ns and self.end_ns else 0.0
        drain = max(0.0, drain)
        return {
            "produce_seconds": round(produce, 6),
            "produce_msgs_per_s": round(sent / produce, 1) if produce else 0.0,
            "drain_seconds": round(drain, 6),
            "drain_msgs_per_s": round(received / drain, 1) if drain else 0.0,
        }

    def result(self, error: str | None) -> dict[str, Any]:
        w = self.w
        if error is not None and self.start_ns and not self.end_ns:
            self.end_ns = self.progress.last_ns or time.perf_counter_ns()
        seconds = max(0, self.end_ns - self.start_ns) / 1e9 if self.start_ns else 0.0
        sent = sum(p.sent for p in self.producers) - sum(self.plan.warmup)
        received = self.progress.delivered - self.measured_from if self.start_ns else 0
        # Only what was sent can be lost: a run cut short leaves the rest unsent.
        sent_by = [p.sent for p in self.producers]
        lost = sum(t.lost(sent_by) for t in self.tallies)
        duplicates = sum(t.duplicates for t in self.tallies)
        unexpected = sum(t.unexpected for t in self.tallies)
        rate = received / seconds if seconds else 0.0
        servers = {c.server for c in (*self.consumers, *self.producers) if c.server}
        out: dict[str, Any] = {
            "broker": ", ".join(sorted(servers)) or "unknown",
            "address": f"{w.host}:{w.port}",
            "workload": w.describe(),
            "sent": max(0, sent),
            "expected": sum(t.total_expected for t in self.tallies) - self.warmup_target,
            "received": received,
            "seconds": round(seconds, 6),
            "msgs_per_s": round(rate, 1),
            "sent_msgs_per_s": round(max(0, sent) / seconds, 1) if seconds else 0.0,
            "mb_per_s": round(rate * w.size / 1e6, 3),
            "latency_ms": latency_summary(self.latencies),
        }
        if self.receipt_latencies:
            out["receipt_latency_ms"] = latency_summary(self.receipt_latencies)
        if w.backlog:
            out.update(self._backlog_figures(max(0, sent), received))
        out["lost"] = lost
        out["duplicates"] = duplicates
        out["unexpected"] = unexpected
        out["foreign"] = sum(t.foreign for t in self.tallies)
        if lost:
            out["missing_sample"] = _missing_sample(self.tallies, sent_by)
        out["error"] = error
        out["ok"] = error is None and lost == 0 and duplicates == 0 and unexpected == 0
        return out


def _missing_sample(tallies: list[Tally], sent: list[int]) -> list[list[int]]:
    """A few (producer, seq) pairs sent but never received, to start a bug hunt from."""
    out: list[list[int]] = []
    for t in tallies:
        out.extend([p, s] for p, s in t.missing(10 - len(out), sent))
    return out


async def run_bench(workload: Workload) -> dict[str, Any]:
    """Run `workload` against its broker and return the result as a JSON-ready dict.

    Never raises for broker trouble: a refused connection, an ERROR frame, a
    stall or the overall timeout end up in `error`, with `ok` false.
    """
    run = _Run(workload)
    error: str | None = None
    try:
        async with asyncio.timeout(workload.timeout):
            await run.execute()
    except TimeoutError:
        error = f"timed out after {workload.timeout:g} s"
    except _Stalled:
        error = f"deliveries stopped for {workload.idle_timeout:g} s before all arrived"
    except BenchError as exc:
        error = str(exc)
    await run.close(clean=error is None)
    return run.result(error)
