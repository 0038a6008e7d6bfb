"""The broker over PostgreSQL: what survives a restart (mirrors
tests/store/test_journal_store.py and test_paging.py), group commit, schema
versions and fencing by epoch."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from ferrymq.core import AckMode, Broker, Consumer, Destination, Message
from ferrymq.store.postgres import PostgresStore, SchemaError, StoreUnavailable
from ferrymq.testing.postgres import PostgresCluster

Q = Destination.parse("/queue/orders")
T = Destination.parse("/topic/events")
BODY = b"x" * 1024


class Sink:
    def __init__(self) -> None:
        self.got: list[Message] = []

    def deliver(self, consumer: Consumer, message: Message) -> None:
        self.got.append(message)


async def open_broker(url: str, budget: int = 256 * 1024 * 1024, **kw: object) -> Broker:
    broker = Broker(PostgresStore(url, **kw), node_name="t", memory_budget=budget)  # type: ignore[arg-type]
    await broker.start()
    return broker


async def settle(broker: Broker) -> None:
    broker.flush_records()
    fut = broker.store.durable()
    if fut is not None:
        await fut


async def test_persistent_messages_survive_restart_in_order(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    p = broker.connect(Sink())
    for i in range(5):
        p.send(Q, {"n": str(i)}, b"p%d" % i, persistent=True)
        p.send(Q, {}, b"volatile")
    await broker.stop()

    broker = await open_broker(pg_url)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [m.body for m in sink.got] == [b"p0", b"p1", b"p2", b"p3", b"p4"]
    assert [m.headers["n"] for m in sink.got] == ["0", "1", "2", "3", "4"]
    assert not any(m.redelivered for m in sink.got)
    await broker.stop()


async def test_acked_messages_stay_gone_and_unacked_come_back_redelivered(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    sink = Sink()
    c = broker.connect(sink)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    p = broker.connect(Sink())
    for i in range(3):
        p.send(Q, {}, b"%d" % i, persistent=True)
    c.ack(consumer, sink.got[0].id)
    await broker.stop()

    broker = await open_broker(pg_url)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [(m.body, m.redelivered) for m in sink.got] == [(b"1", True), (b"2", True)]
    await broker.stop()

    broker = await open_broker(pg_url)  # auto-acked on the last run: all gone
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert sink.got == []
    await broker.stop()


async def test_durable_subscription_survives_restart(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    sub = broker.connect(Sink(), client_id="app")
    sub.subscribe("s", T, durable_name="audit")
    sub.close()
    broker.connect(Sink()).send(T, {}, b"kept", persistent=True)
    await broker.stop()

    broker = await open_broker(pg_url)
    assert list(broker.durable_subscriptions) == ["/subscription/app:audit"]
    sink = Sink()
    c = broker.connect(sink, client_id="app")
    c.subscribe("s", T, durable_name="audit")
    assert [m.body for m in sink.got] == [b"kept"]
    c.unsubscribe("s", remove_durable=True)
    await broker.stop()

    broker = await open_broker(pg_url)
    assert broker.durable_subscriptions == {}
    await broker.stop()


async def test_only_committed_transactions_survive(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    p = broker.connect(Sink())
    p.begin("t1")
    p.send(Q, {}, b"committed", persistent=True, transaction="t1")
    p.commit("t1")
    p.begin("t2")
    p.send(Q, {}, b"open", persistent=True, transaction="t2")
    await broker.stop()

    broker = await open_broker(pg_url)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [m.body for m in sink.got] == [b"committed"]
    assert broker.was_committed("t1") and not broker.was_committed("t2")
    await broker.stop()


async def test_dedup_ids_survive_restart(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    assert broker.accept_once(Q, "id-1")
    broker.connect(Sink()).send(Q, {}, b"one", persistent=True)
    await broker.stop()

    broker = await open_broker(pg_url)
    assert not broker.accept_once(Q, "id-1")
    assert broker.accept_once(Q, "id-2")
    await broker.stop()


async def test_receipt_future_completes_after_commit_and_appends_share_a_transaction(
    pg_url: str,
) -> None:
    broker = await open_broker(pg_url)
    store = broker.store
    assert isinstance(store, PostgresStore)
    p = broker.connect(Sink())
    futures = []
    for i in range(200):  # one loop turn: many appends pending at once
        p.send(Q, {}, b"%d" % i, persistent=True)
        broker.flush_records()
        fut = store.durable()
        assert fut is not None and not fut.done()
        futures.append(fut)
    before = store.stats["transactions"]
    await asyncio.gather(*futures)
    assert store.durable() is None
    assert store.stats["transactions"] - before <= 3  # group commit
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM ferrymq_messages").fetchone()
        assert row is not None and row[0] == 200
    await broker.stop()


async def test_queue_beyond_budget_pages_out_and_reads_back_in_order(pg_url: str) -> None:
    budget = 64 * 1024
    broker = await open_broker(pg_url, budget=budget, read_ahead=50)
    p = broker.connect(Sink())
    for i in range(500):
        p.send(Q, {"n": str(i)}, BODY, persistent=True)
        assert broker.memory.used <= budget + len(BODY)
    assert sum(isinstance(m, int) for m in broker.queues[str(Q)].messages) >= 400
    sink = Sink()
    c = broker.connect(sink)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL, prefetch=10)
    while consumer.unacked:  # some are read back before they are even committed
        for message_id in list(consumer.unacked):
            c.ack(consumer, message_id)
    assert [m.headers["n"] for m in sink.got] == [str(i) for i in range(500)]
    assert all(m.body == BODY and not m.redelivered for m in sink.got)
    await broker.stop()

    broker = await open_broker(pg_url)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert sink.got == []
    await broker.stop()


async def test_recovered_messages_are_paged_and_read_ahead_in_batches(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    p = broker.connect(Sink())
    for i in range(1000):
        p.send(Q, {"n": str(i)}, BODY, persistent=True)
    await broker.stop()

    broker = await open_broker(pg_url, read_ahead=100)
    store = broker.store
    assert isinstance(store, PostgresStore)
    assert broker.memory.used == 0
    assert all(isinstance(m, int) for m in broker.queues[str(Q)].messages)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [m.headers["n"] for m in sink.got] == [str(i) for i in range(1000)]
    assert store.stats["read_batches"] <= 10  # the first 100 were prefetched on open
    await broker.stop()


async def test_deleting_a_subscription_removes_its_messages(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    sub = broker.connect(Sink(), client_id="app")
    sub.subscribe("s", T, durable_name="d")
    sub.close()
    p = broker.connect(Sink())
    for _ in range(300):
        p.send(T, {}, BODY, persistent=True)
    await settle(broker)
    broker.connect(Sink(), client_id="app").remove_durable_subscription("d")
    await settle(broker)
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM ferrymq_messages").fetchone()
        assert row is not None and row[0] == 0
    await broker.stop()


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    broker = await open_broker(pg_url)
    await broker.stop()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ferrymq_migrations (version) VALUES (999)")
    with pytest.raises(SchemaError, match="version 999, newer than this broker knows"):
        await PostgresStore(pg_url).open()


class FakeLease:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.reasons: list[str] = []

    def seconds_left(self) -> float:
        return 5.0

    def lost(self, reason: str) -> None:
        self.reasons.append(reason)


async def test_a_write_under_an_old_epoch_is_refused(pg_url: str) -> None:
    lease = FakeLease(1)
    first = PostgresStore(pg_url)
    await first.open()  # creates the schema
    await first.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE ferrymq_lock SET epoch = 1, expires_at = now() + interval '1 h'")
    store = PostgresStore(pg_url, fencing=lease)
    broker = Broker(store, node_name="t")
    await broker.start()
    p = broker.connect(Sink())
    p.send(Q, {}, b"ok", persistent=True)
    await settle(broker)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # another node took over
        conn.execute("UPDATE ferrymq_lock SET epoch = 2")
    p.send(Q, {}, b"refused", persistent=True)
    broker.flush_records()
    fut = store.durable()
    assert fut is not None
    with pytest.raises(StoreUnavailable):
        await fut
    assert lease.reasons and "lease is lost" in lease.reasons[0]
    with pytest.raises(StoreUnavailable):
        p.send(Q, {}, b"after", persistent=True)
        broker.flush_records()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT count(*) FROM ferrymq_messages").fetchone()
        assert rows is not None and rows[0] == 1
    await store.close()


async def test_a_write_survives_its_connection_being_killed(
    pg_url: str, pg_cluster: PostgresCluster
) -> None:
    broker = await open_broker(pg_url)
    store = broker.store
    assert isinstance(store, PostgresStore)
    p = broker.connect(Sink())
    p.send(Q, {}, b"before", persistent=True)
    await settle(broker)
    db = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{db}' AND application_name = 'ferrymq-store'"
    )
    p.send(Q, {}, b"after", persistent=True)
    await settle(broker)  # reconnected and retried
    assert store.stats["reconnects"] == 1
    await broker.stop()
    broker = await open_broker(pg_url)
    sink = Sink()
    broker.connect(sink).subscribe("s", Q)
    assert [m.body for m in sink.got] == [b"before", b"after"]
    await broker.stop()
