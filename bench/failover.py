"""Failover time of a shared-fs master/slave pair: kill -9 of the master ->
first persistent message accepted (RECEIPT) by the new master.

Run: .venv/bin/python bench/failover.py [--runs 20] [--poll-ms 500]

Each run: a client sends persistent messages with receipts, one at a time,
to whichever node answers; the master is killed with SIGKILL; the time until
the next RECEIPT comes from the other node is the failover time the client
sees (it includes the client's reconnect attempts, every 10 ms). The killed
node is restarted as the new slave. Prints one JSON line. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from ferrymq.testing.ha import SharedFsPair
from ferrymq.testing.wire import WireClient


def connect(ports: list[int]) -> WireClient:
    while True:
        for port in ports:
            try:
                client = WireClient(port, timeout=2)
                client.connect()
                return client
            except OSError:
                continue
        time.sleep(0.01)


def send_one(client: WireClient, i: int) -> None:
    client.send(
        "SEND", b"x" * 1024, destination="/queue/failover", persistent="true", receipt=str(i)
    )
    frame = client.frame()
    if frame.headers.get("receipt-id") != str(i):
        raise ConnectionError(f"unexpected {frame.command}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--poll-ms", type=int, default=500)
    args = parser.parse_args()
    pair = SharedFsPair(Path(tempfile.mkdtemp(prefix="ferrymq-failover-")), poll_ms=args.poll_ms)
    times: list[float] = []
    try:
        pair.start(0)
        pair.start(1)
        pair.master()
        seq = 0
        for _ in range(args.runs):
            client = connect(pair.ports)
            for _ in range(20):
                seq += 1
                send_one(client, seq)
            killed = time.perf_counter()
            victim = pair.master()
            proc = pair.procs[victim]
            assert proc is not None
            proc.kill()
            while True:
                try:
                    client.close()
                    client = connect(pair.ports)
                    seq += 1
                    send_one(client, seq)
                    break
                except OSError:
                    time.sleep(0.01)
            times.append(time.perf_counter() - killed)
            client.close()
            pair.start(victim)  # back as the slave
    finally:
        pair.stop()
    print(
        json.dumps(
            {
                "runs": len(times),
                "lock_poll_interval_ms": args.poll_ms,
                "failover_ms_median": round(statistics.median(times) * 1000, 1),
                "failover_ms_max": round(max(times) * 1000, 1),
                "failover_ms_min": round(min(times) * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
