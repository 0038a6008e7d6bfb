"""Selectors through stomp.py over real TCP."""

from __future__ import annotations

from typing import Any


def test_two_consumers_with_selectors_share_a_queue(clients: Any) -> None:
    red, blue = clients(), clients()
    red.conn.subscribe("/queue/paint", id="r", ack="auto", headers={"selector": "color = 'red'"})
    blue.conn.subscribe(
        "/queue/paint", id="b", ack="auto", headers={"selector": "color IN ('blue') AND n < 100"}
    )
    red.sync()
    blue.sync()
    producer = clients()
    for i in range(10):
        producer.conn.send(
            "/queue/paint", str(i), headers={"color": "red" if i % 2 else "blue", "n": str(i)}
        )
    assert [m.body for m in red.get_many(5)] == ["1", "3", "5", "7", "9"]
    assert [m.body for m in blue.get_many(5)] == ["0", "2", "4", "6", "8"]
    assert red.nothing_more() and blue.nothing_more()


def test_topic_subscriber_with_selector(clients: Any) -> None:
    cheap, everything = clients(), clients()
    cheap.conn.subscribe("/topic/px", id="c", ack="auto", headers={"selector": "price < 10.5"})
    everything.conn.subscribe("/topic/px", id="e", ack="auto")
    cheap.sync()
    everything.sync()
    producer = clients()
    for price in ("3", "30", "10"):
        producer.conn.send("/topic/px", price, headers={"price": price})
    assert [m.body for m in everything.get_many(3)] == ["3", "30", "10"]
    assert [m.body for m in cheap.get_many(2)] == ["3", "10"]
    assert cheap.nothing_more()


def test_bad_selector_gets_an_error_naming_the_position(clients: Any) -> None:
    client = clients()
    client.conn.subscribe(
        "/queue/x", id="s", headers={"selector": "color = 'red' AND", "receipt": "r1"}
    )
    error = client.error()
    assert error.headers["message"] == (
        "invalid selector at position 18: expected an expression, got end of selector"
    )
    assert error.headers["receipt-id"] == "r1"


def test_selector_with_priorities_takes_the_ordered_path(clients: Any) -> None:
    """Priorities switch a queue to ordered dispatch: selectors still hold
    there, and each consumer gets its matches highest priority first."""
    producer = clients()
    for i, (color, prio) in enumerate(
        [("red", 1), ("blue", 9), ("red", 9), ("blue", 1), ("red", 5), ("blue", 5)]
    ):
        producer.conn.send(
            "/queue/prio-paint", str(i), headers={"color": color, "priority": str(prio)}
        )
    producer.sync()
    red, blue = clients(), clients()
    red.conn.subscribe(
        "/queue/prio-paint", id="r", ack="auto", headers={"selector": "color = 'red'"}
    )
    assert [m.body for m in red.get_many(3)] == ["2", "4", "0"]  # 9, 5, 1
    blue.conn.subscribe(
        "/queue/prio-paint", id="b", ack="auto", headers={"selector": "color = 'blue'"}
    )
    assert [m.body for m in blue.get_many(3)] == ["1", "5", "3"]
    assert red.nothing_more() and blue.nothing_more()
