"""The reconnect schedule, computed (no waiting): ActiveMQ's backoff and limits."""

from __future__ import annotations

import random

import pytest

from ferrymq.client.backoff import Backoff, ReconnectBudget, pass_order
from ferrymq.client.uri import BrokerAddress, FailoverOptions, parse_uri


def delays(budget: ReconnectBudget, passes: int) -> list[float | None]:
    """The delay before each pass, failing every one."""
    out: list[float | None] = []
    for _ in range(passes):
        delay = budget.next_delay()
        out.append(delay)
        if delay is None:
            break
        budget.failed()
    return out


def test_default_schedule_doubles_from_10_ms_to_30_s() -> None:
    backoff = Backoff.from_options(FailoverOptions())
    got = [backoff.compute(n) for n in range(15)]
    assert got[:6] == [0.0, 0.010, 0.020, 0.040, 0.080, 0.160]
    assert got[12] == pytest.approx(20.48)
    assert got[13] == 30.0 and got[14] == 30.0  # capped at maxReconnectDelay
    assert backoff.compute(10_000) == 30.0  # a long outage neither overflows nor slows


def test_constant_delay_without_exponential_backoff() -> None:
    options = parse_uri(
        "failover:(stomp://a:1)?useExponentialBackOff=false&initialReconnectDelay=250"
    ).options
    backoff = Backoff.from_options(options)
    assert [backoff.compute(n) for n in range(4)] == [0.0, 0.25, 0.25, 0.25]


def test_multiplier_and_cap() -> None:
    options = parse_uri(
        "failover:(stomp://a:1)?initialReconnectDelay=100&backOffMultiplier=3"
        "&maxReconnectDelay=1000"
    ).options
    backoff = Backoff.from_options(options)
    assert [backoff.compute(n) for n in range(6)] == pytest.approx([0, 0.1, 0.3, 0.9, 1.0, 1.0])


def test_max_reconnect_attempts_counts_passes_after_the_first() -> None:
    budget = ReconnectBudget(parse_uri("failover:(stomp://a:1)?maxReconnectAttempts=2").options)
    assert delays(budget, 10) == [0.0, 0.010, 0.020, None]


def test_zero_attempts_means_one_pass_and_no_retry() -> None:
    budget = ReconnectBudget(parse_uri("failover:(stomp://a:1)?maxReconnectAttempts=0").options)
    assert delays(budget, 10) == [0.0, None]


def test_forever_by_default() -> None:
    budget = ReconnectBudget(FailoverOptions())
    assert None not in delays(budget, 200)


def test_startup_limit_applies_until_first_success_then_the_other() -> None:
    options = parse_uri(
        "failover:(stomp://a:1)?startupMaxReconnectAttempts=1&maxReconnectAttempts=3"
    ).options
    budget = ReconnectBudget(options)
    assert delays(budget, 10) == [0.0, 0.010, None]
    budget = ReconnectBudget(options)
    budget.failed()
    budget.connected()  # connected at last: failures reset, the normal limit rules
    assert delays(budget, 10) == [0.0, 0.010, 0.020, 0.040, None]


def test_pass_order_randomizes_unless_told_not_to() -> None:
    addresses = [BrokerAddress(h, 1) for h in "abcdef"]
    fixed = parse_uri("failover:(stomp://a:1)?randomize=false").options
    ordered = pass_order(addresses, fixed, random.Random(1))
    assert ordered == addresses
    rng = random.Random(7)
    orders = {tuple(pass_order(addresses, FailoverOptions(), rng)) for _ in range(20)}
    assert len(orders) > 1  # decided afresh on every pass
    assert all(sorted(o, key=lambda a: a.host) == addresses for o in orders)


def test_priority_brokers_come_first() -> None:
    addresses = [BrokerAddress(h, 1) for h in "abc"]
    options = FailoverOptions(priority_backup=True)
    for seed in range(10):
        assert pass_order(addresses, options, random.Random(seed))[0] == addresses[0]
    options = FailoverOptions(priority_backup=True, priority_uris=(addresses[2], addresses[1]))
    assert pass_order(addresses, options, random.Random(0)) == [
        addresses[2],
        addresses[1],
        addresses[0],
    ]
