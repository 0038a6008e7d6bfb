"""A producer: one connection sending stamped SEND frames in batches.

A batch is built as one buffer and written with one call; the producer only
awaits between batches: to let the loop run the consumers, to wait for the
socket to drain, for a RECEIPT window, or for the next scheduled send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ferrymq.bench.connection import BenchError, StompClient
from ferrymq.bench.options import Workload
from ferrymq.bench.payload import MAGIC, STAMP, SendTemplate

__all__ = ["Producer"]

# The last stretch before a scheduled send is spent yielding to the loop
# rather than in a timer (uvloop and asyncio both round sleeps to ~1 ms).
_SPIN_NS = 1_500_000


class Producer(StompClient):
    """Sends sequence numbers `first ..` to one destination, stamped for the consumers."""

    def __init__(
        self,
        index: int,
        destination: str,
        workload: Workload,
        *,
        run_id: int,
        receipt_latencies: list[int],
        on_failure: Callable[[BenchError], None],
    ) -> None:
        super().__init__(f"producer-{index}", workload, on_failure)
        self.index = index
        self.destination = destination
        self.run_id = run_id
        self.receipt_latencies = receipt_latencies
        self.sent = 0
        self._template: SendTemplate | None = None

    async def open(self) -> None:
        await super().open()
        w = self.workload
        # Built after CONNECTED: header escaping depends on the negotiated version.
        self._template = SendTemplate(
            self.destination, w.size, persistent=w.persistent, version=self.version
        )

    async def send(
        self,
        first: int,
        count: int,
        *,
        start_ns: int = 0,
        interval_ns: int = 0,
        confirm_last: bool = False,
    ) -> int:
        """Send sequence numbers `first` to `first + count - 1`.

        With `interval_ns`, message `first + i` is due at `start_ns + i *
        interval_ns` and carries that time as its stamp, whenever it actually
        leaves: a broker that stalls the producer is charged the wait in the
        latency figures (no coordinated omission). Without it, messages go
        as fast as the socket takes them, stamped when their batch is built.

        With `confirm_last`, the last message asks for a RECEIPT too (if the
        `--receipt-every` window does not already end there), so the return
        means the broker has taken every message of this call. Returns the
        `perf_counter_ns` at which the last RECEIPT came (or the last write
        ended, when none was asked for).
        """
        template = self._template
        assert template is not None
        w = self.workload
        batch = w.frames_per_write
        receipt_every = w.receipt_every
        pack = STAMP.pack
        run_id, pid = self.run_id, self.index
        clock = time.perf_counter_ns
        seq, end = first, first + count
        done_ns = clock()
        while seq < end:
            stop = min(seq + batch, end)
            if interval_ns:
                due = first + (clock() - start_ns) // interval_ns + 1
                if due <= seq:
                    wait_ns = start_ns + (seq - first) * interval_ns - clock()
                    # Event loop timers fire up to a millisecond late, and that
                    # lateness would show up as broker latency: sleep until
                    # shortly before the send is due, then yield turn by turn.
                    await asyncio.sleep(max(0, wait_ns - _SPIN_NS) / 1e9)
                    continue
                stop = min(stop, due)
            receipt_seq = -1
            if receipt_every:
                # The next message with a receipt ends this batch: the window.
                next_receipt = (seq // receipt_every + 1) * receipt_every - 1
                if next_receipt < stop:
                    stop = next_receipt + 1
                    receipt_seq = next_receipt
            if confirm_last and receipt_seq < 0 and stop == end:
                receipt_seq = end - 1
            if interval_ns:
                base = start_ns - first * interval_ns
                stamps = [
                    pack(MAGIC, run_id, pid, s, base + s * interval_ns) for s in range(seq, stop)
                ]
            else:
                now = clock()
                stamps = [pack(MAGIC, run_id, pid, s, now) for s in range(seq, stop)]
            if receipt_seq < 0:
                self.write(template.frames(stamps))
                self.sent += stop - seq
                seq = stop
                if self.error is not None:
                    raise self.error
                # Yield even when the socket takes everything: the consumers
                # share this loop and must read while we produce.
                await asyncio.sleep(0)
                await self.wait_writable()
                done_ns = clock()
                continue
            receipt_id = f"{self.name}-{receipt_seq}"
            receipt = self.expect_receipt(receipt_id)
            written_ns = clock()
            self.write(
                b"".join(
                    (
                        template.frames(stamps[:-1]),
                        template.with_receipt(receipt_id),
                        stamps[-1],
                        template.tail,
                    )
                )
            )
            self.sent += stop - seq
            seq = stop
            done_ns = await receipt
            self.receipt_latencies.append(done_ns - written_ns)
        return done_ns
