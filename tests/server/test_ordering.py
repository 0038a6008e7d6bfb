"""Priority, message groups, exclusive consumers and sequence numbers, over
real STOMP, including after a restart of a journal-backed broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferrymq.core.queue import Queue
from ferrymq.protocol.stomp import Frame
from ferrymq.testing import ThreadedBroker
from tests.server.conftest import Peer, bodies, journal_broker


def queue_of(broker: ThreadedBroker, name: str) -> Queue:
    assert broker.server is not None
    return broker.server.broker.queues[name]


# -- priority -------------------------------------------------------------------

PRIORITIES = [4, 9, 0, 9, 5, 4, 0, 7]
EXPECTED = [f"p{p}-{i}" for i, p in sorted(enumerate(PRIORITIES), key=lambda x: (-x[1], x[0]))]


def send_prioritized(producer: Peer, queue: str) -> None:
    for i, p in enumerate(PRIORITIES):
        producer.send(queue, f"p{p}-{i}", priority=str(p), persistent="true")


def test_priority_higher_first_fifo_within(peers: Any, broker: ThreadedBroker) -> None:
    producer = peers(broker)
    send_prioritized(producer, "/queue/prio")
    consumer = peers(broker)
    consumer.subscribe("/queue/prio")
    got = [consumer.get() for _ in PRIORITIES]
    assert bodies(got) == EXPECTED
    assert got[0].headers["priority"] == "9"
    # Drained: back on the fast path, plain FIFO again.
    assert not queue_of(broker, "/queue/prio")._ordered
    producer.send("/queue/prio", "after")
    assert bodies([consumer.get()]) == ["after"]


def test_priority_redelivery_goes_back_to_its_priority(peers: Any, broker: ThreadedBroker) -> None:
    producer = peers(broker)
    first = peers(broker)
    first.subscribe("/queue/prio.nack", ack="client-individual", **{"activemq.prefetchSize": "1"})
    producer.send("/queue/prio.nack", "high", priority="8")
    assert bodies([first.get()]) == ["high"]
    producer.send("/queue/prio.nack", "low", priority="1")
    producer.send("/queue/prio.nack", "mid")
    first.leave()  # "high" comes back, ahead of the others
    second = peers(broker)
    second.subscribe("/queue/prio.nack")
    got = [second.get() for _ in range(3)]
    assert bodies(got) == ["high", "mid", "low"]
    assert got[0].headers["redelivered"] == "true"


def test_priority_survives_restart_paged_out(peers: Any, tmp_path: Path) -> None:
    with journal_broker(tmp_path) as b:
        send_prioritized(peers(b), "/queue/prio.restart")
    # A tiny budget: recovered messages stay keys until dispatched.
    with journal_broker(tmp_path, memory_budget=1024) as b:
        queue = queue_of(b, "/queue/prio.restart")
        assert (
            b.call(lambda: sum(isinstance(m, int) for lane in queue._by_priority() for m in lane))
            == 8
        )
        consumer = peers(b)
        consumer.subscribe("/queue/prio.restart")
        assert bodies([consumer.get() for _ in PRIORITIES]) == EXPECTED


# -- message groups ----------------------------------------------------------------


def group_of(frame: Frame) -> str:
    return frame.headers["JMSXGroupID"]


def test_groups_stick_to_one_consumer_and_move_when_it_leaves(
    peers: Any, broker: ThreadedBroker
) -> None:
    c1, c2 = peers(broker), peers(broker)
    for c in (c1, c2):
        c.subscribe("/queue/grp", ack="client-individual")
    producer = peers(broker)
    for i in range(12):
        producer.send("/queue/grp", str(i), JMSXGroupID="ABC"[i % 3])
    got1, got2 = c1.drain(), c2.drain()
    assert len(got1) + len(got2) == 12
    groups1, groups2 = {group_of(f) for f in got1}, {group_of(f) for f in got2}
    assert groups1 and groups2 and not groups1 & groups2
    # Within a group, in order.
    for frames in (got1, got2):
        for g in "ABC":
            nums = [int(f.body) for f in frames if group_of(f) == g]
            assert nums == sorted(nums)

    # c1 leaves without acking: its groups and messages go to c2.
    c1.leave()
    moved = c2.drain()
    assert bodies(moved) == bodies(got1)
    assert all(f.headers["redelivered"] == "true" for f in moved)
    for g in sorted(groups1):
        producer.send("/queue/grp", "later", JMSXGroupID=g)
    assert [group_of(f) for f in c2.drain()] == sorted(groups1)


def test_busy_group_owner_does_not_block_other_groups(peers: Any, broker: ThreadedBroker) -> None:
    c1, c2 = peers(broker), peers(broker)
    for c in (c1, c2):
        c.subscribe("/queue/grp.busy", ack="client-individual", **{"activemq.prefetchSize": "1"})
    producer = peers(broker)
    producer.send("/queue/grp.busy", "a1", JMSXGroupID="A")
    producer.send("/queue/grp.busy", "a2", JMSXGroupID="A")  # waits for A's owner
    producer.send("/queue/grp.busy", "b1", JMSXGroupID="B")  # goes past it
    got1, got2 = c1.drain(), c2.drain()
    assert sorted(bodies(got1 + got2)) == ["a1", "b1"]
    owner_a = c1 if bodies(got1) == ["a1"] else c2
    owner_a.ack(got1[0] if owner_a is c1 else got2[0])
    assert bodies(owner_a.drain()) == ["a2"]


def test_group_seq_minus_one_closes_the_group(peers: Any, broker: ThreadedBroker) -> None:
    consumer = peers(broker)
    consumer.subscribe("/queue/grp.close")
    producer = peers(broker)
    producer.send("/queue/grp.close", "1", JMSXGroupID="G")
    queue = queue_of(broker, "/queue/grp.close")
    assert broker.call(lambda: "G" in queue._groups)
    producer.send("/queue/grp.close", "2", JMSXGroupID="G", JMSXGroupSeq="-1")
    assert bodies(consumer.drain()) == ["1", "2"]
    assert broker.call(lambda: "G" not in queue._groups and not queue._ordered)


def test_groups_after_restart(peers: Any, tmp_path: Path) -> None:
    with journal_broker(tmp_path) as b:
        producer = peers(b)
        for i in range(10):
            producer.send("/queue/grp.restart", str(i), JMSXGroupID="XY"[i % 2], persistent="true")
    with journal_broker(tmp_path) as b:
        assert b.call(lambda: queue_of(b, "/queue/grp.restart")._grouped)
        c1 = peers(b)
        c1.subscribe(
            "/queue/grp.restart", ack="client-individual", **{"activemq.prefetchSize": "1"}
        )
        c2 = peers(b)
        c2.subscribe(
            "/queue/grp.restart", ack="client-individual", **{"activemq.prefetchSize": "1"}
        )
        seen: dict[str, set[int]] = {}
        got: list[str] = []
        for _ in range(5):  # ack one at a time: each group stays with its consumer
            for i, c in enumerate((c1, c2)):
                for f in c.drain():
                    seen.setdefault(group_of(f), set()).add(i)
                    got.append(f.body.decode())
                    c.ack(f)
        assert sorted(got, key=int) == [str(i) for i in range(10)]
        assert set(seen) == {"X", "Y"}
        assert all(len(owners) == 1 for owners in seen.values())


# -- exclusive consumers ----------------------------------------------------------


def test_exclusive_consumer_gets_everything_then_the_next_takes_over(
    peers: Any,
    broker: ThreadedBroker,
) -> None:
    exclusive = {"activemq.exclusive": "true"}
    first, second = peers(broker), peers(broker)
    first.subscribe("/queue/excl", ack="client-individual", **exclusive)
    second.subscribe("/queue/excl", ack="client-individual", **exclusive)
    plain = peers(broker)
    plain.subscribe("/queue/excl")
    producer = peers(broker)
    for i in range(6):
        producer.send("/queue/excl", str(i))
    got = first.drain()
    assert bodies(got) == [str(i) for i in range(6)]
    assert second.drain() == [] and plain.drain() == []
    first.ack(got[0])
    first.leave()  # the five unacked go to the next exclusive consumer, in order
    assert bodies(second.drain()) == [str(i) for i in range(1, 6)]
    producer.send("/queue/excl", "6")
    assert bodies(second.drain()) == ["6"] and plain.drain() == []
    second.leave()  # no exclusive consumer left: the plain one gets them
    producer.send("/queue/excl", "7")
    assert bodies(plain.drain())[-1] == "7"


# -- sequence numbers ----------------------------------------------------------------


def seqs(frames: list[Frame]) -> list[int]:
    return [int(f.headers["ferrymq-seq"]) for f in frames]


def test_sequence_numbers_per_queue_continue_after_restart(peers: Any, tmp_path: Path) -> None:
    with journal_broker(tmp_path) as b:
        producer = peers(b)
        consumer = peers(b)
        consumer.subscribe("/queue/seq.a", ack="client-individual")
        for i in range(3):
            producer.send("/queue/seq.a", str(i), persistent="true")
            producer.send("/queue/seq.b", str(i), persistent="true")
        got = consumer.drain()
        assert seqs(got) == [1, 2, 3]
        for f in got:  # /queue/seq.a drains completely: its number lives in a mark
            consumer.ack(f)
    with journal_broker(tmp_path) as b:
        producer = peers(b)
        producer.send("/queue/seq.a", "3", persistent="true")
        producer.send("/queue/seq.b", "3", persistent="true")
        a, bq = peers(b), peers(b)
        a.subscribe("/queue/seq.a")
        bq.subscribe("/queue/seq.b")
        assert seqs(a.drain()) == [4]
        assert seqs(bq.drain()) == [1, 2, 3, 4]  # b kept its messages, numbers too


def test_sequence_numbers_with_priorities_let_consumers_reorder(
    peers: Any, broker: ThreadedBroker
) -> None:
    producer = peers(broker)
    for i, p in enumerate([1, 9, 5]):
        producer.send("/queue/seq.prio", str(i), priority=str(p))
    consumer = peers(broker)
    consumer.subscribe("/queue/seq.prio")
    got = consumer.drain()
    assert seqs(got) == [2, 3, 1]
    assert [f.body for f in sorted(got, key=lambda f: int(f.headers["ferrymq-seq"]))] == [
        b"0",
        b"1",
        b"2",
    ]
