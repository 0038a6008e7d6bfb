"""A queue: messages in order, and the consumers that compete for them.

Also serves as the private queue behind each topic subscription (durable or
not): a topic copies each message into the queue of every subscription that
matches, and from there dispatch is the same as for a queue.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Collection, Iterable

from ferrymq.core.consumer import AckMode, Consumer
from ferrymq.core.memory import MemoryMeter
from ferrymq.core.message import Message

__all__ = ["Queue", "QueueStats"]


class QueueStats:
    __slots__ = ("dequeued", "enqueued", "redelivered")

    def __init__(self) -> None:
        self.enqueued = 0
        self.dequeued = 0
        self.redelivered = 0


class Queue:
    """FIFO of messages dispatched round robin to consumers with credit."""

    __slots__ = (
        "_rr",
        "consumers",
        "durable",
        "messages",
        "meter",
        "name",
        "on_dispatched",
        "stats",
        "topic_pattern",
    )

    def __init__(
        self,
        name: str,
        *,
        durable: bool,
        topic_pattern: str | None = None,
        on_dispatched: Callable[[Queue, Message, bool], None],
        meter: MemoryMeter,
    ) -> None:
        self.name = name
        # Durable queues survive a restart and store their persistent messages.
        self.durable = durable
        self.topic_pattern = topic_pattern
        self.messages: deque[Message] = deque()
        self.consumers: list[Consumer] = []
        self.stats = QueueStats()
        self._rr = 0
        # Told of every persistent message handed out from a durable queue,
        # and whether that also settled it (auto ack): the store's business.
        self.on_dispatched = on_dispatched
        # Counts the bodies this queue holds, queued or in flight.
        self.meter = meter

    @property
    def depth(self) -> int:
        return len(self.messages)

    @property
    def in_flight(self) -> int:
        return sum(len(c.unacked) for c in self.consumers)

    def enqueue(self, message: Message) -> None:
        self.meter.used += len(message.body)
        self.messages.append(message)
        self.stats.enqueued += 1
        if self.consumers:
            self.dispatch()

    def requeue(self, messages: Iterable[Message]) -> None:
        """Put returned messages back at the head, in their original order."""
        returned = list(messages)
        for msg in reversed(returned):
            msg.delivery_count += 1
            self.messages.appendleft(msg)
        self.stats.redelivered += len(returned)
        if self.consumers:
            self.dispatch()

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Detach a consumer; what it had not acked goes back to the head."""
        try:
            idx = self.consumers.index(consumer)
        except ValueError:
            return
        del self.consumers[idx]
        if self._rr > idx:
            self._rr -= 1
        unacked = list(consumer.unacked.values())
        consumer.unacked.clear()
        if unacked:
            self.requeue(unacked)

    def dispatch(self) -> None:
        """Hand out messages while some consumer has credit."""
        messages = self.messages
        consumers = self.consumers
        if len(consumers) == 1:
            # The common case, without the round-robin bookkeeping.
            only = consumers[0]
            while messages and only.has_credit:
                msg = messages.popleft()
                self.stats.dequeued += 1
                only.deliver(msg)
                if only.ack_mode is AckMode.AUTO:
                    self.meter.release(len(msg.body))
                if msg.persistent and self.durable:
                    self.on_dispatched(self, msg, only.ack_mode is AckMode.AUTO)
            return
        while messages and consumers:
            consumer = self._next_with_credit()
            if consumer is None:
                return
            msg = messages.popleft()
            self.stats.dequeued += 1
            consumer.deliver(msg)
            if consumer.ack_mode is AckMode.AUTO:
                self.meter.release(len(msg.body))
            if msg.persistent and self.durable:
                # The store's business; an auto-ack delivery is also settled now.
                self.on_dispatched(self, msg, consumer.ack_mode is AckMode.AUTO)

    def _next_with_credit(self) -> Consumer | None:
        consumers = self.consumers
        n = len(consumers)
        start = self._rr % n
        for step in range(n):
            consumer = consumers[(start + step) % n]
            if consumer.has_credit:
                self._rr = (start + step + 1) % n
                return consumer
        return None

    def settled(self, messages: Iterable[Message]) -> None:
        """Acknowledged messages leave the broker."""
        self.meter.release(sum(len(m.body) for m in messages))

    def purge(self) -> int:
        """Drop every queued (not in-flight) message; returns how many."""
        n = len(self.messages)
        self.meter.release(sum(len(m.body) for m in self.messages))
        self.messages.clear()
        return n

    # -- for management (browse, move, purge): the only readers of queued
    # messages outside dispatch, so paging can change the deque in one place.

    def browse(self, offset: int = 0, limit: int | None = None) -> list[Message]:
        """Queued (not in-flight) messages from `offset`, in order, left in place."""
        end = None if limit is None else offset + limit
        return list(itertools.islice(self.messages, offset, end))

    def take(self, ids: Collection[str] | None = None, limit: int | None = None) -> list[Message]:
        """Remove and return queued messages: those named in `ids` (all when
        None), at most `limit` of them, in queue order. The caller settles them
        (memory, store) or puts them elsewhere."""
        if ids is None and limit is None:
            taken = list(self.messages)
            self.messages.clear()
            return taken
        taken = []
        kept: deque[Message] = deque()
        for msg in self.messages:
            if (ids is None or msg.id in ids) and (limit is None or len(taken) < limit):
                taken.append(msg)
            else:
                kept.append(msg)
        self.messages = kept
        return taken

    def drop_all(self) -> None:
        """The queue is going away: forget its messages, in flight ones too."""
        self.purge()
        for consumer in self.consumers:
            self.settled(consumer.unacked.values())
            consumer.unacked.clear()

    def __repr__(self) -> str:
        return f"<Queue {self.name} depth={self.depth} consumers={len(self.consumers)}>"
