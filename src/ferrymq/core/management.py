"""Operator actions on queues: browse, send, purge, move, delete, get.

Used by the HTTP API (and so the CLI and console). Every change goes through
the broker's public methods (`route`, `settle`, `delete_queue`) and ends with
`flush_records`, so it reaches the store as one atomic unit, exactly like a
client's SEND or ACK; queue contents are read only through `Queue.browse` and
`Queue.take`.
"""

from __future__ import annotations

from collections.abc import Collection

from ferrymq.core.broker import Broker
from ferrymq.core.destination import Destination, DestinationKind
from ferrymq.core.errors import BrokerError, InvalidDestination
from ferrymq.core.message import Message
from ferrymq.core.queue import Queue
from ferrymq.core.selector import Selector

__all__ = [
    "UnknownQueue",
    "browse",
    "delete",
    "find_queue",
    "get",
    "move",
    "purge",
    "send",
]


class UnknownQueue(BrokerError):
    """The named queue does not exist."""


def find_queue(broker: Broker, key: str) -> Queue:
    """A queue (`/queue/NAME`) or durable subscription by its key; raises if unknown."""
    queue = broker.queues.get(key) or broker.durable_subscriptions.get(key)
    if queue is None:
        raise UnknownQueue(f"no queue {key}")
    return queue


def browse(broker: Broker, key: str, offset: int, limit: int) -> list[Message]:
    return find_queue(broker, key).browse(offset, limit)


def send(
    broker: Broker, destination: Destination, headers: dict[str, str], body: bytes, persistent: bool
) -> Message:
    """Route a message as a producer without a connection would."""
    if destination.kind.is_temporary or destination.is_wildcard:
        raise InvalidDestination(f"cannot send to {destination} from the management API")
    message = broker.new_message(destination, headers, body, persistent)
    broker.route(None, destination, message)
    broker.flush_records()
    return message


def purge(broker: Broker, key: str) -> int:
    """Drop every queued message (in-flight ones stay with their consumers)."""
    queue = find_queue(broker, key)
    taken = queue.take()
    broker.settle(queue, taken)
    broker.flush_records()
    return len(taken)


def get(broker: Broker, key: str, count: int) -> list[Message]:
    """Take up to `count` messages off the head of a queue, acknowledged at once."""
    queue = find_queue(broker, key)
    taken = queue.take(limit=count)
    queue.stats.dequeued += len(taken)
    broker.settle(queue, taken)
    broker.flush_records()
    return taken


def move(
    broker: Broker,
    source: str,
    target: str,
    ids: Collection[str] | None,
    selector: str | None = None,
    limit: int | None = None,
) -> int:
    """Move queued messages (all, those with the given ids, and/or those a JMS
    selector matches) to another queue.

    The removal from `source` and the addition to `target` are one store
    write, so a crash keeps the messages in exactly one of the two queues.
    Moved messages keep their id, headers, priority and body (and take the
    target's next sequence numbers); their delivery count starts again (a
    message replayed from a DLQ is a first delivery).
    """
    src = find_queue(broker, source)
    dest = Destination.parse(target)
    if dest.kind is not DestinationKind.QUEUE or dest.is_wildcard:
        raise InvalidDestination(f"can only move to a queue (/queue/NAME), not {target}")
    if str(dest) == src.name:
        raise InvalidDestination("source and target are the same queue")
    where = Selector.compile(selector).matches if selector else None
    taken = src.take(ids, limit=limit, where=where)
    broker.settle(src, taken)
    for msg in taken:
        moved = Message(
            msg.id,
            dest,
            msg.headers,
            msg.body,
            persistent=msg.persistent,
            timestamp=msg.timestamp,
            priority=msg.priority,
        )
        broker.route(None, dest, moved)
    broker.flush_records()
    return len(taken)


def delete(broker: Broker, key: str) -> None:
    broker.delete_queue(key)
    broker.flush_records()
