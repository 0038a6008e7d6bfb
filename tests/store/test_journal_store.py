"""The broker over the journal: what survives a restart, and what does not."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ferrymq.core import AckMode, Broker, Consumer, Destination, Message
from ferrymq.store.journal_store import JournalStore

Q = Destination.parse("/queue/orders")
T = Destination.parse("/topic/events")


class Sink:
    def __init__(self) -> None:
        self.got: list[Message] = []

    def deliver(self, consumer: Consumer, message: Message) -> None:
        self.got.append(message)


async def open_broker(path: Path) -> Broker:
    broker = Broker(JournalStore(path, segment_size=1 << 20), node_name="t")
    await broker.start()
    return broker


async def test_persistent_messages_survive_restart_in_order(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    for i in range(5):
        p.send(Q, {"n": str(i)}, b"p%d" % i, persistent=True)
        p.send(Q, {}, b"volatile")
    await broker.stop()

    broker = await open_broker(tmp_path)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [m.body for m in sink.got] == [b"p0", b"p1", b"p2", b"p3", b"p4"]
    assert [m.headers["n"] for m in sink.got] == ["0", "1", "2", "3", "4"]
    assert not any(m.redelivered for m in sink.got)
    await broker.stop()


async def test_acked_messages_stay_gone_and_unacked_come_back_redelivered(
    tmp_path: Path,
) -> None:
    broker = await open_broker(tmp_path)
    sink = Sink()
    c = broker.connect(sink)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    p = broker.connect(Sink())
    for i in range(3):
        p.send(Q, {}, b"%d" % i, persistent=True)
    c.ack(consumer, sink.got[0].id)
    await broker.stop()

    broker = await open_broker(tmp_path)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [(m.body, m.redelivered) for m in sink.got] == [(b"1", True), (b"2", True)]
    await broker.stop()

    broker = await open_broker(tmp_path)  # auto-acked on the last run: all gone
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert sink.got == []
    await broker.stop()


async def test_durable_subscription_survives_restart(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    sub = broker.connect(Sink(), client_id="app")
    sub.subscribe("s", T, durable_name="audit")
    sub.close()
    broker.connect(Sink()).send(T, {}, b"kept", persistent=True)
    await broker.stop()

    broker = await open_broker(tmp_path)
    assert list(broker.durable_subscriptions) == ["/subscription/app:audit"]
    sink = Sink()
    c = broker.connect(sink, client_id="app")
    c.subscribe("s", T, durable_name="audit")
    assert [m.body for m in sink.got] == [b"kept"]
    c.unsubscribe("s", remove_durable=True)
    await broker.stop()

    broker = await open_broker(tmp_path)
    assert broker.durable_subscriptions == {}
    await broker.stop()


async def test_only_committed_transactions_survive(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    p.begin("t1")
    p.send(Q, {}, b"committed", persistent=True, transaction="t1")
    p.commit("t1")
    p.begin("t2")
    p.send(Q, {}, b"open", persistent=True, transaction="t2")
    await broker.stop()

    broker = await open_broker(tmp_path)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [m.body for m in sink.got] == [b"committed"]
    await broker.stop()


async def test_receipt_future_completes_after_fsync(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path)
    p = broker.connect(Sink())
    p.send(Q, {}, b"x", persistent=True)
    pending = broker.store.durable()
    assert pending is not None and not pending.done()
    await pending
    assert broker.store.durable() is None
    await broker.stop()


def disk_use(directory: Path) -> int:
    total = 0
    for f in directory.iterdir():
        # A segment may be deleted by the journal's writer as we look.
        with contextlib.suppress(FileNotFoundError):
            total += f.stat().st_size
    return total


async def test_disk_use_stays_bounded_with_one_stuck_message(tmp_path: Path) -> None:
    segment = 64 * 1024
    broker = Broker(JournalStore(tmp_path, segment_size=segment), node_name="t")
    await broker.start()
    p = broker.connect(Sink())
    p.send(Destination.parse("/queue/stuck"), {}, b"never consumed", persistent=True)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)  # auto ack: each message is added, then removed
    body = b"x" * 1024
    largest = 0
    for i in range(20_000):
        p.send(Q, {}, body, persistent=True)
        if i % 500 == 0:
            pending = broker.store.durable()
            if pending is not None:
                await pending
            largest = max(largest, disk_use(tmp_path / "journal"))
    assert len(sink.got) == 20_000  # ~20 MiB went through the journal...
    # ...but it never held more than a handful of segments (compaction runs in
    # bounded rounds between commits, so a few dead segments wait their turn).
    assert largest < 16 * segment
    await broker.stop()
    broker = Broker(JournalStore(tmp_path, segment_size=segment), node_name="t")
    await broker.start()
    stuck = Sink()
    broker.connect(stuck).subscribe("s", Destination.parse("/queue/stuck"))
    assert [m.body for m in stuck.got] == [b"never consumed"]
    await broker.stop()


async def test_guard_stops_every_write_once_it_objects(tmp_path: Path) -> None:
    """Fencing inside the writer: once the guard names a reason, nothing more
    reaches the disk and waiters fail (no RECEIPT is ever sent for it)."""
    import pytest

    from ferrymq.store.journal import JournalError

    objection: list[str] = []
    store = JournalStore(
        tmp_path, segment_size=1 << 20, guard=lambda: objection[0] if objection else None
    )
    broker = Broker(store, node_name="t")
    await broker.start()
    p = broker.connect(Sink())
    p.send(Q, {}, b"before", persistent=True)
    fut = store.durable()
    assert fut is not None
    await fut
    size = sum(f.stat().st_size for f in (tmp_path / "journal").iterdir())
    objection.append("lock file replaced")
    p.send(Q, {}, b"after", persistent=True)
    fut = store.durable()
    assert fut is not None
    with pytest.raises(JournalError, match="lock file replaced"):
        await fut
    assert sum(f.stat().st_size for f in (tmp_path / "journal").iterdir()) == size
    with contextlib.suppress(Exception):
        await broker.stop()
