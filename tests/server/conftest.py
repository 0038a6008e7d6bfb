"""Fixtures for tests over real TCP: a broker on free ports, stomp.py clients,
and a raw socket for bytes no well-behaved client would send."""

from __future__ import annotations

import contextlib
import itertools
import queue
import socket
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import stomp
from stomp.utils import Frame as StompPyFrame

from ferrymq.protocol.stomp import Frame, StompParser, serialize_frame
from ferrymq.testing import ThreadedBroker
from ferrymq.testing.wire import WireClient

TIMEOUT = 5.0


@pytest.fixture
def broker() -> Iterator[ThreadedBroker]:
    with ThreadedBroker() as b:
        yield b


class Listener(stomp.ConnectionListener):  # type: ignore[misc]
    """Collects what the broker sends, for the test thread to wait on."""

    def __init__(self) -> None:
        self.messages: queue.Queue[StompPyFrame] = queue.Queue()
        self.errors: queue.Queue[StompPyFrame] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.disconnected = queue.Queue[bool]()

    def on_message(self, frame: StompPyFrame) -> None:
        self.messages.put(frame)

    def on_error(self, frame: StompPyFrame) -> None:
        self.errors.put(frame)

    def on_receipt(self, frame: StompPyFrame) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_disconnected(self) -> None:
        self.disconnected.put(True)


class Client:
    """A stomp.py connection with blocking, time-bounded helpers."""

    def __init__(self, port: int, version: str = "1.2", **connect_headers: Any) -> None:
        cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}
        kwargs: dict[str, Any] = {}
        heartbeats = connect_headers.pop("heartbeats", None)
        if heartbeats is not None:
            kwargs["heartbeats"] = heartbeats
        self.conn = cls[version]([("127.0.0.1", port)], **kwargs)
        self.listener = Listener()
        self.conn.set_listener("test", self.listener)
        self.conn.connect(wait=True, headers=connect_headers)

    def get(self, timeout: float = TIMEOUT) -> StompPyFrame:
        return self.listener.messages.get(timeout=timeout)

    def get_many(self, n: int, timeout: float = TIMEOUT) -> list[StompPyFrame]:
        return [self.get(timeout) for _ in range(n)]

    def nothing_more(self, wait: float = 0.2) -> bool:
        """True when no further message arrives (after a receipt round trip)."""
        self.sync()
        try:
            self.listener.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def sync(self) -> None:
        """Round trip to the broker: everything sent before is processed."""
        receipt = uuid.uuid4().hex
        self.conn.send("/queue/ferrymq.test.sync", "", headers={"receipt": receipt})
        self.wait_receipt(receipt)

    def wait_receipt(self, receipt: str, timeout: float = TIMEOUT) -> None:
        while True:
            got = self.listener.receipts.get(timeout=timeout)
            if got == receipt:
                return

    def error(self, timeout: float = TIMEOUT) -> StompPyFrame:
        return self.listener.errors.get(timeout=timeout)

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.disconnect()


@pytest.fixture
def clients(broker: ThreadedBroker) -> Iterator[Any]:
    made: list[Client] = []

    def make(version: str = "1.2", **headers: Any) -> Client:
        client = Client(broker.stomp_port, version, **headers)
        made.append(client)
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            client.close()


class RawClient:
    """A plain socket speaking bytes, reading frames back with our own parser."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.parser = StompParser(version="1.2")
        self.pending: list[Frame] = []

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, command: str, body: bytes = b"", **headers: str) -> None:
        fixed = {k.replace("_", "-"): v for k, v in headers.items()}
        frame = Frame(command=command, headers=fixed, body=body)
        self.sock.sendall(serialize_frame(frame, self.parser.version))

    def connect(self, version: str = "1.2") -> Frame:
        self.send("CONNECT", accept_version=version, host="localhost")
        frame = self.frame()
        assert frame.command == "CONNECTED", frame
        return frame

    def frame(self) -> Frame:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by broker")
            self.pending.extend(e for e in self.parser.feed(data) if isinstance(e, Frame))
        return self.pending.pop(0)

    def closed_by_peer(self) -> bool:
        """True once the broker has closed the connection (reads EOF)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.pending.extend(e for e in self.parser.feed(data) if isinstance(e, Frame))
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(broker: ThreadedBroker) -> Iterator[Any]:
    made: list[RawClient] = []

    def make() -> RawClient:
        client = RawClient(broker.stomp_port)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class Peer:
    """A WireClient that waits for a RECEIPT on every frame it sends, keeping
    the MESSAGEs that arrive meanwhile: every wait is bounded by the socket
    timeout, and a receipt round trip is the only synchronisation."""

    def __init__(self, port: int, **connect: str) -> None:
        self.wire = WireClient(port)
        self.wire.connect(**connect)
        self.messages: deque[Frame] = deque()
        self._ids = itertools.count()

    def request(self, command: str, body: bytes = b"", **headers: str) -> None:
        receipt = f"r{next(self._ids)}"
        self.wire.send(command, body, receipt=receipt, **headers)
        while True:
            frame = self.wire.frame()
            if frame.command == "ERROR":
                raise AssertionError(f"ERROR: {frame.headers.get('message')}")
            if frame.command == "RECEIPT" and frame.headers["receipt-id"] == receipt:
                return
            self.messages.append(frame)

    def send(self, destination: str, body: str = "", **headers: str) -> None:
        self.request("SEND", body.encode(), destination=destination, **headers)

    def subscribe(self, destination: str, sub_id: str = "s", **headers: str) -> None:
        self.request("SUBSCRIBE", destination=destination, id=sub_id, **headers)

    def get(self) -> Frame:
        if self.messages:
            return self.messages.popleft()
        frame = self.wire.frame()
        assert frame.command == "MESSAGE", frame
        return frame

    def drain(self) -> list[Frame]:
        """Every MESSAGE dispatched to us so far (a round trip flushes them)."""
        self.request("SEND", b"", destination="/queue/ferrymq.test.sync")
        got = list(self.messages)
        self.messages.clear()
        return got

    def ack(self, frame: Frame) -> None:
        self.request("ACK", id=frame.headers["ack"])

    def leave(self, sub_id: str = "s") -> None:
        """Unsubscribe (what it had not acked goes back at once), then close."""
        self.request("UNSUBSCRIBE", id=sub_id)
        self.close()

    def close(self) -> None:
        self.wire.close()


@pytest.fixture
def peers() -> Iterator[Callable[[ThreadedBroker], Peer]]:
    made: list[Peer] = []

    def make(broker: ThreadedBroker) -> Peer:
        peer = Peer(broker.stomp_port)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def bodies(frames: list[Frame]) -> list[str]:
    return [f.body.decode() for f in frames]


def journal_broker(path: Path, **settings: Any) -> ThreadedBroker:
    return ThreadedBroker(store="journal", data=str(path), **settings)
