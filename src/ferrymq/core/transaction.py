"""A client transaction: work held back until COMMIT, dropped at ABORT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ferrymq.core.destination import Destination
from ferrymq.core.message import Message

if TYPE_CHECKING:
    from ferrymq.core.consumer import Consumer

__all__ = ["Transaction", "TxSend", "TxSettle"]


@dataclass(frozen=True, slots=True)
class TxSend:
    destination: Destination
    message: Message
    dedup_id: str | None = None


@dataclass(frozen=True, slots=True)
class TxSettle:
    consumer: Consumer
    message_id: str
    ack: bool  # False: NACK


@dataclass(slots=True)
class Transaction:
    id: str
    actions: list[TxSend | TxSettle] = field(default_factory=list)
