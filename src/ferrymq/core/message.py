"""The message as the core sees it: opaque body, application headers."""

from __future__ import annotations

from ferrymq.core.destination import Destination

__all__ = ["Message"]


class Message:
    """One message in one queue.

    `headers` are the application's headers (protocol transport headers such
    as `receipt` or `content-length` are not kept). A topic fans a message
    out as shallow copies (`copy`), one per subscription, so that the
    per-queue state (`delivery_count`, `redelivered`) is never shared while
    the headers and body are. Each copy is stored under its own `store_key`.
    """

    __slots__ = (
        "body",
        "delivery_count",
        "destination",
        "headers",
        "id",
        "persistent",
        "store_key",
        "timestamp",
    )

    def __init__(
        self,
        id: str,
        destination: Destination,
        headers: dict[str, str],
        body: bytes,
        *,
        persistent: bool = False,
        timestamp: int = 0,
        delivery_count: int = 0,
    ) -> None:
        self.id = id
        self.destination = destination
        self.headers = headers
        self.body = body
        self.persistent = persistent
        self.timestamp = timestamp
        # Number of times handed to a consumer before this delivery.
        self.delivery_count = delivery_count
        # The store's handle for this copy once stored (0: not stored). A queue
        # over the memory budget keeps only this and reads the rest back later.
        self.store_key = 0

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 0

    def copy(self) -> Message:
        return Message(
            self.id,
            self.destination,
            self.headers,
            self.body,
            persistent=self.persistent,
            timestamp=self.timestamp,
            delivery_count=self.delivery_count,
        )

    def __repr__(self) -> str:
        return f"<Message {self.id} to {self.destination} ({len(self.body)} bytes)>"
