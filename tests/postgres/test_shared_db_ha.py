"""Master/slave on one PostgreSQL database, with real processes, kill -9 and
SIGSTOP (mirrors tests/e2e/test_shared_fs_ha.py)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ferrymq.testing import BrokerProcess
from ferrymq.testing.postgres import PostgresCluster
from ferrymq.testing.wire import WireClient

pytestmark = [pytest.mark.e2e, pytest.mark.ha]


def node(url: str, name: str, *extra: str) -> BrokerProcess:
    return BrokerProcess(
        [
            "--store",
            "postgres",
            "--store-url",
            url,
            "--ha",
            "shared-db",
            "--node-name",
            name,
            "--stomp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--lock-poll-interval",
            "100",
            *extra,
        ],
        wait_master=False,
    )


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


@pytest.fixture
def nodes() -> Iterator[list[BrokerProcess]]:
    started: list[BrokerProcess] = []
    yield started
    for b in started:
        if b.proc is not None and b.proc.poll() is None:
            os.kill(b.proc.pid, signal.SIGCONT)
        b.kill()


def send_receipted(port: int, n: int, start: int = 0) -> None:
    c = WireClient(port, timeout=10)
    try:
        c.connect()
        for i in range(start, start + n):
            c.send(  # a resend after an ERROR is dropped by the dedup window
                "SEND",
                b"%d" % i,
                destination="/queue/ha",
                persistent="true",
                receipt=str(i),
                dedup_id=f"m{i}",
            )
            assert c.frame().headers["receipt-id"] == str(i)
    finally:
        c.close()


def receive_all(port: int) -> list[bytes]:
    c = WireClient(port, timeout=10)
    c.connect()
    c.send("SUBSCRIBE", destination="/queue/ha", id="s", ack="auto")
    c.send("SEND", b"end", destination="/queue/ha")
    bodies = []
    while (body := c.frame().body) != b"end":
        bodies.append(body)
    c.close()
    return bodies


def test_one_master_and_the_slave_takes_over_fast_after_kill_9(
    pg_url: str, nodes: list[BrokerProcess]
) -> None:
    a = node(pg_url, "a").start()
    nodes.append(a)
    assert a.wait_master(10)
    b = node(pg_url, "b").start()
    nodes.append(b)
    time.sleep(0.3)
    assert not b.master.is_set()
    ha_a, ha_b = healthz(a.http_port), healthz(b.http_port)
    assert (ha_a["role"], ha_b["role"]) == ("master", "slave")
    assert ha_a["ha"]["holder"] == "a" and ha_a["ha"]["epoch"] == 1
    assert ha_a["ha"]["lease_expires"] and ha_a["ha"]["lease_seconds_left"] > 3
    assert ha_b["ha"]["holder"] == "a"

    send_receipted(a.stomp_port, 50)
    killed = time.monotonic()
    a.kill()
    assert b.wait_master(10)
    took_over = time.monotonic() - killed
    send_receipted(b.stomp_port, 1, start=50)
    accepted = time.monotonic() - killed
    print(f"takeover after kill -9: {took_over:.3f} s, first receipt {accepted:.3f} s")
    # Well under the 5 s lease: the master's advisory lock died with its session.
    assert took_over < 2.0 and accepted < 3.0, (took_over, accepted)
    assert receive_all(b.stomp_port) == [b"%d" % i for i in range(51)]
    assert healthz(b.http_port)["ha"]["epoch"] == 2
    assert any("the master's session is gone" in line for line in b.output)


@pytest.mark.slow
def test_takeover_times_over_repeated_kills(pg_url: str, nodes: list[BrokerProcess]) -> None:
    times = []
    current = node(pg_url, "n0").start()
    nodes.append(current)
    assert current.wait_master(10)
    for i in range(1, 6):
        standby = node(pg_url, f"n{i}").start()
        nodes.append(standby)
        time.sleep(0.2)
        killed = time.monotonic()
        current.kill()
        assert standby.wait_master(10)
        times.append(time.monotonic() - killed)
        current = standby
    print(f"takeover: median {statistics.median(times):.3f} s, max {max(times):.3f} s")
    assert max(times) < 2.0, times


def test_a_stalled_master_commits_nothing_after_losing_its_lease(
    pg_url: str, nodes: list[BrokerProcess]
) -> None:
    lease = ["--lease", "2", "--lease-renew-interval", "0.5"]
    a = node(pg_url, "a", *lease).start()
    nodes.append(a)
    assert a.wait_master(10)
    b = node(pg_url, "b", *lease).start()
    nodes.append(b)
    send_receipted(a.stomp_port, 10)
    client = WireClient(a.stomp_port, timeout=15)
    client.connect()
    assert a.proc is not None
    stopped = time.monotonic()
    os.kill(a.proc.pid, signal.SIGSTOP)
    # The stalled master's session lives on: the slave waits out the lease.
    assert b.wait_master(10)
    waited = time.monotonic() - stopped
    assert waited > 1.0, waited
    client.send("SEND", b"stalled", destination="/queue/ha", persistent="true", receipt="x")
    send_receipted(b.stomp_port, 1, start=10)
    os.kill(a.proc.pid, signal.SIGCONT)
    try:
        frame = client.frame()
        assert frame.command == "ERROR", frame  # never a false RECEIPT
    except (ConnectionError, OSError):
        pass  # or it fenced itself first and dropped the connection
    client.close()
    assert a.proc.wait(10) == 75
    assert any("fencing itself" in line for line in a.output)
    assert receive_all(b.stomp_port) == [b"%d" % i for i in range(11)]


def test_a_master_cut_from_the_database_reconnects_or_fences(
    pg_url: str, pg_cluster: PostgresCluster, nodes: list[BrokerProcess]
) -> None:
    a = node(pg_url, "a").start()
    nodes.append(a)
    assert a.wait_master(10)
    b = node(pg_url, "b").start()
    nodes.append(b)
    send_receipted(a.stomp_port, 5)
    db = pg_url.rsplit("/", 1)[1]
    pid = a.proc.pid if a.proc else 0
    pg_cluster.psql(  # every session of both nodes: store, reader and lease
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{db}' AND application_name LIKE 'ferrymq-%'"
    )
    assert pid
    # b's lease session went too, so b may take over early (a's advisory lock
    # died with its session); either way one node ends up master with every
    # receipted message, and the other is a slave or fenced (exit 75).
    master = None
    deadline = time.monotonic() + 20
    while master is None and time.monotonic() < deadline:
        time.sleep(0.2)
        for n in (a, b):
            try:
                if n.proc and n.proc.poll() is None and healthz(n.http_port)["role"] == "master":
                    send_receipted(n.stomp_port, 1, start=5)
                    master = n
                    break
            except (OSError, KeyError):
                pass  # fencing itself as we looked
    assert master is not None
    assert receive_all(master.stomp_port) == [b"%d" % i for i in range(6)]
    other = b if master is a else a
    assert other.proc is not None
    assert other.proc.poll() in (None, 75)


@pytest.mark.parametrize("case", ["bad-url", "wrong-password", "unreachable"])
def test_a_bad_database_is_a_clear_error_and_a_non_zero_exit(
    pg_cluster: PostgresCluster, case: str
) -> None:
    url = {
        "bad-url": "postgresql://postgres@127.0.0.1:notaport/x",
        "wrong-password": pg_cluster.url(password="wrong"),
        "unreachable": "postgresql://postgres:x@127.0.0.1:1/postgres",
    }[case]
    result = subprocess.run(
        [sys.executable, "-m", "ferrymq", "serve", "--store", "postgres", "--store-url", url,
         "--ha", "shared-db", "--stomp", "127.0.0.1:0", "--http", "off"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    err = result.stderr
    assert "ferrymq: cannot start:" in err, err
    expected = {
        "bad-url": "bad store URL",
        "wrong-password": "password authentication failed",
        "unreachable": "Connection refused",
    }[case]
    assert expected in err, err
    assert "wrong" not in err.replace("password authentication", "")  # password redacted
    assert "Traceback" not in err


def test_wait_for_store_retries_until_the_database_answers(pg_cluster: PostgresCluster) -> None:
    url = pg_cluster.url(password="wrong")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferrymq", "serve", "--store", "postgres", "--store-url", url,
         "--stomp", "127.0.0.1:0", "--http", "off", "--wait-for-store"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(2)
        assert proc.poll() is None  # still retrying
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=20)[0]
    assert "retrying in" in out and "password authentication failed" in out, out


def test_database_restart_while_a_master_serves(
    pg_url: str, pg_cluster: PostgresCluster, nodes: list[BrokerProcess]
) -> None:
    """`pg_ctl restart`: the master reconnects within its lease, or fences and
    the slave takes over; either way nothing confirmed is lost."""
    a = node(pg_url, "a").start()
    nodes.append(a)
    assert a.wait_master(10)
    b = node(pg_url, "b").start()
    nodes.append(b)
    send_receipted(a.stomp_port, 20)
    pg_cluster.restart()
    master = None
    deadline = time.monotonic() + 30
    while master is None and time.monotonic() < deadline:
        for n in (a, b):
            try:
                if n.proc and n.proc.poll() is None and healthz(n.http_port)["role"] == "master":
                    send_receipted(n.stomp_port, 1, start=20)
                    master = n
                    break
            except (OSError, KeyError, AssertionError, ConnectionError):
                pass  # reconnecting or fencing as we looked
        else:
            time.sleep(0.2)
    assert master is not None, "no master after the database restart"
    assert receive_all(master.stomp_port) == [b"%d" % i for i in range(21)]
    other = b if master is a else a
    assert other.proc is not None and other.proc.poll() in (None, 75)


@pytest.mark.slow
def test_failover_client_exactly_once_through_three_master_kills(
    pg_url: str, nodes: list[BrokerProcess]
) -> None:
    """Producer and consumer on the ferrymq failover client; the master is
    SIGKILLed three times (each killed node restarted as the slave)."""
    import threading

    import ferrymq.client
    from ferrymq.testing.ha import free_port

    count = int(os.environ.get("PG_FAILOVER_MESSAGES", "5000"))
    ports = [free_port(), free_port()]
    procs: list[BrokerProcess] = []

    def start(i: int) -> BrokerProcess:
        p = node(pg_url, f"n{i}", "--stomp", f"127.0.0.1:{ports[i]}").start()
        nodes.append(p)
        return p

    procs = [start(0), start(1)]
    uri = "failover:({})?initialReconnectDelay=10&maxReconnectDelay=200&randomize=false".format(
        ",".join(f"stomp://127.0.0.1:{p}" for p in ports)
    )
    received: list[int] = []
    done = threading.Event()
    confirmed: set[int] = set()
    cond = threading.Condition()
    consumer = ferrymq.client.connect(uri, heartbeat=(1000, 1000))
    producer = ferrymq.client.connect(uri, window=500, heartbeat=(1000, 1000))
    try:

        def on_message(message: ferrymq.client.Message) -> None:
            received.append(int(message.headers["seq"]))
            consumer.ack(message)
            if len(received) >= count:
                done.set()

        consumer.subscribe("/queue/pg-exactly-once", on_message, ack="client-individual")

        def confirm(seq: int) -> None:
            with cond:
                confirmed.add(seq)
                cond.notify_all()

        def produce() -> None:
            for seq in range(count):
                fut = producer.send(
                    "/queue/pg-exactly-once", str(seq), {"seq": str(seq)}, wait=False
                )
                fut.add_done_callback(lambda f, s=seq: f.exception() is None and confirm(s))
            producer.flush()

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        for kill in range(1, 4):
            with cond:
                assert cond.wait_for(lambda k=kill: len(confirmed) >= count * k // 4, 120)
            i = next(
                i
                for i, p in enumerate(procs)
                if p.master.is_set() and p.proc and p.proc.poll() is None
            )
            procs[i].kill()
            procs[i] = start(i)
        thread.join(180)
        assert not thread.is_alive(), "the producer did not finish"
        assert done.wait(120), f"consumer got {len(received)} of {count}"
    finally:
        producer.close()
        consumer.close()
    assert confirmed == set(range(count))
    assert received == list(range(count)), "lost, duplicated or out of order"
