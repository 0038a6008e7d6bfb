"""Prometheus metrics at /metrics, read from the broker at scrape time.

A custom collector rather than counters updated on the hot path: the core
already counts per queue, so a scrape walks the queues once and nothing is
added per message. Names follow Prometheus conventions: `ferrymq_` prefix,
`_total` counters, base units (bytes, seconds).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ferrymq import __version__
from ferrymq.admin.snapshots import all_queues

if TYPE_CHECKING:
    from ferrymq.server.server import BrokerServer

__all__ = ["BrokerCollector", "metrics_handler"]

# Store statistics exported as counters (monotonic) and as gauges.
_STORE_COUNTERS = {
    "fsyncs": ("ferrymq_journal_fsyncs", "fsync calls of the journal"),
    "writes": ("ferrymq_journal_writes", "write calls of the journal"),
    "batches_written": ("ferrymq_journal_batches", "group-commit batches written"),
    "entries_written": ("ferrymq_journal_entries", "journal records written"),
    "compactions": ("ferrymq_journal_compactions", "segment compactions"),
    "segments_deleted": ("ferrymq_journal_segments_deleted", "segments deleted"),
}
_STORE_HISTOGRAMS = {
    "fsync_seconds": ("ferrymq_journal_fsync_seconds", "journal fsync latency"),
    "batch_appends": (
        "ferrymq_journal_group_commit_appends",
        "operations written per group-commit round (one write, one fsync)",
    ),
}
_STORE_GAUGES = {
    "disk_bytes": ("ferrymq_journal_size_bytes", "bytes of journal segments on disk"),
    "live_bytes": ("ferrymq_journal_live_bytes", "bytes of live records in the journal"),
    "segments": ("ferrymq_journal_segments", "journal segment files"),
    "live_entries": ("ferrymq_journal_live_records", "live records in the journal"),
}
_ROLES = ("master", "slave", "fenced")


class BrokerCollector(Collector):
    def __init__(self, server: BrokerServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        broker = server.broker
        labels = ["destination"]
        depth = GaugeMetricFamily(
            "ferrymq_queue_messages", "messages waiting in the queue", labels=labels
        )
        in_flight = GaugeMetricFamily(
            "ferrymq_queue_messages_in_flight",
            "messages delivered and not yet acknowledged",
            labels=labels,
        )
        consumers = GaugeMetricFamily(
            "ferrymq_queue_consumers", "consumers attached to the queue", labels=labels
        )
        enqueued = CounterMetricFamily(
            "ferrymq_queue_enqueued", "messages added to the queue", labels=labels
        )
        dequeued = CounterMetricFamily(
            "ferrymq_queue_dequeued", "messages handed to consumers", labels=labels
        )
        expired = CounterMetricFamily(
            "ferrymq_queue_expired", "messages found expired (never delivered)", labels=labels
        )
        dead_lettered = CounterMetricFamily(
            "ferrymq_queue_dead_lettered", "messages moved to a dead-letter queue", labels=labels
        )
        redelivered = CounterMetricFamily(
            "ferrymq_queue_redelivered", "messages returned for redelivery", labels=labels
        )
        # A non-durable topic subscription's queue is per connection: exported
        # only in the broker totals, to keep label cardinality bounded.
        for queue in all_queues(broker):
            if not queue.durable:
                continue
            name = [queue.name]
            depth.add_metric(name, queue.depth)
            in_flight.add_metric(name, queue.in_flight)
            consumers.add_metric(name, len(queue.consumers))
            enqueued.add_metric(name, queue.stats.enqueued)
            dequeued.add_metric(name, queue.stats.dequeued)
            redelivered.add_metric(name, queue.stats.redelivered)
            expired.add_metric(name, queue.stats.expired)
            dead_lettered.add_metric(name, queue.stats.dead_lettered)
        yield from (depth, in_flight, consumers, enqueued, dequeued, redelivered)
        yield from (expired, dead_lettered)

        yield GaugeMetricFamily(
            "ferrymq_connections", "open client connections", value=len(server.ctx.sessions)
        )
        yield GaugeMetricFamily(
            "ferrymq_queues", "queues (not counting topic subscriptions)", value=len(broker.queues)
        )
        yield GaugeMetricFamily(
            "ferrymq_memory_used_bytes",
            "bytes of messages held in memory (body + 1 KiB each)",
            value=broker.memory.used,
        )
        yield GaugeMetricFamily(
            "ferrymq_memory_budget_bytes",
            "memory budget for messages",
            value=broker.memory.limit,
        )
        yield GaugeMetricFamily(
            "ferrymq_producers_blocked",
            "producer connections blocked by the memory budget",
            value=len(server.ctx.blocked_producers),
        )
        yield GaugeMetricFamily(
            "ferrymq_uptime_seconds", "seconds since start", value=time.time() - broker.started_at
        )
        role = GaugeMetricFamily("ferrymq_role", "1 for this node's HA role", labels=["role"])
        for role_name in _ROLES:
            role.add_metric([role_name], 1.0 if server.role == role_name else 0.0)
        yield role
        info = GaugeMetricFamily(
            "ferrymq_build_info", "version and node name", labels=["version", "node"]
        )
        info.add_metric([__version__, server.node_name], 1.0)
        yield info
        stats = broker.store.statistics()
        for key, (metric, doc) in _STORE_COUNTERS.items():
            if key in stats:
                yield CounterMetricFamily(metric, doc, value=stats[key])
        for key, (metric, doc) in _STORE_GAUGES.items():
            if key in stats:
                yield GaugeMetricFamily(metric, doc, value=stats[key])
        for key, snap in broker.store.histograms().items():
            if key not in _STORE_HISTOGRAMS:
                continue
            metric, doc = _STORE_HISTOGRAMS[key]
            cumulative, buckets = 0, []
            for bound, n in zip((*snap.bounds, float("inf")), snap.counts, strict=True):
                cumulative += n
                buckets.append(
                    ("+Inf" if bound == float("inf") else repr(float(bound)), cumulative)
                )
            yield HistogramMetricFamily(metric, doc, buckets=buckets, sum_value=snap.total)


def metrics_handler(server: BrokerServer) -> Callable[[web.Request], Awaitable[web.Response]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(server))

    async def handler(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        # aiohttp wants the charset apart from the content type.
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
