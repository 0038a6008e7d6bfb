"""The ferrymq STOMP client: sync (`connect`) and asyncio (`aio.connect`).

    client = ferrymq.client.connect("failover:(stomp://a:61613,stomp://b:61613)")
    client.send("/queue/orders", b"...")         # returns once stored
    for message in client.subscribe("/queue/orders", ack="client-individual"):
        client.ack(message)

URIs and options follow ActiveMQ's failover transport; see docs/client.md.
"""

from __future__ import annotations

from ferrymq.client.aio import ClientStatistics, ConnectionEvent
from ferrymq.client.errors import (
    BrokerError,
    ClientClosed,
    ClientError,
    ConnectFailed,
    OperationTimeout,
    SendTimeout,
    TransactionInDoubt,
    TransactionRolledBack,
)
from ferrymq.client.message import Message
from ferrymq.client.sync import Client, Subscription, Transaction, connect
from ferrymq.client.uri import BrokerAddress, FailoverOptions, parse_uri

__all__ = [
    "BrokerAddress",
    "BrokerError",
    "Client",
    "ClientClosed",
    "ClientError",
    "ClientStatistics",
    "ConnectFailed",
    "ConnectionEvent",
    "FailoverOptions",
    "Message",
    "OperationTimeout",
    "SendTimeout",
    "Subscription",
    "Transaction",
    "TransactionInDoubt",
    "TransactionRolledBack",
    "connect",
    "parse_uri",
]
