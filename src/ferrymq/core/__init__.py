"""The broker model, independent of wire protocols and of I/O.

Sessions (one per client connection, in `ferrymq.server`) translate protocol
frames into calls on `Broker` and `ClientConnection`; the core calls back into
the session only through the `DeliverySink` protocol, and into durability only
through `ferrymq.store.Store`. Everything here is synchronous and never blocks.
"""

from ferrymq.core.broker import Broker
from ferrymq.core.connection import ClientConnection, DeliverySink
from ferrymq.core.consumer import AckMode, Consumer
from ferrymq.core.destination import Destination, DestinationKind
from ferrymq.core.errors import BrokerError
from ferrymq.core.message import Message

__all__ = [
    "AckMode",
    "Broker",
    "BrokerError",
    "ClientConnection",
    "Consumer",
    "DeliverySink",
    "Destination",
    "DestinationKind",
    "Message",
]
