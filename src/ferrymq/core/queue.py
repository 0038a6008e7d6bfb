"""A queue: messages in order, and the consumers that compete for them.

Also serves as the private queue behind each topic subscription (durable or
not): a topic copies each message into the queue of every subscription that
matches, and from there dispatch is the same as for a queue.

Paging: over the memory budget, a stored message waiting in the queue is
replaced by its store key (an int) in place, so order is kept for free, and
`loader` reads it back when it reaches a consumer (like RabbitMQ's lazy
queues or ActiveMQ's store cursor, but per message).

Ordering tools: priorities (0-9, higher first, FIFO within one), message
groups (`JMSXGroupID`) and exclusive consumers. A queue that uses none of
them -- the common case -- dispatches on the fast path: one deque, popped
from the left. Once one is in use, dispatch takes the ordered path: one
deque per priority (created at the first non-default priority; `messages`
stays the default priority's), walked message by message, each handed to a
consumer that may take it (`_can_take`) or skipped and left in place.
Every message gets the queue's next sequence number (`Message.seq`).

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
from collections.abc import Callable, Collection, Iterable, Mapping

from ferrymq.core.consumer import AckMode, Consumer
from ferrymq.core.memory import MemoryMeter
from ferrymq.core.message import DEFAULT_PRIORITY, Message
from ferrymq.core.selector import Selector

__all__ = ["GROUP_HEADER", "GROUP_SEQ_HEADER", "Loader", "Queue", "QueueStats"]

# ActiveMQ's message group headers; a JMSXGroupSeq of -1 closes the group.
GROUP_HEADER = "JMSXGroupID"
GROUP_SEQ_HEADER = "JMSXGroupSeq"
# The ordered path looks at most this many messages it cannot hand out yet
# (their group's consumer is busy) per dispatch before it stops, like
# ActiveMQ's maxPageSize window: a dispatch stays bounded on a deep queue.
SCAN_LIMIT = 1000
# Messages one dispatch hands out before it lets the loop turn (see on_more).
DISPATCH_BATCH = 1000

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
    __slots__ = ("dead_lettered", "dequeued", "enqueued", "expired", "redelivered")

    def __init__(self) -> None:
        self.enqueued = 0
        self.dequeued = 0
        self.redelivered = 0
        self.expired = 0  # found expired here (then dead-lettered or dropped)
        self.dead_lettered = 0  # moved from here to a DLQ, expired or not


class Queue:
    """FIFO of messages dispatched round robin to consumers with credit."""

    # With selectors, one dispatch looks at most this many messages that no
    # consumer takes (ActiveMQ's maxPageSize plays this part there): a
    # consumer whose messages sit behind more non-matching ones than this
    # waits until the head of the queue moves.
    scan_limit = 1000

    __slots__ = (
        "_exclusive",
        "_grouped",
        "_groups",
        "_lanes",
        "_ordered",
        "_rr",
        "_selective",
        "_unmatched",
        "consumers",
        "durable",
        "expire",
        "expire",
        "loader",
        "messages",
        "meter",
        "name",
        "on_dispatched",
        "on_more",
        "on_requeue",
        "selector",
        "seq",
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
        on_more: Callable[[Queue], bool] | None = None,
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
        # Asked when a dispatch reaches DISPATCH_BATCH with more to hand out;
        # True: stop, the broker calls `dispatch` again on a later loop turn
        # (so one consumer catching up on a deep queue neither holds the loop
        # nor gathers the whole backlog's store records into one unit).
        self.on_more = on_more
        # A topic subscription's selector, applied at fan-out (see Broker.route).
        self.selector: Selector | None = None
        # Consumers with a selector: any at all switches dispatch to the
        # selective path, so the common case costs one test of this.
        self._selective = 0
        # How many messages at the head the last selective dispatch found no
        # taker for among consumers with credit (still true until credit
        # returns, which calls dispatch, or the head changes).
        self._unmatched = 0
        # The last sequence number given to a message.
        self.seq = 0
        # None until a message with a non-default priority comes; then one
        # deque per priority 0-9, the default one being `messages`.
        self._lanes: list[deque[Message | int]] | None = None
        # Once a grouped message came: group id -> the consumer that owns it.
        self._grouped = False
        self._groups: dict[str, Consumer] = {}
        # Exclusive consumers in subscription order; the first gets everything.
        self._exclusive: list[Consumer] = []
        # True when any ordering tool is in use: dispatch takes the ordered path.
        self._ordered = False
        self.on_requeue = on_requeue
        self.expire = expire

    @property
    def depth(self) -> int:
        lanes = self._lanes
        return len(self.messages) if lanes is None else sum(map(len, lanes))

    @property
    def exclusive_consumer(self) -> Consumer | None:
        """The consumer that gets every message while exclusive ones are attached."""
        return self._exclusive[0] if self._exclusive else None

    def _update_mode(self) -> None:
        self._ordered = self._lanes is not None or self._grouped or bool(self._exclusive)

    def _lane(self, priority: int) -> deque[Message | int]:
        lanes = self._lanes
        if lanes is None:
            lanes = self._lanes = [deque() for _ in range(10)]
            lanes[DEFAULT_PRIORITY] = self.messages
            self._ordered = True
        return lanes[priority]

    def _by_priority(self) -> list[deque[Message | int]]:
        """The deques, highest priority first."""
        lanes = self._lanes
        return [self.messages] if lanes is None else lanes[::-1]

    def restore(
        self,
        items: Iterable[Message | int],
        priorities: Mapping[int, int] | None = None,
        *,
        grouped: bool = False,
        seq: int = 0,
    ) -> None:
        """Take what the store recovered, in order, before any consumer comes:
        messages or store keys (`priorities` gives the non-default priority of
        a key, `grouped` says whether any is in a group; `seq` is the last
        number the queue gave)."""
        messages = self.messages
        priorities = priorities or {}
        for item in items:
            if isinstance(item, int):
                priority = priorities.get(item, DEFAULT_PRIORITY)
            else:
                priority = item.priority
                self.meter.used += item.footprint
                grouped = grouped or GROUP_HEADER in item.headers
                seq = max(seq, item.seq)
            if priority != DEFAULT_PRIORITY or self._lanes is not None:
                self._lane(priority).append(item)
            else:
                messages.append(item)
        self.seq = max(self.seq, seq)
        if grouped:
            self._grouped = True
            self._update_mode()

    @property
    def in_flight(self) -> int:
        return sum(len(c.unacked) for c in self.consumers)

    def enqueue(self, message: Message) -> None:
        seq = self.seq = self.seq + 1
        message.seq = seq
        self.meter.used += message.footprint
        if message.priority == DEFAULT_PRIORITY and self._lanes is None:
            self.messages.append(message)
        else:
            self._lane(message.priority).append(message)
        if not self._grouped and GROUP_HEADER in message.headers:
            self._grouped = self._ordered = True
        self.stats.enqueued += 1
        if self.consumers:
            if self._selective:
                self._dispatch_newest()
            else:
                self.dispatch()

    def requeue(self, messages: Iterable[Message]) -> None:
        """Put returned messages back at the head (of their priority), in
        their original order."""
        returned = list(messages)
        for msg in returned:
            msg.delivery_count += 1
        self.stats.redelivered += len(returned)
        if self.on_requeue is not None:
            returned = self.on_requeue(self, returned)
        self.requeue_now(returned)

    def requeue_now(self, messages: list[Message]) -> None:
        """Put messages back at the head (of their priority) as they are
        (counts already raised)."""
        self._unmatched = 0  # a new head: nothing known about it
        for msg in reversed(messages):
            if msg.priority == DEFAULT_PRIORITY and self._lanes is None:
                self.messages.appendleft(msg)
            else:
                self._lane(msg.priority).appendleft(msg)
            if not self._grouped and GROUP_HEADER in msg.headers:
                self._grouped = self._ordered = True
        if messages and self.consumers:
            self.dispatch()

    def add_consumer(self, consumer: Consumer, *, exclusive: bool = False) -> None:
        self.consumers.append(consumer)
        if consumer.selector is not None and self.topic_pattern is None:
            self._selective += 1
        if exclusive:
            self._exclusive.append(consumer)
            self._update_mode()
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
        if self._exclusive and consumer in self._exclusive:
            # The next exclusive consumer (if any) takes over.
            self._exclusive.remove(consumer)
            self._update_mode()
        if self._groups:
            # Its groups go to whoever gets their next message.
            self._groups = {g: c for g, c in self._groups.items() if c is not consumer}
        unacked = list(consumer.unacked.values())
        consumer.unacked.clear()
        if unacked:
            self.requeue(unacked)

    def dispatch(self) -> None:
        """Hand out messages while some consumer has credit."""
        if self._ordered:
            # Priorities, groups or exclusive consumers (selectors too, there).
            self._dispatch_ordered()
            return
        if self._selective:
            self._dispatch_selective()
            return
        messages = self.messages
        consumers = self.consumers
        more = self.on_more
        budget = DISPATCH_BATCH if more is not None else -1  # -1: no limit
        if len(consumers) == 1:
            # The common case, without the round-robin bookkeeping.
            only = consumers[0]
            while messages and only.has_credit:
                if budget == 0 and more is not None:
                    if more(self):
                        return
                    budget = DISPATCH_BATCH
                budget -= 1
                item = messages.popleft()
                if isinstance(item, int):
                    msg = self._page_in(item)
                    if msg is None:
                        messages.appendleft(item)
                        return
                else:
                    msg = item
                if "expires" in msg.headers and self.expire is not None and self.expire(self, msg):
                    continue
                self.stats.dequeued += 1
                only.deliver(msg)
                if only.ack_mode is AckMode.AUTO:
                    self.meter.release(msg.footprint)
                if msg.persistent and self.durable:
                    self.on_dispatched(self, msg, only.ack_mode is AckMode.AUTO)
            return
        while messages and consumers:
            consumer = self._next_with_credit()
            if consumer is None:
                return
            if budget == 0 and more is not None:
                if more(self):
                    return
                budget = DISPATCH_BATCH
            budget -= 1
            item = messages.popleft()
            if isinstance(item, int):
                msg = self._page_in(item)
                if msg is None:
                    messages.appendleft(item)
                    return
            else:
                msg = item
            if "expires" in msg.headers and self.expire is not None and self.expire(self, msg):
                continue
            self._hand(consumer, msg)

    def _hand(self, consumer: Consumer, msg: Message) -> None:
        self.stats.dequeued += 1
        consumer.deliver(msg)
        if consumer.ack_mode is AckMode.AUTO:
            self.meter.release(msg.footprint)
        if msg.persistent and self.durable:
            # The store's business; an auto-ack delivery is also settled now.
            self.on_dispatched(self, msg, consumer.ack_mode is AckMode.AUTO)

    def _can_take(self, consumer: Consumer, msg: Message) -> bool:
        """Whether `consumer` may be handed `msg` now (the ordered path's one
        per-consumer test, selectors included)."""
        return consumer.has_credit and (
            consumer.selector is None
            or self.topic_pattern is not None
            or self._eligible(consumer, msg)
        )

    def _dispatch_ordered(self) -> None:
        """Priorities high to low, FIFO within each; a message whose group
        belongs to a busy consumer is skipped and stays where it is."""
        consumers = self.consumers
        if not consumers:
            return
        exclusive = self._exclusive[0] if self._exclusive else None
        groups = self._groups
        skipped = 0
        for lane in self._by_priority():
            i = 0
            while i < len(lane):
                if exclusive is not None and not exclusive.has_credit:
                    return
                item = lane[i]
                if isinstance(item, int):
                    loaded = self._page_in(item)
                    if loaded is None:
                        return
                    msg = loaded
                else:
                    msg = item
                if "expires" in msg.headers and self.expire is not None:
                    if i:
                        del lane[i]
                    else:
                        lane.popleft()
                    if self.expire(self, msg):
                        continue
                    lane.insert(i, item)  # not expired after all: back in its place
                group = msg.headers.get(GROUP_HEADER) if self._grouped else None
                consumer: Consumer | None
                if exclusive is not None:
                    consumer = exclusive if self._can_take(exclusive, msg) else None
                elif group is not None and group in groups:
                    owner = groups[group]
                    consumer = owner if self._can_take(owner, msg) else None
                else:
                    consumer = self._next_for(msg)
                if consumer is None:
                    if isinstance(item, int):  # back to its key: it may wait long
                        self.meter.release(msg.footprint)
                    if not any(c.has_credit for c in consumers):
                        return
                    skipped += 1
                    if skipped >= SCAN_LIMIT:
                        return
                    i += 1
                    continue
                if i:
                    del lane[i]
                else:
                    lane.popleft()
                if group is not None:
                    if msg.headers.get(GROUP_SEQ_HEADER) == "-1":
                        groups.pop(group, None)  # closed: its next message starts anew
                    else:
                        groups[group] = consumer
                self._hand(consumer, msg)
        self._settle_mode()

    def _settle_mode(self) -> None:
        """Back to the fast path once the ordering tools are out of use: the
        other priorities drained, no group assigned, no exclusive consumer."""
        lanes = self._lanes
        if lanes is not None and not any(
            lane for p, lane in enumerate(lanes) if p != DEFAULT_PRIORITY
        ):
            self._lanes = None
        if self._grouped and not self._groups and not self.depth:
            self._grouped = False
        self._update_mode()

    def _next_for(self, msg: Message) -> Consumer | None:
        """The next consumer in round-robin order that can take `msg`."""
        consumers = self.consumers
        n = len(consumers)
        start = self._rr % n
        for step in range(n):
            consumer = consumers[(start + step) % n]
            if self._can_take(consumer, msg):
                self._rr = (start + step + 1) % n
                return consumer
        return None

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
            self.meter.release(msg.footprint)
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
                if "expires" in msg.headers and self.expire is not None and self.expire(self, msg):
                    continue
                consumer = self._next_eligible(msg)
                if consumer is None:
                    if isinstance(item, int):
                        self.meter.release(msg.footprint)  # back to paged out
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
        if "expires" in newest.headers and self.expire is not None and self.expire(self, newest):
            return
        self._hand_out(consumer, newest)

    def _page_in(self, key: int) -> Message | None:
        """A paged-out message read back (counted in memory again), or None
        if the store cannot read it: the caller leaves the key in place."""
        assert self.loader is not None, "a paged-out message in a queue without a loader"
        try:
            msg = self.loader(self, key)
        except Exception:
            # The store is failing; it reports that to producers. Keep the
            # message where it was rather than lose it.
            log.exception("%s: cannot read paged-out message %d back", self.name, key)
            return None
        self.meter.used += msg.footprint
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
            released += msg.footprint
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
        self.meter.release(sum(m.footprint for m in messages))

    def purge(self) -> list[Message | int]:
        """Drop every queued (not in-flight) message; returns them."""
        dropped: list[Message | int] = []
        for lane in self._by_priority():
            dropped.extend(lane)
            lane.clear()
        self._unmatched = 0
        self.meter.release(sum(m.footprint for m in dropped if not isinstance(m, int)))
        return dropped

    # -- for management (browse, move, purge): the only readers of queued
    # messages outside dispatch, so paging can change the deque in one place.

    def browse(self, offset: int = 0, limit: int | None = None) -> list[Message]:
        """Queued (not in-flight) messages from `offset`, in dispatch order, left
        in place (paged-out ones are read back for the caller, and stay paged out)."""
        end = None if limit is None else offset + limit
        items = itertools.chain.from_iterable(self._by_priority())
        return [self._read(m) for m in itertools.islice(items, offset, end)]

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
        for lane in self._by_priority():
            kept: list[Message | int] = []
            for item in lane:
                if limit is not None and len(taken) >= limit:
                    kept.append(item)
                    continue
                msg = self._read(item)
                if (ids is None or msg.id in ids) and (where is None or where(msg)):
                    if isinstance(item, int):
                        self.meter.used += msg.footprint
                    taken.append(msg)
                else:
                    kept.append(item)
            # In place: `_lanes` holds `messages` itself.
            lane.clear()
            lane.extend(kept)
        self._unmatched = 0  # positions changed; the next dispatch rescans
        return taken

    def remove_if(self, predicate: Callable[[Message], bool]) -> list[Message]:
        """Remove and return the queued in-memory messages `predicate` picks
        (the expiry sweep; paged-out ones are left for dispatch to check)."""
        removed: list[Message] = []
        for lane in self._by_priority():
            kept: list[Message | int] = []
            for item in lane:
                if not isinstance(item, int) and predicate(item):
                    removed.append(item)
                else:
                    kept.append(item)
            if len(kept) != len(lane):
                lane.clear()  # in place: `_lanes` holds `messages` itself
                lane.extend(kept)
        if removed:
            self._unmatched = 0
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
