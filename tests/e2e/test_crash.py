"""Confirmed persistent messages survive SIGKILL of the broker at random moments.

Each cycle starts a broker on the same data directory, runs a producer (a
RECEIPT for every persistent SEND) and a consumer (client-individual ACKs,
each with a RECEIPT) against it, and kills it with SIGKILL at a random moment.
Across all cycles and a final drain:
- every message whose SEND receipt the producer got is still in the broker at
  the end, unless the consumer sent an ACK for it;
- no message whose ACK receipt the consumer got is ever delivered again;
- nothing is delivered that was never sent.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from ferrymq.testing import BrokerProcess
from ferrymq.testing.wire import WireClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CYCLES = int(os.environ.get("CRASH_CYCLES", "20"))
QUEUE = "/queue/crash"


class Ledger:
    """What each side was told by the broker, shared by the threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: set[str] = set()
        self.confirmed: set[str] = set()
        self.acked: set[str] = set()  # ACK sent and its RECEIPT received
        self.ack_sent: set[str] = set()  # ACK sent (it may or may not have been stored)
        self.violations: list[str] = []
        self.next_id = 0

    def new_ids(self, n: int) -> list[str]:
        with self.lock:
            ids = [f"m{self.next_id + i}" for i in range(n)]
            self.next_id += n
            self.sent.update(ids)
            return ids

    def delivered(self, msg_id: str) -> None:
        with self.lock:
            if msg_id not in self.sent:
                self.violations.append(f"{msg_id} delivered but never sent")
            if msg_id in self.acked:
                self.violations.append(f"{msg_id} delivered again after its ack was confirmed")


def produce(port: int, ledger: Ledger, stop: threading.Event) -> None:
    try:
        client = WireClient(port)
    except OSError:
        return
    try:
        client.connect()
        while not stop.is_set():
            ids = ledger.new_ids(20)
            client.send_many(
                [
                    ("SEND", i.encode(), {"destination": QUEUE, "persistent": "true", "receipt": i})
                    for i in ids
                ]
            )
            waiting = set(ids)
            while waiting:
                frame = client.frame()
                if frame.command == "RECEIPT":
                    rid = frame.headers["receipt-id"]
                    waiting.discard(rid)
                    with ledger.lock:
                        ledger.confirmed.add(rid)
    except (OSError, ConnectionError):
        return  # the broker was killed
    finally:
        client.close()


def consume(port: int, ledger: Ledger, stop: threading.Event) -> None:
    try:
        client = WireClient(port)
    except OSError:
        return
    try:
        client.connect()
        client.send(
            "SUBSCRIBE",
            destination=QUEUE,
            id="s",
            ack="client-individual",
            **{"activemq.prefetchSize": "50"},
        )
        while True:
            frame = client.frame()
            if frame.command == "MESSAGE":
                msg_id = frame.body.decode()
                ledger.delivered(msg_id)
                with ledger.lock:
                    ledger.ack_sent.add(msg_id)
                client.send("ACK", id=frame.headers["ack"], receipt=f"ack:{msg_id}")
            elif frame.command == "RECEIPT":
                with ledger.lock:
                    ledger.acked.add(frame.headers["receipt-id"][4:])
            if stop.is_set() and not client.pending:
                return
    except (OSError, ConnectionError):
        return
    finally:
        client.close()


def test_kill_minus_nine_loses_no_confirmed_message(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    ledger = Ledger()
    args = ["--stomp", "127.0.0.1:0", "--http", "off", "--data", str(tmp_path)]
    for cycle in range(CYCLES):
        proc = BrokerProcess(args).start()
        stop = threading.Event()
        threads = [threading.Thread(target=produce, args=(proc.stomp_port, ledger, stop))]
        if cycle % 3:
            # Every third cycle has no consumer, so a backlog builds up to recover.
            threads.append(threading.Thread(target=consume, args=(proc.stomp_port, ledger, stop)))
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.5))  # the random moment of the crash, not a wait
        proc.kill()
        stop.set()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
        assert not ledger.violations, ledger.violations[:5]

    # Drain what is left and check the books.
    with BrokerProcess(args) as proc:
        client = WireClient(proc.stomp_port)
        client.connect()
        client.send("SUBSCRIBE", destination=QUEUE, id="d", ack="auto")
        # Round trips until one brings no message: the queue is drained.
        remaining: set[str] = set()
        for round_trip in range(1000):
            client.send("SEND", b"", destination="/queue/drain-marker", receipt=f"r{round_trip}")
            got_any = False
            while (frame := client.frame()).command != "RECEIPT":
                assert frame.command == "MESSAGE", frame
                msg_id = frame.body.decode()
                ledger.delivered(msg_id)
                remaining.add(msg_id)
                got_any = True
            if not got_any:
                break
        client.close()
    assert not ledger.violations, ledger.violations[:5]
    # A message acked without a receipt may be gone or not: both are right.
    lost = ledger.confirmed - ledger.ack_sent - remaining
    assert not lost, f"{len(lost)} confirmed messages lost, e.g. {sorted(lost)[:5]}"
    assert len(ledger.confirmed) > 100, "the test produced too little to mean anything"
