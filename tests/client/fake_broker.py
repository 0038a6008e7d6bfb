"""A scriptable STOMP server for client tests, on the sans-IO codec.

Each connection is a FakeSession. By default it answers CONNECT with
CONNECTED and every frame that asks for a receipt with a RECEIPT; a test
installs `on_frame(session, frame) -> bool` to answer differently (return
True when it handled the frame). Everything received is recorded, and
`wait_for` blocks (bounded) until a condition on the recording holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ferrymq.protocol.stomp import Frame, StompParser, serialize_frame

TIMEOUT = 5.0


class FakeSession(asyncio.Protocol):
    def __init__(self, broker: FakeBroker, index: int) -> None:
        self.broker = broker
        self.index = index
        self.parser = StompParser(version="1.2")
        self.frames: list[Frame] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.broker.refuse:
            transport.abort()

    def data_received(self, data: bytes) -> None:
        for event in self.parser.feed(data):
            if not isinstance(event, Frame):
                continue
            self.frames.append(event)
            self.broker.changed()
            if event.command in ("CONNECT", "STOMP"):
                self.write("CONNECTED", version="1.2", **{"heart-beat": self.broker.heartbeat})
                continue
            hook = self.broker.on_frame
            if hook is not None and hook(self, event):
                continue
            receipt = event.headers.get("receipt")
            if receipt is not None:
                self.write("RECEIPT", **{"receipt-id": receipt})

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker.changed()

    def write(self, command: str, body: bytes = b"", **headers: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            frame = Frame(command=command, headers=headers, body=body)
            self.transport.write(serialize_frame(frame, "1.2"))

    def receipt(self, frame: Frame, **extra: str) -> None:
        self.write("RECEIPT", **{"receipt-id": frame.headers["receipt"]}, **extra)

    def error(self, frame: Frame, message: str) -> None:
        """ERROR (with receipt-id when asked) and close, as STOMP brokers do."""
        headers = {"message": message}
        if "receipt" in frame.headers:
            headers["receipt-id"] = frame.headers["receipt"]
        self.write("ERROR", **headers)
        self.drop(graceful=True)

    def drop(self, graceful: bool = False) -> None:
        if self.transport is not None:
            if graceful:
                self.transport.close()
            else:
                self.transport.abort()

    def sent(self, command: str) -> list[Frame]:
        return [f for f in self.frames if f.command == command]


class FakeBroker:
    def __init__(
        self,
        on_frame: Callable[[FakeSession, Frame], bool] | None = None,
        *,
        heartbeat: str = "0,0",
        refuse: bool = False,
    ) -> None:
        self.on_frame = on_frame
        self.heartbeat = heartbeat
        self.refuse = refuse
        self.sessions: list[FakeSession] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._changed = asyncio.Event()

    async def start(self, port: int = 0) -> FakeBroker:
        loop = asyncio.get_running_loop()

        def factory() -> FakeSession:
            session = FakeSession(self, len(self.sessions))
            self.sessions.append(session)
            self.changed()
            return session

        self.server = await loop.create_server(factory, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def uri(self) -> str:
        return f"stomp://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening and drop every connection (a dead broker)."""
        if self.server is not None:
            self.server.close()
            for session in self.sessions:
                session.drop()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    def changed(self) -> None:
        self._changed.set()

    async def wait_for(self, check: Callable[[], object], timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    def all_frames(self, command: str) -> list[Frame]:
        return [f for s in self.sessions for f in s.sent(command)]


def free_port() -> int:
    """A port nothing listens on (just released by the OS)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
