"""Errors the core raises for requests a client should not have made.

Each carries a short text meant for the client: a STOMP session puts it in
the ERROR frame's `message` header, an AMQP session in a channel close.
"""

from __future__ import annotations


class BrokerError(Exception):
    """A client request the broker refuses; the broker itself is fine."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class InvalidDestination(BrokerError):
    """A destination name that cannot be parsed or used this way."""


class SubscriptionError(BrokerError):
    """Unknown or duplicate subscription id, or a durable one already active."""


class AckError(BrokerError):
    """An ACK or NACK for a message that is not awaiting one."""


class TransactionError(BrokerError):
    """Unknown or duplicate transaction id."""


class SelectorError(BrokerError):
    """A message selector that does not parse; names the 1-based position
    (character column) of the problem, as ActiveMQ's and Artemis's errors do."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"invalid selector at position {position}: {reason}")
        self.position = position
        self.reason = reason
