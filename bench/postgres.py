"""Figures for the PostgreSQL store and the shared-db pair, on a private
PostgreSQL (initdb in a temp dir, fsync on, default settings otherwise).

Run: .venv/bin/python bench/postgres.py [--count 50000] [--kills 10]

1. Persistent throughput: `ferrymq bench` with 1 and 8 producers, 1 KiB,
   a RECEIPT every 100 sends, one auto-ack consumer; plus the store's group
   commit figures from /healthz (appends per database transaction).
2. Failover with the default lease (5 s, renewed every 1 s; slave poll
   500 ms): kill -9 of the master -> the slave's client port is open (the
   advisory lock died with the master's session), and SIGSTOP of the master
   -> takeover (the slave must wait the lease out).
Prints JSON lines. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from ferrymq.testing import BrokerProcess
from ferrymq.testing.postgres import PostgresCluster


def node(url: str, name: str) -> BrokerProcess:
    return BrokerProcess(
        ["--store", "postgres", "--store-url", url, "--ha", "shared-db", "--node-name", name,
         "--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        wait_master=False,
    )  # fmt: skip


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def throughput(cluster: PostgresCluster, producers: int, count: int) -> dict[str, Any]:
    url = cluster.create_database()
    b = node(url, "bench").start()
    try:
        assert b.wait_master(20)
        cmd = [sys.executable, "-m", "ferrymq.bench", "--port", str(b.stomp_port),
               "--producers", str(producers), "--consumers", "1", "--destination", "/queue/pg",
               "--size", "1024", "--count", str(count), "--persistent",
               "--receipt-every", "100", "--json-only"]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        store = healthz(b.http_port)["store"]
        tx = max(store["transactions"], 1)
        return {
            "producers": producers,
            "bench": result,
            "transactions": store["transactions"],
            "appends_per_transaction": round(store["appends_written"] / tx, 1),
            "largest_group": store["largest_group"],
        }
    finally:
        b.kill()


def failover(cluster: PostgresCluster, kills: int, how: str) -> dict[str, Any]:
    url = cluster.create_database()
    times = []
    current = node(url, "n0").start()
    nodes = [current]
    try:
        assert current.wait_master(20)
        for i in range(1, kills + 1):
            standby = node(url, f"n{i}").start()
            nodes.append(standby)
            time.sleep(1.5)  # a few renewals
            assert current.proc is not None
            t0 = time.monotonic()
            if how == "kill -9":
                current.kill()
            else:
                os.kill(current.proc.pid, signal.SIGSTOP)
            assert standby.wait_master(30)
            times.append(time.monotonic() - t0)
            if how != "kill -9":
                os.kill(current.proc.pid, signal.SIGCONT)
                current.proc.wait(20)  # fenced: exit 75
            current = standby
    finally:
        for n in nodes:
            n.kill()
    return {
        "failover": how,
        "runs": len(times),
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "min_s": round(min(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--kills", type=int, default=10)
    ns = parser.parse_args()
    cluster = PostgresCluster().start()
    try:
        print(cluster.psql("SELECT version()"), flush=True)
        for producers in (1, 8):
            print(json.dumps(throughput(cluster, producers, ns.count)), flush=True)
        print(json.dumps(failover(cluster, ns.kills, "kill -9")), flush=True)
        print(json.dumps(failover(cluster, max(3, ns.kills // 3), "SIGSTOP")), flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
