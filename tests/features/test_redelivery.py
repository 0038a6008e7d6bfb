"""Redelivery policy and dead-letter queues, through stomp.py."""

from __future__ import annotations

import time
from typing import Any

from ferrymq.testing import ThreadedBroker
from tests.features.conftest import Restartable


def nack(client: Any, frame: Any) -> None:
    client.conn.nack(frame.headers["ack"], receipt="n")
    client.wait_receipt("n")


def test_nacked_past_max_redeliveries_goes_to_its_dlq(clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/orders.eu", id="s", ack="client-individual")
    clients().conn.send("/queue/orders.eu", "order-1", headers={"persistent": "true"})
    first = consumer.get()
    assert "redelivered" not in first.headers and "delivery-count" not in first.headers
    nack(consumer, first)
    second = consumer.get()
    assert second.headers["redelivered"] == "true"
    assert second.headers["delivery-count"] == "2"
    nack(consumer, second)
    third = consumer.get()
    assert third.headers["delivery-count"] == "3"
    nack(consumer, third)  # the third NACK is past max-redeliveries = 2
    assert consumer.nothing_more()

    dlq = clients()
    dlq.conn.subscribe("/queue/DLQ.orders.eu", id="d", ack="auto")
    dead = dlq.get()
    assert dead.body == "order-1"
    assert dead.headers["original-destination"] == "/queue/orders.eu"
    assert dead.headers["dlq-reason"] == "max-redeliveries"
    assert dead.headers["dlq-delivery-count"] == "3"
    assert dead.headers["destination"] == "/queue/DLQ.orders.eu"
    assert "redelivered" not in dead.headers


def test_shared_dlq_and_a_consumer_that_leaves(clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/shared.a", id="s", ack="client")
    clients().conn.send("/queue/shared.a", "x")
    consumer.get()
    consumer.close()  # returned unacked: past max-redeliveries = 0
    dlq = clients()
    dlq.conn.subscribe("/queue/DLQ", id="d", ack="auto")
    dead = dlq.get()
    assert dead.body == "x"
    assert dead.headers["original-destination"] == "/queue/shared.a"
    assert dead.headers["dlq-delivery-count"] == "1"


def test_default_policy_allows_six_redeliveries(clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/plain", id="s", ack="client-individual")
    clients().conn.send("/queue/plain", "p")
    for count in range(1, 8):
        frame = consumer.get()
        assert frame.headers.get("delivery-count", "1") == str(count)
        nack(consumer, frame)
    assert consumer.nothing_more()
    dlq = clients()
    dlq.conn.subscribe("/queue/DLQ.plain", id="d", ack="auto")
    assert dlq.get().headers["dlq-delivery-count"] == "7"


def test_topic_subscription_dead_letters_by_topic(clients: Any) -> None:
    sub = clients()
    sub.conn.subscribe("/topic/news.eu", id="t", ack="client-individual")
    sub.sync()
    clients().conn.send("/topic/news.eu", "headline")
    nack(sub, sub.get())
    nack(sub, sub.get())
    dlq = clients()
    dlq.conn.subscribe("/queue/DLQ.news.eu", id="d", ack="auto")
    assert dlq.get().headers["original-destination"] == "/topic/news.eu"


def test_redelivery_delay_holds_back_only_the_returned_message(clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/slow.q", id="s", ack="client-individual")
    producer = clients()
    producer.conn.send("/queue/slow.q", "a")
    first = consumer.get()
    nacked_at = time.monotonic()
    nack(consumer, first)
    producer.conn.send("/queue/slow.q", "b")
    assert consumer.get().body == "b"  # not stuck behind the held-back "a"
    again = consumer.get()
    waited = time.monotonic() - nacked_at
    assert again.body == "a" and again.headers["delivery-count"] == "2"
    assert waited >= 0.29, waited


def test_delivery_count_and_limit_survive_a_restart(restartable: Restartable) -> None:
    restartable.start()
    consumer = restartable.client()
    consumer.conn.subscribe("/queue/orders.us", id="s", ack="client-individual")
    producer = restartable.client()
    producer.conn.send("/queue/orders.us", "o", headers={"persistent": "true", "receipt": "r"})
    producer.wait_receipt("r")
    nack(consumer, consumer.get())
    assert consumer.get().headers["delivery-count"] == "2"
    restartable.stop()  # unacked at shutdown: returned, count 2 stored

    restartable.start()
    consumer = restartable.client()
    consumer.conn.subscribe("/queue/orders.us", id="s", ack="client-individual")
    frame = consumer.get()
    assert frame.headers["redelivered"] == "true"
    assert frame.headers["delivery-count"] == "3"
    restartable.stop()  # returned a third time: past max-redeliveries = 2

    restartable.start()
    dlq = restartable.client()
    dlq.conn.subscribe("/queue/DLQ.orders.us", id="d", ack="auto")
    dead = dlq.get()
    assert dead.body == "o"
    assert dead.headers["dlq-delivery-count"] == "3"
    consumer = restartable.client()
    consumer.conn.subscribe("/queue/orders.us", id="s", ack="client-individual")
    assert consumer.nothing_more()


def test_dead_letter_and_expiry_counters_in_metrics_and_api(
    broker: ThreadedBroker, clients: Any
) -> None:
    import json
    import urllib.request

    from tests.admin.test_metrics import scrape

    consumer = clients()
    consumer.conn.subscribe("/queue/shared.x", id="s", ack="client-individual")
    producer = clients()
    producer.conn.send("/queue/shared.x", "doomed")
    nack(consumer, consumer.get())  # max-redeliveries 0: straight to /queue/DLQ
    producer.conn.send("/queue/drop.y", "stale", headers={"expires": "1"})  # long expired
    expired_reader = clients()
    expired_reader.conn.subscribe("/queue/drop.y", id="e", ack="auto")
    expired_reader.sync()
    assert expired_reader.nothing_more()
    m = scrape(broker.http_port)
    assert (
        m["ferrymq_queue_dead_lettered_total"][frozenset({("destination", "/queue/shared.x")})] == 1
    )
    assert m["ferrymq_queue_expired_total"][frozenset({("destination", "/queue/drop.y")})] == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/api/overview") as resp:
        totals = json.loads(resp.read())["totals"]
    assert totals["dead_lettered"] == 1 and totals["expired"] == 1
