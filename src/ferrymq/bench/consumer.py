"""A consumer: one connection, one subscription, accounting for what arrives.

Every socket read is handled as a batch: one clock reading for all the
MESSAGEs in it (they reached us together), one call into the `Tally`, and at
most one write of acknowledgements.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ferrymq.bench.connection import BenchError, StompClient
from ferrymq.bench.options import Workload
from ferrymq.bench.stats import Progress, Tally
from ferrymq.protocol.stomp import Event, Frame, serialize_frame

__all__ = ["Consumer"]


class Consumer(StompClient):
    """Subscribes to one destination and acks as `--ack` says."""

    def __init__(
        self,
        index: int,
        destination: str,
        workload: Workload,
        *,
        tally: Tally,
        progress: Progress,
        latencies: list[int],
        on_failure: Callable[[BenchError], None],
    ) -> None:
        super().__init__(f"consumer-{index}", workload, on_failure)
        self.index = index
        self.destination = destination
        self.subscription = f"bench-{index}"
        self.tally = tally
        self.progress = progress
        self.latencies = latencies
        self.received = 0
        self._ack = workload.ack
        self._ack_every = workload.cumulative_ack_every
        # ack:client: deliveries not yet covered by a cumulative ACK, and the
        # last MESSAGE (the one the next ACK names).
        self._unacked = 0
        self._last: Frame | None = None

    async def subscribe(self) -> None:
        """SUBSCRIBE and wait for its RECEIPT, so no message is sent before we listen."""
        w = self.workload
        headers = {"destination": self.destination, "id": self.subscription, "ack": w.ack}
        if w.prefetch:
            headers["activemq.prefetchSize"] = str(w.prefetch)
            headers["prefetch-count"] = str(w.prefetch)
        receipt_id = f"sub-{self.name}"
        headers["receipt"] = receipt_id
        receipt = self.expect_receipt(receipt_id)
        self.write_frame("SUBSCRIBE", headers)
        await receipt

    async def finish(self) -> int:
        """Settle what is unacked, UNSUBSCRIBE, and return when the broker
        confirmed it (perf_counter_ns): the end of the ack traffic."""
        if self._ack == "client" and self._unacked:
            self._send_acks([self._last] if self._last is not None else [])
        receipt_id = f"unsub-{self.name}"
        receipt = self.expect_receipt(receipt_id)
        self.write_frame("UNSUBSCRIBE", {"id": self.subscription, "receipt": receipt_id})
        return await receipt

    # -- reading ---------------------------------------------------------------

    def on_events(self, events: list[Event]) -> None:
        now = time.perf_counter_ns()
        messages = []
        for event in events:
            if type(event) is Frame and event.command == "MESSAGE":
                messages.append(event)
            else:
                self.on_control(event)
        if not messages:
            return
        self.received += len(messages)
        new = self.tally.record([m.body for m in messages], now, self.latencies)
        self.progress.add(new, now)
        if self._ack == "client-individual":
            self._send_acks(messages)
        elif self._ack == "client":
            self._unacked += len(messages)
            self._last = messages[-1]
            if self._unacked >= self._ack_every:
                self._send_acks([self._last])

    def _send_acks(self, messages: list[Frame]) -> None:
        """One ACK per message (cumulative for ack:client), all in one write."""
        if self.transport is None or self.transport.is_closing() or not messages:
            return
        version = self.version
        frames = [serialize_frame(self._ack_frame(m), version) for m in messages]
        self.write(b"".join(frames))
        self._unacked = 0

    def _ack_frame(self, message: Frame) -> Frame:
        # Each version names the message differently: 1.2 by the MESSAGE's
        # `ack` header, 1.1 by message-id plus subscription, 1.0 by message-id.
        headers = message.headers
        if self.version == "1.2":
            ack_id = headers.get("ack") or headers.get("message-id", "")
            return Frame(command="ACK", headers={"id": ack_id})
        out = {"message-id": headers.get("message-id", "")}
        if self.version == "1.1":
            out["subscription"] = headers.get("subscription", self.subscription)
        return Frame(command="ACK", headers=out)
