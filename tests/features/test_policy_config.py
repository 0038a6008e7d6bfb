"""Policies from the TOML config file, and how entries match destinations."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from ferrymq.cli import _build_parser
from ferrymq.config import load_settings
from ferrymq.core.policy import Policy, PolicyMap
from ferrymq.errors import ConfigError
from ferrymq.testing import ThreadedBroker
from tests.server.conftest import Client

CONFIG = """
node-name = "p"

[[policy]]
match = "/queue/orders.>"
max-redeliveries = 1
initial-redelivery-delay = 100
backoff-multiplier = 2
max-redelivery-delay = 350
dead-letter = "shared"

[[policy]]
match = "/queue/#"
expired = "drop"
default-ttl = 60000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ferrymq.toml"
    path.write_text(text)
    return path


def test_policies_load_from_the_config_file(tmp_path: Path) -> None:
    settings = load_settings(config_file=write(tmp_path, CONFIG), env={})
    orders, rest = settings.policy
    assert orders == Policy(
        match="/queue/orders.>",
        max_redeliveries=1,
        initial_redelivery_delay=100,
        backoff_multiplier=2.0,
        max_redelivery_delay=350,
        dead_letter="shared",
    )
    assert rest.match == "/queue/>" and rest.expired == "drop" and rest.default_ttl == 60000
    assert [orders.redelivery_delay(n) for n in (1, 2, 3, 4)] == [100, 200, 350, 350]


def test_first_matching_entry_wins_else_defaults() -> None:
    a = Policy(match="/queue/orders.*", max_redeliveries=1)
    b = Policy(match="/queue/>", max_redeliveries=2)
    policies = PolicyMap([a, b])
    assert policies.for_destination("/queue/orders.eu") is a
    assert policies.for_destination("/queue/orders.eu.x") is b
    assert policies.for_destination("/topic/orders.eu").max_redeliveries == 6


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("max-redeliveries = 1", "'match' is required"),
        ('match = "/queue/a"\ncolour = 1', "unknown policy setting 'colour'"),
        ('match = "/queue/a"\nmax-redeliveries = "x"', "expected a whole number"),
        ('match = "/queue/a"\ndead-letter = "some"', "individual or shared"),
        ('match = "/queue/a"\nexpired = "keep"', "dlq or drop"),
        ('match = "/queue/a"\nbackoff-multiplier = 0.5', "at least 1.0"),
        ('match = "queue/a"', "invalid destination"),
    ],
)
def test_bad_policy_entries_are_named(tmp_path: Path, entry: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="policy\\[0\\]") as exc:
        load_settings(config_file=write(tmp_path, f"[[policy]]\n{entry}\n"), env={})
    assert problem in str(exc.value)


def test_policy_is_file_only() -> None:
    with pytest.raises(ConfigError, match="unknown setting FERRYMQ_POLICY"):
        load_settings(env={"FERRYMQ_POLICY": "x"})
    assert "--policy" not in _build_parser().format_help()
    serve_help = _build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    assert "--policy" not in serve_help and "--max-body" in serve_help


def test_a_configured_broker_applies_its_policy(tmp_path: Path) -> None:
    settings = load_settings(config_file=write(tmp_path, CONFIG), env={})
    settings = dataclasses.replace(
        settings, stomp="127.0.0.1:0", http="127.0.0.1:0", store="memory"
    )
    with ThreadedBroker(settings) as broker:
        consumer: Any = Client(broker.stomp_port)
        consumer.conn.subscribe("/queue/orders.x", id="s", ack="client-individual")
        consumer.conn.send("/queue/orders.x", "o")
        for _ in range(2):
            frame = consumer.get()
            consumer.conn.nack(frame.headers["ack"])
        consumer.conn.subscribe("/queue/DLQ", id="d", ack="auto")
        dead = consumer.get()
        assert dead.headers["original-destination"] == "/queue/orders.x"
        assert "expires" not in dead.headers  # orders.> has no default TTL
        consumer.conn.subscribe("/queue/other", id="o", ack="auto")
        consumer.conn.send("/queue/other", "t")
        expires = int(consumer.get().headers["expires"])  # the second entry's TTL
        assert abs(expires - (time.time() * 1000 + 60_000)) < 5_000
        consumer.close()
