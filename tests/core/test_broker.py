"""The core broker model, driven directly (no protocol, no I/O)."""

from __future__ import annotations

import pytest

from ferrymq.core import AckMode, Broker, BrokerError, Consumer, Destination, Message
from ferrymq.core.errors import AckError, InvalidDestination, SubscriptionError, TransactionError
from ferrymq.core.message import MESSAGE_OVERHEAD as OH
from ferrymq.store import AddMessage, MemoryStore, RemoveMessage


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, Message]] = []

    def deliver(self, consumer: Consumer, message: Message) -> None:
        self.got.append((consumer.id, message))

    def bodies(self, sub: str | None = None) -> list[bytes]:
        return [m.body for s, m in self.got if sub is None or s == sub]


Q = Destination.parse("/queue/orders")
T = Destination.parse("/topic/prices.eu")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def broker(store: MemoryStore) -> Broker:
    return Broker(store, node_name="test")


def connect(broker: Broker, client_id: str | None = None) -> tuple[Sink, object]:
    sink = Sink()
    return sink, broker.connect(sink, client_id=client_id)


def test_queue_fifo_to_one_consumer(broker: Broker) -> None:
    sink, c = connect(broker)
    _, p = connect(broker)
    for i in range(5):
        p.send(Q, {}, b"%d" % i)
    c.subscribe("s", Q)
    assert sink.bodies() == [b"0", b"1", b"2", b"3", b"4"]


def test_competing_consumers_round_robin(broker: Broker) -> None:
    s1, c1 = connect(broker)
    s2, c2 = connect(broker)
    c1.subscribe("a", Q)
    c2.subscribe("b", Q)
    _, p = connect(broker)
    for i in range(6):
        p.send(Q, {}, b"%d" % i)
    assert s1.bodies() == [b"0", b"2", b"4"]
    assert s2.bodies() == [b"1", b"3", b"5"]


def test_prefetch_limits_unacked(broker: Broker) -> None:
    sink, c = connect(broker)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL, prefetch=2)
    _, p = connect(broker)
    for i in range(5):
        p.send(Q, {}, b"%d" % i)
    assert sink.bodies() == [b"0", b"1"]
    c.ack(consumer, sink.got[0][1].id)
    assert sink.bodies() == [b"0", b"1", b"2"]


def test_cumulative_client_ack(broker: Broker) -> None:
    sink, c = connect(broker)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT, prefetch=10)
    _, p = connect(broker)
    for i in range(4):
        p.send(Q, {}, b"%d" % i)
    c.ack(consumer, sink.got[2][1].id)
    assert [m.body for m in consumer.unacked.values()] == [b"3"]


def test_unacked_redelivered_to_other_consumer_on_close(broker: Broker) -> None:
    _s1, c1 = connect(broker)
    c1.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    _, p = connect(broker)
    p.send(Q, {}, b"x")
    s2, c2 = connect(broker)
    c2.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    assert s2.got == []
    c1.close()
    assert [(m.body, m.redelivered) for _, m in s2.got] == [(b"x", True)]


def test_nack_requeues_with_redelivered(broker: Broker) -> None:
    sink, c = connect(broker)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    _, p = connect(broker)
    p.send(Q, {}, b"x")
    first = sink.got[0][1]
    c.nack(consumer, first.id)
    assert len(sink.got) == 2
    assert sink.got[1][1].redelivered and sink.got[1][1].delivery_count == 1


def test_ack_unknown_id_is_refused(broker: Broker) -> None:
    _, c = connect(broker)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    with pytest.raises(AckError, match="nope"):
        c.ack(consumer, "nope")


def test_topic_fanout_and_wildcards(broker: Broker) -> None:
    sinks = []
    for pattern in ("/topic/prices.eu", "/topic/prices.*", "/topic/prices.>", "/topic/other"):
        sink, c = connect(broker)
        c.subscribe("s", Destination.parse(pattern))
        sinks.append(sink)
    _, p = connect(broker)
    p.send(T, {}, b"1")
    assert [s.bodies() for s in sinks] == [[b"1"], [b"1"], [b"1"], []]


def test_hash_is_accepted_as_multi_segment_wildcard(broker: Broker) -> None:
    sink, c = connect(broker)
    c.subscribe("s", Destination.parse("/topic/a.#"))
    _, p = connect(broker)
    p.send(Destination.parse("/topic/a.b.c"), {}, b"x")
    assert sink.bodies() == [b"x"]


def test_topic_without_subscribers_drops(broker: Broker) -> None:
    _, p = connect(broker)
    p.send(T, {}, b"lost")
    sink, c = connect(broker)
    c.subscribe("s", T)
    assert sink.got == []


def test_topic_copies_have_independent_redelivery_state(broker: Broker) -> None:
    s1, c1 = connect(broker)
    s2, c2 = connect(broker)
    k1 = c1.subscribe("s", T, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    c2.subscribe("s", T, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    _, p = connect(broker)
    p.send(T, {}, b"x")
    c1.nack(k1, s1.got[0][1].id)
    assert s1.got[-1][1].redelivered
    assert not s2.got[0][1].redelivered


def test_durable_subscription_collects_while_offline(broker: Broker) -> None:
    _sink, c = connect(broker, client_id="app")
    c.subscribe("s", T, durable_name="audit")
    c.close()
    _, p = connect(broker)
    p.send(T, {}, b"while-away")
    sink2, c2 = connect(broker, client_id="app")
    c2.subscribe("s2", T, durable_name="audit")
    assert sink2.bodies() == [b"while-away"]


def test_durable_subscription_needs_client_id(broker: Broker) -> None:
    _, c = connect(broker)
    with pytest.raises(SubscriptionError, match="client-id"):
        c.subscribe("s", T, durable_name="audit")


def test_duplicate_client_id_refused(broker: Broker) -> None:
    connect(broker, client_id="app")
    with pytest.raises(BrokerError, match="already connected"):
        connect(broker, client_id="app")


def test_remove_durable_subscription(broker: Broker) -> None:
    _, c = connect(broker, client_id="app")
    c.subscribe("s", T, durable_name="audit")
    c.unsubscribe("s", remove_durable=True)
    assert broker.durable_subscriptions == {}


def test_transaction_commit_and_abort(broker: Broker) -> None:
    sink, c = connect(broker)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    _, p = connect(broker)
    p.begin("t1")
    p.send(Q, {}, b"a", transaction="t1")
    assert sink.got == []
    p.commit("t1")
    assert sink.bodies() == [b"a"]
    p.begin("t2")
    p.send(Q, {}, b"b", transaction="t2")
    p.abort("t2")
    assert sink.bodies() == [b"a"]
    c.begin("t3")
    c.ack(consumer, sink.got[0][1].id, transaction="t3")
    c.abort("t3")
    assert list(consumer.unacked) == [sink.got[0][1].id]
    c.begin("t4")
    c.ack(consumer, sink.got[0][1].id, transaction="t4")
    c.commit("t4")
    assert consumer.unacked == {}


def test_unknown_and_duplicate_transactions(broker: Broker) -> None:
    _, c = connect(broker)
    with pytest.raises(TransactionError):
        c.commit("nope")
    c.begin("t")
    with pytest.raises(TransactionError):
        c.begin("t")
    with pytest.raises(TransactionError):
        c.send(Q, {}, b"", transaction="other")


def test_open_transaction_aborted_on_close(broker: Broker) -> None:
    sink, c = connect(broker)
    c.subscribe("s", Q)
    _, p = connect(broker)
    p.begin("t")
    p.send(Q, {}, b"never", transaction="t")
    p.close()
    assert sink.got == []


def test_backpressure_pauses_dispatch(broker: Broker) -> None:
    sink, c = connect(broker)
    c.subscribe("s", Q)
    c.set_writable(False)
    _, p = connect(broker)
    p.send(Q, {}, b"x")
    assert sink.got == []
    c.set_writable(True)
    assert sink.bodies() == [b"x"]


def test_persistent_messages_reach_the_store(broker: Broker, store: MemoryStore) -> None:
    sink, c = connect(broker)
    consumer = c.subscribe("s", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    _, p = connect(broker)
    p.send(Q, {}, b"keep", persistent=True)
    p.send(Q, {}, b"volatile")
    assert [m.body for m in store.messages["/queue/orders"].values()] == [b"keep"]
    c.ack(consumer, sink.got[0][1].id)
    assert store.messages["/queue/orders"] == {}


def test_transaction_is_one_store_append(broker: Broker, store: MemoryStore) -> None:
    _, p = connect(broker)
    p.send(Q, {}, b"create", persistent=False)  # creates the queue
    before = store.appends
    p.begin("t")
    for i in range(3):
        p.send(Q, {}, b"%d" % i, persistent=True, transaction="t")
    assert store.appends == before
    p.commit("t")
    assert store.appends == before + 1


def test_records_are_atomic_per_operation() -> None:
    recorded: list[list[object]] = []

    class Recording(MemoryStore):
        def append(self, records):  # type: ignore[no-untyped-def]
            recorded.append(list(records))
            super().append(records)

    broker = Broker(Recording())
    _, c = connect(broker)
    c.subscribe("s", Q)  # auto ack
    _, p = connect(broker)
    p.send(Q, {}, b"x", persistent=True)
    kinds = [type(r) for r in recorded[-1]]
    assert kinds == [AddMessage, RemoveMessage]


def test_temp_queue_deleted_with_owner(broker: Broker) -> None:
    sink, owner = connect(broker)
    dest = broker.temp_destination(owner, Destination.parse("/temp-queue/r").kind, "r")
    owner.subscribe("s", dest)
    _, other = connect(broker)
    other.send(dest, {}, b"reply")
    assert sink.bodies() == [b"reply"]
    owner.close()
    other.send(dest, {}, b"late")  # dropped, not an error
    assert str(dest) not in broker.queues


@pytest.mark.parametrize(
    "text",
    ["/queue/", "/bogus/x", "queue/x", "/queue/a..b", "/topic/a.>.b", "/queue/a b", "/topic/a*"],
)
def test_invalid_destinations(text: str) -> None:
    with pytest.raises(InvalidDestination):
        Destination.parse(text)


def test_cannot_send_to_wildcard(broker: Broker) -> None:
    _, p = connect(broker)
    with pytest.raises(InvalidDestination, match="wildcard"):
        p.send(Destination.parse("/topic/a.*"), {}, b"")


def test_duplicate_subscription_id(broker: Broker) -> None:
    _, c = connect(broker)
    c.subscribe("s", Q)
    with pytest.raises(SubscriptionError, match="already in use"):
        c.subscribe("s", Q)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("/topic/>", [b"x", b"y"]), ("/topic/*.eu", [b"x"]), ("/topic/prices.>", [b"x"])],
)
def test_wildcards_at_the_start_of_a_name(
    broker: Broker, pattern: str, expected: list[bytes]
) -> None:
    sink, c = connect(broker)
    c.subscribe("s", Destination.parse(pattern))
    _, p = connect(broker)
    p.send(T, {}, b"x")
    p.send(Destination.parse("/topic/other.us"), {}, b"y")
    assert sink.bodies() == expected


def test_temp_topic_does_not_match_topic_wildcards(broker: Broker) -> None:
    sink, c = connect(broker)
    c.subscribe("s", Destination.parse("/topic/>"))
    _, p = connect(broker)
    temp = broker.temp_destination(p, Destination.parse("/temp-topic/x").kind, "x")
    p.send(temp, {}, b"no")
    assert sink.got == []


def test_memory_meter_returns_to_zero_on_every_exit_path(broker: Broker) -> None:
    sink, c = connect(broker, client_id="m")
    k = c.subscribe("q", Q, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    c.subscribe("t", T, ack_mode=AckMode.CLIENT_INDIVIDUAL)
    c.subscribe("d", Destination.parse("/topic/d"), durable_name="dur")
    _, p = connect(broker)
    p.send(Q, {}, b"12345")
    p.send(T, {}, b"123")
    p.send(Destination.parse("/topic/d"), {}, b"1")
    assert broker.memory.used == 8 + 2 * OH  # the durable subscription auto-acked its byte
    c.nack(k, sink.got[0][1].id)  # requeued: still held
    assert broker.memory.used == 8 + 2 * OH
    redelivered = [m for sub, m in sink.got if sub == "q"][-1]
    c.ack(k, redelivered.id)
    assert broker.memory.used == 3 + OH
    c.close()  # the plain topic subscription goes, its unacked message with it
    assert broker.memory.used == 0
    p.send(Destination.parse("/topic/d"), {}, b"22")  # durable, offline: held
    assert broker.memory.used == 2 + OH
    p.close()
    _, c2 = connect(broker, client_id="m")
    c2.subscribe("d", Destination.parse("/topic/d"), durable_name="dur")
    assert broker.memory.used == 0
