"""A received message, as the application sees it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Message"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One MESSAGE frame: its headers and body.

    Ack it with `client.ack(message)` (or a transaction's `ack`) when its
    subscription uses `client` or `client-individual` acks.
    """

    headers: dict[str, str]
    body: bytes
    # The link it arrived on. An ack is only meaningful on that link: after a
    # failover the broker redelivers the message instead.
    generation: int = field(default=0, repr=False, compare=False)

    @property
    def destination(self) -> str:
        return self.headers.get("destination", "")

    @property
    def message_id(self) -> str:
        return self.headers.get("message-id", "")

    @property
    def subscription(self) -> str:
        return self.headers.get("subscription", "")

    @property
    def dedup_id(self) -> str | None:
        return self.headers.get("dedup-id")

    @property
    def redelivered(self) -> bool:
        return self.headers.get("redelivered") == "true"

    @property
    def text(self) -> str:
        return self.body.decode()
