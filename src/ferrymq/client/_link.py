"""One TCP connection to one broker: an asyncio Protocol around StompConnection.

It only moves bytes: socket reads go through the sans-IO connection and the
frames it yields go to `on_frame`; heart-beats are written and a silent
broker is dropped by one small timer task. Everything a frame means is the
client's business (`aio.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import cast

from ferrymq.client.connection import ConnState, ProtocolError, StompConnection
from ferrymq.client.errors import BrokerError
from ferrymq.client.uri import BrokerAddress
from ferrymq.protocol.stomp import Frame

__all__ = ["Link"]

log = logging.getLogger(__name__)


class Link(asyncio.Protocol):
    """`await Link.open(...)` returns a link that has received CONNECTED."""

    def __init__(
        self,
        address: BrokerAddress,
        conn: StompConnection,
        on_frame: Callable[[Link, Frame], None],
        on_lost: Callable[[Link], None],
    ) -> None:
        self.address = address
        self.conn = conn
        self.generation = 0
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = self._loop.create_future()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self.error: BaseException | None = None
        self._beats: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        address: BrokerAddress,
        conn: StompConnection,
        on_frame: Callable[[Link, Frame], None],
        on_lost: Callable[[Link], None],
        timeout: float,
    ) -> Link:
        """TCP connect, CONNECT, CONNECTED: within `timeout` seconds or TimeoutError."""
        loop = asyncio.get_running_loop()
        link = cls(address, conn, on_frame, on_lost)
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(lambda: link, address.host, address.port)
                await asyncio.shield(link.connected)
        except BaseException:
            link.abort()
            raise
        return link

    # -- writing -------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return (
            self.transport is not None
            and not self.lost.done()
            and self.conn.state is ConnState.CONNECTED
        )

    def write(self, frame: Frame) -> None:
        assert self.transport is not None
        self.transport.write(self.conn.frame_bytes(frame, self._loop.time()))

    def write_many(self, frames: list[Frame]) -> None:
        """One write for a batch (a replay), not one per frame."""
        assert self.transport is not None
        now = self._loop.time()
        self.transport.write(b"".join(self.conn.frame_bytes(f, now) for f in frames))

    def abort(self) -> None:
        """Close at once. The client hears of it now, not a loop turn later,
        so nothing more is written to a link it has given up on."""
        self._mark_lost()
        if self.transport is not None:
            self.transport.abort()

    def _mark_lost(self) -> None:
        if self.error is None:
            self.error = ConnectionAbortedError(f"connection to {self.address} aborted")
        if not self.connected.done():
            self.connected.set_exception(self.error)
            self.connected.exception()  # retrieved: open() may have timed out already
        if self._beats is not None:
            self._beats.cancel()
        if not self.lost.done():
            self.lost.set_result(None)
            self._on_lost(self)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Receipts and acks are small; Nagle would hold them back.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(self.conn.connect_bytes(self._loop.time()))

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.conn.receive_data(data, self._loop.time())
        except (BrokerError, ProtocolError) as exc:
            self._fail(exc)
            return
        if not self.connected.done() and self.conn.state is ConnState.CONNECTED:
            self.connected.set_result(None)
            self._beats = self._loop.create_task(self._heartbeats())
        for frame in frames:
            self._on_frame(self, frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            self.error = exc or ConnectionResetError(f"{self.address} closed the connection")
        self._mark_lost()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.abort()

    async def _heartbeats(self) -> None:
        """Beat when due; drop the link when the broker has gone silent."""
        conn = self.conn
        intervals = [i for i in (conn.send_interval, conn.receive_interval) if i > 0]
        if not intervals:
            return
        # Check a few times per interval: a beat is never late by more than
        # a quarter of it, and silence is noticed as promptly.
        tick = min(intervals) / 4
        while True:
            await asyncio.sleep(tick)
            now = self._loop.time()
            if conn.peer_silent(now):
                log.warning("%s: no heart-beat for %.1f s", self.address, now - conn.last_received)
                self._fail(TimeoutError(f"{self.address} stopped sending heart-beats"))
                return
            if conn.heartbeat_due(now) and self.transport is not None:
                self.transport.write(conn.heartbeat_bytes(now))
