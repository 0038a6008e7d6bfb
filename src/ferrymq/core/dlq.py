"""Dead-letter queues: where a message goes when it may not be delivered.

A message past its policy's `max-redeliveries`, or expired, moves to
`/queue/DLQ.<name>` (or the one shared `/queue/DLQ`) with headers recording
why: `original-destination`, `dlq-reason` (`max-redeliveries` or `expired`)
and `dlq-delivery-count`. The removal from its queue and the add to the DLQ
are records of the same operation, hence one atomic store write.

Messages already in a DLQ are never dead-lettered again (an expired one is
dropped), and temporary queues have no DLQ: their messages are dropped.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ferrymq.core.destination import Destination, DestinationKind
from ferrymq.core.message import Message
from ferrymq.core.policy import Policy
from ferrymq.store.base import RemoveMessage

if TYPE_CHECKING:
    from ferrymq.core.broker import Broker
    from ferrymq.core.queue import Queue

__all__ = ["DeadLetters", "is_dead_letter_queue"]

log = logging.getLogger(__name__)

DLQ_PREFIX = "/queue/DLQ"
# Headers a DLQ copy carries.
ORIGINAL_DESTINATION = "original-destination"
REASON = "dlq-reason"
DELIVERY_COUNT = "dlq-delivery-count"
ORIGINAL_EXPIRES = "original-expires"


def is_dead_letter_queue(name: str) -> bool:
    return name == DLQ_PREFIX or name.startswith(DLQ_PREFIX + ".")


class DeadLetters:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.dead_lettered = 0
        self.dropped = 0

    def policy(self, queue: Queue, message: Message) -> Policy:
        """A topic subscription follows the policy of the topic a message was sent to."""
        key = queue.name if queue.topic_pattern is None else str(message.destination)
        return self.broker.policies.for_destination(key)

    def remove(self, queue: Queue, message: Message, reason: str, *, dlq: bool = True) -> None:
        """`message` has left `queue` (popped at dispatch or given back by a
        consumer) and will not be delivered from it: to the DLQ, or dropped."""
        broker = self.broker
        queue.meter.release(message.footprint)
        if queue.durable and message.persistent:
            broker.add_record(RemoveMessage(queue.name, message))
        if not dlq or queue.name.startswith("/temp-") or is_dead_letter_queue(queue.name):
            self.dropped += 1
            log.debug("%s: dropping %s (%s)", queue.name, message.id, reason)
            return
        self.dead_lettered += 1
        queue.stats.dead_lettered += 1
        policy = self.policy(queue, message)
        headers = dict(message.headers)
        # In the DLQ it must not expire again; the original time stays visible.
        expires = headers.pop("expires", None)
        if expires is not None:
            headers[ORIGINAL_EXPIRES] = expires
        headers[ORIGINAL_DESTINATION] = str(message.destination)
        headers[REASON] = reason
        headers[DELIVERY_COUNT] = str(message.delivery_count)
        target = policy.dead_letter_queue(message.destination)
        copy = Message(
            message.id,
            Destination(DestinationKind.QUEUE, target.removeprefix("/queue/")),
            headers,
            message.body,
            persistent=message.persistent,
            timestamp=message.timestamp,
        )
        broker.enqueue_to(target, copy)
