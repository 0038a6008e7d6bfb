"""Heart-beats: an idle but beating connection lives, a silent one is closed."""

from __future__ import annotations

import time
from typing import Any

from ferrymq.testing import ThreadedBroker, eventually


def test_idle_connection_with_heartbeats_stays_open(clients: Any, broker: ThreadedBroker) -> None:
    c = clients(heartbeats=(200, 200))
    c.conn.subscribe("/queue/hb", id="s", ack="auto")
    # stomp.py beats every 200 ms; the broker would close after 300 ms of silence.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert c.conn.is_connected()
        time.sleep(0.1)
    clients().conn.send("/queue/hb", "still here")
    assert c.get().body == "still here"


def test_broker_sends_heartbeats_when_asked(raw: Any) -> None:
    r = raw()
    r.send("CONNECT", accept_version="1.2", host="h", **{"heart-beat": "0,150"})
    connected = r.frame()
    assert connected.headers["heart-beat"] == "150,0"
    r.sock.settimeout(2.0)
    assert r.sock.recv(10) == b"\n"


def test_silent_connection_is_closed_and_its_messages_redelivered(
    raw: Any, clients: Any, broker: ThreadedBroker
) -> None:
    r = raw()
    r.send("CONNECT", accept_version="1.2", host="h", **{"heart-beat": "200,0"})
    connected = r.frame()
    assert connected.headers["heart-beat"] == "0,200"
    r.send("SUBSCRIBE", destination="/queue/silent", id="s", ack="client-individual")
    clients().conn.send("/queue/silent", "m")
    assert r.frame().command == "MESSAGE"
    # Now say nothing: the broker gives up after 200 ms x 1.5 grace.
    started = time.monotonic()
    r.sock.settimeout(5.0)
    assert r.closed_by_peer()
    assert time.monotonic() - started < 3.0
    other = clients()
    other.conn.subscribe("/queue/silent", id="s", ack="auto")
    msg = other.get()
    assert msg.body == "m" and msg.headers["redelivered"] == "true"
    eventually(lambda: broker.call(lambda: len(broker.server.ctx.sessions)) == 2)
