"""The JSON management API under /api (documented in docs/http-api.md).

Handlers are thin adapters: parse the request, check the permission, call a
snapshot (reads) or `ferrymq.core.management` (changes), serialise.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from aiohttp import web

from ferrymq import __version__
from ferrymq.admin.errors import ApiError
from ferrymq.admin.security import request_user, require
from ferrymq.admin.snapshots import (
    all_queues,
    connection_info,
    consumer_info,
    message_info,
    queue_info,
    queue_totals,
    topic_infos,
)
from ferrymq.admin.state import state
from ferrymq.core import BrokerError, Destination, DestinationKind, management
from ferrymq.core.errors import InvalidDestination, SubscriptionError
from ferrymq.core.queue import Queue

__all__ = ["add_routes"]

# Most messages one browse or get returns: bounds the response size.
MAX_PAGE = 1000
DEFAULT_PAGE = 100


# -- request helpers -------------------------------------------------------


def _destination(kind: DestinationKind, name: str) -> Destination:
    try:
        return Destination.of(kind, name)
    except InvalidDestination as exc:
        raise ApiError(400, exc.message) from None


def _queue(request: web.Request) -> Queue:
    """The queue named in the path, or 404."""
    dest = _destination(DestinationKind.QUEUE, request.match_info["name"])
    queue = state(request).server.broker.queues.get(str(dest))
    if queue is None:
        raise ApiError(404, f"no queue {dest}")
    return queue


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"query parameter {name!r} must be between {low} and {high}")
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object a POST carries (an empty body reads as {})."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(name, default)
    if value is not default and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ApiError(400, f"field {name!r} must be of type {names}")
    return value


def _message_body(data: dict[str, Any]) -> bytes:
    body = _field(data, "body", str, "")
    encoding = _field(data, "body_encoding", str, "utf-8")
    if encoding == "utf-8":
        return str(body).encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            raise ApiError(400, "field 'body' is not valid base64") from None
    raise ApiError(400, "field 'body_encoding' must be 'utf-8' or 'base64'")


def _headers(data: dict[str, Any]) -> dict[str, str]:
    headers = _field(data, "headers", dict, {})
    bad = [k for k, v in headers.items() if not isinstance(v, str | int | float) or not k]
    if bad:
        raise ApiError(400, f"header values must be strings: {', '.join(map(repr, bad))}")
    return {str(k): str(v) for k, v in headers.items()}


def _core_call(fn: Any, *args: Any) -> Any:
    """Run a management action, mapping the core's refusals to HTTP codes."""
    try:
        return fn(*args)
    except management.UnknownQueue as exc:
        raise ApiError(404, exc.message) from None
    except SubscriptionError as exc:
        raise ApiError(409, exc.message) from None
    except BrokerError as exc:
        raise ApiError(400, exc.message) from None


# -- reads -----------------------------------------------------------------


async def overview(request: web.Request) -> web.Response:
    st = state(request)
    server = st.server
    broker = server.broker
    queues = all_queues(broker)
    last = st.sampler.history[-1].as_dict() if st.sampler.history else None
    user = request_user(request)
    body = {
        "version": __version__,
        "node": server.node_name,
        "role": server.role,
        "ha": server.ha_status(),
        "started_at": round(broker.started_at, 3),
        "uptime_s": round(time.time() - broker.started_at, 3),
        "user": user.public() if user is not None else None,
        "auth": server.ctx.auth is not None,
        "totals": {
            "queues": len(broker.queues),
            "topics": len(broker.router.bindings()),
            "connections": len(server.ctx.sessions),
            **queue_totals(queues),
        },
        "rates": st.sampler.total.as_dict(),
        "sample": last,
        "memory": {"used": broker.memory.used, "budget": broker.memory.limit},
        "store": broker.store.statistics(),
    }
    return web.json_response(body)


async def history(request: web.Request) -> web.Response:
    points = [p.as_dict() for p in state(request).sampler.history]
    return web.json_response({"interval_s": state(request).sampler.interval, "points": points})


async def list_queues(request: web.Request) -> web.Response:
    st = state(request)
    queues = sorted(st.server.broker.queues.values(), key=lambda q: q.name)
    return web.json_response([queue_info(q, st.sampler) for q in queues])


async def show_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    info = queue_info(queue, state(request).sampler)
    info["consumer_details"] = [consumer_info(c) for c in queue.consumers]
    return web.json_response(info)


async def list_topics(request: web.Request) -> web.Response:
    st = state(request)
    return web.json_response(topic_infos(st.server.broker, st.sampler))


async def show_topic(request: web.Request) -> web.Response:
    st = state(request)
    dest = str(_destination(DestinationKind.TOPIC, request.match_info["name"]))
    for info in topic_infos(st.server.broker, st.sampler):
        if info["destination"] == dest:
            return web.json_response(info)
    raise ApiError(404, f"no subscriptions on {dest}")


async def browse(request: web.Request) -> web.Response:
    queue = _queue(request)
    require(request, "read", queue.name)
    offset = _int_param(request, "offset", 0, 0, 1 << 62)
    limit = _int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    messages = queue.browse(offset, limit)
    return web.json_response(
        {
            "queue": queue.name,
            "offset": offset,
            "limit": limit,
            "depth": queue.depth,
            "messages": [message_info(m) for m in messages],
        }
    )


async def list_connections(request: web.Request) -> web.Response:
    sessions = state(request).server.ctx.sessions
    infos = [connection_info(s) for s in sessions]
    infos.sort(key=lambda c: str(c.get("id") or ""))
    return web.json_response(infos)


async def whoami(request: web.Request) -> web.Response:
    user = request_user(request)
    if user is None:
        return web.json_response({"name": None, "admin": True, "open": True})
    return web.json_response({**user.public(), "admin": user.is_admin, "open": False})


# -- changes -----------------------------------------------------------------


async def _send(request: web.Request, kind: DestinationKind) -> web.Response:
    dest = _destination(kind, request.match_info["name"])
    require(request, "write", str(dest))
    data = await _body(request)
    body = _message_body(data)
    headers = _headers(data)
    persistent = _field(data, "persistent", bool, True)
    broker = state(request).server.broker
    if len(body) > state(request).server.settings.max_body:
        raise ApiError(413, f"body of {len(body)} bytes exceeds max-body")
    message = _core_call(management.send, broker, dest, headers, body, persistent)
    pending = broker.store.durable()
    if pending is not None:
        # Same promise as a STOMP RECEIPT: answered once the message is on disk.
        await pending
    return web.json_response({"id": message.id, "destination": str(dest)}, status=201)


async def send_to_queue(request: web.Request) -> web.Response:
    return await _send(request, DestinationKind.QUEUE)


async def send_to_topic(request: web.Request) -> web.Response:
    return await _send(request, DestinationKind.TOPIC)


async def _durable(request: web.Request) -> None:
    pending = state(request).server.broker.store.durable()
    if pending is not None:
        await pending


async def get_messages(request: web.Request) -> web.Response:
    """Take messages off the queue (consuming them), for `ferrymq receive`."""
    queue = _queue(request)
    require(request, "read", queue.name)
    data = await _body(request)
    count = _field(data, "count", int, 1)
    if not 1 <= count <= MAX_PAGE:
        raise ApiError(400, f"field 'count' must be between 1 and {MAX_PAGE}")
    taken = _core_call(management.get, state(request).server.broker, queue.name, count)
    await _durable(request)
    return web.json_response({"queue": queue.name, "messages": [message_info(m) for m in taken]})


async def purge(request: web.Request) -> web.Response:
    queue = _queue(request)
    require(request, "admin", queue.name)
    n = _core_call(management.purge, state(request).server.broker, queue.name)
    await _durable(request)
    return web.json_response({"queue": queue.name, "purged": n})


async def delete_queue(request: web.Request) -> web.Response:
    queue = _queue(request)
    require(request, "admin", queue.name)
    _core_call(management.delete, state(request).server.broker, queue.name)
    await _durable(request)
    return web.json_response({"queue": queue.name, "deleted": True})


async def move(request: web.Request) -> web.Response:
    queue = _queue(request)
    data = await _body(request)
    target = _field(data, "to", str, None)
    if not target:
        raise ApiError(400, "field 'to' (the target queue) is required")
    if not target.startswith("/"):
        target = f"/queue/{target}"
    ids = _field(data, "ids", list, None)
    if ids is not None and not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "field 'ids' must be a list of message ids")
    selector = _field(data, "selector", str, None)
    limit = _field(data, "limit", int, None)
    if limit is not None and limit < 1:
        raise ApiError(400, "field 'limit' must be a positive number")
    require(request, "admin", queue.name)
    require(request, "write", target)
    broker = state(request).server.broker
    moved = _core_call(
        management.move,
        broker,
        queue.name,
        target,
        None if ids is None else set(ids),
        selector or None,
        limit,
    )
    await _durable(request)
    return web.json_response({"from": queue.name, "to": target, "moved": moved})


async def close_connection(request: web.Request) -> web.Response:
    require(request, "admin", ">")
    conn_id = request.match_info["id"]
    for session in list(state(request).server.ctx.sessions):
        if session.conn is not None and session.conn.id == conn_id:
            session.abort()
            return web.json_response({"id": conn_id, "closed": True})
    raise ApiError(404, f"no connection {conn_id}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/overview", overview)
    r.add_get("/api/history", history)
    r.add_get("/api/whoami", whoami)
    r.add_get("/api/queues", list_queues)
    r.add_get("/api/queues/{name}", show_queue)
    r.add_delete("/api/queues/{name}", delete_queue)
    r.add_get("/api/queues/{name}/messages", browse)
    r.add_post("/api/queues/{name}/messages", send_to_queue)
    r.add_delete("/api/queues/{name}/messages", purge)
    r.add_post("/api/queues/{name}/get", get_messages)
    r.add_post("/api/queues/{name}/move", move)
    r.add_get("/api/topics", list_topics)
    r.add_get("/api/topics/{name}", show_topic)
    r.add_post("/api/topics/{name}/messages", send_to_topic)
    r.add_get("/api/connections", list_connections)
    r.add_delete("/api/connections/{id}", close_connection)
