"""`ferrymq bench --backlog`: produce everything first, then drain, against a real broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferrymq.bench import Workload, main, run_bench
from ferrymq.bench.consumer import Consumer
from ferrymq.bench.options import BACKLOG_RECEIPT_EVERY, parse_workload
from ferrymq.core.queue import Queue
from ferrymq.testing import ThreadedBroker
from tests.bench.test_against_ferrymq import queue_of

BACKLOG_FIELDS = {"produce_seconds", "produce_msgs_per_s", "drain_seconds", "drain_msgs_per_s"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ThreadedBroker]:
    # The journal, and a memory budget well under the backlog: the broker
    # must page the backlog out and read it back while draining.
    with ThreadedBroker(store="journal", data=str(tmp_path), memory_budget=512 * 1024) as b:
        yield b


def settled(broker: ThreadedBroker, queue: Queue) -> bool:
    """Nothing left queued or unacknowledged."""
    return broker.call(lambda: (queue.depth, queue.in_flight)) == (0, 0)


def depth_at_subscribe(monkeypatch: pytest.MonkeyPatch, broker: ThreadedBroker) -> list[int]:
    """Record the destination's depth whenever a bench consumer subscribes."""
    depths: list[int] = []
    subscribe = Consumer.subscribe

    async def spy(self: Consumer) -> None:
        queue = queue_of(broker, self.destination)
        depths.append(broker.call(lambda: queue.depth))
        await subscribe(self)

    monkeypatch.setattr(Consumer, "subscribe", spy)
    return depths


def assert_drained_exactly_once(result: dict[str, Any], count: int) -> None:
    assert result["error"] is None
    assert (result["lost"], result["duplicates"], result["unexpected"]) == (0, 0, 0)
    assert result["received"] == result["sent"] == count
    assert result["ok"] is True
    assert result.keys() >= BACKLOG_FIELDS
    assert result["produce_msgs_per_s"] > 0
    assert result["drain_msgs_per_s"] > 0
    assert result["produce_seconds"] + result["drain_seconds"] <= result["seconds"] + 1e-3


async def test_consumers_subscribe_only_after_the_broker_confirmed_everything(
    broker: ThreadedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    depths = depth_at_subscribe(monkeypatch, broker)
    # 2,500 is not a multiple of the window: the tail is confirmed all the same.
    w = Workload(
        port=broker.stomp_port,
        destination="/queue/backlog.one",
        count=2500,
        persistent=True,
        backlog=True,
        receipt_every=1000,
        timeout=60,
    )
    result = await run_bench(w)
    assert_drained_exactly_once(result, 2500)
    assert depths == [2500]
    assert settled(broker, queue_of(broker, "/queue/backlog.one"))


async def test_several_queues_with_individual_acks(
    broker: ThreadedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    depths = depth_at_subscribe(monkeypatch, broker)
    w = Workload(
        port=broker.stomp_port,
        destination="/queue/backlog.multi",
        destinations=2,
        producers=2,
        consumers=2,
        count=1001,
        persistent=True,
        backlog=True,
        receipt_every=0,  # no window: the last message of each producer still asks
        ack="client-individual",
        prefetch=50,
        timeout=60,
    )
    result = await run_bench(w)
    assert_drained_exactly_once(result, 1001)
    assert sorted(depths) == [500, 501]
    # Two confirmations, one per producer, and nothing else.
    assert result["receipt_latency_ms"] is not None
    for k in range(2):
        assert settled(broker, queue_of(broker, f"/queue/backlog.multi.{k}"))


def test_main_reports_both_phases(
    broker: ThreadedBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--port", str(broker.stomp_port), "--destination", "/queue/backlog.main"]
    args += ["--count", "1500", "--persistent", "--backlog"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert_drained_exactly_once(result, 1500)
    assert result["workload"]["backlog"] is True
    assert result["workload"]["receipt_every"] == BACKLOG_RECEIPT_EVERY
    assert "backlog: produced in" in err


def test_backlog_receipt_window_defaults() -> None:
    assert parse_workload(["--backlog"]).receipt_every == BACKLOG_RECEIPT_EVERY
    assert parse_workload(["--backlog", "--receipt-every", "0"]).receipt_every == 0
    assert parse_workload(["--backlog", "--receipt-every", "50"]).receipt_every == 50
    assert parse_workload([]).receipt_every == 0
    assert parse_workload([]).backlog is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--destination", "/topic/x"], "--backlog needs a queue"),
        (["--warmup", "10"], "--backlog takes no --warmup"),
    ],
)
def test_backlog_rejects_what_it_cannot_measure(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_workload(["--backlog", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


async def test_an_unreachable_broker_is_a_failed_backlog_run() -> None:
    with ThreadedBroker() as b:
        port = b.stomp_port
    result = await run_bench(Workload(port=port, count=10, backlog=True, timeout=10))
    assert result["ok"] is False
    assert "cannot connect" in result["error"]
    assert result["produce_msgs_per_s"] == result["drain_msgs_per_s"] == 0.0
