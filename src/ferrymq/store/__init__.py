"""Durability behind one interface: memory today, the journal and PostgreSQL next."""

from ferrymq.store.base import (
    AddMessage,
    DeleteQueue,
    QueueSpec,
    Record,
    RecoveredState,
    RemoveMessage,
    Store,
    UpsertQueue,
)
from ferrymq.store.memory import MemoryStore

__all__ = [
    "AddMessage",
    "DeleteQueue",
    "MemoryStore",
    "QueueSpec",
    "Record",
    "RecoveredState",
    "RemoveMessage",
    "Store",
    "UpsertQueue",
]
