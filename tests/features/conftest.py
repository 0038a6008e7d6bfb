"""Brokers with delivery policies, and restartable journal brokers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferrymq.core.policy import Policy
from ferrymq.testing import ThreadedBroker
from tests.server.conftest import (
    Client,
    clients,  # noqa: F401 (stomp.py clients on this folder's `broker`)
)

POLICIES = (
    Policy(match="/queue/orders.>", max_redeliveries=2),
    Policy(match="/queue/shared.>", max_redeliveries=0, dead_letter="shared"),
    Policy(match="/queue/slow.>", initial_redelivery_delay=300, max_redeliveries=-1),
    Policy(match="/queue/ttl.>", default_ttl=200),
    Policy(match="/queue/drop.>", default_ttl=200, expired="drop"),
    Policy(match="/topic/news.>", max_redeliveries=1),
)


class Restartable:
    """A journal broker on `data` that tests stop and start again."""

    def __init__(self, data: Path, **overrides: Any) -> None:
        self.data = data
        self.overrides = overrides
        self.broker: ThreadedBroker | None = None
        self.clients: list[Client] = []

    def start(self) -> ThreadedBroker:
        self.broker = ThreadedBroker(
            store="journal", data=str(self.data), policy=POLICIES, **self.overrides
        ).start()
        return self.broker

    def client(self, **headers: Any) -> Client:
        assert self.broker is not None
        client = Client(self.broker.stomp_port, "1.2", **headers)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        self.clients.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


@pytest.fixture
def broker() -> Iterator[ThreadedBroker]:
    with ThreadedBroker(policy=POLICIES) as b:
        yield b


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Restartable]:
    r = Restartable(tmp_path / "data")
    yield r
    r.stop()
