"""The journal's delivery-count and scheduled-delivery entries across reopen."""

from __future__ import annotations

from pathlib import Path

from ferrymq.core.destination import Destination
from ferrymq.core.message import Message
from ferrymq.core.scheduler import ScheduledJob
from ferrymq.store.base import (
    AddMessage,
    AddScheduled,
    QueueSpec,
    Redelivered,
    RemoveMessage,
    RemoveScheduled,
    UpsertQueue,
)
from ferrymq.store.journal_store import JournalStore

Q = "/queue/q"


def message(body: bytes) -> Message:
    return Message("m-" + body.decode(), Destination.parse(Q), {"h": "v"}, body, persistent=True)


async def test_delivery_counts_are_kept_and_removed_with_their_message(tmp_path: Path) -> None:
    store = JournalStore(tmp_path, sync="never")
    await store.open()
    a, b = message(b"a"), message(b"b")
    store.append([UpsertQueue(QueueSpec(Q)), AddMessage(Q, a), AddMessage(Q, b)])
    for count in (1, 2, 3):
        a.delivery_count = b.delivery_count = count
        store.append([Redelivered(Q, a), Redelivered(Q, b)])
    store.append([RemoveMessage(Q, b)])
    await store.close()

    store = JournalStore(tmp_path, sync="never")
    state = await store.open()
    (key,) = state.messages[Q]
    assert isinstance(key, int)
    loaded = store.load(Q, key)
    assert loaded.body == b"a" and loaded.delivery_count == 3
    # One live count entry for `a`; b's went with b.
    assert len(store._count_keys) == 1
    store.append([RemoveMessage(Q, key)])
    await store.close()

    store = JournalStore(tmp_path, sync="never")
    state = await store.open()
    assert state.messages.get(Q, []) == [] and store._count_keys == {}
    await store.close()


async def test_scheduled_jobs_are_replaced_and_removed(tmp_path: Path) -> None:
    store = JournalStore(tmp_path, sync="never")
    await store.open()
    held = Message("job-1", Destination.parse(Q), {"k": "v"}, b"body", persistent=True)
    job = ScheduledJob(Destination.parse(Q), held, due=1000, remaining=3, period=50)
    other = ScheduledJob(
        Destination.parse("/topic/t"), message(b"o"), due=5, remaining=-1, cron="* * * * *"
    )
    store.append([AddScheduled(job), AddScheduled(other)])
    job.advance(1000)
    store.append([AddScheduled(job)])  # replaces the first entry
    store.append([RemoveScheduled(other)])
    await store.close()

    store = JournalStore(tmp_path, sync="never")
    state = await store.open()
    (got,) = state.scheduled
    assert (got.id, got.due, got.remaining, got.period, got.fired) == ("job-1", 1050, 2, 50, 1)
    assert got.destination == Destination.parse(Q)
    assert got.message.headers == {"k": "v"} and bytes(got.message.body) == b"body"
    assert got.message.persistent
    await store.close()
