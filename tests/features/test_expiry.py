"""Message expiry (`expires` header, policy default TTL), through stomp.py."""

from __future__ import annotations

import time
from typing import Any

from ferrymq.testing import eventually
from tests.features.conftest import Restartable


def epoch_ms(offset_ms: int = 0) -> str:
    return str(int(time.time() * 1000) + offset_ms)


def test_unread_expired_message_is_swept_to_the_dlq(clients: Any) -> None:
    producer = clients()
    producer.conn.send("/queue/exp", "stale", headers={"expires": epoch_ms(150)})
    producer.conn.send("/queue/exp", "fresh", headers={"expires": epoch_ms(60_000)})
    dlq = clients()
    dlq.conn.subscribe("/queue/DLQ.exp", id="d", ack="auto")
    dead = dlq.get()  # no consumer ever asked: the sweep moved it
    assert dead.body == "stale"
    assert dead.headers["dlq-reason"] == "expired"
    assert dead.headers["original-destination"] == "/queue/exp"
    assert "expires" not in dead.headers and "original-expires" in dead.headers
    consumer = clients()
    consumer.conn.subscribe("/queue/exp", id="s", ack="auto")
    assert consumer.get().body == "fresh"
    assert consumer.nothing_more()


def test_expired_message_is_never_delivered(clients: Any) -> None:
    producer = clients()
    producer.conn.send("/queue/exp2", "old", headers={"expires": epoch_ms(-1)})
    producer.conn.send("/queue/exp2", "new")
    consumer = clients()
    consumer.conn.subscribe("/queue/exp2", id="s", ack="auto")
    assert consumer.get().body == "new"
    assert consumer.nothing_more()


def test_in_flight_message_that_expires_is_not_redelivered(clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/exp3", id="s", ack="client-individual")
    expires = epoch_ms(200)
    clients().conn.send("/queue/exp3", "x", headers={"expires": expires})
    frame = consumer.get()
    eventually(lambda: time.time() * 1000 > int(expires), timeout=5)
    consumer.conn.nack(frame.headers["ack"])
    dlq = clients()
    dlq.conn.subscribe("/queue/DLQ.exp3", id="d", ack="auto")
    assert dlq.get().headers["dlq-reason"] == "expired"
    assert consumer.nothing_more()


def test_policy_default_ttl_and_drop(clients: Any) -> None:
    producer = clients()
    # drop.a first: once ttl.a's copy reaches its DLQ, drop.a's has expired
    # too (same TTL, sent earlier), whatever the sweep's timing.
    producer.conn.send("/queue/drop.a", "to-nowhere")
    producer.conn.send("/queue/ttl.a", "to-dlq")
    dlq = clients()
    dlq.conn.subscribe("/queue/DLQ.ttl.a", id="d", ack="auto")
    dead = dlq.get()
    assert dead.body == "to-dlq" and dead.headers["dlq-reason"] == "expired"
    dropped = clients()
    dropped.conn.subscribe("/queue/DLQ.drop.a", id="x", ack="auto")
    dropped.conn.subscribe("/queue/drop.a", id="y", ack="auto")
    assert dropped.nothing_more(wait=0.5)


def test_expiry_survives_a_restart(restartable: Restartable) -> None:
    restartable.start()
    producer = restartable.client()
    expires = int(time.time() * 1000) + 500
    producer.conn.send(
        "/queue/exp.r", "gone", headers={"persistent": "true", "expires": str(expires)}
    )
    producer.conn.send("/queue/exp.r", "kept", headers={"persistent": "true", "receipt": "r"})
    producer.wait_receipt("r")
    restartable.stop()
    eventually(lambda: time.time() * 1000 > expires + 10, timeout=5)

    restartable.start()  # recovered paged out: checked when read back
    consumer = restartable.client()
    consumer.conn.subscribe("/queue/exp.r", id="s", ack="auto")
    assert consumer.get().body == "kept"
    assert consumer.nothing_more()
    dlq = restartable.client()
    dlq.conn.subscribe("/queue/DLQ.exp.r", id="d", ack="client-individual")
    assert dlq.get().body == "gone"  # not acked: stays in the DLQ
    restartable.stop()

    restartable.start()  # the move to the DLQ was stored
    dlq = restartable.client()
    dlq.conn.subscribe("/queue/DLQ.exp.r", id="d", ack="auto")
    assert dlq.get().body == "gone"
