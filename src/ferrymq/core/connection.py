"""One client connection as the core sees it: its consumers, transactions and
temporary destinations. Sessions call these methods; the core answers by
raising `BrokerError` or by calling the session's `DeliverySink`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from ferrymq.core.consumer import DEFAULT_PREFETCH, AckMode, Consumer
from ferrymq.core.destination import Destination
from ferrymq.core.errors import AckError, SubscriptionError, TransactionError
from ferrymq.core.message import Message
from ferrymq.core.selector import Selector
from ferrymq.core.transaction import Transaction, TxSend, TxSettle

if TYPE_CHECKING:
    from ferrymq.core.broker import Broker

__all__ = ["ClientConnection", "DeliverySink"]


class DeliverySink(Protocol):
    """What the core needs from a session: a way to hand it a message."""

    def deliver(self, consumer: Consumer, message: Message) -> None:
        """Write `message` to the client for `consumer`; must not block or raise."""


class ClientConnection:
    def __init__(self, broker: Broker, sink: DeliverySink, id: str, client_id: str | None) -> None:
        self.broker = broker
        self.sink = sink
        self.id = id
        self.client_id = client_id
        self.consumers: dict[str, Consumer] = {}
        self.transactions: dict[str, Transaction] = {}
        # Real names of the temporary destinations this connection owns.
        self.temp_names: set[str] = set()
        # False while the client's socket buffer is full: no dispatch to it.
        self.writable = True
        self.closed = False
        self._cids = itertools.count(1)
        self.consumers_by_cid: dict[int, Consumer] = {}

    # -- producing -------------------------------------------------------

    def send(
        self,
        destination: Destination | Sequence[Destination],
        headers: dict[str, str],
        body: bytes,
        *,
        persistent: bool = False,
        transaction: str | None = None,
        dedup_id: str | None = None,
    ) -> bool:
        """Route a message now, or at COMMIT of `transaction`. False if it was
        dropped as a duplicate of one already accepted (same `dedup_id`).

        Several destinations (a composite destination) each get their own
        copy, in one atomic store write; with a `dedup_id`, the send is a
        duplicate if any of them already accepted that id."""
        broker = self.broker
        if not isinstance(destination, Destination):
            return self._send_composite(
                destination, headers, body, persistent, transaction, dedup_id
            )
        destination = broker.check_send_destination(self, destination)
        message = broker.new_message(destination, headers, body, persistent)
        if transaction is not None:
            self._tx(transaction).actions.append(TxSend(destination, message, dedup_id))
            return True
        if dedup_id is not None and not broker.accept_once(destination, dedup_id):
            return False
        broker.route(self, destination, message)
        broker.flush_records()
        return True

    def _send_composite(
        self,
        destinations: Sequence[Destination],
        headers: dict[str, str],
        body: bytes,
        persistent: bool,
        transaction: str | None,
        dedup_id: str | None,
    ) -> bool:
        broker = self.broker
        sends = []
        for target in destinations:
            target = broker.check_send_destination(self, target)
            sends.append(
                TxSend(target, broker.new_message(target, headers, body, persistent), dedup_id)
            )
        if transaction is not None:
            self._tx(transaction).actions.extend(sends)
            return True
        if dedup_id is not None:
            if any(broker.seen(send.destination, dedup_id) for send in sends):
                return False
            for send in sends:
                broker.accept_once(send.destination, dedup_id)
        for send in sends:
            broker.route(self, send.destination, send.message)
        broker.flush_records()
        return True

    def browse(self, destination: Destination) -> list[Message]:
        """What a queue holds now, without consuming it (a queue browser)."""
        return self.broker.browse(destination)

    # -- consuming -------------------------------------------------------

    def subscribe(
        self,
        sub_id: str,
        destination: Destination,
        *,
        ack_mode: AckMode = AckMode.AUTO,
        prefetch: int = DEFAULT_PREFETCH,
        durable_name: str | None = None,
        selector: str | None = None,
        exclusive: bool = False,
    ) -> Consumer:
        """Attach a consumer; `selector` (JMS syntax) limits what it receives
        and raises SelectorError if it does not parse."""
        if sub_id in self.consumers:
            raise SubscriptionError(f"subscription id {sub_id!r} is already in use")
        if prefetch < 1:
            raise SubscriptionError(f"prefetch must be at least 1, got {prefetch}")
        compiled = Selector.compile(selector) if selector is not None else None
        queue = self.broker.queue_for_subscription(self, destination, durable_name, compiled)
        consumer = Consumer(
            cid=next(self._cids),
            id=sub_id,
            connection=self,
            destination=destination,
            queue=queue,
            ack_mode=ack_mode,
            prefetch=prefetch,
            durable_name=durable_name,
            deliver=self.sink.deliver,
            selector=compiled,
        )
        self.consumers[sub_id] = consumer
        self.consumers_by_cid[consumer.cid] = consumer
        queue.add_consumer(consumer, exclusive=exclusive)
        self.broker.flush_records()
        return consumer

    def unsubscribe(self, sub_id: str, *, remove_durable: bool = False) -> None:
        consumer = self.consumers.get(sub_id)
        if consumer is None:
            raise SubscriptionError(f"no subscription with id {sub_id!r}")
        self._drop_consumer(consumer, remove_durable=remove_durable)
        self.broker.flush_records()

    def remove_durable_subscription(self, name: str) -> None:
        """Delete an inactive durable subscription of this client id."""
        self.broker.remove_durable_subscription(self, name)
        self.broker.flush_records()

    def consumer(self, sub_id: str) -> Consumer:
        consumer = self.consumers.get(sub_id)
        if consumer is None:
            raise SubscriptionError(f"no subscription with id {sub_id!r}")
        return consumer

    def consumer_holding(self, message_id: str) -> Consumer:
        """The consumer holding a message (STOMP 1.0 ACKs name no subscription)."""
        for consumer in self.consumers.values():
            if message_id in consumer.unacked:
                return consumer
        raise AckError(f"no message with id {message_id!r} is awaiting an ack")

    def ack(self, consumer: Consumer, message_id: str, *, transaction: str | None = None) -> None:
        self._settle(consumer, message_id, True, transaction)

    def nack(self, consumer: Consumer, message_id: str, *, transaction: str | None = None) -> None:
        self._settle(consumer, message_id, False, transaction)

    def _settle(self, consumer: Consumer, message_id: str, ack: bool, tx: str | None) -> None:
        if consumer.ack_mode is AckMode.AUTO:
            raise AckError(f"subscription {consumer.id!r} uses ack:auto; nothing to acknowledge")
        if message_id not in consumer.unacked:
            raise AckError(
                f"no message with id {message_id!r} is awaiting an ack "
                f"on subscription {consumer.id!r}"
            )
        if tx is not None:
            self._tx(tx).actions.append(TxSettle(consumer, message_id, ack))
            return
        self._apply_settle(consumer, message_id, ack)
        self.broker.flush_records()

    def _apply_settle(self, consumer: Consumer, message_id: str, ack: bool) -> None:
        settled = consumer.take_acked(message_id)
        if not settled:
            return  # settled meanwhile (e.g. by a cumulative ack); nothing left to do
        queue = consumer.queue
        if ack:
            self.broker.settle(queue, settled)
        else:
            queue.requeue(settled)
        if queue.depth:
            queue.dispatch()

    # -- transactions ----------------------------------------------------

    def begin(self, tx_id: str) -> None:
        if tx_id in self.transactions:
            raise TransactionError(f"transaction {tx_id!r} is already open")
        self.transactions[tx_id] = Transaction(tx_id)

    def commit(self, tx_id: str) -> None:
        """Apply the transaction's sends and acks as one atomic store write."""
        tx = self.transactions.pop(tx_id, None)
        if tx is None:
            raise TransactionError(f"no open transaction {tx_id!r}")
        broker = self.broker
        broker.transaction_committed(tx_id)
        for action in tx.actions:
            if isinstance(action, TxSend):
                dedup_id = action.dedup_id
                if dedup_id is None or broker.accept_once(action.destination, dedup_id):
                    broker.route(self, action.destination, action.message)
            elif action.consumer.active:
                self._apply_settle(action.consumer, action.message_id, action.ack)
        broker.flush_records()

    def abort(self, tx_id: str) -> None:
        """Drop the transaction's sends and acks; acked messages stay unacked."""
        if self.transactions.pop(tx_id, None) is None:
            raise TransactionError(f"no open transaction {tx_id!r}")

    def _tx(self, tx_id: str) -> Transaction:
        tx = self.transactions.get(tx_id)
        if tx is None:
            raise TransactionError(f"no open transaction {tx_id!r}")
        return tx

    # -- flow control and teardown ----------------------------------------

    def set_writable(self, writable: bool) -> None:
        """Pause or resume dispatch to this connection (socket backpressure)."""
        self.writable = writable
        if writable:
            for consumer in list(self.consumers.values()):
                if consumer.queue.depth:
                    consumer.queue.dispatch()
            self.broker.flush_records()

    def close(self) -> None:
        """The client is gone: abort its transactions, return its unacked
        messages for redelivery, drop its temporary destinations."""
        if self.closed:
            return
        self.closed = True
        self.transactions.clear()
        for consumer in list(self.consumers.values()):
            self._drop_consumer(consumer, remove_durable=False)
        self.broker.connection_closed(self)
        self.broker.flush_records()

    def _drop_consumer(self, consumer: Consumer, *, remove_durable: bool) -> None:
        del self.consumers[consumer.id]
        del self.consumers_by_cid[consumer.cid]
        consumer.active = False
        self.broker.consumer_removed(consumer, remove_durable=remove_durable)
