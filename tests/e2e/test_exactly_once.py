"""Exactly-once processing: a consume-transform-produce worker moves messages
from one queue to another in transactions (ack of the input and send of the
output in one), while the broker is killed with SIGKILL five times."""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path

import pytest

import ferrymq.client
from ferrymq.testing import BrokerProcess
from ferrymq.testing.ha import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COUNT = int(os.environ.get("EXACTLY_ONCE_MESSAGES", "10000"))
KILLS = 5
FAST = "initialReconnectDelay=10&maxReconnectDelay=200&randomize=false"


def broker(data: Path, port: int) -> BrokerProcess:
    return BrokerProcess(["--stomp", f"127.0.0.1:{port}", "--http", "off", "--data", str(data)])


def test_worker_moves_each_message_exactly_once_through_five_kills(tmp_path: Path) -> None:
    port = free_port()
    node = broker(tmp_path, port).start()
    uri = f"failover:(stomp://127.0.0.1:{port})?{FAST}"
    stop = threading.Event()
    try:
        with ferrymq.client.connect(uri, window=1000) as producer:
            for seq in range(COUNT):
                producer.send("/queue/in", str(seq), {"seq": str(seq)}, wait=False)
            producer.flush()

        committed = 0
        rolled_back = 0
        progress = threading.Condition()
        failures: list[BaseException] = []

        def work() -> None:
            nonlocal committed, rolled_back
            try:
                with ferrymq.client.connect(uri, heartbeat=(1000, 1000)) as worker:
                    sub = worker.subscribe("/queue/in", ack="client-individual")
                    while not stop.is_set():
                        try:
                            message = sub.get(timeout=0.5)
                        except TimeoutError:
                            continue
                        try:
                            with worker.transaction() as tx:
                                seq = message.headers["seq"]
                                tx.send("/queue/out", f"done {seq}", {"seq": seq})
                                tx.ack(message)
                        except ferrymq.client.TransactionRolledBack:
                            rolled_back += 1  # the input comes again
                            continue
                        with progress:
                            committed += 1
                            progress.notify_all()
            except BaseException as exc:  # surfaced by the test thread
                failures.append(exc)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        for kill in range(1, KILLS + 1):
            with progress:
                assert progress.wait_for(
                    lambda k=kill: committed >= COUNT * k // (KILLS + 1) or bool(failures), 120
                ), f"worker stalled at {committed}"
            assert not failures, failures
            node.kill()
            node = broker(tmp_path, port).start()
        with progress:
            assert progress.wait_for(lambda: committed >= COUNT or bool(failures), 180), (
                f"worker stalled at {committed}"
            )
        stop.set()
        thread.join(30)
        assert not failures, failures

        with ferrymq.client.connect(f"stomp://127.0.0.1:{port}") as check:
            check.send("/queue/out", "end", {"seq": "end"})
            out = check.subscribe("/queue/out", ack="client-individual")
            seqs: list[int] = []
            while (message := out.get(timeout=30)).headers["seq"] != "end":
                seqs.append(int(message.headers["seq"]))
                check.ack(message)
            check.send("/queue/in", "end", {"seq": "end"})
            left = check.subscribe("/queue/in", ack="auto")
            assert left.get(timeout=30).headers["seq"] == "end", "inputs left unprocessed"
        counts = collections.Counter(seqs)
        duplicates = sorted(s for s, n in counts.items() if n > 1)
        missing = sorted(set(range(COUNT)) - set(counts))
        assert not duplicates and not missing, (duplicates[:10], missing[:10], rolled_back)
    finally:
        stop.set()
        node.kill()
