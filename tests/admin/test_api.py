"""The management API over real HTTP, against a broker carrying real STOMP traffic."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from ferrymq.testing import ThreadedBroker, eventually
from tests.admin.conftest import Http
from tests.server.conftest import Client


def _send(client: Client, dest: str, bodies: list[str], **headers: str) -> None:
    """Send and wait for the receipt of the last one (so all are in the broker)."""
    for body in bodies:
        client.conn.send(dest, body, headers=dict(headers))
    client.sync()


def test_counts_match_stomp_traffic(http: Http, clients: Any) -> None:
    producer = clients()
    _send(producer, "/queue/orders", [f"m{i}" for i in range(5)], persistent="true")
    consumer = clients()
    consumer.conn.subscribe(
        "/queue/orders", id="s", ack="client-individual", headers={"activemq.prefetchSize": "2"}
    )
    got = consumer.get_many(2)
    consumer.conn.ack(got[0].headers["ack"])
    consumer.sync()

    queues = {q["name"]: q for q in http.ok("GET", "/api/queues")}
    q = queues["orders"]
    assert q["destination"] == "/queue/orders"
    # 5 sent, 3 handed out (2, then 1 more after the ack), one acked.
    assert (q["enqueued"], q["dequeued"], q["depth"], q["in_flight"]) == (5, 3, 2, 2)
    assert q["consumers"] == 1 and set(q["rates"]) == {"enqueue", "dequeue", "redeliver"}

    detail = http.ok("GET", "/api/queues/orders")
    assert detail["consumer_details"][0]["ack"] == "client-individual"
    assert detail["consumer_details"][0]["unacked"] == 2

    overview = http.ok("GET", "/api/overview")
    assert overview["node"] == "test" and overview["role"] == "master"
    assert overview["totals"]["connections"] == 2
    assert overview["totals"]["depth"] >= 2 and overview["totals"]["queues"] >= 1

    consumer.close()  # unacked messages come back, marked redelivered
    q = eventually(
        lambda: (
            http.ok("GET", "/api/queues/orders")["redelivered"] == 2
            and http.ok("GET", "/api/queues/orders")
        )
    )
    assert q["depth"] == 4 and q["in_flight"] == 0


def test_browse_pages_without_consuming(http: Http, clients: Any) -> None:
    _send(clients(), "/queue/b", [f"m{i}" for i in range(7)], color="red")
    page = http.ok("GET", "/api/queues/b/messages?offset=2&limit=3")
    assert [m["body"] for m in page["messages"]] == ["m2", "m3", "m4"]
    assert page["messages"][0]["headers"]["color"] == "red"
    assert page["depth"] == 7
    assert http.ok("GET", "/api/queues/b/messages?offset=6")["messages"][0]["body"] == "m6"
    assert http.ok("GET", "/api/queues/b")["depth"] == 7
    consumer = clients()
    consumer.conn.subscribe("/queue/b", id="s", ack="auto")
    assert [m.body for m in consumer.get_many(7)] == [f"m{i}" for i in range(7)]


def test_send_from_the_api_reaches_stomp_consumers(http: Http, clients: Any) -> None:
    queue_consumer, topic_consumer = clients(), clients()
    queue_consumer.conn.subscribe("/queue/in", id="q", ack="auto")
    topic_consumer.conn.subscribe("/topic/news.>", id="t", ack="auto")
    topic_consumer.sync()
    sent = http.ok(
        "POST", "/api/queues/in/messages", {"body": "hello", "headers": {"kind": "greeting"}}
    )
    msg = queue_consumer.get()
    assert msg.body == "hello" and msg.headers["kind"] == "greeting"
    assert msg.headers["message-id"] == sent["id"]
    http.ok(
        "POST", "/api/topics/news.sport/messages", {"body": "AGVsbG8=", "body_encoding": "base64"}
    )
    assert topic_consumer.get().body == "\x00ello"
    topics = {t["destination"]: t for t in http.ok("GET", "/api/topics")}
    assert topics["/topic/news.>"]["consumers"] == 1
    assert topics["/topic/news.>"]["enqueued"] == 1
    assert http.ok("GET", "/api/topics/news.>")["subscriptions"] == 1


def test_purge_get_and_delete(http: Http, clients: Any) -> None:
    _send(clients(), "/queue/p", ["a", "b", "c"])
    got = http.ok("POST", "/api/queues/p/get", {"count": 2})
    assert [m["body"] for m in got["messages"]] == ["a", "b"]
    assert http.ok("DELETE", "/api/queues/p/messages") == {"queue": "/queue/p", "purged": 1}
    assert http.ok("GET", "/api/queues/p")["depth"] == 0
    assert http.ok("DELETE", "/api/queues/p")["deleted"] is True
    assert http.get("/api/queues/p")[0] == 404


def test_move_all_or_selected_messages(http: Http, clients: Any) -> None:
    _send(clients(), "/queue/DLQ.work", [f"m{i}" for i in range(5)], persistent="true")
    ids = [m["id"] for m in http.ok("GET", "/api/queues/DLQ.work/messages")["messages"]]
    moved = http.ok("POST", "/api/queues/DLQ.work/move", {"to": "work", "ids": [ids[1], ids[3]]})
    assert moved == {"from": "/queue/DLQ.work", "to": "/queue/work", "moved": 2}
    work = http.ok("GET", "/api/queues/work/messages")["messages"]
    assert [m["body"] for m in work] == ["m1", "m3"]
    assert [m["id"] for m in work] == [ids[1], ids[3]]
    assert http.ok("POST", "/api/queues/DLQ.work/move", {"to": "/queue/work"})["moved"] == 3
    assert http.ok("GET", "/api/queues/DLQ.work")["depth"] == 0
    consumer = clients()
    consumer.conn.subscribe("/queue/work", id="s", ack="auto")
    assert [m.body for m in consumer.get_many(5)] == ["m1", "m3", "m0", "m2", "m4"]


def test_errors_are_json_with_the_right_status(http: Http, clients: Any) -> None:
    _send(clients(), "/queue/e", ["x"])
    cases: list[tuple[str, str, Any, int, str]] = [
        ("GET", "/api/queues/nope", None, 404, "no queue /queue/nope"),
        ("GET", "/api/queues/nope/messages", None, 404, "no queue"),
        ("DELETE", "/api/queues/nope/messages", None, 404, "no queue"),
        ("GET", "/api/queues/e/messages?limit=0", None, 400, "'limit'"),
        ("GET", "/api/queues/e/messages?offset=x", None, 400, "'offset'"),
        ("GET", "/api/queues/bad..name", None, 400, "empty segment"),
        ("POST", "/api/queues/e/move", {}, 400, "'to'"),
        ("POST", "/api/queues/e/move", {"to": "e"}, 400, "same queue"),
        ("POST", "/api/queues/e/move", {"to": "/topic/t"}, 400, "only move to a queue"),
        ("POST", "/api/queues/e/move", {"to": "x", "ids": [1]}, 400, "'ids'"),
        ("POST", "/api/queues/e/messages", {"body": 5}, 400, "'body'"),
        ("POST", "/api/queues/e/messages", {"headers": {"a": [1]}}, 400, "header values"),
        ("POST", "/api/queues/e/messages", {"body": "%", "body_encoding": "base64"}, 400, "base64"),
        ("POST", "/api/queues/e/get", {"count": 0}, 400, "'count'"),
        ("GET", "/api/nothing-here", None, 404, "no such resource"),
        ("PUT", "/api/queues", None, 405, "not allowed"),
        ("DELETE", "/api/connections/nope", None, 404, "no connection"),
    ]
    for method, path, body, status, text in cases:
        got_status, got = http.request(method, path, body)
        assert got_status == status, (method, path, got)
        assert got["status"] == status and text in got["error"], (method, path, got)
    status, got = http.request("POST", "/api/queues/e/messages", raw=b"{not json")
    assert (status, got["error"]) == (400, "request body is not valid JSON")
    status, got = http.request("POST", "/api/queues/e/messages", raw=b"[1]")
    assert (status, got["error"]) == (400, "request body must be a JSON object")


def test_deleting_a_queue_with_consumers_is_refused(http: Http, clients: Any) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/busy", id="s", ack="auto")
    consumer.sync()
    status, got = http.delete("/api/queues/busy")
    assert status == 409 and "1 consumers" in got["error"]


def test_connections_are_listed_and_can_be_closed(http: Http, clients: Any) -> None:
    client = clients(**{"client-id": "app-1"})
    client.conn.subscribe("/queue/c", id="s", ack="client")
    client.sync()
    conns = http.ok("GET", "/api/connections")
    assert len(conns) == 1
    conn = conns[0]
    assert conn["client_id"] == "app-1" and conn["protocol"] == "stomp/1.2"
    assert conn["consumers"][0]["destination"] == "/queue/c"
    http.ok("DELETE", f"/api/connections/{conn['id']}")
    assert client.listener.disconnected.get(timeout=5)
    eventually(lambda: http.ok("GET", "/api/connections") == [])


def test_rates_and_history_come_from_the_sampler(http: Http, clients: Any) -> None:
    producer = clients()
    consumer = clients()
    consumer.conn.subscribe("/queue/r", id="s", ack="auto")

    def busy() -> Any:
        _send(producer, "/queue/r", ["x"] * 20)
        overview = http.ok("GET", "/api/overview")
        return overview["rates"]["enqueue"] > 0 and overview

    overview = eventually(busy, timeout=10, interval=0.2)
    assert overview["sample"]["enqueue"] > 0
    points = http.ok("GET", "/api/history")["points"]
    assert points and {"time", "enqueue", "dequeue", "depth", "in_flight"} <= set(points[-1])
    queue = http.ok("GET", "/api/queues/r")
    assert queue["rates"]["enqueue"] > 0 or queue["enqueued"] > 0


def test_api_changes_are_persisted(tmp_path: Path) -> None:
    settings = dict(store="journal", data=str(tmp_path))
    with ThreadedBroker(**settings) as b:
        client = Client(b.stomp_port)
        _send(client, "/queue/src", [f"m{i}" for i in range(4)], persistent="true")
        _send(client, "/queue/junk", ["j"], persistent="true")
        client.close()
        http = Http(b.http_port)
        http.ok("POST", "/api/queues/gone/messages", {"body": "bye"})
        http.ok("DELETE", "/api/queues/gone")
        first = http.ok("GET", "/api/queues/src/messages?limit=1")["messages"][0]["id"]
        http.ok("POST", "/api/queues/src/move", {"to": "dst", "ids": [first]})
        http.ok("POST", "/api/queues/dst/messages", {"body": f"api-{uuid.uuid4()}"})
        http.ok("DELETE", "/api/queues/junk/messages")
    with ThreadedBroker(**settings) as b:
        http = Http(b.http_port)
        depths = {q["name"]: q["depth"] for q in http.ok("GET", "/api/queues")}
        assert depths == {"src": 3, "dst": 2, "junk": 0, "ferrymq.test.sync": 0}
        bodies = [m["body"] for m in http.ok("GET", "/api/queues/dst/messages")["messages"]]
        assert bodies[0] == "m0" and bodies[1].startswith("api-")


def test_move_by_selector(http: Http, clients: Any) -> None:
    producer = clients()
    for i in range(6):
        producer.conn.send("/queue/DLQ.sel", f"m{i}", headers={"kind": "a" if i % 2 else "b"})
    producer.sync()
    moved = http.ok("POST", "/api/queues/DLQ.sel/move", {"to": "sel", "selector": "kind = 'a'"})
    assert moved["moved"] == 3
    assert [m["body"] for m in http.ok("GET", "/api/queues/sel/messages")["messages"]] == [
        "m1",
        "m3",
        "m5",
    ]
    bad = http.request("POST", "/api/queues/DLQ.sel/move", {"to": "sel", "selector": "kind ="})
    assert bad[0] == 400 and "invalid selector at position" in bad[1]["error"]
