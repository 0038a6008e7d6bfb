"""`ferrymq bench` against a real ferrymq broker, in-process and as a module."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferrymq.bench import Workload, main, run_bench
from ferrymq.core.queue import Queue
from ferrymq.testing import BrokerProcess, ThreadedBroker

RESULT_FIELDS = {
    "broker",
    "workload",
    "sent",
    "received",
    "seconds",
    "msgs_per_s",
    "mb_per_s",
    "latency_ms",
    "lost",
    "duplicates",
    "ok",
}


@pytest.fixture(scope="module")
def broker() -> Iterator[ThreadedBroker]:
    with ThreadedBroker() as b:
        yield b


def queue_of(broker: ThreadedBroker, name: str) -> Queue:
    """The broker's queue object (read on the broker's own thread)."""

    def lookup() -> Queue:
        assert broker.server is not None
        return broker.server.broker.queues[name]

    return broker.call(lookup)


def workload(broker: ThreadedBroker, **overrides: Any) -> Workload:
    settings: dict[str, Any] = {"port": broker.stomp_port, "count": 2000, "timeout": 30}
    return Workload(**(settings | overrides))


def assert_exactly_once(result: dict[str, Any], deliveries: int) -> None:
    assert result.keys() >= RESULT_FIELDS
    assert result["error"] is None
    assert (result["lost"], result["duplicates"], result["unexpected"]) == (0, 0, 0)
    assert result["received"] == deliveries
    assert result["ok"] is True
    assert result["msgs_per_s"] > 0
    assert set(result["latency_ms"]) >= {"p50", "p99", "max"}
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]


async def test_queue_auto_ack(broker: ThreadedBroker) -> None:
    result = await run_bench(workload(broker, destination="/queue/bench.auto"))
    assert_exactly_once(result, 2000)
    assert result["sent"] == 2000
    assert result["broker"].startswith("ferrymq/")


async def test_queue_client_individual_with_prefetch(broker: ThreadedBroker) -> None:
    result = await run_bench(
        workload(
            broker,
            destination="/queue/bench.individual",
            ack="client-individual",
            prefetch=50,
            consumers=2,
        )
    )
    assert_exactly_once(result, 2000)
    # Every ack was processed: nothing is left in flight or queued.
    queue = queue_of(broker, "/queue/bench.individual")
    assert broker.call(lambda: (queue.depth, queue.in_flight)) == (0, 0)


async def test_queue_client_cumulative_ack(broker: ThreadedBroker) -> None:
    result = await run_bench(
        workload(broker, destination="/queue/bench.client", ack="client", prefetch=100)
    )
    assert_exactly_once(result, 2000)
    queue = queue_of(broker, "/queue/bench.client")
    assert broker.call(lambda: (queue.depth, queue.in_flight)) == (0, 0)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("ack", ["client", "client-individual"])
async def test_acks_in_older_stomp_versions(broker: ThreadedBroker, version: str, ack: str) -> None:
    name = f"/queue/bench.v{version}.{ack}"
    result = await run_bench(
        workload(broker, destination=name, ack=ack, prefetch=20, stomp_version=version)
    )
    assert_exactly_once(result, 2000)
    queue = queue_of(broker, name)
    assert broker.call(lambda: (queue.depth, queue.in_flight)) == (0, 0)


async def test_topic_delivers_every_message_to_every_consumer(broker: ThreadedBroker) -> None:
    result = await run_bench(workload(broker, destination="/topic/bench.fanout", consumers=3))
    assert_exactly_once(result, 6000)
    assert result["sent"] == 2000
    assert result["workload"]["pubsub"] is True


async def test_receipts_every_100_sends(broker: ThreadedBroker) -> None:
    result = await run_bench(
        workload(broker, destination="/queue/bench.receipts", receipt_every=100, persistent=True)
    )
    assert_exactly_once(result, 2000)
    assert result["receipt_latency_ms"]["max"] > 0


async def test_fixed_rate_paces_the_producers(broker: ThreadedBroker) -> None:
    result = await run_bench(
        workload(broker, destination="/queue/bench.rate", rate=500, count=500, producers=2)
    )
    assert_exactly_once(result, 500)
    # 500 messages at 500/s: the last one is due just under 1 s after the first.
    assert 0.95 <= result["seconds"] < 3
    assert 400 < result["msgs_per_s"] <= 510


async def test_warmup_and_several_destinations(broker: ThreadedBroker) -> None:
    result = await run_bench(
        workload(
            broker,
            destination="/queue/bench.multi",
            destinations=4,
            producers=4,
            consumers=4,
            warmup=400,
        )
    )
    assert_exactly_once(result, 2000)
    queues = [queue_of(broker, f"/queue/bench.multi.{k}") for k in range(4)]
    enqueued = broker.call(lambda: [q.stats.enqueued for q in queues])
    # Each producer has its own queue: 100 warm-up and 500 measured messages each.
    assert enqueued == [600, 600, 600, 600]


async def test_an_unreachable_broker_is_a_failed_run() -> None:
    with ThreadedBroker() as b:
        port = b.stomp_port
    result = await run_bench(Workload(port=port, count=10, timeout=10))
    assert result["ok"] is False
    assert "cannot connect" in result["error"]


def test_main_prints_one_json_line_and_a_summary(
    broker: ThreadedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--port",
        str(broker.stomp_port),
        "--count",
        "1000",
        "--destination",
        "/queue/bench.main",
    ]
    assert main(args) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["ok"] is True
    assert result["client_loop"] in ("uvloop", "asyncio")
    assert "msgs/s" in err

    assert main([*args, "--json-only"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["ok"] is True
    assert err == ""


def test_main_exits_non_zero_when_the_run_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedBroker() as b:
        port = b.stomp_port
    assert main(["--port", str(port), "--count", "10", "--json-only"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_ferrymq_bench_command_passes_options_through(
    broker: ThreadedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    from ferrymq.cli import main as cli_main

    args = ["--port", str(broker.stomp_port), "--count", "100", "--json-only"]
    assert cli_main(["bench", *args]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_a_leading_separator_is_accepted(
    broker: ThreadedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--", "--port", str(broker.stomp_port), "--count", "100", "--json-only"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.mark.e2e
def test_module_entry_point_against_a_broker_process(tmp_path: Path) -> None:
    args = ["--stomp", "127.0.0.1:0", "--http", "off", "--data", str(tmp_path), "--store", "memory"]
    with BrokerProcess(args) as proc:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ferrymq.bench",
                "--port",
                str(proc.stomp_port),
                "--count",
                "5000",
                "--ack",
                "client",
                "--timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    assert result["received"] == 5000
    assert "OK: lost 0" in done.stderr
