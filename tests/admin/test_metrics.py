"""/metrics in Prometheus text format, parsed with prometheus_client's parser."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ferrymq.core.message import MESSAGE_OVERHEAD
from ferrymq.testing import ThreadedBroker


def scrape(port: int) -> dict[str, Any]:
    """{sample name: {frozen labels: value}} of one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return samples


def test_metrics_follow_the_broker_state(clients: Any, broker: ThreadedBroker) -> None:
    producer = clients()
    for i in range(4):
        producer.conn.send("/queue/m", f"{i}")
    producer.sync()
    consumer = clients()
    consumer.conn.subscribe(
        "/queue/m", id="s", ack="client-individual", headers={"activemq.prefetchSize": "1"}
    )
    consumer.get()
    consumer.sync()

    m = scrape(broker.http_port)
    q = frozenset({("destination", "/queue/m")})
    assert m["ferrymq_queue_messages"][q] == 3
    assert m["ferrymq_queue_messages_in_flight"][q] == 1
    assert m["ferrymq_queue_consumers"][q] == 1
    assert m["ferrymq_queue_enqueued_total"][q] == 4
    assert m["ferrymq_queue_dequeued_total"][q] == 1
    assert m["ferrymq_queue_redelivered_total"][q] == 0
    assert m["ferrymq_connections"][frozenset()] == 2
    # Four 1-byte bodies, each message (and the fixture's own) at its footprint.
    used = m["ferrymq_memory_used_bytes"][frozenset()]
    assert used >= 4 + 4 * MESSAGE_OVERHEAD and (used - 4) % MESSAGE_OVERHEAD == 0
    assert m["ferrymq_memory_budget_bytes"][frozenset()] == broker.settings.memory_budget
    assert m["ferrymq_role"][frozenset({("role", "master")})] == 1
    assert m["ferrymq_role"][frozenset({("role", "slave")})] == 0
    assert m["ferrymq_uptime_seconds"][frozenset()] >= 0

    consumer.close()
    m = scrape(broker.http_port)
    assert m["ferrymq_queue_redelivered_total"][q] == 1
    assert m["ferrymq_connections"][frozenset()] == 1


def test_journal_metrics(tmp_path: Path) -> None:
    with ThreadedBroker(store="journal", data=str(tmp_path)) as b:
        from tests.server.conftest import Client

        client = Client(b.stomp_port)
        client.conn.send("/queue/p", "x", headers={"persistent": "true"})
        client.sync()
        client.close()
        m = scrape(b.http_port)
        assert m["ferrymq_journal_fsyncs_total"][frozenset()] >= 1
        assert m["ferrymq_journal_size_bytes"][frozenset()] > 0
        assert m["ferrymq_journal_segments"][frozenset()] >= 1
        fsyncs = m["ferrymq_journal_fsync_seconds_count"][frozenset()]
        assert fsyncs == m["ferrymq_journal_fsyncs_total"][frozenset()]
        assert m["ferrymq_journal_fsync_seconds_bucket"][frozenset({("le", "+Inf")})] == fsyncs
        assert m["ferrymq_journal_fsync_seconds_sum"][frozenset()] > 0
        rounds = m["ferrymq_journal_group_commit_appends_count"][frozenset()]
        assert rounds >= 1
        assert m["ferrymq_journal_group_commit_appends_sum"][frozenset()] >= rounds
