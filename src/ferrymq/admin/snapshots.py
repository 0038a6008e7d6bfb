"""Broker state as plain JSON-ready dicts: what the API serves.

Pure reads of the core, no I/O; the HTTP handlers only serialise these and the
Prometheus collector reads the same helpers. Everything runs on the broker's
loop, so a snapshot is consistent.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ferrymq.core import Broker, Consumer, Message

if TYPE_CHECKING:
    from ferrymq.admin.sampler import Sampler
    from ferrymq.core.queue import Queue
    from ferrymq.server.stomp_session import StompSession

__all__ = [
    "all_queues",
    "connection_info",
    "consumer_info",
    "message_info",
    "queue_info",
    "topic_infos",
]


def all_queues(broker: Broker) -> list[Queue]:
    """Every queue: named queues, then every topic subscription's queue."""
    found = list(broker.queues.values())
    seen = {id(q) for q in found}
    for queues in broker.router.bindings().values():
        for queue in queues:
            if id(queue) not in seen:
                seen.add(id(queue))
                found.append(queue)
    return found


def short_name(key: str) -> str:
    """`/queue/a.b` -> `a.b` (the name as the API's paths spell it)."""
    return key.split("/", 2)[2] if key.startswith("/") and key.count("/") >= 2 else key


def queue_info(queue: Queue, sampler: Sampler | None) -> dict[str, Any]:
    stats = queue.stats
    info: dict[str, Any] = {
        "name": short_name(queue.name),
        "destination": queue.name,
        "durable": queue.durable,
        "depth": queue.depth,
        "in_flight": queue.in_flight,
        "consumers": len(queue.consumers),
        "enqueued": stats.enqueued,
        "dequeued": stats.dequeued,
        "redelivered": stats.redelivered,
        "expired": stats.expired,
        "dead_lettered": stats.dead_lettered,
    }
    if sampler is not None:
        info["rates"] = sampler.rates(queue.name).as_dict()
    return info


def consumer_info(consumer: Consumer) -> dict[str, Any]:
    return {
        "connection": consumer.connection.id,
        "subscription": consumer.id,
        "destination": str(consumer.destination),
        "ack": consumer.ack_mode.value,
        "prefetch": consumer.prefetch,
        "unacked": len(consumer.unacked),
        "durable_name": consumer.durable_name,
        "selector": None if consumer.selector is None else consumer.selector.text,
    }


def _sum_rates(queues: Iterable[Queue], sampler: Sampler | None) -> dict[str, float]:
    total = {"enqueue": 0.0, "dequeue": 0.0, "redeliver": 0.0}
    if sampler is not None:
        for queue in queues:
            for key, value in sampler.rates(queue.name).as_dict().items():
                total[key] = round(total[key] + value, 2)
    return total


def queue_totals(queues: Sequence[Queue]) -> dict[str, int]:
    """Counts and counters added up over some queues."""
    return {
        "consumers": sum(len(q.consumers) for q in queues),
        "depth": sum(q.depth for q in queues),
        "in_flight": sum(q.in_flight for q in queues),
        "enqueued": sum(q.stats.enqueued for q in queues),
        "dequeued": sum(q.stats.dequeued for q in queues),
        "redelivered": sum(q.stats.redelivered for q in queues),
        "expired": sum(q.stats.expired for q in queues),
        "dead_lettered": sum(q.stats.dead_lettered for q in queues),
    }


def topic_infos(broker: Broker, sampler: Sampler | None) -> list[dict[str, Any]]:
    """One entry per subscribed topic pattern. A topic keeps no messages of its
    own: its counters add up those of its current subscriptions."""
    infos = []
    for pattern, queues in sorted(broker.router.bindings().items()):
        infos.append(
            {
                "name": short_name(pattern),
                "destination": pattern,
                "subscriptions": len(queues),
                "durable_subscriptions": sum(1 for q in queues if q.durable),
                **queue_totals(queues),
                "rates": _sum_rates(queues, sampler),
                "subscription_queues": [queue_info(q, sampler) for q in queues],
            }
        )
    return infos


def message_info(message: Message) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": message.id,
        "destination": str(message.destination),
        "headers": dict(message.headers),
        "size": len(message.body),
        "persistent": message.persistent,
        "timestamp": message.timestamp,
        "redelivered": message.redelivered,
        "delivery_count": message.delivery_count,
    }
    try:
        info["body"] = message.body.decode("utf-8")
        info["body_encoding"] = "utf-8"
    except UnicodeDecodeError:
        info["body"] = base64.b64encode(message.body).decode("ascii")
        info["body_encoding"] = "base64"
    return info


def connection_info(session: StompSession) -> dict[str, Any]:
    conn = session.conn
    user = session.user
    return {
        "id": conn.id if conn is not None else None,
        "protocol": f"stomp/{session.version}",
        "peer": session.peer,
        "user": user.name if user is not None else None,
        "client_id": conn.client_id if conn is not None else None,
        "connected_at": round(session.connected_at, 3),
        "consumers": [consumer_info(c) for c in conn.consumers.values()] if conn else [],
        "transactions": len(conn.transactions) if conn is not None else 0,
    }
