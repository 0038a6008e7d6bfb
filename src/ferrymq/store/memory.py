"""A store that keeps nothing: for non-persistent brokers and tests.

It still tracks what would be on disk, so tests of the core can assert what
the core asked to store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ferrymq.store.base import (
    AddMessage,
    AddScheduled,
    DeleteQueue,
    ForgetId,
    QueueSpec,
    Record,
    RecoveredState,
    RememberId,
    RemoveMessage,
    RemoveScheduled,
    Store,
    UpsertQueue,
)

if TYPE_CHECKING:
    from ferrymq.core.message import Message
    from ferrymq.core.scheduler import ScheduledJob

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    def __init__(self) -> None:
        self.queues: dict[str, QueueSpec] = {}
        self.messages: dict[str, dict[str, Message]] = {}
        self.appends = 0
        self.remembered: dict[str, list[str]] = {}
        self.scheduled: dict[str, ScheduledJob] = {}

    async def open(self) -> RecoveredState:
        messages: dict[str, list[Message | int]] = {
            q: [*m.values()] for q, m in self.messages.items()
        }
        remembered = {scope: list(ids) for scope, ids in self.remembered.items()}
        return RecoveredState(
            queues=list(self.queues.values()),
            messages=messages,
            remembered=remembered,
            scheduled=list(self.scheduled.values()),
        )

    def append(self, records: Sequence[Record]) -> None:
        self.appends += 1
        for rec in records:
            if isinstance(rec, AddMessage):
                self.messages.setdefault(rec.queue, {})[rec.message.id] = rec.message
            elif isinstance(rec, RemoveMessage):
                if not isinstance(rec.message, int):  # keys come only from paging stores
                    self.messages.get(rec.queue, {}).pop(rec.message.id, None)
            elif isinstance(rec, UpsertQueue):
                self.queues[rec.spec.name] = rec.spec
            elif isinstance(rec, RememberId):
                self.remembered.setdefault(rec.scope, []).append(rec.ident)
            elif isinstance(rec, ForgetId):
                ids = self.remembered.get(rec.scope)
                if ids is not None and rec.ident in ids:
                    ids.remove(rec.ident)
            elif isinstance(rec, AddScheduled):
                self.scheduled[rec.job.id] = rec.job
            elif isinstance(rec, RemoveScheduled):
                self.scheduled.pop(rec.job.id, None)
            elif isinstance(rec, DeleteQueue):
                self.queues.pop(rec.name, None)
                self.messages.pop(rec.name, None)

    def durable(self) -> asyncio.Future[None] | None:
        return None

    async def close(self) -> None:
        return None
