"""Scheduled delivery (AMQ_SCHEDULED_*), through stomp.py."""

from __future__ import annotations

import time
from typing import Any

from ferrymq.testing import ThreadedBroker
from tests.features.conftest import Restartable


def test_delay(clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/later", id="s", ack="auto")
    consumer.sync()
    sent = time.monotonic()
    clients().conn.send("/queue/later", "hi", headers={"AMQ_SCHEDULED_DELAY": "300", "k": "v"})
    msg = consumer.get()
    waited = time.monotonic() - sent
    assert msg.body == "hi" and msg.headers["k"] == "v"
    assert "AMQ_SCHEDULED_DELAY" not in msg.headers
    # Due after 300 ms; fires within 50 ms unloaded (slack for a busy CI box).
    assert 0.29 <= waited < 0.8, waited


def test_period_and_repeat(clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/topic/ticks", id="s", ack="auto")
    consumer.sync()
    clients().conn.send(
        "/topic/ticks",
        "tick",
        headers={
            "AMQ_SCHEDULED_DELAY": "50",
            "AMQ_SCHEDULED_PERIOD": "100",
            "AMQ_SCHEDULED_REPEAT": "2",
        },
    )
    start = time.monotonic()
    got = consumer.get_many(3)
    elapsed = time.monotonic() - start
    assert [m.body for m in got] == ["tick"] * 3
    assert len({m.headers["message-id"] for m in got}) == 3
    assert elapsed >= 0.24, elapsed  # 50 + 100 + 100 ms
    assert consumer.nothing_more(wait=0.3)


def test_cron(clients: Any, broker: ThreadedBroker) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/cron", id="s", ack="auto")
    producer = clients()
    producer.conn.send(
        "/queue/cron", "c", headers={"AMQ_SCHEDULED_CRON": "*/5 * * * *", "receipt": "r"}
    )
    producer.wait_receipt("r")
    scheduler = broker.call(lambda: broker.server.broker.features.scheduler)  # type: ignore[union-attr]
    (job,) = broker.call(scheduler.jobs)
    assert job.due % (5 * 60_000) == 0 and job.due > time.time() * 1000
    assert consumer.nothing_more()
    # A mock clock at the due time: one delivery, and the job waits for the next.
    first_due = job.due
    broker.call(lambda: scheduler.poll(first_due))
    assert consumer.get().body == "c"
    (job,) = broker.call(scheduler.jobs)
    assert job.due == first_due + 5 * 60_000


def test_bad_schedule_header_gets_an_error(clients: Any) -> None:
    producer = clients()
    producer.conn.send("/queue/x", "y", headers={"AMQ_SCHEDULED_CRON": "not cron"})
    error = producer.error()
    assert "AMQ_SCHEDULED_CRON" in error.headers["message"]
    other = clients()
    other.conn.send("/queue/x", "y", headers={"AMQ_SCHEDULED_DELAY": "soon"})
    assert "AMQ_SCHEDULED_DELAY" in other.error().headers["message"]


def test_scheduled_message_survives_a_restart(restartable: Restartable) -> None:
    restartable.start()
    producer = restartable.client()
    due = time.time() + 1.0
    producer.conn.send(
        "/queue/sched.r",
        "after-restart",
        headers={"persistent": "true", "AMQ_SCHEDULED_DELAY": "1000", "receipt": "r"},
    )
    producer.conn.send(
        "/queue/sched.r",
        "repeating",
        headers={
            "persistent": "true",
            "AMQ_SCHEDULED_PERIOD": "100",
            "AMQ_SCHEDULED_REPEAT": "-1",
            "AMQ_SCHEDULED_DELAY": "60000",
            "receipt": "r2",
        },
    )
    producer.wait_receipt("r")
    producer.wait_receipt("r2")
    restartable.stop()

    restartable.start()
    consumer = restartable.client()
    consumer.conn.subscribe("/queue/sched.r", id="s", ack="auto")
    msg = consumer.get(timeout=5)
    assert msg.body == "after-restart"
    assert time.time() >= due - 0.01
    assert consumer.nothing_more()
    restartable.stop()

    restartable.start()  # fired once, and only once; the other still waits
    broker = restartable.broker
    assert broker is not None
    jobs = broker.call(lambda: broker.server.broker.features.scheduler.jobs())  # type: ignore[union-attr]
    assert [j.message.body for j in jobs] == [b"repeating"]
    consumer = restartable.client()
    consumer.conn.subscribe("/queue/sched.r", id="s", ack="auto")
    assert consumer.nothing_more()
