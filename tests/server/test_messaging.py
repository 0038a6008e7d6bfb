"""Queues, topics, acks and transactions through stomp.py over real TCP."""

from __future__ import annotations

import queue
from typing import Any

import pytest


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_send_and_receive_on_a_queue(clients: Any, version: str) -> None:
    consumer = clients(version)
    consumer.conn.subscribe("/queue/a", id="s1", ack="auto")
    producer = clients(version)
    producer.conn.send("/queue/a", "hello", headers={"color": "blue", "reply-to": "/queue/r"})
    msg = consumer.get()
    assert msg.body == "hello"
    assert msg.headers["destination"] == "/queue/a"
    assert msg.headers["color"] == "blue"
    assert msg.headers["reply-to"] == "/queue/r"
    assert msg.headers["message-id"]
    if version != "1.0":
        assert msg.headers["subscription"] == "s1"


def test_header_escaping_round_trips(clients: Any) -> None:
    consumer = clients("1.2")
    consumer.conn.subscribe("/queue/esc", id="s", ack="auto")
    producer = clients("1.2")
    producer.conn.send("/queue/esc", "x", headers={"odd": "a:b\nc\\d"})
    assert consumer.get().headers["odd"] == "a:b\nc\\d"


def test_competing_consumers_share_a_queue(clients: Any) -> None:
    c1, c2 = clients(), clients()
    c1.conn.subscribe("/queue/work", id="1", ack="auto")
    c2.conn.subscribe("/queue/work", id="2", ack="auto")
    c1.sync()
    c2.sync()
    producer = clients()
    for i in range(20):
        producer.conn.send("/queue/work", str(i))
    got1 = [m.body for m in c1.get_many(10)]
    got2 = [m.body for m in c2.get_many(10)]
    assert sorted(got1 + got2, key=int) == [str(i) for i in range(20)]
    assert got1 and got2
    assert c1.nothing_more() and c2.nothing_more()


def test_topic_fans_out_to_three_subscribers(clients: Any) -> None:
    subs = [clients() for _ in range(3)]
    for i, s in enumerate(subs):
        s.conn.subscribe("/topic/news", id=str(i), ack="auto")
        s.sync()
    clients().conn.send("/topic/news", "extra")
    assert [s.get().body for s in subs] == ["extra"] * 3


def test_wildcard_subscriptions(clients: Any) -> None:
    star, gt = clients(), clients()
    star.conn.subscribe("/topic/stock.*", id="s", ack="auto")
    gt.conn.subscribe("/topic/stock.>", id="g", ack="auto")
    star.sync()
    gt.sync()
    p = clients()
    p.conn.send("/topic/stock.ibm", "1")
    p.conn.send("/topic/stock.nasdaq.ibm", "2")
    assert star.get().headers["destination"] == "/topic/stock.ibm"
    assert [m.body for m in gt.get_many(2)] == ["1", "2"]
    assert star.nothing_more()


def test_client_individual_ack_then_disconnect_redelivers(clients: Any) -> None:
    first = clients()
    first.conn.subscribe("/queue/redo", id="s", ack="client-individual")
    producer = clients()
    for body in ("a", "b"):
        producer.conn.send("/queue/redo", body)
    a, _b = first.get_many(2)
    first.conn.ack(a.headers["ack"])
    first.sync()
    first.close()
    second = clients()
    second.conn.subscribe("/queue/redo", id="s", ack="client-individual")
    again = second.get()
    assert again.body == "b"
    assert again.headers["redelivered"] == "true"
    assert second.nothing_more()


def test_cumulative_client_ack(clients: Any) -> None:
    c = clients("1.1")
    c.conn.subscribe("/queue/cum", id="s", ack="client")
    p = clients()
    for i in range(3):
        p.conn.send("/queue/cum", str(i))
    msgs = c.get_many(3)
    c.conn.ack(msgs[1].headers["message-id"], "s")  # 1.1 style: message-id + subscription
    c.sync()
    c.close()
    d = clients()
    d.conn.subscribe("/queue/cum", id="s", ack="auto")
    assert d.get().body == "2"
    assert d.nothing_more()


def test_nack_redelivers(clients: Any) -> None:
    c = clients()
    c.conn.subscribe("/queue/nack", id="s", ack="client-individual")
    clients().conn.send("/queue/nack", "x")
    first = c.get()
    assert "redelivered" not in first.headers
    c.conn.nack(first.headers["ack"])
    again = c.get()
    assert again.body == "x" and again.headers["redelivered"] == "true"
    c.conn.ack(again.headers["ack"])
    assert c.nothing_more()


def test_transaction_commit_and_abort_of_sends(clients: Any) -> None:
    c = clients()
    c.conn.subscribe("/queue/tx", id="s", ack="auto")
    p = clients()
    tx = p.conn.begin()
    p.conn.send("/queue/tx", "in-tx", transaction=tx)
    assert c.nothing_more()
    p.conn.commit(tx)
    assert c.get().body == "in-tx"
    tx2 = p.conn.begin()
    p.conn.send("/queue/tx", "aborted", transaction=tx2)
    p.conn.abort(tx2)
    assert c.nothing_more()


def test_transaction_commit_and_abort_of_acks(clients: Any) -> None:
    c = clients()
    c.conn.subscribe("/queue/txack", id="s", ack="client-individual")
    clients().conn.send("/queue/txack", "m")
    msg = c.get()
    tx = c.conn.begin()
    c.conn.ack(msg.headers["ack"], transaction=tx)
    c.conn.abort(tx)  # the ack is dropped: the message is still ours, unacked
    tx = c.conn.begin()
    c.conn.ack(msg.headers["ack"], transaction=tx)
    c.conn.commit(tx)
    c.sync()
    c.close()
    d = clients()
    d.conn.subscribe("/queue/txack", id="s", ack="auto")
    assert d.nothing_more()


def test_receipts_on_every_frame(clients: Any) -> None:
    c = clients()
    for n, call in enumerate(
        [
            lambda r: c.conn.subscribe("/queue/r", id="s", ack="client", headers={"receipt": r}),
            lambda r: c.conn.send("/queue/r", "x", headers={"receipt": r}),
            lambda r: c.conn.begin("t", headers={"receipt": r}),
            lambda r: c.conn.commit("t", headers={"receipt": r}),
            lambda r: c.conn.unsubscribe("s", headers={"receipt": r}),
        ]
    ):
        call(f"r{n}")
        c.wait_receipt(f"r{n}")


def test_durable_subscription_gets_what_was_published_offline(clients: Any) -> None:
    sub = clients(**{"client-id": "audit-app"})
    headers = {"activemq.subscriptionName": "audit"}
    sub.conn.subscribe("/topic/events", id="d", ack="client-individual", headers=headers)
    sub.sync()
    sub.close()
    p = clients()
    for body in ("while", "away"):
        p.conn.send("/topic/events", body)
    p.sync()
    back = clients(**{"client-id": "audit-app"})
    back.conn.subscribe("/topic/events", id="d", ack="client-individual", headers=headers)
    assert [m.body for m in back.get_many(2)] == ["while", "away"]


def test_temp_queue_request_reply(clients: Any) -> None:
    requester, responder = clients(), clients()
    responder.conn.subscribe("/queue/service", id="svc", ack="auto")
    responder.sync()
    requester.conn.subscribe("/temp-queue/replies", id="r", ack="auto")
    requester.conn.send(
        "/queue/service", "ping", headers={"reply-to": "/temp-queue/replies", "correlation-id": "7"}
    )
    request = responder.get()
    reply_to = request.headers["reply-to"]
    assert reply_to.startswith("/remote-temp-queue/")
    responder.conn.send(reply_to, "pong", headers={"correlation-id": "7"})
    reply = requester.get()
    assert reply.body == "pong"
    assert reply.headers["correlation-id"] == "7"
    assert reply.headers["destination"] == "/temp-queue/replies"


def test_messages_are_not_lost_when_a_connection_drops(clients: Any, raw: Any) -> None:
    p = clients()
    for i in range(100):
        p.conn.send("/queue/keep", str(i))
    p.sync()
    c = raw()
    c.connect()
    c.send(
        "SUBSCRIBE",
        destination="/queue/keep",
        id="s",
        ack="client-individual",
        **{"activemq.prefetchSize": "10"},
    )
    first = [c.frame() for _ in range(10)]
    assert [m.body for m in first] == [str(i).encode() for i in range(10)]
    c.close()  # vanish without DISCONNECT
    d = clients()
    d.conn.subscribe("/queue/keep", id="s", ack="auto")
    bodies = [m.body for m in d.get_many(100)]
    assert bodies == [str(i) for i in range(100)]


def test_prefetch_limits_in_flight_messages(clients: Any) -> None:
    c = clients()
    c.conn.subscribe(
        "/queue/pf", id="s", ack="client-individual", headers={"activemq.prefetchSize": "2"}
    )
    p = clients()
    for i in range(5):
        p.conn.send("/queue/pf", str(i))
    first = c.get_many(2)
    with pytest.raises(queue.Empty):
        c.get(timeout=0.3)
    c.conn.ack(first[0].headers["ack"])
    assert c.get().body == "2"
