"""A consumer catching up on a deep queue gets it in batches, one per loop
turn: the loop is not held for the whole backlog, and acks of a paged-out
backlog reach the store batch by batch, by key, not as one unit at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from ferrymq.core import Broker, Destination
from ferrymq.core.queue import DISPATCH_BATCH
from ferrymq.store.base import Record, RemoveMessage
from ferrymq.store.journal_store import JournalStore
from tests.store.test_journal_store import Sink

Q = Destination.parse("/queue/deep")
COUNT = 3 * DISPATCH_BATCH + 17


async def test_deep_queue_is_dispatched_a_batch_per_loop_turn(tmp_path: Path) -> None:
    # A budget of a few messages: nearly all of the backlog is paged out.
    broker = Broker(JournalStore(tmp_path), node_name="t", memory_budget=20_000)
    await broker.start()
    producer = broker.connect(Sink())
    for i in range(COUNT):
        producer.send(Q, {"n": str(i)}, b"m" * 1000, persistent=True)
    pending = broker.store.durable()
    if pending is not None:
        await pending

    units: list[list[Record]] = []
    append = broker.store.append

    def spy(records: Sequence[Record]) -> None:
        units.append(list(records))
        append(records)

    broker.store.append = spy  # type: ignore[method-assign]
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)  # auto ack
    assert len(sink.got) == DISPATCH_BATCH  # the rest waits for the loop
    for _ in range(10):
        await asyncio.sleep(0)
        if len(sink.got) == COUNT:
            break
    assert [m.headers["n"] for m in sink.got] == [str(i) for i in range(COUNT)]
    removes = [r for unit in units for r in unit if type(r) is RemoveMessage]
    assert len(removes) == COUNT
    assert max(len(unit) for unit in units) <= DISPATCH_BATCH
    # Read back from the journal, acked by key: the records hold no bodies.
    assert sum(isinstance(r.message, int) for r in removes) >= COUNT - 20
    await broker.stop()
