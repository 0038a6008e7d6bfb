"""One bench connection to a STOMP broker: an asyncio Protocol around the codec.

It does what producers and consumers share: CONNECT and wait for CONNECTED,
RECEIPT futures, write backpressure (`wait_writable`), and turning an ERROR
frame or an unexpected close into one failure reported to the run. Subclasses
see MESSAGE frames through `on_events`, one call per socket read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any, cast

from ferrymq.bench.options import Workload
from ferrymq.protocol.stomp import Event, Frame, ProtocolViolation, StompParser, serialize_frame

__all__ = ["BenchError", "StompClient"]

# The write buffer may hold a few producer batches before we pause: enough
# to keep the socket busy while the next batch is built, little enough that
# a slow broker pushes back within a fraction of a second.
_WRITE_HIGH = 256 * 1024
_WRITE_LOW = 64 * 1024


class BenchError(Exception):
    """The run cannot go on: the broker refused, closed, or sent garbage."""


class StompClient(asyncio.Protocol):
    """A STOMP client connection; `await open()`, then write frames."""

    def __init__(
        self, name: str, workload: Workload, on_failure: Callable[[BenchError], None]
    ) -> None:
        self.name = name
        self.workload = workload
        self.parser = StompParser()  # switches to the negotiated version on CONNECTED
        self.version = "1.0"
        self.server = ""
        self.transport: asyncio.Transport | None = None
        self.error: BenchError | None = None
        self.closing = False  # we are closing: the close that follows is no failure
        self._loop = asyncio.get_running_loop()
        self._connected: asyncio.Future[Frame] = self._loop.create_future()
        self._receipts: dict[str, asyncio.Future[int]] = {}
        self._writable = asyncio.Event()
        self._writable.set()
        self._on_failure = on_failure

    # -- setup and teardown ------------------------------------------------

    async def open(self) -> None:
        """Connect, send CONNECT and wait for CONNECTED (ERROR raises BenchError)."""
        w = self.workload
        try:
            await self._loop.create_connection(lambda: self, w.host, w.port)
        except OSError as exc:
            raise BenchError(f"cannot connect to {w.host}:{w.port}: {exc}") from exc
        headers = {
            "accept-version": w.stomp_version,
            # Required from 1.1 on; RabbitMQ reads it as the virtual host.
            "host": w.vhost if w.vhost is not None else w.host,
            "heart-beat": "0,0",
        }
        if w.login is not None:
            headers["login"] = w.login
        if w.passcode is not None:
            headers["passcode"] = w.passcode
        self.write_frame("CONNECT", headers)
        connected = await self._connected
        self.version = connected.headers.get("version", "1.0")
        self.server = connected.headers.get("server", "")

    async def close(self, timeout: float) -> None:
        """DISCONNECT with a receipt (so the broker has read all we sent), then close."""
        if self.transport is None or self.transport.is_closing() or self.error is not None:
            return
        self.closing = True
        receipt = self.expect_receipt(f"bye-{self.name}")
        self.write_frame("DISCONNECT", {"receipt": f"bye-{self.name}"})
        try:
            await asyncio.wait_for(receipt, timeout)
        except (TimeoutError, BenchError):
            pass  # we are leaving anyway; the figures are already taken
        finally:
            self.abort()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # -- writing -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def write_frame(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        self.write(
            serialize_frame(Frame(command=command, headers=headers, body=body), self.version)
        )

    async def wait_writable(self) -> None:
        """Return once the write buffer has drained below its low-water mark."""
        if not self._writable.is_set():
            await self._writable.wait()
        if self.error is not None:
            raise self.error

    def expect_receipt(self, receipt_id: str) -> asyncio.Future[int]:
        """A future resolving to the `perf_counter_ns` at which RECEIPT `receipt_id` came."""
        fut: asyncio.Future[int] = self._loop.create_future()
        if self.error is not None:
            fut.set_exception(self.error)
        else:
            self._receipts[receipt_id] = fut
        return fut

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH, low=_WRITE_LOW)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Receipts and acks are small; Nagle would hold them back.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.on_events(self.parser.feed(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            reason = f": {exc}" if exc is not None else ""
            self.fail(BenchError(f"{self.name}: the broker closed the connection{reason}"))
        self._writable.set()  # wake writers; they see self.error
        for fut in self._receipts.values():
            if not fut.done():
                fut.set_exception(self.error or BenchError(f"{self.name}: closed"))
                fut.exception()  # see fail()
        self._receipts.clear()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- reading ---------------------------------------------------------------

    def on_events(self, events: list[Event]) -> None:
        """Everything one read produced. Consumers override this for MESSAGEs."""
        for event in events:
            self.on_control(event)

    def on_control(self, event: Event) -> None:
        """Any event but a MESSAGE: CONNECTED, RECEIPT, ERROR, garbage."""
        if type(event) is Frame:
            command = event.command
            if command == "RECEIPT":
                fut = self._receipts.pop(event.headers.get("receipt-id", ""), None)
                if fut is not None and not fut.done():
                    fut.set_result(time.perf_counter_ns())
            elif command == "CONNECTED":
                if not self._connected.done():
                    self._connected.set_result(event)
            elif command == "ERROR":
                message = event.headers.get("message", "")
                detail = event.body.decode(errors="replace").strip()
                text = f"{message}: {detail}" if detail and detail != message else message
                self.fail(BenchError(f"{self.name}: the broker sent ERROR: {text}"))
            elif command == "MESSAGE":
                pass  # to a producer: nothing subscribed here, ignore
        elif type(event) is ProtocolViolation:
            self.fail(BenchError(f"{self.name}: unreadable frame from the broker: {event.message}"))

    def fail(self, error: BenchError) -> None:
        """Record the first failure, wake every waiter with it, tell the run, close."""
        if self.error is not None:
            return
        self.error = error
        futures: list[asyncio.Future[Any]] = [self._connected, *self._receipts.values()]
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)
                # Whoever awaits it still gets the error; nobody awaiting is fine
                # too (asyncio would otherwise log "exception never retrieved").
                fut.exception()
        self._receipts.clear()
        self._writable.set()
        self._on_failure(error)
        self.abort()
