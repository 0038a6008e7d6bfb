"""The failover client against real brokers killed with SIGKILL: a shared-fs
master/slave pair (the heart of issue 4), one broker killed and restarted on
the same data directory and port, and two independent brokers.

What must hold: every message the client got a RECEIPT for is in the store
afterwards, the producer's order holds, and with one store (dedup-ids are
kept with it) there are no duplicates at all.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path

import pytest

import ferrymq.client
from ferrymq.testing import BrokerProcess
from ferrymq.testing.ha import SharedFsPair

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COUNT = int(os.environ.get("FAILOVER_MESSAGES", "2000"))
QUEUE = "/queue/failover"
FAST = "initialReconnectDelay=10&maxReconnectDelay=200&randomize=false"


def broker_on(data: Path, port: int = 0) -> BrokerProcess:
    """A broker on `data` (not started: `with` starts it, or call start())."""
    args = ["--stomp", f"127.0.0.1:{port}", "--http", "off", "--data", str(data)]
    return BrokerProcess(args)


class Progress:
    """Counts confirmed sends; lets another thread wait for a count."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.confirmed: set[int] = set()

    def confirm(self, seq: int) -> None:
        with self.cond:
            self.confirmed.add(seq)
            self.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.confirmed) >= count, timeout), (
                f"only {len(self.confirmed)} of {count} sends confirmed within {timeout} s"
            )


def produce(client: ferrymq.client.Client, progress: Progress) -> None:
    for seq in range(COUNT):
        future = client.send(QUEUE, str(seq), {"seq": str(seq)}, wait=False)
        future.add_done_callback(lambda f, seq=seq: f.exception() is None and progress.confirm(seq))
    client.flush()


def drain(port: int) -> list[int]:
    """Every message in the queue, in queue order: read up to a marker sent last."""
    with ferrymq.client.connect(f"stomp://127.0.0.1:{port}") as consumer:
        consumer.send(QUEUE, "end", {"seq": "end"})
        seqs: list[int] = []
        sub = consumer.subscribe(QUEUE, ack="client-individual")
        while (message := sub.get(timeout=30)).headers["seq"] != "end":
            seqs.append(int(message.headers["seq"]))
            consumer.ack(message)
        consumer.ack(message)
        return seqs


def check(seqs: list[int], confirmed: set[int], resent: int, *, strict: bool) -> None:
    lost = confirmed - set(seqs)
    assert not lost, f"{len(lost)} receipted messages lost, e.g. {sorted(lost)[:5]}"
    assert set(seqs) <= set(range(COUNT)), "delivered a message never sent"
    firsts = list(dict.fromkeys(seqs))
    assert firsts == sorted(firsts), "per-producer order broken"
    duplicates = len(seqs) - len(firsts)
    if strict:
        assert duplicates == 0, f"{duplicates} duplicates despite dedup-id"
    else:
        assert duplicates <= resent, f"{duplicates} duplicates but only {resent} resends"


def test_producer_survives_three_sigkills_on_one_store(tmp_path: Path) -> None:
    strict = True  # resends carry their dedup-id: the broker drops the copies
    broker = broker_on(tmp_path).start()
    port = broker.stomp_port
    progress = Progress()
    events: list[str] = []
    client = ferrymq.client.connect(
        f"failover:(stomp://127.0.0.1:{port})?{FAST}",
        window=200,
        heartbeat=(1000, 1000),
        on_event=lambda e: events.append(e.kind),
    )
    producer = threading.Thread(target=produce, args=(client, progress))
    try:
        producer.start()
        for kill in range(1, 4):
            progress.wait_for(COUNT * kill // 4)
            broker.kill()  # SIGKILL: no goodbye, whatever is unsynced is gone
            broker = broker_on(tmp_path, port).start()
        producer.join(120)
        assert not producer.is_alive(), "the producer did not finish"
        stats = client.statistics()
    finally:
        client.close()
        broker.kill()
    assert progress.confirmed == set(range(COUNT))  # timeout=-1: every send got through
    assert events.count("disconnected") == 3 and stats.connections == 4
    with broker_on(tmp_path, port) as final:
        seqs = drain(final.stomp_port)
    check(seqs, progress.confirmed, stats.sends_resent, strict=strict)


def test_producer_moves_to_a_second_broker(tmp_path: Path) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a, b = broker_on(a_dir).start(), broker_on(b_dir).start()
    a_port = a.stomp_port
    progress = Progress()
    client = ferrymq.client.connect(
        f"failover:(stomp://127.0.0.1:{a_port},stomp://127.0.0.1:{b.stomp_port})?{FAST}",
        window=200,
    )
    producer = threading.Thread(target=produce, args=(client, progress))
    try:
        producer.start()
        progress.wait_for(COUNT // 3)
        a.kill()
        producer.join(120)
        assert not producer.is_alive(), "the producer did not finish"
        stats = client.statistics()
        assert stats.connected_to is not None and stats.connected_to.port == b.stomp_port
    finally:
        client.close()
        a.kill()
    try:
        with broker_on(a_dir, a_port) as a_again:
            on_a, on_b = drain(a_again.stomp_port), drain(b.stomp_port)
    finally:
        b.kill()
    assert on_a and on_b
    # Each broker holds one stretch of the sequence; together, every receipt.
    check(sorted(set(on_a)) + [s for s in on_b if s not in set(on_a)],
          progress.confirmed, stats.sends_resent, strict=False)  # fmt: skip
    assert list(dict.fromkeys(on_b)) == sorted(set(on_b))


HA_COUNT = int(os.environ.get("HA_FAILOVER_MESSAGES", "20000"))


def test_exactly_once_through_three_master_kills(tmp_path: Path) -> None:
    """Producer and consumer on the failover client, a shared-fs pair, the
    master SIGKILLed three times mid-run (each killed node restarted as the
    new slave): the consumer gets every message exactly once, in order."""
    pair = SharedFsPair(tmp_path / "shared", poll_ms=100)
    try:
        pair.start(0)
        pair.start(1)
        pair.master()
        uri = "failover:({})?{}".format(
            ",".join(f"stomp://127.0.0.1:{p}" for p in pair.ports), FAST
        )
        received: list[int] = []
        done = threading.Event()
        consumer = ferrymq.client.connect(uri, heartbeat=(1000, 1000))

        details: list[tuple[int, str]] = []  # (seq, message-id): to diagnose duplicates

        def on_message(message: ferrymq.client.Message) -> None:
            received.append(int(message.headers["seq"]))
            details.append((int(message.headers["seq"]), message.message_id))
            consumer.ack(message)
            if len(received) >= HA_COUNT:
                done.set()

        consumer.subscribe("/queue/ha-exactly-once", on_message, ack="client-individual")
        producer = ferrymq.client.connect(uri, window=500, heartbeat=(1000, 1000))
        progress = Progress()

        def produce() -> None:
            for seq in range(HA_COUNT):
                fut = producer.send(
                    "/queue/ha-exactly-once", str(seq), {"seq": str(seq)}, wait=False
                )
                fut.add_done_callback(
                    lambda f, seq=seq: f.exception() is None and progress.confirm(seq)
                )
            producer.flush()

        thread = threading.Thread(target=produce)
        thread.start()
        paused: list[float] = []
        for kill in range(1, 4):
            progress.wait_for(HA_COUNT * kill // 4, timeout=120)
            before = len(progress.confirmed)
            killed = time.monotonic()
            pair.kill_master_and_restart_as_slave()
            with progress.cond:
                progress.cond.wait_for(lambda b=before: len(progress.confirmed) > b, 30)
            paused.append(time.monotonic() - killed)
        thread.join(180)
        assert not thread.is_alive(), "the producer did not finish"
        assert done.wait(120), f"consumer got {len(received)} of {HA_COUNT}"
        assert progress.confirmed == set(range(HA_COUNT))
        producer.close()
        consumer.close()
        dups = [k for k, v in collections.Counter(received).items() if v > 1]
        assert len(received) == HA_COUNT, [d for d in details if d[0] in dups]
        assert received == list(range(HA_COUNT)), "lost or out of order"
        print(f"client-observed pause after each kill: {[round(p, 3) for p in paused]} s")
    finally:
        pair.stop()
