"""A queue: messages in order, and the consumers that compete for them.

Also serves as the private queue behind each topic subscription (durable or
not): a topic copies each message into the queue of every subscription that
matches, and from there dispatch is the same as for a queue.

Paging: over the memory budget, a stored message waiting in the queue is
replaced by its store key (an int) in place, so order is kept for free, and
`loader` reads it back when it reaches a consumer (like RabbitMQ's lazy
queues or ActiveMQ's store cursor, but per message).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable

from ferrymq.core.consumer import AckMode, Consumer
from ferrymq.core.memory import MemoryMeter
from ferrymq.core.message import Message

__all__ = ["Loader", "Queue", "QueueStats"]

log = logging.getLogger(__name__)

# Reads a paged-out message back from the store, by its store key.
Loader = Callable[["Queue", int], Message]
# Given the messages consumers gave back (counts raised), returns those to put
# back at the head now; it dead-letters or holds back the others.
RequeueHook = Callable[["Queue", list[Message]], list[Message]]
# For a message with an `expires` header about to be delivered: True if it
# has expired and was taken care of (dead-lettered or dropped).
ExpireHook = Callable[["Queue", Message], bool]


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
        "expire",
        "loader",
        "messages",
        "meter",
        "name",
        "on_dispatched",
        "on_requeue",
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
        loader: Loader | None = None,
        on_requeue: RequeueHook | None = None,
        expire: ExpireHook | None = None,
    ) -> None:
        self.name = name
        # Durable queues survive a restart and store their persistent messages.
        self.durable = durable
        self.topic_pattern = topic_pattern
        # A Message, or the store key of one that is paged out.
        self.messages: deque[Message | int] = deque()
        self.consumers: list[Consumer] = []
        self.stats = QueueStats()
        self._rr = 0
        # Told of every persistent message handed out from a durable queue,
        # and whether that also settled it (auto ack): the store's business.
        self.on_dispatched = on_dispatched
        # Counts the bodies this queue holds, queued or in flight.
        self.meter = meter
        self.loader = loader
        self.on_requeue = on_requeue
        self.expire = expire

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
        for msg in returned:
            msg.delivery_count += 1
        self.stats.redelivered += len(returned)
        if self.on_requeue is not None:
            returned = self.on_requeue(self, returned)
        self.requeue_now(returned)

    def requeue_now(self, messages: list[Message]) -> None:
        """Put messages back at the head as they are (counts already raised)."""
        for msg in reversed(messages):
            self.messages.appendleft(msg)
        if messages and self.consumers:
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
                item = messages.popleft()
                if isinstance(item, int):
                    msg = self._page_in(item)
                    if msg is None:
                        return
                else:
                    msg = item
                if "expires" in msg.headers and self.expire is not None and self.expire(self, msg):
                    continue
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
            item = messages.popleft()
            if isinstance(item, int):
                msg = self._page_in(item)
                if msg is None:
                    return
            else:
                msg = item
            if "expires" in msg.headers and self.expire is not None and self.expire(self, msg):
                continue
            self.stats.dequeued += 1
            consumer.deliver(msg)
            if consumer.ack_mode is AckMode.AUTO:
                self.meter.release(len(msg.body))
            if msg.persistent and self.durable:
                # The store's business; an auto-ack delivery is also settled now.
                self.on_dispatched(self, msg, consumer.ack_mode is AckMode.AUTO)

    def _page_in(self, key: int) -> Message | None:
        assert self.loader is not None, "a paged-out message in a queue without a loader"
        try:
            msg = self.loader(self, key)
        except Exception:
            # The store is failing; it reports that to producers. Keep the
            # message where it was rather than lose it.
            log.exception("%s: cannot read paged-out message %d back", self.name, key)
            self.messages.appendleft(key)
            return None
        self.meter.used += len(msg.body)
        return msg

    def page_out(self, newest: int) -> None:
        """Replace up to ``newest`` messages at the tail with their store keys.

        Only stored messages never delivered (whose stored state is their
        whole state) go; the others stay in memory.
        """
        messages = self.messages
        released = 0
        for i in range(1, min(newest, len(messages)) + 1):
            msg = messages[-i]
            if isinstance(msg, int) or not msg.store_key or msg.delivery_count:
                continue
            messages[-i] = msg.store_key
            released += len(msg.body)
        if released:
            self.meter.release(released)

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

    def purge(self) -> list[Message | int]:
        """Drop every queued (not in-flight) message; returns them."""
        dropped = list(self.messages)
        self.messages.clear()
        self.meter.release(sum(len(m.body) for m in dropped if not isinstance(m, int)))
        return dropped

    # -- for management (browse, move, purge): the only readers of queued
    # messages outside dispatch, so paging can change the deque in one place.

    def browse(self, offset: int = 0, limit: int | None = None) -> list[Message]:
        """Queued (not in-flight) messages from `offset`, in order, left in place
        (paged-out ones are read back for the caller, and stay paged out)."""
        end = None if limit is None else offset + limit
        return [self._read(m) for m in itertools.islice(self.messages, offset, end)]

    def _read(self, item: Message | int) -> Message:
        if isinstance(item, int):
            assert self.loader is not None, "a paged-out message in a queue without a loader"
            return self.loader(self, item)
        return item

    def take(self, ids: Collection[str] | None = None, limit: int | None = None) -> list[Message]:
        """Remove and return queued messages: those named in `ids` (all when
        None), at most `limit` of them, in queue order. The caller settles them
        (memory, store) or puts them elsewhere; paged-out ones are read back and
        count against the memory budget like the others."""
        taken: list[Message] = []
        kept: deque[Message | int] = deque()
        for item in self.messages:
            if limit is not None and len(taken) >= limit:
                kept.append(item)
                continue
            msg = self._read(item)
            if ids is None or msg.id in ids:
                if isinstance(item, int):
                    self.meter.used += len(msg.body)
                taken.append(msg)
            else:
                kept.append(item)
        self.messages = kept
        return taken

    def remove_if(self, predicate: Callable[[Message], bool]) -> list[Message]:
        """Remove and return the queued in-memory messages `predicate` picks
        (the expiry sweep; paged-out ones are left for dispatch to check)."""
        removed: list[Message] = []
        kept: deque[Message | int] = deque()
        for item in self.messages:
            if not isinstance(item, int) and predicate(item):
                removed.append(item)
            else:
                kept.append(item)
        if removed:
            self.messages = kept
        return removed

    def drop_all(self) -> list[Message | int]:
        """The queue is going away: forget its messages, in flight ones too;
        returns them."""
        dropped = self.purge()
        for consumer in self.consumers:
            self.settled(consumer.unacked.values())
            dropped.extend(consumer.unacked.values())
            consumer.unacked.clear()
        return dropped

    def __repr__(self) -> str:
        return f"<Queue {self.name} depth={self.depth} consumers={len(self.consumers)}>"
