"""The kill -9 crash cycle: shared by tests/e2e/test_crash.py and bench/soak_crash.py.

Each cycle starts a broker on the same data directory, runs a producer (a
RECEIPT for every persistent SEND) and, two cycles in three, a consumer
(client-individual ACKs, each with a RECEIPT) against it, and kills it with
SIGKILL at a random moment. A final drain then checks the books:

- every message whose SEND receipt the producer got is still in the broker at
  the end, unless the consumer sent an ACK for it;
- no message whose ACK receipt the consumer got is ever delivered again;
- nothing is delivered that was never sent.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ferrymq.protocol.stomp import Frame
from ferrymq.testing.brokers import BrokerProcess
from ferrymq.testing.wire import WireClient

__all__ = ["CrashReport", "Ledger", "crash_cycle", "drain", "final_check", "run_crash_cycles"]

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
        subscribe = {
            "destination": QUEUE,
            "id": "s",
            "ack": "client-individual",
            "activemq.prefetchSize": "50",
        }
        client.send_many([("SUBSCRIBE", b"", subscribe)])
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


def crash_cycle(args: Sequence[str], ledger: Ledger, *, consumer: bool, crash_after: float) -> None:
    """Start a broker, load it, SIGKILL it after ``crash_after`` seconds."""
    proc = BrokerProcess(args).start()
    stop = threading.Event()
    threads = [threading.Thread(target=produce, args=(proc.stomp_port, ledger, stop))]
    if consumer:
        threads.append(threading.Thread(target=consume, args=(proc.stomp_port, ledger, stop)))
    for t in threads:
        t.start()
    time.sleep(crash_after)  # the random moment of the crash, not a wait
    proc.kill()
    stop.set()
    for t in threads:
        t.join(10)
        if t.is_alive():
            raise AssertionError(f"{t.name} did not stop within 10 s of the kill")


def drain(client: WireClient, destination: str, *, max_round_trips: int = 1000) -> list[Frame]:
    """Subscribe (ack auto) and collect until a round trip brings no message."""
    client.send("SUBSCRIBE", destination=destination, id=f"drain:{destination}", ack="auto")
    got: list[Frame] = []
    for round_trip in range(max_round_trips):
        client.send("SEND", b"", destination="/queue/drain-marker", receipt=f"r{round_trip}")
        got_any = False
        while (frame := client.frame()).command != "RECEIPT":
            if frame.command != "MESSAGE":
                raise AssertionError(f"unexpected frame while draining: {frame}")
            got.append(frame)
            got_any = True
        if not got_any:
            return got
    raise AssertionError(f"{destination} still delivering after {max_round_trips} round trips")


def final_check(args: Sequence[str], ledger: Ledger) -> list[str]:
    """Drain what is left and check the books; the list of problems (empty: all good)."""
    with BrokerProcess(args) as proc:
        client = WireClient(proc.stomp_port)
        client.connect()
        remaining: set[str] = set()
        for frame in drain(client, QUEUE):
            msg_id = frame.body.decode()
            ledger.delivered(msg_id)
            remaining.add(msg_id)
        client.close()
    problems = list(ledger.violations)
    # A message acked without a receipt may be gone or not: both are right.
    lost = ledger.confirmed - ledger.ack_sent - remaining
    if lost:
        problems.append(f"{len(lost)} confirmed messages lost, e.g. {sorted(lost)[:5]}")
    return problems


@dataclass
class CrashReport:
    cycles: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)

    def summary(self) -> dict[str, object]:
        led = self.ledger
        return {
            "cycles": self.cycles,
            "seconds": round(self.seconds, 1),
            "sent": len(led.sent),
            "confirmed": len(led.confirmed),
            "acks_sent": len(led.ack_sent),
            "acks_confirmed": len(led.acked),
            "problems": len(self.problems),
            "ok": not self.problems,
        }


def run_crash_cycles(
    data_dir: str | Path,
    *,
    cycles: int | None = None,
    duration: float | None = None,
    seed: int = 20261122,
    extra_args: Sequence[str] = (),
    on_cycle: Callable[[int, Ledger], None] | None = None,
) -> CrashReport:
    """Crash cycles until ``cycles`` are done or ``duration`` seconds have passed
    (whichever comes first; at least one cycle), then the final check."""
    if cycles is None and duration is None:
        raise ValueError("give cycles, duration or both")
    rng = random.Random(seed)
    report = CrashReport()
    args = ["--stomp", "127.0.0.1:0", "--http", "off", "--data", str(data_dir), *extra_args]
    started = time.monotonic()
    cycle = 0
    while True:
        crash_cycle(
            args, report.ledger, consumer=cycle % 3 != 0, crash_after=rng.uniform(0.05, 0.5)
        )
        cycle += 1
        if report.ledger.violations:
            break  # no point going on: the books are already wrong
        if on_cycle is not None:
            on_cycle(cycle, report.ledger)
        if cycles is not None and cycle >= cycles:
            break
        if duration is not None and time.monotonic() - started >= duration:
            break
    report.cycles = cycle
    report.problems = final_check(args, report.ledger)
    report.seconds = time.monotonic() - started
    return report
