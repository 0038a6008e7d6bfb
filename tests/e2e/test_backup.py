"""`ferrymq backup` and `ferrymq restore` against real broker processes and clients."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import stomp

from ferrymq.testing import BrokerProcess, ThreadedBroker, eventually
from ferrymq.testing.crash import drain
from ferrymq.testing.wire import WireClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SEGMENT = str(64 * 1024)
BODY = "x" * 700


def ferrymq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferrymq", *args], capture_output=True, text=True, timeout=60
    )


def serve_args(data: Path, *extra: str) -> list[str]:
    return ["--stomp", "127.0.0.1:0", "--data", str(data), "--segment-size", SEGMENT, *extra]


class Receipts(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: set[str] = set()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        with self.lock:
            self.got.add(frame.headers["receipt-id"])

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.got)


class Producer:
    """A stomp.py connection sending persistent messages, each asking for a receipt;
    the body is the message's id, so a consumer can check it against what was sent."""

    def __init__(self, port: int, **connect: str) -> None:
        self.conn = stomp.Connection12([("127.0.0.1", port)])
        self.receipts = Receipts()
        self.conn.set_listener("r", self.receipts)
        self.conn.connect(wait=True, headers=connect)
        self.sent: set[str] = set()

    def send(self, destination: str, msg_id: str) -> None:
        self.sent.add(msg_id)
        self.conn.send(
            destination, msg_id, headers={"persistent": "true", "receipt": msg_id, "pad": BODY}
        )

    def wait_receipts(self, ids: set[str]) -> None:
        eventually(lambda: ids <= self.receipts.snapshot(), timeout=20)


def drained_ids(port: int, destination: str, **connect: str) -> list[str]:
    client = WireClient(port)
    try:
        client.connect(**connect)
        if "client-id" in connect:  # the durable subscription, by its name
            sub = {
                "destination": destination,
                "id": "d",
                "ack": "auto",
                "activemq.subscriptionName": "sub1",
            }
            client.send_many([("SUBSCRIBE", b"", sub)])
        return [f.body.decode() for f in drain(client, destination)]
    finally:
        client.close()


def test_online_backup_while_producing_restores_every_receipted_message(tmp_path: Path) -> None:
    data, out, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    with BrokerProcess(serve_args(data, "--http", "127.0.0.1:0")) as proc:
        # A durable topic subscription, collecting while its subscriber is away.
        durable = stomp.Connection12([("127.0.0.1", proc.stomp_port)])
        durable.connect(wait=True, headers={"client-id": "dur"})
        durable.subscribe(
            "/topic/t", id="s", ack="auto", headers={"activemq.subscriptionName": "sub1"}
        )
        durable.disconnect(receipt="bye")

        p = Producer(proc.stomp_port)
        for i in range(300):
            p.send("/queue/a", f"a{i}")
            p.send("/queue/b", f"b{i}")
            if i < 100:
                p.send("/topic/t", f"t{i}")
        p.wait_receipts(set(p.sent))

        # Consume and acknowledge (with receipts) the first 150 of /queue/b: they
        # must not come back from the backup.
        acked: set[str] = set()
        consumer = stomp.Connection12([("127.0.0.1", proc.stomp_port)])
        ack_receipts = Receipts()

        class AckAll(stomp.ConnectionListener):  # type: ignore[misc]
            def on_message(self, frame: stomp.utils.Frame) -> None:
                if len(acked) < 150:
                    acked.add(frame.body)
                    consumer.ack(frame.headers["ack"], receipt=f"ack-{frame.body}")

        consumer.set_listener("r", ack_receipts)
        consumer.set_listener("a", AckAll())
        consumer.connect(wait=True)
        consumer.subscribe(
            "/queue/b", id="b", ack="client-individual", headers={"activemq.prefetchSize": "150"}
        )
        eventually(lambda: len(ack_receipts.snapshot()) >= 150, timeout=20)
        consumer.disconnect()

        # A producer keeps sending while the backup is taken.
        stop = threading.Event()
        late = Producer(proc.stomp_port)

        def keep_sending() -> None:
            i = 0
            while not stop.is_set():  # windows of 10, as a producer waiting for receipts
                window = {f"late{j}" for j in range(i, i + 10)}
                for msg_id in sorted(window):
                    late.send("/queue/a", msg_id)
                i += 10
                late.wait_receipts(window)

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            eventually(lambda: len(late.receipts.snapshot()) >= 20, timeout=20)
            before = p.receipts.snapshot() | late.receipts.snapshot()
            result = ferrymq("backup", "--data", str(data), str(out))
            assert result.returncode == 0, result.stderr
            assert "online" in result.stdout
            count = len(late.receipts.snapshot())
            eventually(lambda: len(late.receipts.snapshot()) >= count + 20, timeout=20)
        except BaseException:
            print("".join(proc.output))
            raise
        finally:
            stop.set()
            sender.join(20)
        assert not sender.is_alive()
        sent = p.sent | late.sent
        assert proc.terminate() == 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["online"] is True and len(manifest["segments"]) > 3
    result = ferrymq("restore", str(out), "--data", str(restored))
    assert result.returncode == 0, result.stderr

    with BrokerProcess(serve_args(restored, "--http", "off")) as proc:
        got_a = drained_ids(proc.stomp_port, "/queue/a")
        got_b = drained_ids(proc.stomp_port, "/queue/b")
        got_t = drained_ids(proc.stomp_port, "/topic/t", **{"client-id": "dur"})
    everything = got_a + got_b + got_t
    assert len(everything) == len(set(everything)), "a message came back twice"
    assert set(everything) <= sent, "a message that was never sent"
    receipted = {i for i in before if not i.startswith("ack-")}
    assert {i for i in receipted if i.startswith(("a", "late"))} <= set(got_a)
    assert set(got_b) == {f"b{i}" for i in range(300)} - acked
    assert set(got_t) == {f"t{i}" for i in range(100)}
    assert got_a[:300] == [f"a{i}" for i in range(300)], "queue order changed"


def send_and_stop(data: Path, n: int) -> None:
    with BrokerProcess(serve_args(data, "--http", "off")) as proc:
        p = Producer(proc.stomp_port)
        for i in range(n):
            p.send("/queue/q", f"q{i}")
        p.wait_receipts(set(p.sent))
        p.conn.disconnect()
        assert proc.terminate() == 0


def test_offline_backup_and_restore(tmp_path: Path) -> None:
    data, out, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    send_and_stop(data, 200)
    result = ferrymq("backup", "--data", str(data), str(out))
    assert result.returncode == 0, result.stderr
    assert "offline" in result.stdout
    assert not (data / "broker.json").exists()
    # The data directory stays usable, and its changes do not reach the backup.
    send_and_stop(data, 10)
    result = ferrymq("restore", str(out), "--data", str(restored))
    assert result.returncode == 0, result.stderr
    with BrokerProcess(serve_args(restored, "--http", "off")) as proc:
        assert drained_ids(proc.stomp_port, "/queue/q") == [f"q{i}" for i in range(200)]


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "backup"
    send_and_stop(data, 50)
    assert ferrymq("backup", "--data", str(data), str(out)).returncode == 0

    def refused(*args: str, message: str) -> None:
        result = ferrymq(*args)
        assert result.returncode == 1, result
        assert message in result.stderr, result.stderr

    refused("backup", "--data", str(tmp_path / "nope"), str(tmp_path / "b2"), message="no such")
    refused("backup", "--data", str(tmp_path), str(tmp_path / "b2"), message="not a ferrymq data")
    refused("backup", "--data", str(data), str(out), message="not an empty directory")
    refused("restore", str(tmp_path / "nope"), "--data", str(tmp_path / "r"), message="no such")
    refused("restore", str(data), "--data", str(tmp_path / "r"), message="not a ferrymq backup")
    refused("restore", str(out), "--data", str(data), message="not empty")

    def damaged(name: str, damage: Any, message: str) -> None:
        copy = tmp_path / name
        shutil.copytree(out, copy)
        damage(copy)
        target = tmp_path / f"restore-{name}"
        refused("restore", str(copy), "--data", str(target), message=message)
        assert not target.exists(), "a failed restore left files behind"

    def flip_a_byte(backup: Path) -> None:
        seg = sorted((backup / "journal").glob("*.seg"))[0]
        raw = bytearray(seg.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        seg.write_bytes(bytes(raw))

    def truncate(backup: Path) -> None:
        seg = sorted((backup / "journal").glob("*.seg"))[0]
        seg.write_bytes(seg.read_bytes()[:-1])

    def manifest(backup: Path) -> Path:
        return backup / "manifest.json"

    damaged("flipped", flip_a_byte, "SHA-256 does not match")
    damaged("truncated", truncate, "the manifest says")
    damaged("no-json", lambda b: manifest(b).write_text("{nope"), "not valid JSON")
    damaged("newer", lambda b: _edit(manifest(b), format_version=99), "newer than")
    damaged("escape", lambda b: _edit_segment(manifest(b), name="../../etc"), "malformed")
    damaged("missing", lambda b: next((b / "journal").glob("*.seg")).unlink(), "missing")
    damaged(
        "extra",
        lambda b: (b / "journal" / "99999999999999999999.seg").write_bytes(b"x"),
        "not in the manifest",
    )


def _edit(path: Path, **changes: Any) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _edit_segment(path: Path, **changes: Any) -> None:
    raw = json.loads(path.read_text())
    raw["segments"][0].update(changes)
    path.write_text(json.dumps(raw))


def test_backup_of_a_running_broker_without_http_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with BrokerProcess(serve_args(data, "--http", "off")):
        result = ferrymq("backup", "--data", str(data), str(tmp_path / "out"))
    assert result.returncode == 1
    assert "--http off" in result.stderr
    assert not (tmp_path / "out").exists()


def post_backup(port: int, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/backup", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_backup_endpoint_answers(tmp_path: Path) -> None:
    with ThreadedBroker(store="journal", data=str(tmp_path / "data")) as broker:
        port = broker.http_port
        assert post_backup(port, b"nope")[0] == 400
        assert post_backup(port, b'{"path": 3}')[0] == 400
        status, answer = post_backup(port, b'{"path": "relative/dir"}')
        assert status == 400 and "absolute" in answer["error"]
        body = json.dumps({"path": str(tmp_path / "b")}).encode()
        status, answer = post_backup(port, body)
        assert status == 200 and answer["format"] == "ferrymq-backup"
        status, answer = post_backup(port, body)
        assert status == 409 and "not empty" in answer["error"]
        info = json.loads((tmp_path / "data" / "broker.json").read_text())
        assert info["http"] == f"127.0.0.1:{port}"
    assert not (tmp_path / "data" / "broker.json").exists()
    with ThreadedBroker() as broker:  # the memory store has nothing to back up
        body = json.dumps({"path": str(tmp_path / "m")}).encode()
        status, answer = post_backup(broker.http_port, body)
        assert status == 400 and "memory" in answer["error"]
