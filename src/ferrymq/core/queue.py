"""A queue: messages in order, and the consumers that compete for them.

Also serves as the private queue behind each topic subscription (durable or
not): a topic copies each message into the queue of every subscription that
matches, and from there dispatch is the same as for a queue.

Paging: over the memory budget, a stored message waiting in the queue is
replaced by its store key (an int) in place, so order is kept for free, and
`loader` reads it back when it reaches a consumer (like RabbitMQ's lazy
queues or ActiveMQ's store cursor, but per message).

Selectors: while some consumer has one, dispatch takes a slower path
(`_dispatch_selective`) that gives each consumer only what its selector
matches and leaves a message nobody with credit matches where it is, so the
others keep their FIFO order. A topic subscription's selector is not used
here: the topic filters before copying a message into the subscription.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Collection, Iterable

from ferrymq.core.consumer import AckMode, Consumer
from ferrymq.core.memory import MemoryMeter
from ferrymq.core.message import Message
from ferrymq.core.selector import Selector

__all__ = ["Loader", "Queue", "QueueStats"]

log = logging.getLogger(__name__)

# Reads a paged-out message back from the store, by its store key.
Loader = Callable[["Queue", int], Message]


class QueueStats:
    __slots__ = ("dequeued", "enqueued", "redelivered")

    def __init__(self) -> None:
        self.enqueued = 0
        self.dequeued = 0
        self.redelivered = 0


class Queue:
    """FIFO of messages dispatched round robin to consumers with credit."""

    # With selectors, one dispatch looks at most this many messages that no
    # consumer takes (ActiveMQ's maxPageSize plays this part there): a
    # consumer whose messages sit behind more non-matching ones than this
    # waits until the head of the queue moves.
    scan_limit = 1000

    __slots__ = (
        "_rr",
        "_selective",
        "_unmatched",
        "consumers",
        "durable",
        "loader",
        "messages",
        "meter",
        "name",
        "on_dispatched",
        "selector",
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
        # A topic subscription's selector, applied at fan-out (see Broker.route).
        self.selector: Selector | None = None
        # Consumers with a selector: any at all switches dispatch to the
        # selective path, so the common case costs one test of this.
        self._selective = 0
        # How many messages at the head the last selective dispatch found no
        # taker for among consumers with credit (still true until credit
        # returns, which calls dispatch, or the head changes).
        self._unmatched = 0

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
            if self._selective:
                self._dispatch_newest()
            else:
                self.dispatch()

    def requeue(self, messages: Iterable[Message]) -> None:
        """Put returned messages back at the head, in their original order."""
        returned = list(messages)
        self._unmatched = 0  # a new head: nothing known about it
        for msg in reversed(returned):
            msg.delivery_count += 1
            self.messages.appendleft(msg)
        self.stats.redelivered += len(returned)
        if self.consumers:
            self.dispatch()

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        if consumer.selector is not None and self.topic_pattern is None:
            self._selective += 1
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        """Detach a consumer; what it had not acked goes back to the head."""
        try:
            idx = self.consumers.index(consumer)
        except ValueError:
            return
        del self.consumers[idx]
        if consumer.selector is not None and self.topic_pattern is None:
            self._selective -= 1
        if self._rr > idx:
            self._rr -= 1
        unacked = list(consumer.unacked.values())
        consumer.unacked.clear()
        if unacked:
            self.requeue(unacked)

    def dispatch(self) -> None:
        """Hand out messages while some consumer has credit."""
        if self._selective:
            self._dispatch_selective()
            return
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
            self.stats.dequeued += 1
            consumer.deliver(msg)
            if consumer.ack_mode is AckMode.AUTO:
                self.meter.release(len(msg.body))
            if msg.persistent and self.durable:
                # The store's business; an auto-ack delivery is also settled now.
                self.on_dispatched(self, msg, consumer.ack_mode is AckMode.AUTO)

    # -- selectors: kept apart from dispatch() so that its fast paths stay as
    # they are.

    def _eligible(self, consumer: Consumer, msg: Message) -> bool:
        selector = consumer.selector
        return selector is None or selector.matches(msg)

    def _next_eligible(self, msg: Message) -> Consumer | None:
        """The next consumer in round-robin order with credit that `msg` matches."""
        consumers = self.consumers
        n = len(consumers)
        start = self._rr % n
        for step in range(n):
            consumer = consumers[(start + step) % n]
            if consumer.has_credit and self._eligible(consumer, msg):
                self._rr = (start + step + 1) % n
                return consumer
        return None

    def _hand_out(self, consumer: Consumer, msg: Message) -> None:
        self.stats.dequeued += 1
        consumer.deliver(msg)
        if consumer.ack_mode is AckMode.AUTO:
            self.meter.release(len(msg.body))
        if msg.persistent and self.durable:
            self.on_dispatched(self, msg, consumer.ack_mode is AckMode.AUTO)

    def _dispatch_selective(self) -> None:
        """dispatch() when some consumer has a selector: scan from the head,
        giving each message to the next consumer with credit that it matches;
        one that none matches stays in place. Paged-out messages are read back
        to be tested and, if nobody takes them, stay paged out."""
        messages = self.messages
        consumers = self.consumers
        skipped: list[Message | int] = []
        try:
            while messages and consumers and len(skipped) < self.scan_limit:
                if not any(c.has_credit for c in consumers):
                    break
                item = messages.popleft()
                if isinstance(item, int):
                    msg = self._page_in(item)
                    if msg is None:
                        break  # _page_in put the key back at the head
                else:
                    msg = item
                consumer = self._next_eligible(msg)
                if consumer is None:
                    if isinstance(item, int):
                        self.meter.release(len(msg.body))  # back to paged out
                    skipped.append(item)
                    continue
                self._hand_out(consumer, msg)
        finally:
            # Back at the head, in order. Credit only fell during the scan, so
            # each of them still matches no consumer with credit.
            messages.extendleft(reversed(skipped))
            self._unmatched = len(skipped)

    def _dispatch_newest(self) -> None:
        """enqueue() when some consumer has a selector: if every earlier message
        is known to have no taker, only the new one needs testing, which keeps
        a queue with a stuck head from being rescanned on every send."""
        messages = self.messages
        newest = messages[-1]
        if self._unmatched != len(messages) - 1 or isinstance(newest, int):
            # Beyond the scan limit the new message is out of sight until the
            # head moves; otherwise, a full scan.
            if self._unmatched < self.scan_limit:
                self._dispatch_selective()
            return
        consumer = self._next_eligible(newest)
        if consumer is None:
            self._unmatched += 1
            return
        messages.pop()
        self._hand_out(consumer, newest)

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
        self._unmatched = 0
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

    def take(
        self,
        ids: Collection[str] | None = None,
        limit: int | None = None,
        where: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """Remove and return queued messages: those named in `ids` (all when
        None) that `where` accepts, at most `limit` of them, in queue order. The caller settles them
        (memory, store) or puts them elsewhere; paged-out ones are read back and
        count against the memory budget like the others."""
        taken: list[Message] = []
        kept: deque[Message | int] = deque()
        for item in self.messages:
            if limit is not None and len(taken) >= limit:
                kept.append(item)
                continue
            msg = self._read(item)
            if (ids is None or msg.id in ids) and (where is None or where(msg)):
                if isinstance(item, int):
                    self.meter.used += len(msg.body)
                taken.append(msg)
            else:
                kept.append(item)
        self.messages = kept
        self._unmatched = 0  # positions changed; the next dispatch rescans
        return taken

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
