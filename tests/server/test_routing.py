"""Composite destinations, virtual topics and queue browsing over real STOMP,
including after a restart of a journal-backed broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferrymq.store.memory import MemoryStore
from ferrymq.testing import ThreadedBroker
from tests.server.conftest import Peer, bodies, journal_broker

VT = "/topic/VirtualTopic.Orders"


def test_composite_send_reaches_each_destination_in_one_store_write(
    peers: Any, broker: ThreadedBroker
) -> None:
    q, t = peers(broker), peers(broker)
    t.subscribe("/topic/comp.b")
    assert broker.server is not None
    store = broker.server.broker.store
    assert isinstance(store, MemoryStore)
    producer = peers(broker)
    producer.subscribe("/queue/comp.a")  # makes the queue (one store write)
    producer.request("UNSUBSCRIBE", id="s")
    before = broker.call(lambda: store.appends)
    producer.send("/queue/comp.a,/topic/comp.b,/queue/comp.c", "x", persistent="true")
    assert broker.call(lambda: store.appends) == before + 1
    assert broker.call(lambda: {"/queue/comp.a", "/queue/comp.c"} <= store.messages.keys())
    got = t.drain()
    assert bodies(got) == ["x"] and got[0].headers["destination"] == "/topic/comp.b"
    q.subscribe("/queue/comp.a")
    got = q.drain()
    assert bodies(got) == ["x"] and got[0].headers["destination"] == "/queue/comp.a"


def test_composite_send_in_a_transaction_and_after_restart(peers: Any, tmp_path: Path) -> None:
    with journal_broker(tmp_path) as b:
        producer = peers(b)
        producer.request("BEGIN", transaction="tx")
        producer.send("/queue/comp.x,/queue/comp.y", "in-tx", persistent="true", transaction="tx")
        producer.request("COMMIT", transaction="tx")
    with journal_broker(tmp_path) as b:
        for name in ("/queue/comp.x", "/queue/comp.y"):
            consumer = peers(b)
            consumer.subscribe(name)
            assert bodies(consumer.drain()) == ["in-tx"]


def test_composite_send_with_a_bad_part_is_refused_whole(
    peers: Any, broker: ThreadedBroker
) -> None:
    producer = peers(broker)
    producer.wire.send("SEND", b"x", destination="/queue/ok,/bogus/name", receipt="r")
    frame = producer.wire.frame()
    assert frame.command == "ERROR"
    consumer = peers(broker)
    consumer.subscribe("/queue/ok")
    assert consumer.drain() == []


def test_virtual_topic_fans_out_to_consumer_queues(peers: Any, broker: ThreadedBroker) -> None:
    a1, a2, b1 = peers(broker), peers(broker), peers(broker)
    a1.subscribe("/queue/Consumer.A.VirtualTopic.Orders")
    a2.subscribe("/queue/Consumer.A.VirtualTopic.Orders")
    b1.subscribe("/queue/Consumer.B.VirtualTopic.Orders")
    plain = peers(broker)
    plain.subscribe(VT)
    producer = peers(broker)
    for i in range(4):
        producer.send(VT, str(i))
    got_a = a1.drain() + a2.drain()  # queue A's consumers compete
    assert sorted(bodies(got_a)) == ["0", "1", "2", "3"]
    assert bodies(b1.drain()) == ["0", "1", "2", "3"]
    assert bodies(plain.drain()) == ["0", "1", "2", "3"]
    # An ordinary topic of a similar name is not a virtual topic.
    producer.send("/topic/Orders", "no")
    assert b1.drain() == []


def test_virtual_topic_consumer_queue_keeps_messages_across_restart(
    peers: Any, tmp_path: Path
) -> None:
    with journal_broker(tmp_path) as b:
        c = peers(b)
        c.subscribe("/queue/Consumer.A.VirtualTopic.Orders")
        c.leave()
        peers(b).send(VT, "before", persistent="true")
    with journal_broker(tmp_path) as b:
        # Still bound after the restart, with no subscriber yet.
        peers(b).send(VT, "after", persistent="true")
        c = peers(b)
        c.subscribe("/queue/Consumer.A.VirtualTopic.Orders")
        assert bodies(c.drain()) == ["before", "after"]


def browse(peer: Peer, destination: str, sub_id: str = "b") -> list[Any]:
    peer.request("SUBSCRIBE", destination=destination, id=sub_id, browser="true")
    frames = list(peer.messages)
    peer.messages.clear()
    return frames


def test_browser_gets_a_snapshot_then_browser_end(peers: Any, broker: ThreadedBroker) -> None:
    producer = peers(broker)
    for i, p in enumerate(["4", "9", "4"]):
        producer.send("/queue/br", str(i), priority=p)
    browser = peers(broker)
    frames = browse(browser, "/queue/br")
    assert [f.command for f in frames] == ["MESSAGE"] * 4
    assert bodies(frames[:3]) == ["1", "0", "2"]  # dispatch order
    assert all(f.headers["subscription"] == "b" and "ack" not in f.headers for f in frames)
    end = frames[3]
    assert end.headers["browser"] == "end"
    assert end.headers["destination"] == "/queue/br"
    assert end.headers["message-id"] == "0"
    browser.request("UNSUBSCRIBE", id="b")
    # Nothing was consumed.
    consumer = peers(broker)
    consumer.subscribe("/queue/br")
    assert bodies(consumer.drain()) == ["1", "0", "2"]
    assert bodies(browse(browser, "/queue/br", "b2")) == [""]  # now empty: only the end


def test_browser_with_stomp_py_after_restart(tmp_path: Path) -> None:
    import stomp

    from tests.server.conftest import Listener

    with journal_broker(tmp_path) as b:
        p = Peer(b.stomp_port)
        for i in range(3):
            p.send("/queue/br.r", str(i), persistent="true")
        p.close()
    with journal_broker(tmp_path, memory_budget=1024) as b:  # recovered as keys
        conn = stomp.Connection12([("127.0.0.1", b.stomp_port)])
        listener = Listener()
        conn.set_listener("l", listener)
        conn.connect(wait=True)
        try:
            conn.subscribe("/queue/br.r", id="b", headers={"browser": "true"})
            got = [listener.messages.get(timeout=5) for _ in range(4)]
            assert [m.body for m in got[:3]] == ["0", "1", "2"]
            assert got[3].headers["browser"] == "end"
            assert [m.headers["ferrymq-seq"] for m in got[:3]] == ["1", "2", "3"]
        finally:
            conn.disconnect()
