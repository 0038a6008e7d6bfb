"""The Store interface the core writes through.

Shaped for group commit: the core calls `append` synchronously, any number of
times per event-loop turn, each call being one atomic unit (a transaction's
sends and acks together). The store batches everything appended since its last
write into one write and one fsync. `durable()` returns a future that
completes once everything appended so far is durable, or None when it already
is (futures complete in append order); a session sends a RECEIPT for a
persistent SEND only after it completes.
Only persistent messages in durable queues are ever appended.

A store that `pages` lets queues hold far more than RAM: it gives each stored
message a `store_key` when it is appended, a queue over the memory budget keeps
only that key, and `load` reads the message back when it is dispatched.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferrymq.core.message import Message
    from ferrymq.core.scheduler import ScheduledJob
    from ferrymq.store.journal.histogram import HistogramSnapshot

__all__ = [
    "AddMessage",
    "AddScheduled",
    "DeleteQueue",
    "ForgetId",
    "QueueSpec",
    "Record",
    "RecoveredState",
    "Redelivered",
    "RememberId",
    "RemoveMessage",
    "RemoveScheduled",
    "Store",
    "UpsertQueue",
]


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """What is needed to recreate a queue: a plain queue or a durable topic subscription."""

    name: str
    # For a durable topic subscription: the topic pattern it is bound to.
    topic_pattern: str | None = None
    # For a durable topic subscription with a selector: its text.
    selector: str | None = None


@dataclass(frozen=True, slots=True)
class AddMessage:
    queue: str
    message: Message


@dataclass(frozen=True, slots=True)
class RemoveMessage:
    """A stored message leaves its queue: the message itself (its `store_key`
    may only be assigned when the store takes the batch this is part of), or
    the store key of a paged-out message."""

    queue: str
    message: Message | int


@dataclass(frozen=True, slots=True)
class UpsertQueue:
    spec: QueueSpec


@dataclass(frozen=True, slots=True)
class DeleteQueue:
    name: str


@dataclass(frozen=True, slots=True)
class RememberId:
    """An id entered the broker's id window (a dedup-id, a committed transaction)."""

    scope: str
    ident: str


@dataclass(frozen=True, slots=True)
class ForgetId:
    """An id left the window (evicted by newer ones)."""

    scope: str
    ident: str


@dataclass(frozen=True, slots=True)
class Redelivered:
    """A stored message came back for redelivery (NACK, consumer gone): its
    `delivery_count` now, so that a restart neither resets it nor lets it
    escape its policy's `max-redeliveries`."""

    queue: str
    message: Message


@dataclass(frozen=True, slots=True)
class AddScheduled:
    """A scheduled delivery (new, or its next due time after a repeat fired:
    it then replaces the job's earlier record)."""

    job: ScheduledJob


@dataclass(frozen=True, slots=True)
class RemoveScheduled:
    """A scheduled delivery fired for the last time."""

    job: ScheduledJob


Record = (
    AddMessage
    | RemoveMessage
    | UpsertQueue
    | DeleteQueue
    | RememberId
    | ForgetId
    | Redelivered
    | AddScheduled
    | RemoveScheduled
)


@dataclass(slots=True)
class RecoveredState:
    """What a store hands the broker at start: queues and their messages in
    order, each a Message or (from a paging store) the store key to `load`."""

    queues: list[QueueSpec] = field(default_factory=list)
    messages: dict[str, list[Message | int]] = field(default_factory=dict)
    # For keys only: queue -> {key: priority} of the messages with a
    # non-default priority (most have none, so this stays small), and the
    # queues holding grouped messages (they need the ordering dispatch).
    priorities: dict[str, dict[int, int]] = field(default_factory=dict)
    grouped: set[str] = field(default_factory=set)
    # queue -> the last sequence number it gave a message, so numbering
    # continues after a restart.
    sequences: dict[str, int] = field(default_factory=dict)
    # scope -> remembered ids, oldest first
    remembered: dict[str, list[str]] = field(default_factory=dict)
    # Scheduled deliveries still to fire.
    scheduled: list[ScheduledJob] = field(default_factory=list)


class Store(ABC):
    """Durable storage for queues and persistent messages."""

    # True if `load` works: queues may then keep stored messages as keys only.
    pages: bool = False

    @abstractmethod
    async def open(self) -> RecoveredState:
        """Open (or create) the store and return what it holds."""

    @abstractmethod
    def append(self, records: Sequence[Record]) -> None:
        """Queue records to be written as one atomic unit. Never blocks."""

    @abstractmethod
    def durable(self) -> asyncio.Future[None] | None:
        """An awaitable for 'everything appended so far is durable', or None if it is."""

    def delivered(self, queue: str, message: Message) -> None:  # noqa: B027 (optional hook)
        """A stored message was handed to a consumer (so after a crash it comes
        back marked redelivered). Called per delivery: must be cheap."""

    def load(self, queue: str, key: int) -> Message:
        """Read a paged-out message back (stores that `pages`); its body counts
        against the memory budget again from here."""
        raise NotImplementedError(f"{type(self).__name__} does not page messages")

    def fence(self) -> None:  # noqa: B027 (optional hook)
        """Another node may own the storage now: write nothing more, ever
        (pending writes are dropped; their receipts are never sent)."""

    def histograms(self) -> dict[str, HistogramSnapshot]:
        """Latency and batch-size histograms for monitoring; empty if none."""
        return {}

    def index_bytes(self) -> int:
        """Memory the store's own index of stored records takes (an estimate):
        what a paged-out message still costs. Counted against the memory budget
        when deciding what to page out (see MemoryMeter)."""
        return 0

    def statistics(self) -> dict[str, int]:
        """Counters for monitoring (segments, bytes, fsyncs, ...); empty if none."""
        return {}

    @abstractmethod
    async def close(self) -> None:
        """Write what is pending and release the store."""
