"""Broker URIs and failover options: ActiveMQ's syntax, names and defaults."""

from __future__ import annotations

import pytest

from ferrymq.client.uri import BrokerAddress, FailoverOptions, parse_uri


def test_defaults_are_activemq_defaults() -> None:
    options = parse_uri("failover:(stomp://a:1)").options
    assert options == FailoverOptions()
    assert options.initial_reconnect_delay == 10
    assert options.max_reconnect_delay == 30_000
    assert options.use_exponential_backoff is True
    assert options.backoff_multiplier == 2.0
    assert options.max_reconnect_attempts == -1
    assert options.startup_max_reconnect_attempts == -1
    assert options.randomize is True
    assert options.timeout == -1
    assert options.priority_backup is False


def test_plain_uri_is_one_broker_without_reconnect() -> None:
    parsed = parse_uri("stomp://broker.example:61614")
    assert parsed.addresses == (BrokerAddress("broker.example", 61614),)
    assert not parsed.failover
    assert parsed.options.attempt_limit(first_connection=True) == 0
    assert parsed.options.attempt_limit(first_connection=False) == 0


@pytest.mark.parametrize(
    "uri",
    [
        "failover:(stomp://a:61613,stomp://b:61614)",
        "failover://(stomp://a:61613,stomp://b:61614)",
        "failover:stomp://a:61613,stomp://b:61614",
        "failover:(tcp://a,stomp://b:61614)",
        " failover:( stomp://a:61613 , stomp://b:61614 ) ",
    ],
)
def test_failover_forms(uri: str) -> None:
    parsed = parse_uri(uri)
    assert parsed.failover
    assert parsed.addresses == (BrokerAddress("a", 61613), BrokerAddress("b", 61614))


def test_every_option_by_its_activemq_name() -> None:
    parsed = parse_uri(
        "failover:(stomp://a:1,stomp://b:2,stomp://c:3)?initialReconnectDelay=100"
        "&maxReconnectDelay=5000&useExponentialBackOff=false&backOffMultiplier=1.5"
        "&maxReconnectAttempts=7&startupMaxReconnectAttempts=3&randomize=false"
        "&timeout=2500&priorityBackup=true&priorityURIs=stomp://b:2,stomp://c:3"
    )
    assert parsed.options == FailoverOptions(
        initial_reconnect_delay=100,
        max_reconnect_delay=5000,
        use_exponential_backoff=False,
        backoff_multiplier=1.5,
        max_reconnect_attempts=7,
        startup_max_reconnect_attempts=3,
        randomize=False,
        timeout=2500,
        priority_backup=True,
        priority_uris=(BrokerAddress("b", 2), BrokerAddress("c", 3)),
    )


def test_options_after_a_bare_list() -> None:
    parsed = parse_uri("failover:stomp://a:1,stomp://b:2?randomize=false&timeout=10")
    assert parsed.addresses == (BrokerAddress("a", 1), BrokerAddress("b", 2))
    assert parsed.options.randomize is False and parsed.options.timeout == 10


def test_startup_limit_falls_back_to_max_reconnect_attempts() -> None:
    options = parse_uri("failover:(stomp://a:1)?maxReconnectAttempts=4").options
    assert options.attempt_limit(first_connection=True) == 4
    options = parse_uri(
        "failover:(stomp://a:1)?maxReconnectAttempts=4&startupMaxReconnectAttempts=1"
    ).options
    assert options.attempt_limit(first_connection=True) == 1
    assert options.attempt_limit(first_connection=False) == 4


def test_ipv6_address() -> None:
    assert parse_uri("stomp://[::1]:7000").addresses == (BrokerAddress("::1", 7000),)
    assert str(BrokerAddress("::1", 7000)) == "stomp://[::1]:7000"


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("http://a:1", "scheme"),
        ("failover:(stomp://a:1", "parenthesis"),
        ("failover:()", "no broker"),
        ("failover:(stomp://a:1)?initialReconectDelay=5", "unknown failover option"),
        ("failover:(stomp://a:1)?randomize=maybe", "randomize"),
        ("failover:(stomp://a:1)?timeout=-5", "timeout"),
        ("failover:(stomp://a:1)?backOffMultiplier=0.5", "backOffMultiplier"),
        ("failover:(stomp://a:1)?maxReconnectAttempts", "no value"),
        ("stomp://a:notaport", "port"),
        ("stomp://:1", "no host"),
    ],
)
def test_bad_uris_say_what_is_wrong(uri: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_uri(uri)
