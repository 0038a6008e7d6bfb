"""Users, passwords and permissions: STOMP CONNECT/SEND/SUBSCRIBE and the HTTP API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferrymq.auth import User, UsersFile, covers, hash_password, save_users, verify_password
from ferrymq.config import Settings, load_settings
from ferrymq.errors import ConfigError
from ferrymq.server.server import BrokerServer
from ferrymq.testing import ThreadedBroker
from tests.admin.conftest import Http
from tests.server.conftest import Client, RawClient


def test_password_hashes_are_salted_scrypt() -> None:
    a, b = hash_password("s3cret"), hash_password("s3cret")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert verify_password("s3cret", a) and not verify_password("S3cret", a)
    assert not verify_password("s3cret", "garbage") and not verify_password("x", "scrypt$1$2")


@pytest.mark.parametrize(
    ("pattern", "destination", "allowed"),
    [
        (">", "/queue/anything", True),
        ("/queue/>", "/queue/a.b", True),
        ("/queue/>", "/topic/a", False),
        ("/queue/orders.>", "/queue/orders.eu", True),
        ("/queue/orders.>", "/queue/orders", False),
        ("/queue/orders.*", "/queue/orders.eu", True),
        ("/queue/orders.*", "/queue/orders.eu.x", False),
        ("/topic/a.>", "/topic/a.*", True),
        ("/topic/a.*", "/topic/a.>", False),
        ("/topic/*", "/topic/>", False),
        ("/topic/a.b", "/topic/a.*", False),
        ("/queue/x", "/queue/x", True),
    ],
)
def test_patterns_cover_destinations(pattern: str, destination: str, allowed: bool) -> None:
    assert covers(pattern, destination) is allowed


def _write_users(path: Path) -> None:
    users = UsersFile(
        {
            "admin": User("admin", hash_password("adminpw"), roles=("admin",)),
            "app": User(
                "app",
                hash_password("apppw"),
                read=("/queue/orders.>", "/topic/prices.>", "/queue/ferrymq.test.sync"),
                write=("/queue/orders.>", "/queue/ferrymq.test.sync"),
            ),
            "watcher": User("watcher", hash_password("watchpw"), roles=("monitor",)),
        }
    )
    save_users(path, users)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    _write_users(path)
    return path


@pytest.fixture
def secure(users_file: Path) -> Iterator[ThreadedBroker]:
    with ThreadedBroker(users=str(users_file)) as b:
        yield b


@contextlib.contextmanager
def _raw(port: int) -> Iterator[RawClient]:
    client = RawClient(port)
    try:
        yield client
    finally:
        client.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"login": "app", "passcode": "wrong"},
        {"login": "nobody", "passcode": "apppw"},
        {},
    ],
    ids=["wrong-password", "unknown-user", "no-login"],
)
def test_stomp_connect_is_refused_without_valid_credentials(
    secure: ThreadedBroker, headers: dict[str, str]
) -> None:
    with _raw(secure.stomp_port) as raw:
        raw.send("CONNECT", accept_version="1.2", host="localhost", **headers)
        frame = raw.frame()
        assert frame.command == "ERROR"
        assert frame.headers["message"] == "authentication failed: wrong login or passcode"
        assert raw.closed_by_peer()


def test_stomp_send_and_subscribe_follow_permissions(secure: ThreadedBroker) -> None:
    app = Client(secure.stomp_port, login="app", passcode="apppw")
    try:
        app.conn.subscribe("/queue/orders.eu", id="ok", ack="auto")
        app.conn.send("/queue/orders.eu", "fine")
        assert app.get().body == "fine"
    finally:
        app.close()
    for command, dest, text in [
        ("SEND", "/queue/payroll", "user 'app' may not send to /queue/payroll"),
        ("SUBSCRIBE", "/queue/payroll", "user 'app' may not subscribe to /queue/payroll"),
        ("SUBSCRIBE", "/topic/prices.*", None),
        ("SUBSCRIBE", "/topic/>", "user 'app' may not subscribe to /topic/>"),
    ]:
        with _raw(secure.stomp_port) as raw:
            raw.send("CONNECT", accept_version="1.2", host="h", login="app", passcode="apppw")
            assert raw.frame().command == "CONNECTED"
            raw.send(command, destination=dest, id="1", receipt="r")
            frame = raw.frame()
            if text is None:
                assert frame.command == "RECEIPT"
            else:
                assert frame.command == "ERROR" and frame.headers["message"] == text


def test_temp_queues_need_no_permission(secure: ThreadedBroker) -> None:
    watcher = Client(secure.stomp_port, login="watcher", passcode="watchpw")
    try:
        watcher.conn.subscribe("/temp-queue/replies", id="t", ack="auto")
        watcher.conn.send("/temp-queue/replies", "to myself")
        assert watcher.get().body == "to myself"
    finally:
        watcher.close()


def test_http_basic_auth_read_only_versus_admin(secure: ThreadedBroker) -> None:
    port = secure.http_port
    status, body = Http(port).get("/api/queues")
    assert status == 401 and body["error"] == "authentication required"
    assert Http(port, "watcher", "nope").get("/api/queues")[0] == 401
    assert Http(port, "ghost", "watchpw").get("/api/queues")[0] == 401
    # Health and metrics stay open for load balancers and Prometheus.
    assert Http(port).get("/healthz")[0] == 200 and Http(port).get("/metrics")[0] == 200

    admin, app, watcher = Http(port, "admin", "adminpw"), Http(port, "app", "apppw"), None
    watcher = Http(port, "watcher", "watchpw")
    admin.ok("POST", "/api/queues/orders.eu/messages", {"body": "x"})
    assert watcher.ok("GET", "/api/queues")[0]["name"] == "orders.eu"
    assert watcher.ok("GET", "/api/whoami")["admin"] is False
    status, body = watcher.get("/api/queues/orders.eu/messages")
    assert status == 403
    assert body["error"] == "user 'watcher' has no read permission on /queue/orders.eu"
    assert watcher.delete("/api/queues/orders.eu/messages")[0] == 403
    assert watcher.post("/api/queues/orders.eu/messages", {"body": "y"})[0] == 403
    # app may read and write its queues, but not administer them.
    assert app.ok("GET", "/api/queues/orders.eu/messages")["messages"][0]["body"] == "x"
    app.ok("POST", "/api/queues/orders.us/messages", {"body": "y"})
    status, body = app.post("/api/queues/orders.eu/move", {"to": "orders.us"})
    assert status == 403 and "admin permission on /queue/orders.eu" in body["error"]
    assert app.post("/api/queues/payroll/messages", {"body": "z"})[0] == 403
    assert admin.ok("POST", "/api/queues/orders.eu/move", {"to": "orders.us"})["moved"] == 1
    assert admin.ok("DELETE", "/api/queues/orders.us/messages")["purged"] == 2
    conns = admin.ok("GET", "/api/connections")
    assert conns == []
    assert app.delete("/api/connections/x")[0] == 403


def test_users_file_changes_apply_without_restart(secure: ThreadedBroker, users_file: Path) -> None:
    assert Http(secure.http_port, "late", "pw").get("/api/overview")[0] == 401
    from ferrymq.auth import load_users

    users = load_users(users_file)
    users.users["late"] = User("late", hash_password("pw"), roles=("monitor",))
    save_users(users_file, users)
    assert Http(secure.http_port, "late", "pw").get("/api/overview")[0] == 200
    client: Any = Client(secure.stomp_port, login="late", passcode="pw")
    client.close()


def test_non_loopback_needs_users_or_allow_open(users_file: Path) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        load_settings(env={}, overrides={"stomp": "0.0.0.0:61613"})
    with pytest.raises(ConfigError, match="not a loopback address"):
        load_settings(env={}, overrides={"http": ":8161"})
    assert load_settings(env={}, overrides={"stomp": "0.0.0.0:1", "allow_open": True})
    assert load_settings(env={}, overrides={"stomp": "0.0.0.0:1", "users": str(users_file)})
    assert Settings(stomp="[::1]:1").validate()


def test_a_missing_users_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        BrokerServer(Settings(users=str(tmp_path / "nope.json"), store="memory"))
