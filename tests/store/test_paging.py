"""Queues larger than the memory budget: stored messages are paged out to the
journal and read back when dispatched."""

from __future__ import annotations

from pathlib import Path

from ferrymq.core import AckMode, Broker, Consumer, Destination, Message
from ferrymq.store.journal_store import JournalStore

Q = Destination.parse("/queue/big")
T = Destination.parse("/topic/big")
BODY = b"x" * 1024
BUDGET = 64 * 1024


class Sink:
    def __init__(self) -> None:
        self.got: list[Message] = []

    def deliver(self, consumer: Consumer, message: Message) -> None:
        self.got.append(message)


async def open_broker(path: Path, budget: int = BUDGET) -> Broker:
    broker = Broker(JournalStore(path, segment_size=1 << 20), node_name="t", memory_budget=budget)
    await broker.start()
    return broker


def paged(broker: Broker, name: str) -> int:
    return sum(isinstance(m, int) for m in broker.queues[name].messages)


async def test_queue_beyond_budget_pages_out_and_reads_back_in_order(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    for i in range(500):  # ~500 KiB of bodies against a 64 KiB budget
        p.send(Q, {"n": str(i)}, BODY, persistent=True)
        assert broker.memory.used <= BUDGET + len(BODY)
    assert paged(broker, "/queue/big") >= 400
    fut = broker.store.durable()
    if fut is not None:
        await fut

    sink = Sink()
    c = broker.connect(sink)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL, prefetch=10)
    while consumer.unacked:
        assert broker.memory.used <= BUDGET + 10 * len(BODY)
        for message_id in list(consumer.unacked):
            c.ack(consumer, message_id)
    assert [m.headers["n"] for m in sink.got] == [str(i) for i in range(500)]
    assert all(m.body == BODY and not m.redelivered for m in sink.got)
    assert broker.memory.used == 0
    await broker.stop()

    broker = await open_broker(tmp_path)  # every ack was stored
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert sink.got == []
    await broker.stop()


async def test_non_persistent_messages_are_never_paged(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    for _ in range(100):
        p.send(Q, {}, BODY)
    assert paged(broker, "/queue/big") == 0
    assert broker.memory.over  # what blocks non-persistent producers instead
    await broker.stop()


async def test_recovered_messages_are_paged_and_keep_redelivered_flags(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path, budget=1 << 20)
    sink = Sink()
    c = broker.connect(sink)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL, prefetch=2)
    p = broker.connect(Sink())
    for i in range(5):
        p.send(Q, {"n": str(i)}, BODY, persistent=True)
    c.ack(consumer, sink.got[0].id)  # 0 acked; 1 and 2 delivered, not acked
    await broker.stop()

    broker = await open_broker(tmp_path, budget=1 << 20)
    assert paged(broker, "/queue/big") == 4
    assert broker.memory.used == 0
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [(m.headers["n"], m.redelivered) for m in sink.got] == [
        ("1", True),
        ("2", True),
        ("3", False),
        ("4", False),
    ]
    await broker.stop()


async def test_topic_fan_out_pages_each_subscription_copy(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    for name in ("a", "b"):
        sub = broker.connect(Sink(), client_id=name)
        sub.subscribe("s", T, durable_name="d")
        sub.close()
    p = broker.connect(Sink())
    for i in range(200):
        p.send(T, {"n": str(i)}, BODY, persistent=True)
    queues = list(broker.durable_subscriptions.values())
    assert all(sum(isinstance(m, int) for m in q.messages) > 100 for q in queues)
    for name in ("a", "b"):
        sink = Sink()
        broker.connect(sink, client_id=name).subscribe("s", T, durable_name="d")
        assert [m.headers["n"] for m in sink.got] == [str(i) for i in range(200)]
    await broker.stop()


async def test_deleting_a_subscription_removes_its_paged_messages(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    store = broker.store
    assert isinstance(store, JournalStore)
    sub = broker.connect(Sink(), client_id="app")
    sub.subscribe("s", T, durable_name="d")
    sub.close()
    p = broker.connect(Sink())
    for _ in range(300):
        p.send(T, {}, BODY, persistent=True)
    fut = store.durable()
    if fut is not None:
        await fut
    live_before = store.journal.stats().live_entries
    sub = broker.connect(Sink(), client_id="app")
    sub.remove_durable_subscription("d")
    fut = store.durable()
    if fut is not None:
        await fut
    assert live_before >= 300
    assert store.journal.stats().live_entries <= 2  # broker metadata only
    await broker.stop()

    broker = await open_broker(tmp_path)
    assert broker.durable_subscriptions == {}
    await broker.stop()
