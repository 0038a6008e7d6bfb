"""Master/slave on a shared data directory, with real processes and SIGKILL."""

from __future__ import annotations

import datetime
import json
import os
import queue
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp

from ferrymq.testing import BrokerProcess, eventually
from ferrymq.testing.ha import SharedFsPair
from ferrymq.testing.wire import WireClient

pytestmark = [pytest.mark.e2e, pytest.mark.ha]

POLL_MS = 100


def node(data: Path, name: str, *extra: str) -> BrokerProcess:
    return BrokerProcess(
        [
            "--ha",
            "shared-fs",
            "--data",
            str(data),
            "--node-name",
            name,
            "--stomp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--lock-poll-interval",
            str(POLL_MS),
            *extra,
        ],
        wait_master=False,
    )


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[BrokerProcess]]:
    started: list[BrokerProcess] = []
    yield started
    for b in started:
        b.kill()


def send_receipted(port: int, n: int, start: int = 0) -> None:
    c = WireClient(port, timeout=10)
    c.connect()
    for i in range(start, start + n):
        c.send("SEND", b"%d" % i, destination="/queue/ha", persistent="true", receipt=str(i))
        assert c.frame().headers["receipt-id"] == str(i)
    c.close()


def receive_all(port: int, expected: int) -> list[bytes]:
    c = WireClient(port, timeout=10)
    c.connect()
    c.send("SUBSCRIBE", destination="/queue/ha", id="s", ack="auto")
    bodies = [c.frame().body for _ in range(expected)]
    c.close()
    return bodies


def test_one_master_and_the_slave_takes_over_after_kill_9(
    tmp_path: Path, nodes: list[BrokerProcess]
) -> None:
    data = tmp_path / "shared"
    a = node(data, "a").start()
    nodes.append(a)
    assert a.wait_master(10)
    b = node(data, "b").start()
    nodes.append(b)
    assert b.slave.is_set() and not b.master.is_set()
    assert healthz(b.http_port)["role"] == "slave"
    assert healthz(a.http_port)["role"] == "master"
    assert "a" in healthz(b.http_port)["ha"]["holder"]

    send_receipted(a.stomp_port, 50)
    killed = time.monotonic()
    a.kill()
    assert b.wait_master(10)
    took_over = time.monotonic() - killed
    send_receipted(b.stomp_port, 1, start=50)  # first message accepted by the new master
    accepted = time.monotonic() - killed
    assert took_over < 2.0 and accepted < 3.0, (took_over, accepted)
    assert receive_all(b.stomp_port, 51) == [b"%d" % i for i in range(51)]
    assert healthz(b.http_port)["role"] == "master"


def test_racing_starts_always_make_exactly_one_master(
    tmp_path: Path, nodes: list[BrokerProcess]
) -> None:
    for run in range(int(os.environ.get("HA_RACE_RUNS", "20"))):
        data = tmp_path / f"race{run}"
        pair = [node(data, f"n{run}a"), node(data, f"n{run}b")]
        nodes.extend(pair)
        threads = [threading.Thread(target=b.start) for b in pair]  # both at once
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        eventually(lambda p=pair: any(b.master.is_set() for b in p), timeout=10)
        roles = sorted(healthz(b.http_port)["role"] for b in pair)
        assert roles == ["master", "slave"], roles
        assert sum(b.master.is_set() for b in pair) == 1
        for b in pair:
            b.kill()


@pytest.mark.parametrize(
    "how", ["removed", "replaced", "rewritten", "directory-moved", "unwritable"]
)
def test_master_fences_itself_when_its_lock_is_tampered_with(
    tmp_path: Path, nodes: list[BrokerProcess], how: str
) -> None:
    data = tmp_path / "shared"
    a = node(data, "a").start()
    nodes.append(a)
    assert a.wait_master(10)
    client = WireClient(a.stomp_port, timeout=5)
    client.connect()
    lock = data / "lock"
    started = time.monotonic()
    if how == "removed":
        lock.unlink()
    elif how == "replaced":
        tmp = data / "lock.new"
        tmp.write_text("someone else\n")
        tmp.replace(lock)
    elif how == "rewritten":
        lock.write_text("99999 intruder\n")
    elif how == "unwritable":
        # Root ignores permissions: make the liveness probe's write fail instead.
        probe = data / ".ferrymq-alive"
        probe.unlink(missing_ok=True)
        probe.mkdir()
    else:
        shutil.move(str(data), str(tmp_path / "moved"))
    assert a.proc is not None
    assert a.proc.wait(10) == 75  # fenced: exits for a supervisor to restart it as slave
    fenced_after = time.monotonic() - started
    assert fenced_after < 2.0, fenced_after
    with pytest.raises((ConnectionError, OSError)):
        client.frame()  # its client connection was dropped
    client.close()
    assert any("fencing itself" in line for line in a.output)


def log_time(output: list[str], needle: str) -> datetime.datetime:
    line = next(line for line in output if needle in line)
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def test_two_nodes_never_write_the_journal_together(
    tmp_path: Path, nodes: list[BrokerProcess]
) -> None:
    """A lock file replaced under a live master: the slave takes the new file
    at once, but opens the journal only after the old master fenced itself."""
    data = tmp_path / "shared"
    a = node(data, "a").start()
    nodes.append(a)
    assert a.wait_master(10)
    b = node(data, "b").start()
    nodes.append(b)
    tmp = data / "lock.new"
    tmp.write_text("")
    tmp.replace(data / "lock")
    assert a.proc is not None
    assert a.proc.wait(10) == 75
    assert b.wait_master(10)
    fenced = log_time(a.output, "fencing itself")
    took = log_time(b.output, "becoming master")
    assert took > fenced, (fenced, took)
    send_receipted(b.stomp_port, 5)
    assert receive_all(b.stomp_port, 5) == [b"%d" % i for i in range(5)]


@pytest.mark.slow
def test_stomp_py_with_a_host_list_loses_no_receipted_message(tmp_path: Path) -> None:
    pair = SharedFsPair(tmp_path / "shared", poll_ms=POLL_MS)
    try:
        pair.start(0)
        pair.start(1)
        pair.master()
        hosts = [("127.0.0.1", p) for p in pair.ports]
        receipts: queue.Queue[str] = queue.Queue()

        class Listener(stomp.ConnectionListener):  # type: ignore[misc]
            def on_receipt(self, frame: Any) -> None:
                receipts.put(frame.headers["receipt-id"])

        conn = stomp.Connection12(hosts, reconnect_attempts_max=-1, reconnect_sleep_initial=0.05)
        conn.set_listener("l", Listener())
        conn.connect(wait=True)
        total, receipted = 600, set()
        kills = {150, 300, 450}
        for i in range(total):
            if i in kills:
                pair.kill_master_and_restart_as_slave()
            while True:  # what a stomp.py application does: resend until receipted
                try:
                    if not conn.is_connected():
                        conn.connect(wait=True)
                    conn.send(
                        "/queue/hosts", str(i), headers={"persistent": "true"}, receipt=f"r{i}"
                    )
                    got = receipts.get(timeout=5)
                    if got == f"r{i}":
                        receipted.add(i)
                        break
                except (queue.Empty, stomp.exception.StompException, OSError):
                    time.sleep(0.05)  # the other node is taking over
        conn.disconnect()
        port = pair.ports[pair.master()]
        c = WireClient(port, timeout=10)
        c.connect()
        c.send("SUBSCRIBE", destination="/queue/hosts", id="s", ack="auto")
        c.send("SEND", b"end", destination="/queue/hosts")
        seen = set()
        while (body := c.frame().body) != b"end":
            seen.add(int(body))
        c.close()
        assert receipted == set(range(total))
        assert receipted <= seen, sorted(receipted - seen)[:10]
    finally:
        pair.stop()
