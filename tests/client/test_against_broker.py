"""The client's API against a real ferrymq broker over TCP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ferrymq.client
from ferrymq.client import aio
from ferrymq.testing import BrokerProcess, ThreadedBroker


@pytest.fixture
def broker() -> Iterator[ThreadedBroker]:
    with ThreadedBroker() as b:
        yield b


def uri(broker: ThreadedBroker) -> str:
    return f"failover:(stomp://127.0.0.1:{broker.stomp_port})?randomize=false"


def test_sync_send_subscribe_ack(broker: ThreadedBroker) -> None:
    with ferrymq.client.connect(uri(broker)) as client:
        client.send("/queue/sync", "hello", {"kind": "greeting"})
        sub = client.subscribe("/queue/sync", ack="client-individual")
        message = sub.get(timeout=5)
        assert message.text == "hello" and message.headers["kind"] == "greeting"
        assert message.dedup_id and not message.redelivered
        client.ack(message)
        # Pipelined: many in flight, then one flush.
        futures = [client.send("/queue/sync", str(i), wait=False) for i in range(300)]
        client.flush()
        assert all(f.done() and f.exception() is None for f in futures)
        assert [sub.get(timeout=5).text for _ in range(300)] == [str(i) for i in range(300)]
        assert client.statistics().sends_confirmed == 301


def test_sync_callback_runs_on_its_own_thread_and_may_use_the_client(
    broker: ThreadedBroker,
) -> None:
    got: list[str] = []
    done = threading.Event()
    with ferrymq.client.connect(uri(broker)) as client:

        def on_message(message: ferrymq.client.Message) -> None:
            client.ack(message)  # calling the client from a callback must not deadlock
            got.append(message.text)
            if len(got) == 3:
                done.set()

        client.subscribe("/queue/cb", on_message, ack="client")
        for text in ("a", "b", "c"):
            client.send("/queue/cb", text)
        assert done.wait(5)
    assert got == ["a", "b", "c"]


def test_sync_transactions(broker: ThreadedBroker) -> None:
    with ferrymq.client.connect(uri(broker)) as client:
        with client.transaction() as tx:
            tx.send("/queue/tx", "committed")
        with pytest.raises(RuntimeError), client.transaction() as tx:
            tx.send("/queue/tx", "aborted")
            raise RuntimeError("changed my mind")
        client.send("/queue/tx", "plain")
        sub = client.subscribe("/queue/tx")
        assert [sub.get(timeout=5).text for _ in range(2)] == ["committed", "plain"]


async def test_async_iterator_nack_and_transactional_ack(broker: ThreadedBroker) -> None:
    async with await aio.connect(uri(broker)) as client:
        await client.send("/queue/aio", "one")
        sub = await client.subscribe("/queue/aio", ack="client-individual")
        async for message in sub:
            assert message.text == "one"
            if not message.redelivered:
                await client.nack(message)  # back it goes, marked redelivered
                continue
            async with client.transaction() as tx:
                await tx.ack(message)
            break
        await sub.unsubscribe()
        with pytest.raises(ferrymq.client.ClientClosed):
            await sub.get(timeout=1)


async def test_async_callback_sees_messages_in_order(broker: ThreadedBroker) -> None:
    got: list[str] = []
    enough = asyncio.Event()

    async def on_message(message: ferrymq.client.Message) -> None:
        await asyncio.sleep(0)  # a real await between messages keeps order anyway
        got.append(message.text)
        if len(got) == 50:
            enough.set()

    async with await aio.connect(uri(broker)) as client:
        await client.subscribe("/topic/ordered", on_message)
        for i in range(50):
            await client.send("/topic/ordered", str(i), wait=False)
        await client.flush()
        await asyncio.wait_for(enough.wait(), 5)
    assert got == [str(i) for i in range(50)]


@pytest.mark.e2e
@pytest.mark.slow
def test_unacked_message_is_not_shown_twice_after_failover(tmp_path: Path) -> None:
    """The broker redelivers what the application holds unacked; the audit
    hides the copy, and acking the held message acks the redelivery."""
    args = ["--stomp", "127.0.0.1:0", "--http", "off", "--data", str(tmp_path)]
    broker = BrokerProcess(args).start()
    port = broker.stomp_port
    uri = f"failover:(stomp://127.0.0.1:{port})?initialReconnectDelay=10&maxReconnectDelay=100"
    try:
        client = ferrymq.client.connect(uri)
        client.send("/queue/redo", "once")
        sub = client.subscribe("/queue/redo", ack="client-individual", id="keep")
        first = sub.get(timeout=5)
        assert not first.redelivered
        broker.kill()
        broker = BrokerProcess(
            ["--stomp", f"127.0.0.1:{port}", "--http", "off", "--data", str(tmp_path)]
        ).start()
        client.send("/queue/redo", "marker")  # queued after the redelivered "once"
        nxt = sub.get(timeout=10)  # same subscription object, restored by id
        assert nxt.text == "marker"  # "once" again was kept from the application
        client.ack(first)  # sent for its redelivery on the new connection
        client.ack(nxt)
        client.close()
        with ferrymq.client.connect(f"stomp://127.0.0.1:{port}") as check:
            check.send("/queue/redo", "end")
            rest = check.subscribe("/queue/redo", ack="client-individual")
            assert rest.get(timeout=5).text == "end"  # nothing left unacked before it
    finally:
        broker.kill()
