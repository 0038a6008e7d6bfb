"""Fixtures for admin tests: a broker with its HTTP port, a small JSON client
over real HTTP (urllib), and stomp.py clients."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ferrymq.testing import ThreadedBroker
from tests.server.conftest import clients  # noqa: F401 (stomp.py clients on this folder's `broker`)

TIMEOUT = 5.0


class Http:
    """JSON over real HTTP; returns (status, decoded body) and never raises on 4xx/5xx."""

    def __init__(self, port: int, user: str | None = None, password: str = "") -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.auth: str | None = None
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.auth = f"Basic {token}"

    def request(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.auth is not None:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                status, payload = resp.status, resp.read()
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
            ctype = exc.headers.get("Content-Type", "")
        if "json" in ctype:
            return status, json.loads(payload)
        return status, payload.decode()

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request("POST", path, body if body is not None else {})

    def delete(self, path: str) -> tuple[int, Any]:
        return self.request("DELETE", path)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.request(method, path, body)
        assert 200 <= status < 300, (status, payload)
        return payload


@pytest.fixture
def broker() -> Iterator[ThreadedBroker]:
    with ThreadedBroker() as b:
        yield b


@pytest.fixture
def http(broker: ThreadedBroker) -> Http:
    return Http(broker.http_port)
