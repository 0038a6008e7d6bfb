"""A tiny STOMP broker that loses and duplicates messages on purpose.

It exists to prove the bench's exactly-once check end to end: the real
broker is (hopefully) never lossy, so the check would otherwise only be seen
passing. One loop, one destination map, every SEND forwarded to the
destination's first subscriber.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

from ferrymq.protocol.stomp import Frame, StompParser, serialize_frame

__all__ = ["FakeBroker"]


class FakeBroker:
    """`async with FakeBroker(drop_every=10) as fake: fake.port`."""

    def __init__(
        self, *, drop_every: int = 0, duplicate_every: int = 0, error_on_send: bool = False
    ) -> None:
        self.drop_every = drop_every
        self.duplicate_every = duplicate_every
        self.error_on_send = error_on_send
        self.subscribers: dict[str, tuple[_Session, str]] = {}
        self.sends = 0
        self.ids = itertools.count(1)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeBroker:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class _Session(asyncio.Protocol):
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.parser = StompParser()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        assert self.transport is not None
        frame = Frame(command=command, headers=headers, body=body)
        self.transport.write(serialize_frame(frame, "1.2"))

    def data_received(self, data: bytes) -> None:
        broker = self.broker
        for frame in self.parser.feed(data):
            if type(frame) is not Frame:
                continue
            headers = frame.headers
            if frame.command == "CONNECT":
                self.parser.version = "1.2"
                self.send("CONNECTED", {"version": "1.2", "server": "fake/1"})
            elif frame.command == "SUBSCRIBE":
                broker.subscribers.setdefault(headers["destination"], (self, headers["id"]))
            elif frame.command == "SEND":
                if broker.error_on_send:
                    self.send("ERROR", {"message": "sending is forbidden here"})
                    assert self.transport is not None
                    self.transport.close()
                    return
                broker.sends += 1
                n = broker.sends
                if broker.drop_every and n % broker.drop_every == 0:
                    pass
                else:
                    copies = 2 if broker.duplicate_every and n % broker.duplicate_every == 0 else 1
                    session, sub_id = broker.subscribers[headers["destination"]]
                    for _ in range(copies):
                        message_id = f"m-{next(broker.ids)}"
                        session.send(
                            "MESSAGE",
                            {
                                "destination": headers["destination"],
                                "message-id": message_id,
                                "subscription": sub_id,
                                "ack": message_id,
                            },
                            frame.body,
                        )
            if "receipt" in headers:
                self.send("RECEIPT", {"receipt-id": headers["receipt"]})
