"""`ferrymq serve` as a real process: start-up line, health, config, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import stomp

from ferrymq import __version__
from ferrymq.testing import BrokerProcess
from ferrymq.testing.wire import WireClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_serve_logs_ports_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    with BrokerProcess(
        ["--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", str(tmp_path)]
    ) as proc:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.http_port}/healthz", timeout=5) as r:
            health = json.load(r)
        assert health["role"] == "master"
        assert health["version"] == __version__
        conn = stomp.Connection12([("127.0.0.1", proc.stomp_port)])
        conn.connect(wait=True)
        assert conn.is_connected()
        conn.disconnect()
        assert proc.terminate() == 0
    assert any("ferrymq stopped" in line for line in proc.output)


def test_settings_from_toml_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "ferrymq.toml"
    config.write_text(
        'stomp = "127.0.0.1:0"\nhttp = "off"\nnode-name = "from-file"\nstore = "memory"\n'
    )
    env = dict(os.environ, FERRYMQ_NODE_NAME="from-env")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferrymq", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "node=from-env" in line and "http=off" in line
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stomp", "nonsense"], "HOST:PORT"),
        (["--stomp", "127.0.0.1:99999"], "out of range"),
        (["--max-body", "0"], "max_body"),
        (["--config", "/does/not/exist.toml"], "does not exist"),
        (["--log-level", "loud"], "log_level"),
    ],
)
def test_bad_config_is_a_clear_error(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ferrymq", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ferrymq",
                "serve",
                "--stomp",
                f"127.0.0.1:{port}",
                "--http",
                "off",
                "--store",
                "memory",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "cannot start" in result.stderr


def test_second_broker_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    args = ["--stomp", "127.0.0.1:0", "--http", "off", "--data", str(tmp_path)]
    with BrokerProcess(args):
        result = subprocess.run(
            [sys.executable, "-m", "ferrymq", "serve", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "in use by another broker" in result.stderr


def test_corrupt_journal_refuses_to_start_unless_told_to_skip(tmp_path: Path) -> None:
    args = ["--stomp", "127.0.0.1:0", "--http", "off", "--data", str(tmp_path)]
    with BrokerProcess(args) as proc:
        # One journal frame per message: each SEND waits for its receipt (SENDs
        # that arrive in one read are written as one frame, all or nothing).
        producer = WireClient(proc.stomp_port, timeout=10)
        producer.connect()
        for i in range(20):
            producer.send(
                "SEND",
                f"message-{i}".encode(),
                destination="/queue/c",
                persistent="true",
                receipt=str(i),
            )
            assert producer.frame().headers["receipt-id"] == str(i)
        producer.close()
        proc.terminate()
    segment = sorted((tmp_path / "journal").glob("*.seg"))[0]
    data = bytearray(segment.read_bytes())
    middle = data.index(b"message-3")
    data[middle] ^= 0xFF  # damage a record in the middle, with good ones after it
    segment.write_bytes(bytes(data))
    refused = subprocess.run(
        [sys.executable, "-m", "ferrymq", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1
    assert segment.name in refused.stderr
    with BrokerProcess([*args, "--recover-skip-corrupt"]) as proc:
        assert any("skipped corrupt" in line for line in proc.output)
        conn = stomp.Connection12([("127.0.0.1", proc.stomp_port)])
        got: list[str] = []

        class Collect(stomp.ConnectionListener):  # type: ignore[misc]
            def on_message(self, frame: stomp.utils.Frame) -> None:
                got.append(frame.body)

        conn.set_listener("c", Collect())
        conn.connect(wait=True)
        conn.subscribe("/queue/c", id="s", ack="auto")
        from ferrymq.testing import eventually

        eventually(lambda: len(got) >= 19)
        conn.disconnect()
    assert "message-3" not in got
    assert "message-19" in got and "message-4" in got
