"""The asyncio client against a scripted STOMP server: what it writes after a
failover (resubscribe, resend, resolve an in-doubt COMMIT), and the options
that bound its waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ferrymq.client import aio
from ferrymq.client.errors import (
    BrokerError,
    ConnectFailed,
    OperationTimeout,
    SendTimeout,
    TransactionRolledBack,
)
from ferrymq.protocol.stomp import Frame

from .fake_broker import FakeBroker, FakeSession, free_port

FAST = "initialReconnectDelay=5&maxReconnectDelay=20&randomize=false"


@pytest.fixture
async def brokers() -> AsyncIterator[Callable[..., Any]]:
    made: list[FakeBroker] = []

    async def make(*args: Any, **kwargs: Any) -> FakeBroker:
        broker = await FakeBroker(*args, **kwargs).start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.stop()


async def failover_client(broker: FakeBroker, query: str = FAST, **kw: Any) -> aio.Client:
    return await aio.connect(f"failover:({broker.uri})?{query}", **kw)


async def test_resubscribes_with_same_ids_ack_modes_and_headers(brokers: Any) -> None:
    broker: FakeBroker = await brokers()
    client = await failover_client(broker)
    await client.subscribe("/queue/a", ack="client-individual", id="orders",
                           headers={"activemq.prefetchSize": "10"})  # fmt: skip
    await client.subscribe("/topic/b.>")
    first = broker.sessions[0].sent("SUBSCRIBE")
    broker.sessions[0].drop()
    await broker.wait_for(
        lambda: len(broker.sessions) == 2 and broker.sessions[1].sent("SUBSCRIBE")
    )
    again = broker.sessions[1].sent("SUBSCRIBE")
    strip = lambda f: {k: v for k, v in f.headers.items() if k != "receipt"}  # noqa: E731
    assert [strip(f) for f in again] == [strip(f) for f in first]
    assert strip(again[0]) == {
        "activemq.prefetchSize": "10",
        "id": "orders",
        "destination": "/queue/a",
        "ack": "client-individual",
    }
    assert client.statistics().connections == 2
    await client.close()


async def test_unconfirmed_sends_are_resent_in_order_with_their_dedup_ids(brokers: Any) -> None:
    def first_link_confirms_two(session: FakeSession, frame: Frame) -> bool:
        if session.index > 0 or frame.command != "SEND":
            return False
        if frame.body in (b"m0", b"m1"):
            session.receipt(frame)
        elif frame.body == b"m4":
            session.drop()  # m2..m4 were received, none confirmed
        return True

    broker: FakeBroker = await brokers(first_link_confirms_two)
    events: list[aio.ConnectionEvent] = []
    client = await failover_client(broker, on_event=events.append)
    waiters = [await client.send("/queue/q", f"m{i}", wait=False) for i in range(5)]
    await client.flush()
    assert all(w.done() and w.exception() is None for w in waiters)
    old = {f.body: f.headers["dedup-id"] for f in broker.sessions[0].sent("SEND")}
    resent = broker.sessions[1].sent("SEND")
    assert [f.body for f in resent] == [b"m2", b"m3", b"m4"]
    assert [f.headers["dedup-id"] for f in resent] == [old[b"m2"], old[b"m3"], old[b"m4"]]
    assert all(f.headers["persistent"] == "true" for f in resent)
    stats = client.statistics()
    assert stats.sends_resent == 3 and stats.sends_confirmed == 5 and stats.sends_pending == 0
    assert [e.kind for e in events] == ["connected", "disconnected", "connected"]
    await client.close()


async def test_sends_made_while_disconnected_follow_the_resent_ones(brokers: Any) -> None:
    gate = asyncio.Event()

    def hold_first_link(session: FakeSession, frame: Frame) -> bool:
        return session.index == 0 and frame.command == "SEND"  # never confirmed

    broker: FakeBroker = await brokers(hold_first_link)
    client = await failover_client(broker)
    early = await client.send("/queue/q", "early", wait=False)
    await broker.wait_for(lambda: broker.sessions[0].sent("SEND"))
    port = broker.port
    await broker.stop()
    late = await client.send("/queue/q", "late", wait=False)  # held: no link
    gate.set()
    await broker.start(port)
    await asyncio.wait_for(asyncio.gather(early, late), 5)
    assert [f.body for f in broker.sessions[-1].sent("SEND")] == [b"early", b"late"]
    await client.close()


async def test_caller_dedup_id_is_kept(brokers: Any) -> None:
    broker: FakeBroker = await brokers()
    client = await failover_client(broker)
    await client.send("/queue/q", b"x", dedup_id="order-17")
    await client.send("/queue/q", b"y", {"_AMQ_DUPL_ID": "order-18"}, persistent=False)
    first, second = broker.sessions[0].sent("SEND")
    assert first.headers["dedup-id"] == "order-17"
    assert second.headers["dedup-id"] == "order-18" and second.headers["persistent"] == "false"
    await client.close()


# -- transactions across a failover ------------------------------------------------


def commit_then_die(answer: Callable[[FakeSession, Frame], None]) -> Callable[..., bool]:
    """First link: COMMIT is read, then the link dies unanswered. Later links:
    a resolving COMMIT gets `answer`."""

    def on_frame(session: FakeSession, frame: Frame) -> bool:
        if frame.command != "COMMIT":
            return False
        if "ferrymq-resolve" not in frame.headers:
            session.drop()
            return True
        answer(session, frame)
        return True

    return on_frame


async def in_doubt_commit(brokers: Any, answer: Callable[[FakeSession, Frame], None]) -> Any:
    broker: FakeBroker = await brokers(commit_then_die(answer))
    client = await failover_client(broker)
    tx = await client.begin()
    await tx.send("/queue/q", "in tx")
    outcome: BaseException | None = None
    try:
        await asyncio.wait_for(tx.commit(), 5)
    except TransactionRolledBack as exc:
        outcome = exc
    resolves = [f for f in broker.all_frames("COMMIT") if "ferrymq-resolve" in f.headers]
    assert len(resolves) == 1
    resolve = resolves[0]
    assert resolve.headers["transaction"] == tx.id
    assert resolve.headers["ferrymq-resolve"] == "true" and "receipt" in resolve.headers
    # The client is usable afterwards (after the ERROR case, on a third link).
    await asyncio.wait_for(client.send("/queue/q", "after"), 5)
    await client.close()
    return outcome, broker


async def test_in_doubt_commit_resolved_as_committed(brokers: Any) -> None:
    outcome, _ = await in_doubt_commit(
        brokers, lambda s, f: s.receipt(f, **{"ferrymq-tx-outcome": "committed"})
    )
    assert outcome is None


async def test_in_doubt_commit_resolved_as_unknown_is_rolled_back(brokers: Any) -> None:
    outcome, _ = await in_doubt_commit(
        brokers, lambda s, f: s.receipt(f, **{"ferrymq-tx-outcome": "unknown"})
    )
    assert isinstance(outcome, TransactionRolledBack)


async def test_in_doubt_commit_on_a_broker_without_the_extension(brokers: Any) -> None:
    # stomp.py-era brokers and today's ferrymq: no such transaction -> ERROR.
    outcome, broker = await in_doubt_commit(
        brokers, lambda s, f: s.error(f, "transaction not found")
    )
    assert isinstance(outcome, TransactionRolledBack)
    assert "transaction not found" in str(outcome)
    assert len(broker.sessions) == 3  # the ERROR closed the second link


async def test_transaction_open_at_failover_is_rolled_back(brokers: Any) -> None:
    broker: FakeBroker = await brokers()
    client = await failover_client(broker)
    tx = await client.begin()
    await tx.send("/queue/q", "lost")
    broker.sessions[0].drop()
    await broker.wait_for(lambda: len(broker.sessions) == 2)
    with pytest.raises(TransactionRolledBack):
        await tx.send("/queue/q", "more")
    with pytest.raises(TransactionRolledBack):
        await tx.commit()
    assert broker.all_frames("COMMIT") == []  # nothing to ask: it never went out
    # The context manager reports it the same way.
    with pytest.raises(TransactionRolledBack):
        async with client.transaction() as tx2:
            await tx2.send("/queue/q", "x")
            broker.sessions[1].drop()
            await broker.wait_for(lambda: len(broker.sessions) == 3)
    await client.close()


async def test_transaction_commits_and_aborts(brokers: Any) -> None:
    broker: FakeBroker = await brokers()
    client = await failover_client(broker)
    async with client.transaction() as tx:
        await tx.send("/queue/q", "a")
    with pytest.raises(KeyError):
        async with client.transaction() as tx2:
            raise KeyError("boom")
    session = broker.sessions[0]
    await broker.wait_for(lambda: session.sent("ABORT"))
    assert [f.headers["transaction"] for f in session.sent("BEGIN")] == [tx.id, tx2.id]
    assert session.sent("COMMIT")[0].headers["transaction"] == tx.id
    assert session.sent("ABORT")[0].headers["transaction"] == tx2.id
    assert session.sent("SEND")[0].headers["transaction"] == tx.id
    await client.close()


async def test_refused_send_fails_and_is_not_resent(brokers: Any) -> None:
    def refuse_bad(session: FakeSession, frame: Frame) -> bool:
        if frame.command == "SEND" and frame.body == b"bad":
            session.error(frame, "invalid destination")
            return True
        return False

    broker: FakeBroker = await brokers(refuse_bad)
    client = await failover_client(broker)
    with pytest.raises(BrokerError, match="invalid destination"):
        await asyncio.wait_for(client.send("/queue/q", "bad"), 5)
    await asyncio.wait_for(client.send("/queue/q", "good"), 5)
    assert [f.body for f in broker.all_frames("SEND")] == [b"bad", b"good"]
    await client.close()


# -- bounded waiting -------------------------------------------------------------------


async def test_timeout_fails_sends_during_an_outage(brokers: Any) -> None:
    broker: FakeBroker = await brokers(lambda s, f: f.command == "SEND")  # never confirm
    down = asyncio.Event()
    client = await failover_client(
        broker, f"{FAST}&timeout=200", on_event=lambda e: e.kind == "disconnected" and down.set()
    )
    written = await client.send("/queue/q", "written", wait=False)
    await broker.wait_for(lambda: broker.all_frames("SEND"))
    await broker.stop()
    await asyncio.wait_for(down.wait(), 5)  # so "held" surely finds no link
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SendTimeout) as held:
        await asyncio.wait_for(client.send("/queue/q", "held", dedup_id="h1"), 5)
    assert 0.15 < loop.time() - started < 2.0
    assert held.value.dedup_id == "h1" and held.value.maybe_sent is False
    with pytest.raises(SendTimeout) as unconfirmed:
        await asyncio.wait_for(written, 5)
    assert unconfirmed.value.maybe_sent is True  # it reached a broker that may have kept it
    with pytest.raises(OperationTimeout):
        await asyncio.wait_for(client.begin(), 5)
    assert client.statistics().sends_pending == 0
    await client.close()


async def test_startup_max_reconnect_attempts(brokers: Any) -> None:
    refusing: FakeBroker = await brokers(refuse=True)  # accepts, then closes at once
    with pytest.raises(ConnectFailed, match="after 3 attempts"):
        await asyncio.wait_for(
            aio.connect(
                f"failover:({refusing.uri})?initialReconnectDelay=1&startupMaxReconnectAttempts=2"
            ),
            5,
        )
    assert len(refusing.sessions) == 3  # the first pass and two retries


async def test_plain_uri_tries_once(brokers: Any) -> None:
    refusing: FakeBroker = await brokers(refuse=True)
    with pytest.raises(ConnectFailed):
        await asyncio.wait_for(aio.connect(refusing.uri), 5)
    assert len(refusing.sessions) == 1


async def test_gives_up_after_max_reconnect_attempts(brokers: Any) -> None:
    broker: FakeBroker = await brokers()
    events: list[aio.ConnectionEvent] = []
    client = await failover_client(
        broker, "initialReconnectDelay=1&maxReconnectAttempts=2", on_event=events.append
    )
    sub = await client.subscribe("/queue/q")
    await broker.stop()
    with pytest.raises(ConnectFailed):
        await asyncio.wait_for(client.send("/queue/q", "x"), 5)
    with pytest.raises(ConnectFailed):
        await asyncio.wait_for(sub.get(), 5)
    assert events[-1].kind == "failed"
    await client.close()


async def test_silent_broker_is_detected_by_heartbeats(brokers: Any) -> None:
    # The broker promises a beat every 100 ms and never sends one.
    broker: FakeBroker = await brokers(heartbeat="100,0")
    client = await failover_client(broker, heartbeat=(0, 100))
    await broker.wait_for(lambda: len(broker.sessions) >= 2, timeout=3)
    await client.close()


async def test_client_beats_when_asked(brokers: Any) -> None:
    broker: FakeBroker = await brokers(heartbeat="0,50")
    client = await failover_client(broker, heartbeat=(50, 0))
    session = broker.sessions[0]
    assert session.transport is not None
    beats = asyncio.Event()
    original = session.data_received

    def watch(data: bytes) -> None:
        if data.strip(b"\n") == b"":
            beats.set()
        original(data)

    session.data_received = watch  # type: ignore[method-assign]
    await asyncio.wait_for(beats.wait(), 2)
    await client.close()


async def test_priority_backup_moves_back_to_the_first_broker(brokers: Any) -> None:
    primary_port = free_port()
    backup: FakeBroker = await brokers()
    client = await aio.connect(
        f"failover:(stomp://127.0.0.1:{primary_port},{backup.uri})"
        "?priorityBackup=true&initialReconnectDelay=10&maxReconnectDelay=50&randomize=false"
    )
    assert client.statistics().connected_to is not None
    assert client.statistics().connected_to.port == backup.port  # type: ignore[union-attr]
    await client.subscribe("/queue/q", id="keep")
    primary = FakeBroker()
    await primary.start(primary_port)
    try:
        await primary.wait_for(lambda: primary.all_frames("SUBSCRIBE"))
        assert primary.all_frames("SUBSCRIBE")[0].headers["id"] == "keep"
        assert backup.sessions[0].sent("DISCONNECT")  # left the backup cleanly
        await asyncio.wait_for(client.send("/queue/q", "x"), 5)
        assert primary.all_frames("SEND")
    finally:
        await client.close()
        await primary.stop()
