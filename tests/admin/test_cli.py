"""The real `ferrymq` command against a real broker process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import stomp

from ferrymq.testing import BrokerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _ferrymq() -> list[str]:
    script = Path(sys.executable).parent / "ferrymq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ferrymq"]


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_ferrymq(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def test_user_add_list_remove(tmp_path: Path) -> None:
    users = str(tmp_path / "users.json")
    done = run("user", "add", "ops", "--users", users, "--role", "admin", stdin="pw1\n")
    assert done.returncode == 0, done.stderr
    done = run("user", "add", "app", "--users", users, "--write", "/queue/a.>", "--password", "p")
    assert done.returncode == 0, done.stderr
    assert run("user", "add", "app", "--users", users, "--password", "p").returncode == 1
    listed = run("user", "list", "--users", users)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["USER", "ROLES", "READ", "WRITE", "ADMIN"]
    as_json = json.loads(run("user", "list", "--users", users, "--json").stdout)
    assert as_json[0]["name"] == "app" and as_json[0]["write"] == ["/queue/a.>"]
    assert "password" not in as_json[0]
    saved = json.loads(Path(users).read_text())
    assert saved["users"]["ops"]["password"].startswith("scrypt$")
    assert "pw1" not in Path(users).read_text()
    assert oct(Path(users).stat().st_mode & 0o777) == "0o600"
    assert run("user", "remove", "app", "--users", users).returncode == 0
    assert run("user", "remove", "app", "--users", users).returncode == 1
    assert run("user", "list", "--users", users, env={"FERRYMQ_USERS": users}).returncode == 0


def test_admin_commands_against_a_broker(tmp_path: Path) -> None:
    users = str(tmp_path / "users.json")
    assert (
        run(
            "user", "add", "ops", "--users", users, "--role", "admin", "--password", "pw"
        ).returncode
        == 0
    )
    args = [
        "--stomp",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
        str(tmp_path / "d"),
        "--users",
        users,
    ]
    with BrokerProcess(args) as broker:
        env = {
            "FERRYMQ_URL": f"http://127.0.0.1:{broker.http_port}",
            "FERRYMQ_USER": "ops",
            "FERRYMQ_PASSWORD": "pw",
        }

        def cli(*a: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
            return run(*a, stdin=stdin, env=env)

        for i in range(3):
            done = cli("send", "/queue/jobs", f"job-{i}", "-H", "kind:test")
            assert done.returncode == 0, done.stderr
        assert cli("send", "jobs", stdin="from stdin").returncode == 0
        table = cli("queues").stdout.splitlines()
        assert table[0].split()[:4] == ["QUEUE", "DEPTH", "IN-FLIGHT", "CONSUMERS"]
        assert table[1].split()[:2] == ["jobs", "4"]
        queues = json.loads(cli("queues", "--json").stdout)
        assert queues[0]["depth"] == 4 and queues[0]["enqueued"] == 4

        page = json.loads(cli("browse", "jobs", "--json", "--limit", "2").stdout)
        assert [m["body"] for m in page["messages"]] == ["job-0", "job-1"]
        assert page["messages"][0]["headers"]["kind"] == "test"
        assert "job-2" in cli("browse", "/queue/jobs").stdout

        received = cli("receive", "jobs", "-n", "2")
        assert received.stdout.splitlines() == ["job-0", "job-1"]
        moved = cli("move", "jobs", "DLQ.jobs", "--id", page["messages"][0]["id"])
        assert moved.returncode == 0 and "moved 0 messages" in moved.stdout  # already consumed
        assert "moved 2 messages" in cli("move", "jobs", "DLQ.jobs").stdout
        for i in range(3):
            assert cli("send", "jobs", f"more-{i}").returncode == 0
        batched = cli("move", "jobs", "DLQ.jobs", "--batch", "2", "--selector", "1 = 1")
        assert "moved 3 messages" in batched.stdout, batched.stderr  # 2 + 1, two requests
        assert "purged 5 messages" in cli("purge", "DLQ.jobs").stdout

        conn = stomp.Connection12([("127.0.0.1", broker.stomp_port)])
        conn.connect("ops", "pw", wait=True)
        try:
            conns = json.loads(cli("connections", "--json").stdout)
            assert conns[0]["user"] == "ops"
            status = json.loads(cli("status", "--json").stdout)
            assert status["totals"]["connections"] == 1 and status["role"] == "master"
            assert "connections" in cli("status").stdout
        finally:
            conn.disconnect()

        # Exit codes scripts rely on.
        assert cli("browse", "nope").returncode == 5
        assert cli("browse", "nope").stderr.startswith("ferrymq browse: no queue /queue/nope")
        assert run("queues", env={**env, "FERRYMQ_PASSWORD": "bad"}).returncode == 4
        assert cli("browse", "bad..name").returncode == 2
        assert cli("frobnicate").returncode == 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    down = run("status", "--url", f"http://127.0.0.1:{free}", "--timeout", "5")
    assert down.returncode == 3 and "cannot reach" in down.stderr
