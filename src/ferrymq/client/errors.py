"""Exceptions the client raises to the application.

One base class, so `except ClientError` catches everything the client itself
decides; socket errors never escape raw (they become failovers, or
ConnectFailed when the client gives up).
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ClientClosed",
    "ClientError",
    "ConnectFailed",
    "OperationTimeout",
    "SendTimeout",
    "TransactionInDoubt",
    "TransactionRolledBack",
]


class ClientError(Exception):
    """Base class of every error the ferrymq client raises."""


class ConnectFailed(ClientError, ConnectionError):
    """No broker could be reached within the reconnect attempts allowed.

    Raised by `connect()` when the start-up attempts are used up, and by every
    pending and later operation once an established client gives up.
    """


class ClientClosed(ClientError):
    """The client was closed by the application: no more operations."""


class BrokerError(ClientError):
    """The broker refused a frame with an ERROR frame.

    `message` is the ERROR's `message` header, `detail` its body.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(f"{message}: {detail}" if detail and detail != message else message)
        self.message = message
        self.detail = detail


class OperationTimeout(ClientError, TimeoutError):
    """An operation found no connection (or no window space) within the
    `timeout` option of the failover URI."""


class SendTimeout(OperationTimeout):
    """A send found no connection (or no window space) within the `timeout` option.

    `maybe_sent` is True when the frame had been written to a broker that
    then went away before confirming it: it may have been stored. The client
    no longer resends it; resend it with the same `dedup_id` to let a broker
    with duplicate detection drop the copy.
    """

    def __init__(self, message: str, *, dedup_id: str, maybe_sent: bool) -> None:
        super().__init__(message)
        self.dedup_id = dedup_id
        self.maybe_sent = maybe_sent


class TransactionRolledBack(ClientError):
    """The transaction did not commit; none of its sends and acks took effect.

    Like ActiveMQ's TransactionRolledBackException: raised when the connection
    was lost before COMMIT went out, or when the broker, asked after a
    failover, does not know the transaction as committed. Retry the whole
    transaction.
    """


class TransactionInDoubt(OperationTimeout):
    """COMMIT was sent, its outcome is not known yet, and the `timeout`
    option (or `close()`) ended the wait. The client raises this only when it
    cannot ask any broker; otherwise commit() answers committed or rolled back.
    """
