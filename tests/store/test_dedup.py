"""Broker-side duplicate detection and committed transaction ids, kept across restarts."""

from __future__ import annotations

from pathlib import Path

from ferrymq.core import Broker, Consumer, Destination, Message
from ferrymq.store.journal_store import JournalStore
from ferrymq.store.memory import MemoryStore

Q = Destination.parse("/queue/dedup")
Q2 = Destination.parse("/queue/other")


class Sink:
    def __init__(self) -> None:
        self.got: list[Message] = []

    def deliver(self, consumer: Consumer, message: Message) -> None:
        self.got.append(message)


async def open_broker(path: Path, window: int = 20_000) -> Broker:
    broker = Broker(JournalStore(path, segment_size=1 << 20), node_name="t", dedup_window=window)
    await broker.start()
    return broker


def drain(broker: Broker, destination: Destination) -> list[bytes]:
    sink = Sink()
    broker.connect(sink).subscribe("s", destination)
    return [m.body for m in sink.got]


async def test_resend_with_same_dedup_id_is_dropped_even_after_restart(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    assert p.send(Q, {}, b"a", persistent=True, dedup_id="id-1")
    assert not p.send(Q, {}, b"a again", persistent=True, dedup_id="id-1")
    assert p.send(Q2, {}, b"same id, other destination", persistent=True, dedup_id="id-1")
    assert broker.duplicates_dropped == 1
    assert drain(broker, Q) == [b"a"]  # consumed: the id is still remembered
    await broker.stop()

    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    assert not p.send(Q, {}, b"resent after failover", persistent=True, dedup_id="id-1")
    assert p.send(Q, {}, b"b", persistent=True, dedup_id="id-2")
    assert drain(broker, Q) == [b"b"]
    await broker.stop()


async def test_window_evicts_oldest_and_journal_stays_bounded(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path, window=10)
    p = broker.connect(Sink())
    for i in range(100):
        assert p.send(Q, {}, b"%d" % i, dedup_id=f"id-{i}")
    assert len(broker.ids) == 10
    assert p.send(Q, {}, b"old id accepted again", dedup_id="id-0")
    assert not p.send(Q, {}, b"recent id refused", dedup_id="id-99")
    store = broker.store
    assert isinstance(store, JournalStore)
    fut = store.durable()
    if fut is not None:
        await fut
    assert store.journal.stats().live_entries <= 15  # ids, queue, meta: not 100 ids
    await broker.stop()

    broker = await open_broker(tmp_path, window=5)  # a smaller window forgets the rest
    assert len(broker.ids) == 5
    await broker.stop()


async def test_transacted_sends_are_deduplicated_at_commit(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    p.send(Q, {}, b"a", persistent=True, dedup_id="x")
    p.begin("tx-1")
    p.send(Q, {}, b"dup", persistent=True, transaction="tx-1", dedup_id="x")
    p.send(Q, {}, b"new", persistent=True, transaction="tx-1", dedup_id="y")
    p.commit("tx-1")
    assert drain(broker, Q) == [b"a", b"new"]
    assert broker.was_committed("tx-1")
    assert not broker.was_committed("tx-2")
    await broker.stop()

    broker = await open_broker(tmp_path)
    assert broker.was_committed("tx-1")
    await broker.stop()


async def test_memory_store_keeps_ids_for_the_core() -> None:
    store = MemoryStore()
    broker = Broker(store, node_name="t")
    await broker.start()
    p = broker.connect(Sink())
    p.send(Q, {}, b"a", dedup_id="k")
    assert store.remembered == {"/queue/dedup": ["k"]}
    await broker.stop()
