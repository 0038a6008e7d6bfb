"""Selectors in the broker: queue dispatch, topic fan-out, paged-out
messages, durable subscriptions across a restart. Driven directly (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferrymq.core import AckMode, Broker, Consumer, Destination, Message
from ferrymq.core.queue import Queue
from ferrymq.core.selector import SelectorError
from ferrymq.store import MemoryStore
from ferrymq.store.journal_store import JournalStore

Q = Destination.parse("/queue/orders")
T = Destination.parse("/topic/prices")


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, Message]] = []

    def deliver(self, consumer: Consumer, message: Message) -> None:
        self.got.append((consumer.id, message))

    def ns(self, sub: str | None = None) -> list[str]:
        return [m.headers["n"] for s, m in self.got if sub is None or s == sub]


@pytest.fixture
def broker() -> Broker:
    return Broker(MemoryStore(), node_name="t")


def send(broker: Broker, dest: Destination, n: int, **headers: str) -> None:
    broker.connect(Sink()).send(dest, {"n": str(n), **headers}, b"x")


def test_each_consumer_gets_only_what_its_selector_matches(broker: Broker) -> None:
    sink = Sink()
    c = broker.connect(sink)
    c.subscribe("red", Q, selector="color = 'red'")
    c.subscribe("blue", Q, selector="color = 'blue'")
    for i, color in enumerate(["red", "blue", "blue", "green", "red", "blue"]):
        send(broker, Q, i, color=color)
    assert sink.ns("red") == ["0", "4"]
    assert sink.ns("blue") == ["1", "2", "5"]
    assert [m.headers["n"] for m in broker.queues["/queue/orders"].messages] == ["3"]  # type: ignore[union-attr]


def test_unmatched_messages_wait_and_keep_their_order(broker: Broker) -> None:
    for i in range(6):
        send(broker, Q, i, kind="a" if i % 2 else "b")
    sink = Sink()
    c = broker.connect(sink)
    c.subscribe("a", Q, selector="kind = 'a'")
    assert sink.ns() == ["1", "3", "5"]
    c.subscribe("all", Q)  # no selector: takes what is left, in order
    assert sink.ns("all") == ["0", "2", "4"]


def test_credit_returning_rescans_skipped_messages(broker: Broker) -> None:
    sink = Sink()
    c = broker.connect(sink)
    sel = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL, prefetch=1, selector="n > 0")
    for i in range(4):
        send(broker, Q, i)
    assert sink.ns() == ["1"]
    c.ack(sel, sink.got[-1][1].id)
    assert sink.ns() == ["1", "2"]
    c.nack(sel, sink.got[-1][1].id)  # back at the head, redelivered first
    assert sink.ns() == ["1", "2", "2"]
    c.ack(sel, sink.got[-1][1].id)
    assert sink.ns() == ["1", "2", "2", "3"]
    assert [m.headers["n"] for m in broker.queues["/queue/orders"].messages] == ["0"]  # type: ignore[union-attr]


def test_a_stuck_head_does_not_hide_new_matches(broker: Broker) -> None:
    sink = Sink()
    c = broker.connect(sink)
    c.subscribe("s", Q, selector="ok = 'yes'")
    for i in range(50):
        send(broker, Q, i)
    send(broker, Q, 50, ok="yes")
    assert sink.ns() == ["50"]
    assert broker.queues["/queue/orders"].depth == 50


def test_scan_limit_bounds_one_dispatch(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Queue, "scan_limit", 5)
    for i in range(10):
        send(broker, Q, i, ok="yes" if i == 8 else "no")
    sink = Sink()
    c = broker.connect(sink)
    c.subscribe("s", Q, selector="ok = 'yes'")
    assert sink.ns() == []  # 8 is behind more than 5 non-matching messages
    c.subscribe("t", Q, selector="n < 5")  # drains the head...
    assert sink.ns("t") == ["0", "1", "2", "3", "4"]
    send(broker, Q, 10)  # ...and the next dispatch sees 8
    assert sink.ns("s") == ["8"]


def test_topic_filters_at_fan_out(broker: Broker) -> None:
    sink = Sink()
    c = broker.connect(sink)
    c.subscribe("cheap", T, selector="price < 10")
    c.subscribe("all", T)
    for i, price in enumerate(["5", "50", "7"]):
        send(broker, T, i, price=price)
    assert sink.ns("cheap") == ["0", "2"]
    assert sink.ns("all") == ["0", "1", "2"]
    queue = c.consumer("cheap").queue
    assert queue.stats.enqueued == 2  # the 50 was never copied in


def test_bad_selector_is_refused_before_anything_changes(broker: Broker) -> None:
    c = broker.connect(Sink())
    with pytest.raises(SelectorError, match="position 7"):
        c.subscribe("s", Q, selector="a = 1 b")
    assert c.consumers == {}
    assert broker.router.patterns == []


async def test_paged_out_messages_are_read_back_to_be_tested(tmp_path: Path) -> None:
    broker = Broker(JournalStore(tmp_path), node_name="t", memory_budget=16 * 1024)
    await broker.start()
    p = broker.connect(Sink())
    for i in range(100):
        p.send(Q, {"n": str(i), "odd": str(i % 2)}, b"x" * 1024, persistent=True)
    queue = broker.queues["/queue/orders"]
    assert sum(isinstance(m, int) for m in queue.messages) > 50
    sink = Sink()
    c = broker.connect(sink)
    c.subscribe("odd", Q, selector="odd = 1")
    assert sink.ns() == [str(i) for i in range(1, 100, 2)]
    # The even ones stayed, still in order, and those that were paged out still are.
    assert [queue._read(m).headers["n"] for m in queue.messages] == [
        str(i) for i in range(0, 100, 2)
    ]
    assert sum(isinstance(m, int) for m in queue.messages) > 25
    assert broker.memory.used == sum(m.footprint for m in queue.messages if isinstance(m, Message))
    await broker.stop()


async def test_durable_subscription_keeps_its_selector_across_restart(tmp_path: Path) -> None:
    broker = Broker(JournalStore(tmp_path), node_name="t")
    await broker.start()
    c = broker.connect(Sink(), client_id="app")
    c.subscribe("s", T, durable_name="d", selector="price < 10")
    c.close()
    await broker.stop()

    broker = Broker(JournalStore(tmp_path), node_name="t")
    await broker.start()
    for i, price in enumerate(["5", "50", "7"]):
        broker.connect(Sink()).send(T, {"n": str(i), "price": price}, b"x", persistent=True)
    sink = Sink()
    c = broker.connect(sink, client_id="app")
    c.subscribe("s", T, durable_name="d", selector="price < 10")
    assert sink.ns() == ["0", "2"]
    c.close()
    # Another selector under the same name replaces the subscription (JMS).
    send(broker, T, 3, price="1")
    c = broker.connect(sink, client_id="app")
    c.subscribe("s2", T, durable_name="d", selector="price > 10")
    assert sink.ns("s2") == []
    await broker.stop()
