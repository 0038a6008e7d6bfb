"""The broker facade: destinations, routing, and the store."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Sequence

from ferrymq.core.connection import ClientConnection, DeliverySink
from ferrymq.core.consumer import Consumer
from ferrymq.core.dedup import TRANSACTIONS_SCOPE, IdWindow
from ferrymq.core.delivery_features import DeliveryFeatures
from ferrymq.core.destination import Destination, DestinationKind
from ferrymq.core.errors import InvalidDestination, SubscriptionError
from ferrymq.core.memory import MemoryMeter
from ferrymq.core.message import Message, parse_priority
from ferrymq.core.policy import Policy, PolicyMap
from ferrymq.core.queue import Queue
from ferrymq.core.scheduler import is_scheduled
from ferrymq.core.selector import Selector, SelectorError
from ferrymq.core.topic import TopicRouter
from ferrymq.store.base import (
    AddMessage,
    DeleteQueue,
    ForgetId,
    QueueSpec,
    Record,
    RememberId,
    RemoveMessage,
    Store,
    UpsertQueue,
)

__all__ = ["Broker"]

log = logging.getLogger(__name__)

# Store keys of durable topic subscriptions; they cannot clash with a queue's
# key, which always starts with "/queue/".
_DURABLE_PREFIX = "/subscription/"


def durable_key(client_id: str, name: str) -> str:
    return f"{_DURABLE_PREFIX}{client_id}:{name}"


def _virtual_topic(queue_key: str) -> str | None:
    """`/queue/Consumer.A.VirtualTopic.X` -> `/topic/VirtualTopic.X`; None
    for a queue that is not a virtual topic's consumer queue."""
    if not queue_key.startswith("/queue/Consumer."):
        return None
    parts = queue_key[len("/queue/") :].split(".", 2)
    if len(parts) < 3 or not parts[2].startswith("VirtualTopic."):
        return None
    return f"/topic/{parts[2]}"


class Broker:
    """Owns every queue and subscription; the sessions' entry point."""

    def __init__(
        self,
        store: Store,
        *,
        node_name: str = "ferrymq",
        memory_budget: int = 256 << 20,
        dedup_window: int = 20_000,
        policies: Sequence[Policy] = (),
    ) -> None:
        self.store = store
        # dedup-ids per destination, and committed transaction ids.
        self.ids = IdWindow(dedup_window)
        self.duplicates_dropped = 0
        self.memory = MemoryMeter(memory_budget)
        self.node_name = node_name
        # Unique across restarts, so recovered ids never clash with new ones.
        nonce = f"{int(time.time() * 1000):x}{os.getpid():x}"
        self._id_prefix = f"ID:{node_name}-{nonce}-"
        self._message_seq = itertools.count(1)
        self._connection_seq = itertools.count(1)
        self.queues: dict[str, Queue] = {}  # "/queue/NAME" and "/temp-queue/NAME"
        self.durable_subscriptions: dict[str, Queue] = {}
        self.router = TopicRouter()
        self.connections: dict[str, ClientConnection] = {}
        self._client_ids: dict[str, ClientConnection] = {}
        self._temp_owners: dict[str, ClientConnection] = {}
        self._records: list[Record] = []
        # > 0 while a connection works through one read's worth of frames: their
        # records then reach the store as one unit (see hold_records).
        self._holding = 0
        # Queues whose dispatch stopped at its batch limit, in order.
        self._more_dispatch: dict[Queue, None] = {}
        # Queues that took stored messages while over the memory budget, and
        # how many: paged out once the store has given them keys (at flush).
        self._to_page_out: dict[Queue, int] = {}
        self.started_at = time.time()
        # Redelivery policies, DLQs, expiry and scheduled delivery.
        self.policies = PolicyMap(policies)
        self.features = DeliveryFeatures(self)

    async def start(self) -> None:
        """Open the store and rebuild the queues and subscriptions it holds."""
        state = await self.store.open()
        for scope, idents in state.remembered.items():
            # A smaller window than before: forget what no longer fits.
            self._records.extend(ForgetId(scope, i) for i in self.ids.load(scope, idents))
        for spec in state.queues:
            queue = self._make_queue(spec.name, durable=True, topic_pattern=spec.topic_pattern)
            if spec.topic_pattern is not None:
                self.durable_subscriptions[spec.name] = queue
                queue.selector = self._recovered_selector(spec)
                self.router.bind(spec.topic_pattern, queue)
            else:
                self.queues[spec.name] = queue
                self._bind_virtual(queue)
            queue.restore(
                state.messages.pop(spec.name, ()),
                state.priorities.get(spec.name),
                grouped=spec.name in state.grouped,
                seq=state.sequences.get(spec.name, 0),
            )
        self.features.recovered(state)

    @staticmethod
    def _recovered_selector(spec: QueueSpec) -> Selector | None:
        if spec.selector is None:
            return None
        try:
            return Selector.compile(spec.selector)
        except SelectorError as exc:
            # Accepted when subscribed, so only a grammar change gets here;
            # collect everything rather than nothing, and say so.
            log.error("durable subscription %s: stored %s; not filtering", spec.name, exc)
            return None

    async def stop(self) -> None:
        for conn in list(self.connections.values()):
            conn.close()
        self.features.close()
        self.flush_records()
        await self.store.close()

    # -- connections ---------------------------------------------------------

    def connect(self, sink: DeliverySink, *, client_id: str | None = None) -> ClientConnection:
        if client_id is not None and client_id in self._client_ids:
            raise SubscriptionError(f"client-id {client_id!r} is already connected")
        conn_id = f"{self._id_prefix}c{next(self._connection_seq)}"
        conn = ClientConnection(self, sink, conn_id, client_id)
        self.connections[conn_id] = conn
        if client_id is not None:
            self._client_ids[client_id] = conn
        return conn

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.pop(conn.id, None)
        if conn.client_id is not None and self._client_ids.get(conn.client_id) is conn:
            del self._client_ids[conn.client_id]
        for name in conn.temp_names:
            self._temp_owners.pop(name, None)
            queue = self.queues.pop(str(Destination(DestinationKind.TEMP_QUEUE, name)), None)
            if queue is not None:
                # Others listening on our temp queue just stop getting messages.
                queue.drop_all()
                for consumer in list(queue.consumers):
                    queue.remove_consumer(consumer)

    def temp_destination(
        self, conn: ClientConnection, kind: DestinationKind, local: str
    ) -> Destination:
        """The connection-unique destination behind a client's `/temp-queue/<local>`."""
        name = f"{conn.id}.{local}"
        if name not in conn.temp_names:
            conn.temp_names.add(name)
            self._temp_owners[name] = conn
        return Destination(kind, name)

    # -- messages and routing -----------------------------------------------

    def new_message(
        self, destination: Destination, headers: dict[str, str], body: bytes, persistent: bool
    ) -> Message:
        message = Message(
            self.next_message_id(),
            destination,
            headers,
            body,
            persistent=persistent,
            timestamp=int(time.time() * 1000),
            priority=parse_priority(headers.get("priority")),
        )
        self.features.sent(message)
        return message

    def next_message_id(self) -> str:
        return f"{self._id_prefix}{next(self._message_seq)}"

    def check_send_destination(
        self, conn: ClientConnection, destination: Destination
    ) -> Destination:
        if destination.is_wildcard:
            raise InvalidDestination(f"cannot send to a wildcard destination: {destination}")
        return destination

    def route(
        self, conn: ClientConnection | None, destination: Destination, message: Message
    ) -> None:
        """Deliver a message to its queue, or to every matching topic subscription."""
        if is_scheduled(message.headers):
            self.features.schedule(destination, message)
            return
        kind = destination.kind
        if kind is DestinationKind.QUEUE:
            self._enqueue(self._queue(str(destination)), message)
        elif kind is DestinationKind.TEMP_QUEUE:
            key = str(destination)
            queue = self.queues.get(key)
            if queue is None:
                owner = self._temp_owners.get(destination.name)
                if owner is None:
                    # Its owner is gone: like a reply to a client that left, dropped.
                    log.debug("dropping message to deleted %s", destination)
                    return
                queue = self.queues[key] = self._make_queue(key, durable=False)
            self._enqueue(queue, message)
        else:
            targets = self.router.match(str(destination))
            first = True
            for queue in targets:
                selector = queue.selector
                if selector is not None and not selector.matches(message):
                    continue  # not for this subscription: never copied into it
                self._enqueue(queue, message if first else message.copy())
                first = False

    def accept_once(self, destination: Destination, dedup_id: str) -> bool:
        """False if `dedup_id` was already accepted for this destination (a
        resend: drop it); else remember it, durably with this operation."""
        return self._remember(str(destination), dedup_id)

    def seen(self, destination: Destination, dedup_id: str) -> bool:
        """Whether `dedup_id` was already accepted for this destination."""
        return (str(destination), dedup_id) in self.ids

    def transaction_committed(self, tx_id: str) -> None:
        self._remember(TRANSACTIONS_SCOPE, tx_id)

    def was_committed(self, tx_id: str) -> bool:
        return (TRANSACTIONS_SCOPE, tx_id) in self.ids

    def _remember(self, scope: str, ident: str) -> bool:
        if (scope, ident) in self.ids:
            if scope != TRANSACTIONS_SCOPE:
                self.duplicates_dropped += 1
                log.debug("dropping duplicate %s to %s", ident, scope)
            return False
        evicted = self.ids.remember(scope, ident)
        self._records.append(RememberId(scope, ident))
        if evicted is not None:
            self._records.append(ForgetId(scope, evicted))
        return True

    def _enqueue(self, queue: Queue, message: Message) -> None:
        if "expires" in message.headers:
            self.features.expiry.watch(queue, message)
        if message.persistent and queue.durable:
            self._records.append(AddMessage(queue.name, message))
            memory = self.memory
            if not memory.room_for_stored(message.footprint) and self.store.pages:
                self._to_page_out[queue] = self._to_page_out.get(queue, 0) + 1
        queue.enqueue(message)

    def enqueue_to(self, key: str, message: Message) -> None:
        """Put a message straight into the queue `/queue/NAME` (a DLQ)."""
        self._enqueue(self._queue(key), message)

    def add_record(self, record: Record) -> None:
        """A store record of the current operation (flushed with the rest)."""
        self._records.append(record)

    def is_live(self, queue: Queue) -> bool:
        """Whether `queue` still exists (not deleted, nor a finished subscription)."""
        if queue.topic_pattern is not None and not queue.durable:
            return bool(queue.consumers)
        return (self.queues.get(queue.name) or self.durable_subscriptions.get(queue.name)) is queue

    def settle(self, queue: Queue, messages: Sequence[Message]) -> None:
        """Messages acknowledged by a consumer: gone for good."""
        queue.settled(messages)
        if queue.durable:
            for msg in messages:
                if msg.persistent:
                    self._records.append(RemoveMessage(queue.name, msg))

    def _on_dispatched(self, queue: Queue, message: Message, settled: bool) -> None:
        if settled:
            # By key once it has one: a dispatch loop draining a paged-out
            # backlog must not keep every body it read back alive in the
            # records until they are flushed.
            self._records.append(RemoveMessage(queue.name, message.store_key or message))
        else:
            self.store.delivered(queue.name, message)

    def hold_records(self) -> None:
        """Keep the records of the operations that follow until `release_records`:
        a connection handles all the frames of one read as one store unit (one
        journal frame, one sequence mark), not one unit per frame. Grouping
        operations keeps each one atomic; anything that waits for durability
        must `flush_records(force=True)` first."""
        self._holding += 1

    def release_records(self) -> None:
        """End a `hold_records`; the outermost one flushes what was held."""
        self._holding -= 1
        if not self._holding:
            self.flush_records()

    def flush_records(self, *, force: bool = False) -> None:
        """Hand what the last operation changed to the store as one atomic unit
        (unless held: see `hold_records`)."""
        if self._records and (force or not self._holding):
            records, self._records = self._records, []
            to_page_out, self._to_page_out = self._to_page_out, {}
            self.store.append(records)
            self.memory.index = self.store.index_bytes()
            for queue, n in to_page_out.items():
                queue.page_out(n)

    def _dispatch_later(self, queue: Queue) -> bool:
        """Go on with a queue's dispatch on the next loop turn (it reached its
        batch limit). False without a running loop (tests): go on now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if not self._more_dispatch:
            loop.call_soon(self._dispatch_pending)
        self._more_dispatch[queue] = None
        return True

    def _dispatch_pending(self) -> None:
        pending, self._more_dispatch = self._more_dispatch, {}
        for queue in pending:
            if queue.consumers and self.is_live(queue):
                queue.dispatch()
        self.flush_records()

    def _load(self, queue: Queue, key: int) -> Message:
        return self.store.load(queue.name, key)

    # -- queues and subscriptions -----------------------------------------------

    def _make_queue(self, name: str, *, durable: bool, topic_pattern: str | None = None) -> Queue:
        return Queue(
            name,
            durable=durable,
            topic_pattern=topic_pattern,
            on_dispatched=self._on_dispatched,
            meter=self.memory,
            loader=self._load if durable and self.store.pages else None,
            on_more=self._dispatch_later,
            on_requeue=self.features.redelivery.on_requeue,
            expire=self.features.expiry.at_dispatch,
        )

    def _queue(self, key: str) -> Queue:
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = self._make_queue(key, durable=True)
            self._records.append(UpsertQueue(QueueSpec(key)))
            self._bind_virtual(queue)
        return queue

    def _bind_virtual(self, queue: Queue) -> None:
        """`/queue/Consumer.<name>.VirtualTopic.X` also gets what is published
        to `/topic/VirtualTopic.X` (ActiveMQ's virtual topics): bound to the
        topic like a subscription, so publishing needs no extra step."""
        topic = _virtual_topic(queue.name)
        if topic is not None:
            self.router.bind(topic, queue)

    def browse(self, destination: Destination) -> list[Message]:
        """A snapshot of a queue's waiting messages in dispatch order, left in place."""
        if destination.kind.is_topic or destination.is_wildcard:
            raise InvalidDestination(f"only queues can be browsed, not {destination}")
        queue = self.queues.get(str(destination))
        return [] if queue is None else queue.browse()

    def queue_for_subscription(
        self,
        conn: ClientConnection,
        destination: Destination,
        durable_name: str | None,
        selector: Selector | None = None,
    ) -> Queue:
        kind = destination.kind
        if not kind.is_topic:
            if durable_name is not None:
                raise SubscriptionError("durable subscriptions are for topics, not queues")
            if destination.is_wildcard:
                raise InvalidDestination(
                    f"wildcards are supported on topic subscriptions only: {destination}"
                )
            key = str(destination)
            if kind is DestinationKind.QUEUE:
                return self._queue(key)
            queue = self.queues.get(key)
            if queue is None:
                if destination.name not in self._temp_owners:
                    raise InvalidDestination(f"temporary queue {destination} no longer exists")
                queue = self.queues[key] = self._make_queue(key, durable=False)
            return queue
        pattern = str(destination)
        if durable_name is None:
            queue = self._make_queue(f"{pattern}#{conn.id}", durable=False, topic_pattern=pattern)
            queue.selector = selector
            self.router.bind(pattern, queue)
            return queue
        if conn.client_id is None:
            raise SubscriptionError("a durable subscription needs a client-id header on CONNECT")
        key = durable_key(conn.client_id, durable_name)
        queue = self.durable_subscriptions.get(key)
        if queue is not None and queue.consumers:
            raise SubscriptionError(f"durable subscription {durable_name!r} is already active")
        selector_text = None if selector is None else selector.text
        old_selector = None if queue is None or queue.selector is None else queue.selector.text
        if queue is not None and (queue.topic_pattern != pattern or old_selector != selector_text):
            # Re-subscribing under the same name to another topic or with
            # another selector replaces the subscription, as in JMS and ActiveMQ.
            self._delete_durable(queue)
            queue = None
        if queue is None:
            queue = self._make_queue(key, durable=True, topic_pattern=pattern)
            queue.selector = selector
            self.durable_subscriptions[key] = queue
            self.router.bind(pattern, queue)
            spec = QueueSpec(key, topic_pattern=pattern, selector=selector_text)
            self._records.append(UpsertQueue(spec))
        return queue

    def consumer_removed(self, consumer: Consumer, *, remove_durable: bool) -> None:
        queue = consumer.queue
        if queue.topic_pattern is not None and not queue.durable:
            # A plain topic subscription dies with its consumer, unacked messages too.
            queue.drop_all()
            queue.remove_consumer(consumer)
            self.router.unbind(queue.topic_pattern, queue)
            return
        queue.remove_consumer(consumer)
        if remove_durable and consumer.durable_name is not None and not queue.consumers:
            self._delete_durable(queue)

    def remove_durable_subscription(self, conn: ClientConnection, name: str) -> None:
        if conn.client_id is None:
            raise SubscriptionError("removing a durable subscription needs a client-id")
        queue = self.durable_subscriptions.get(durable_key(conn.client_id, name))
        if queue is None:
            raise SubscriptionError(f"no durable subscription {name!r} for this client-id")
        if queue.consumers:
            raise SubscriptionError(f"durable subscription {name!r} is active")
        self._delete_durable(queue)

    def delete_queue(self, key: str) -> Queue:
        """Delete a queue (`/queue/NAME`) or durable subscription and all its
        messages; refused while consumers are attached. For management."""
        queue = self.queues.get(key) or self.durable_subscriptions.get(key)
        if queue is None or queue.name.startswith("/temp-"):
            raise InvalidDestination(f"no queue {key}")
        if queue.consumers:
            raise SubscriptionError(f"{key} has {len(queue.consumers)} consumers")
        if queue.topic_pattern is not None:
            self._delete_durable(queue)
        else:
            del self.queues[key]
            topic = _virtual_topic(key)
            if topic is not None:
                self.router.unbind(topic, queue)
            self._drop_stored(queue)
        return queue

    def _delete_durable(self, queue: Queue) -> None:
        assert queue.topic_pattern is not None
        self.router.unbind(queue.topic_pattern, queue)
        del self.durable_subscriptions[queue.name]
        self._drop_stored(queue)

    def _drop_stored(self, queue: Queue) -> None:
        """Forget a durable queue and every message it holds, in the store too."""
        for msg in queue.drop_all():
            if isinstance(msg, int) or msg.persistent:
                self._records.append(RemoveMessage(queue.name, msg))
        self._records.append(DeleteQueue(queue.name))
