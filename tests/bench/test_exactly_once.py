"""The exactly-once check, end to end, against a broker that misbehaves on purpose."""

from __future__ import annotations

from ferrymq.bench import Workload, run_bench

from .fake_broker import FakeBroker


async def test_lost_messages_are_counted_and_fail_the_run() -> None:
    async with FakeBroker(drop_every=10) as fake:
        w = Workload(port=fake.port, count=1000, idle_timeout=0.3, timeout=10)
        result = await run_bench(w)
    assert result["lost"] == 100
    assert result["duplicates"] == 0
    assert result["received"] == 900
    assert result["ok"] is False
    assert "stopped" in result["error"]
    assert result["missing_sample"][0] == [0, 9]


async def test_duplicates_are_counted_and_fail_the_run() -> None:
    async with FakeBroker(duplicate_every=100) as fake:
        w = Workload(port=fake.port, count=1000, ack="client-individual", timeout=10)
        result = await run_bench(w)
    assert result["lost"] == 0
    assert result["duplicates"] == 10
    assert result["broker"] == "fake/1"
    assert result["ok"] is False
    assert result["error"] is None


async def test_an_error_frame_ends_the_run_with_the_brokers_words() -> None:
    async with FakeBroker(error_on_send=True) as fake:
        result = await run_bench(Workload(port=fake.port, count=10, timeout=10))
    assert result["ok"] is False
    assert "sending is forbidden here" in result["error"]
