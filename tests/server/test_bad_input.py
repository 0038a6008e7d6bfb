"""Every kind of bad input gets an ERROR naming the problem, the offender is
disconnected, and everyone else carries on without losing a message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ferrymq.testing import ThreadedBroker, eventually

CASES: list[tuple[str, Callable[[Any], None], str]] = [
    ("malformed header line", lambda r: r.send_bytes(b"SEND\ndestination /queue/x\n\nbody\0"), ""),
    ("unknown command", lambda r: r.send_bytes(b"FROB\n\n\0"), "FROB"),
    ("missing destination on SEND", lambda r: r.send("SEND", receipt="r1"), "destination"),
    ("missing id on SUBSCRIBE", lambda r: r.send("SUBSCRIBE", destination="/queue/x"), "id"),
    ("ACK for an unknown id", lambda r: r.send("ACK", id="9:nope", receipt="r2"), "nope"),
    (
        "SEND to an invalid destination",
        lambda r: r.send("SEND", destination="/bogus/x"),
        "/bogus/x",
    ),
    ("SEND to a wildcard", lambda r: r.send("SEND", destination="/topic/a.*"), "wildcard"),
    ("unknown transaction", lambda r: r.send("COMMIT", transaction="t9"), "t9"),
    (
        "invalid ack mode",
        lambda r: r.send("SUBSCRIBE", destination="/queue/x", id="1", ack="sometimes"),
        "sometimes",
    ),
    (
        "server command from a client",
        lambda r: r.send("MESSAGE", destination="/queue/x"),
        "MESSAGE",
    ),
    (
        "bad content-length",
        lambda r: r.send_bytes(b"SEND\ndestination:/queue/x\ncontent-length:abc\n\n\0"),
        "content-length",
    ),
    (
        "body not NUL-terminated",
        lambda r: r.send_bytes(b"SEND\ndestination:/queue/x\ncontent-length:1\n\nxy\0"),
        "",
    ),
    ("undefined escape", lambda r: r.send_bytes(b"SEND\ndestination:/queue/x\nh:a\\tb\n\n\0"), ""),
    ("second CONNECT", lambda r: r.send("CONNECT", accept_version="1.2"), "already connected"),
]


@pytest.mark.parametrize(("name", "act", "expect"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_error_and_close(
    raw: Any, clients: Any, name: str, act: Callable[[Any], None], expect: str
) -> None:
    # A bystander with a message in flight must not be affected.
    bystander = clients()
    bystander.conn.subscribe("/queue/safe", id="s", ack="client-individual")
    clients().conn.send("/queue/safe", "precious")
    assert bystander.get().body == "precious"

    r = raw()
    r.connect()
    act(r)
    error = r.frame()
    assert error.command == "ERROR"
    assert error.headers["message"]
    assert expect in error.headers["message"] + error.body.decode()
    assert r.closed_by_peer()

    clients().conn.send("/queue/safe", "after")
    assert bystander.get().body == "after"


def test_error_carries_receipt_id(raw: Any) -> None:
    r = raw()
    r.connect()
    r.send("SEND", receipt="want-this")
    error = r.frame()
    assert error.command == "ERROR"
    assert error.headers["receipt-id"] == "want-this"
    assert "destination" in error.headers["message"]


def test_frame_before_connect_is_refused(raw: Any) -> None:
    r = raw()
    r.send("SEND", destination="/queue/x")
    error = r.frame()
    assert error.command == "ERROR" and "CONNECT" in error.headers["message"]
    assert r.closed_by_peer()


def test_unsupported_version(raw: Any) -> None:
    r = raw()
    r.send("CONNECT", accept_version="2.0")
    error = r.frame()
    assert error.command == "ERROR"
    assert error.headers["version"] == "1.0,1.1,1.2"
    assert r.closed_by_peer()


def test_oversized_body_is_refused_and_nothing_is_lost(raw: Any, clients: Any) -> None:
    with ThreadedBroker(max_body=1024) as small:
        from tests.server.conftest import Client, RawClient

        keeper = Client(small.stomp_port)
        keeper.conn.subscribe("/queue/q", id="s", ack="client-individual")
        Client(small.stomp_port).conn.send("/queue/q", "kept")
        assert keeper.get().body == "kept"
        r = RawClient(small.stomp_port)
        r.connect()
        r.send("SEND", body=b"x" * 2048, destination="/queue/q", receipt="big")
        error = r.frame()
        assert error.command == "ERROR"
        assert "1024" in error.headers["message"]
        assert error.headers["receipt-id"] == "big"
        assert r.closed_by_peer()
        keeper.close()
        again = Client(small.stomp_port)
        again.conn.subscribe("/queue/q", id="s", ack="auto")
        msg = again.get()
        assert msg.body == "kept" and msg.headers["redelivered"] == "true"
        assert again.nothing_more()
        again.close()
        r.close()


def test_too_many_headers(raw: Any) -> None:
    with ThreadedBroker(max_headers=5) as small:
        from tests.server.conftest import RawClient

        r = RawClient(small.stomp_port)
        r.connect()
        r.send("SEND", destination="/queue/x", **{f"h{i}": "v" for i in range(10)})
        error = r.frame()
        assert error.command == "ERROR" and "header" in error.headers["message"]
        r.close()


def test_connection_limit(broker: ThreadedBroker) -> None:
    with ThreadedBroker(max_connections=1) as small:
        from tests.server.conftest import RawClient

        first = RawClient(small.stomp_port)
        first.connect()
        second = RawClient(small.stomp_port)
        error = second.frame()
        assert error.command == "ERROR" and "too many connections" in error.headers["message"]
        assert second.closed_by_peer()
        eventually(lambda: small.call(lambda: len(small.server.ctx.sessions)) == 1)
        first.close()
        second.close()
