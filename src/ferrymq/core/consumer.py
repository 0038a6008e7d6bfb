"""A consumer: one subscription of one connection, attached to one queue."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from ferrymq.core.message import Message

if TYPE_CHECKING:
    from ferrymq.core.connection import ClientConnection
    from ferrymq.core.destination import Destination
    from ferrymq.core.queue import Queue
    from ferrymq.core.selector import Selector

__all__ = ["DEFAULT_PREFETCH", "AckMode", "Consumer"]

# ActiveMQ's default prefetch for STOMP consumers.
DEFAULT_PREFETCH = 1000


class AckMode(enum.Enum):
    AUTO = "auto"
    CLIENT = "client"  # cumulative: acks every earlier delivery of the subscription too
    CLIENT_INDIVIDUAL = "client-individual"


class Consumer:
    """Receives messages from `queue` while it has credit.

    Credit is `prefetch` minus the deliveries still awaiting an ack; an
    `auto` consumer never holds unacked messages, so only the connection's
    write backpressure (`ClientConnection.writable`) limits it.
    """

    __slots__ = (
        "_deliver",
        "ack_mode",
        "active",
        "cid",
        "connection",
        "destination",
        "durable_name",
        "id",
        "prefetch",
        "queue",
        "selector",
        "unacked",
    )

    def __init__(
        self,
        *,
        cid: int,
        id: str,
        connection: ClientConnection,
        destination: Destination,
        queue: Queue,
        ack_mode: AckMode,
        prefetch: int,
        durable_name: str | None,
        deliver: Callable[[Consumer, Message], None],
        selector: Selector | None = None,
    ) -> None:
        self.cid = cid  # small int unique within the connection, for compact ack ids
        self.id = id  # the protocol's subscription id
        self.connection = connection
        self.destination = destination  # as subscribed (may be a wildcard pattern)
        self.queue = queue
        self.ack_mode = ack_mode
        self.prefetch = prefetch
        self.durable_name = durable_name
        # Only messages this matches are for us (on a queue, dispatch tests
        # it; on a topic, the fan-out does, see Queue).
        self.selector = selector
        # message id -> message, in delivery order (dicts keep insertion order),
        # which is what a cumulative ack needs.
        self.unacked: dict[str, Message] = {}
        self._deliver = deliver
        self.active = True  # False once unsubscribed or its connection closed

    @property
    def has_credit(self) -> bool:
        if not self.connection.writable:
            return False
        return self.ack_mode is AckMode.AUTO or len(self.unacked) < self.prefetch

    def deliver(self, message: Message) -> None:
        if self.ack_mode is not AckMode.AUTO:
            self.unacked[message.id] = message
        self._deliver(self, message)

    def take_acked(self, message_id: str) -> list[Message]:
        """Remove and return the messages an ACK of `message_id` settles."""
        if self.ack_mode is AckMode.CLIENT:
            if message_id not in self.unacked:
                return []
            settled = []
            for mid in list(self.unacked):
                settled.append(self.unacked.pop(mid))
                if mid == message_id:
                    break
            return settled
        msg = self.unacked.pop(message_id, None)
        return [] if msg is None else [msg]

    def __repr__(self) -> str:
        return f"<Consumer {self.id!r} on {self.destination} ({self.ack_mode.value})>"
