"""The admin commands: status, queues, topics, connections, browse, send,
receive, purge, move. Each is one or two API calls and a table (or --json)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from typing import Any

from ferrymq.ctl.client import ApiClient
from ferrymq.ctl.tables import render_table

__all__ = ["ADMIN_COMMANDS", "add_admin_parsers"]

Command = Callable[[ApiClient, argparse.Namespace], int]


def _queue_path(name: str) -> str:
    """`orders` or `/queue/orders` -> the API's `/api/queues/orders`."""
    if name.startswith("/queue/"):
        name = name[len("/queue/") :]
    return f"/api/queues/{ApiClient.path_name(name)}"


def _dest_path(dest: str) -> str:
    """Where to POST a message: `/topic/x` goes to a topic, anything else to a queue."""
    if dest.startswith("/topic/"):
        return f"/api/topics/{ApiClient.path_name(dest[len('/topic/') :])}/messages"
    return f"{_queue_path(dest)}/messages"


def _out(ns: argparse.Namespace, data: Any, table: Callable[[], str]) -> None:
    print(json.dumps(data, indent=2) if ns.json else table())


def _status(api: ApiClient, ns: argparse.Namespace) -> int:
    o = api.call("GET", "/api/overview")

    def table() -> str:
        t, r, m = o["totals"], o["rates"], o["memory"]
        rows = [
            ["node", o["node"]],
            ["version", o["version"]],
            ["role", o["role"]],
            ["uptime", f"{o['uptime_s']:.0f} s"],
            ["connections", t["connections"]],
            ["queues / topics", f"{t['queues']} / {t['topics']}"],
            ["messages", f"{t['depth']} queued, {t['in_flight']} in flight"],
            ["rates", f"in {r['enqueue']:.1f}/s, out {r['dequeue']:.1f}/s"],
            ["memory", f"{m['used']} of {m['budget']} bytes"],
        ]
        return "\n".join(f"{k:<16} {v}" for k, v in rows)

    _out(ns, o, table)
    return 0


def _queues(api: ApiClient, ns: argparse.Namespace) -> int:
    queues = api.call("GET", "/api/queues")
    headers = ["QUEUE", "DEPTH", "IN-FLIGHT", "CONSUMERS", "ENQUEUED", "DEQUEUED", "IN/S", "OUT/S"]
    rows = [
        [
            q["name"],
            q["depth"],
            q["in_flight"],
            q["consumers"],
            q["enqueued"],
            q["dequeued"],
            float(q["rates"]["enqueue"]),
            float(q["rates"]["dequeue"]),
        ]
        for q in queues
    ]
    _out(ns, queues, lambda: render_table(headers, rows))
    return 0


def _topics(api: ApiClient, ns: argparse.Namespace) -> int:
    topics = api.call("GET", "/api/topics")
    headers = ["TOPIC", "SUBSCRIPTIONS", "DURABLE", "CONSUMERS", "DEPTH", "ENQUEUED"]
    rows = [
        [
            t["destination"],
            t["subscriptions"],
            t["durable_subscriptions"],
            t["consumers"],
            t["depth"],
            t["enqueued"],
        ]
        for t in topics
    ]
    _out(ns, topics, lambda: render_table(headers, rows))
    return 0


def _connections(api: ApiClient, ns: argparse.Namespace) -> int:
    conns = api.call("GET", "/api/connections")
    headers = ["ID", "PROTOCOL", "PEER", "USER", "CLIENT-ID", "CONSUMERS"]
    rows = [
        [c["id"], c["protocol"], c["peer"], c["user"], c["client_id"], len(c["consumers"])]
        for c in conns
    ]
    _out(ns, conns, lambda: render_table(headers, rows))
    return 0


def _short(body: str, width: int = 60) -> str:
    body = body.replace("\n", "\\n")
    return body if len(body) <= width else body[: width - 3] + "..."


def _browse(api: ApiClient, ns: argparse.Namespace) -> int:
    page = api.call("GET", f"{_queue_path(ns.queue)}/messages?offset={ns.offset}&limit={ns.limit}")
    msgs = page["messages"]
    headers = ["ID", "SIZE", "REDELIVERED", "BODY"]
    rows = [[m["id"], m["size"], m["redelivered"], _short(m["body"])] for m in msgs]
    _out(ns, page, lambda: render_table(headers, rows))
    return 0


def _parse_headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep:
            name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"ferrymq send: header {item!r} is not NAME:VALUE")
        headers[name.strip()] = value
    return headers


def _send(api: ApiClient, ns: argparse.Namespace) -> int:
    from_stdin = ns.body is None or ns.body == "-"
    body = sys.stdin.buffer.read() if from_stdin else ns.body.encode()
    try:
        payload: dict[str, Any] = {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        payload = {"body": base64.b64encode(body).decode(), "body_encoding": "base64"}
    payload["headers"] = _parse_headers(ns.header)
    payload["persistent"] = not ns.non_persistent
    result = api.call("POST", _dest_path(ns.destination), payload)
    _out(ns, result, lambda: f"sent {result['id']} to {result['destination']}")
    return 0


def _receive(api: ApiClient, ns: argparse.Namespace) -> int:
    result = api.call("POST", f"{_queue_path(ns.queue)}/get", {"count": ns.count})
    if ns.json:
        print(json.dumps(result, indent=2))
    else:
        for msg in result["messages"]:
            print(msg["body"])
    return 0


def _purge(api: ApiClient, ns: argparse.Namespace) -> int:
    result = api.call("DELETE", f"{_queue_path(ns.queue)}/messages")
    _out(ns, result, lambda: f"purged {result['purged']} messages from {result['queue']}")
    return 0


def _move(api: ApiClient, ns: argparse.Namespace) -> int:
    """In batches of --batch (each one atomic store write), with a progress
    bar on a terminal: moving a big DLQ back takes a while."""
    body: dict[str, Any] = {"to": ns.target, "limit": ns.batch}
    if ns.id:
        body["ids"] = ns.id
    if ns.selector:
        body["selector"] = ns.selector
    path = _queue_path(ns.source)
    total = api.call("GET", path).get("depth", 0)
    show = not ns.json and sys.stderr.isatty() and total > ns.batch
    moved = 0
    while True:
        result = api.call("POST", f"{path}/move", body)
        moved += result["moved"]
        if show:
            _progress(moved, total)
        if result["moved"] < ns.batch:
            break
    if show:
        print(file=sys.stderr)
    result["moved"] = moved
    _out(ns, result, lambda: f"moved {moved} messages to {result['to']}")
    return 0


def _progress(done: int, total: int, width: int = 40) -> None:
    filled = width * min(done, total) // max(total, 1)
    bar = "#" * filled + " " * (width - filled)
    print(f"\rmoving [{bar}] {done}/{total}", end="", file=sys.stderr, flush=True)


ADMIN_COMMANDS: dict[str, tuple[Command, str]] = {
    "status": (_status, "the broker's overview"),
    "queues": (_queues, "queues with depth, consumers, counters and rates"),
    "topics": (_topics, "topics and their subscriptions"),
    "connections": (_connections, "client connections"),
    "browse": (_browse, "show a queue's messages without consuming them"),
    "send": (_send, "send a message to /queue/NAME (or bare NAME) or /topic/NAME"),
    "receive": (_receive, "take (consume) up to N messages from a queue"),
    "purge": (_purge, "delete every queued message of a queue"),
    "move": (_move, "move messages (all, --id ..., or --selector) from one queue to another"),
}


def add_admin_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    parsers = {
        name: sub.add_parser(name, parents=[common], help=text, description=text)
        for name, (_, text) in ADMIN_COMMANDS.items()
    }
    parsers["browse"].add_argument("queue")
    parsers["browse"].add_argument("--offset", type=int, default=0)
    parsers["browse"].add_argument("--limit", type=int, default=100)
    send = parsers["send"]
    send.add_argument("destination")
    send.add_argument("body", nargs="?", help="the body; '-' or absent: read stdin")
    send.add_argument("-H", "--header", action="append", default=[], metavar="NAME:VALUE")
    send.add_argument("--non-persistent", action="store_true", help="do not journal it")
    parsers["receive"].add_argument("queue")
    parsers["receive"].add_argument("-n", "--count", type=int, default=1)
    parsers["purge"].add_argument("queue")
    move = parsers["move"]
    move.add_argument("source")
    move.add_argument("target")
    move.add_argument("--id", action="append", default=[], help="only this message (repeatable)")
    move.add_argument("--selector", help="only messages this JMS selector matches")
    move.add_argument(
        "--batch", type=int, default=1000, help="messages per request (default: 1000)"
    )
