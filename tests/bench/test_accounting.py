"""The bench's bookkeeping without a broker: stamps, exactly-once, percentiles, plans."""

from __future__ import annotations

import pytest

from ferrymq.bench.options import Workload, parse_workload
from ferrymq.bench.payload import STAMP_SIZE, SendTemplate, decode_stamp, make_body
from ferrymq.bench.plan import Plan, split
from ferrymq.bench.stats import Progress, Tally, latency_summary, percentile
from ferrymq.protocol.stomp import Frame, StompParser

RUN = 7


def bodies(producer: int, seqs: list[int], sent_ns: int = 0, run_id: int = RUN) -> list[bytes]:
    return [make_body(64, run_id, producer, s, sent_ns) for s in seqs]


def test_tally_counts_every_message_once_and_finds_holes() -> None:
    tally = Tally(RUN, expected=[5, 3], warmup=[0, 0])
    latencies: list[int] = []
    new = tally.record(bodies(0, [0, 1, 2, 4]) + bodies(1, [0, 1, 2]), 1_000, latencies)
    assert new == 7
    assert tally.unique == 7
    assert tally.lost() == 1
    assert tally.missing() == [(0, 3)]
    # Producer 0 got only 3 messages out before the run was cut short.
    assert tally.lost(sent=[3, 3]) == 0
    assert tally.missing(sent=[3, 3]) == []
    assert tally.duplicates == 0
    assert latencies == [1_000] * 7


def test_tally_counts_duplicates_without_double_counting_latency() -> None:
    tally = Tally(RUN, expected=[3], warmup=[0])
    latencies: list[int] = []
    tally.record(bodies(0, [0, 1, 2]), 10, latencies)
    assert tally.record(bodies(0, [1, 1, 2]), 20, latencies) == 0
    assert tally.duplicates == 3
    assert tally.lost() == 0
    assert latencies == [10, 10, 10]


def test_tally_sets_aside_foreign_and_flags_unexpected_messages() -> None:
    tally = Tally(RUN, expected=[2, 0], warmup=[0, 0])
    latencies: list[int] = []
    received = [
        b"not a bench message",
        make_body(64, RUN + 1, 0, 0, 0),  # an earlier run's leftover
        *bodies(0, [2]),  # a sequence number never sent
        *bodies(1, [0]),  # a producer that sends elsewhere
        *bodies(5, [0]),  # a producer that does not exist
        *bodies(0, [0, 1]),
    ]
    assert tally.record(received, 0, latencies) == 2
    assert tally.foreign == 2
    assert tally.unexpected == 3
    assert tally.lost() == 0


def test_tally_leaves_warmup_messages_out_of_latency() -> None:
    tally = Tally(RUN, expected=[4], warmup=[2])
    latencies: list[int] = []
    tally.record(bodies(0, [0, 1, 2, 3], sent_ns=100), 150, latencies)
    assert latencies == [50, 50]
    assert tally.unique == 4


def test_progress_fires_once_when_the_target_is_crossed() -> None:
    fired: list[int] = []
    progress = Progress(lambda: fired.append(progress.delivered))
    assert not progress.expect(5)
    progress.add(3, 1)
    progress.add(0, 2)
    progress.add(4, 3)
    progress.add(1, 4)
    assert fired == [7]
    assert progress.last_ns == 4
    assert progress.expect(8)


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile([7], 50) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_in_milliseconds() -> None:
    summary = latency_summary([3_000_000, 1_000_000, 2_000_000, 10_000_000])
    assert summary == {"p50": 2.0, "p90": 10.0, "p99": 10.0, "p999": 10.0, "max": 10.0, "mean": 4.0}
    assert latency_summary([]) is None


def test_split_spreads_the_remainder_first() -> None:
    assert split(10, 3) == [4, 3, 3]
    assert split(2, 4) == [1, 1, 0, 0]


def test_plan_queue_shares_one_tally_per_destination() -> None:
    w = Workload(producers=4, consumers=4, destinations=2, count=100, warmup=8)
    plan = Plan.of(w)
    assert plan.destinations == ["/queue/bench.0", "/queue/bench.1"]
    tallies, per_consumer = plan.tallies(RUN, pubsub=False)
    assert len(tallies) == 2
    assert per_consumer[0] is per_consumer[2] is tallies[0]
    assert tallies[0].expected == [27, 0, 27, 0]
    assert sum(t.total_expected for t in tallies) == 108
    assert Plan.warmup_deliveries(tallies) == 8


def test_plan_topic_gives_every_consumer_every_message() -> None:
    w = Workload(producers=1, consumers=3, destination="/topic/t", count=10)
    tallies, per_consumer = Plan.of(w).tallies(RUN, pubsub=True)
    assert per_consumer == tallies
    assert [t.total_expected for t in tallies] == [10, 10, 10]


def test_send_template_frames_parse_back_with_their_stamps() -> None:
    template = SendTemplate("/queue/a:b", 100, persistent=True, version="1.2")
    stamps = [make_body(100, RUN, 3, s, 42)[:STAMP_SIZE] for s in range(3)]
    receipt = template.with_receipt("r-1")
    wire = template.frames(stamps[:2]) + receipt + stamps[2] + template.tail
    frames = StompParser(version="1.2").feed(wire)
    assert all(type(f) is Frame and f.command == "SEND" for f in frames)
    parsed = [f for f in frames if type(f) is Frame]
    assert [decode_stamp(f.body) for f in parsed] == [(RUN, 3, s, 42) for s in range(3)]
    assert all(len(f.body) == 100 for f in parsed)
    assert parsed[0].headers == {
        "destination": "/queue/a:b",
        "persistent": "true",
        "content-length": "100",
    }
    assert parsed[2].headers["receipt"] == "r-1"
    assert template.frames([]) == b""


def test_workload_rejects_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="--size"):
        Workload(size=STAMP_SIZE - 1)
    with pytest.raises(ValueError, match="--consumers"):
        Workload(consumers=1, destinations=2)
    with pytest.raises(SystemExit):
        parse_workload(["--ack", "sometimes"])


def test_workload_description_has_no_credentials() -> None:
    w = parse_workload(["--login", "guest", "--passcode", "secret", "--vhost", "/"])
    described = w.describe()
    assert "passcode" not in described and "login" not in described
    assert described["vhost"] == "/"
    assert "secret" not in repr(described)


def test_cumulative_ack_interval_stays_below_the_prefetch() -> None:
    assert Workload(ack="client", prefetch=10).cumulative_ack_every == 5
    assert Workload(ack="client", prefetch=1).cumulative_ack_every == 1
    assert Workload(ack="client").cumulative_ack_every == 100
    assert Workload(ack="client", ack_every=7).cumulative_ack_every == 7
