"""One STOMP client connection: bytes into the codec, frames into the core.

The loop is uvicorn's shape: `data_received` feeds the sans-IO parser and
handles each frame it yields by calling the core; deliveries from the core
come back through `deliver`, are serialized at once and go out in one
`writelines` per connection per loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ferrymq import __version__
from ferrymq.auth import User
from ferrymq.core import AckMode, BrokerError, ClientConnection, Consumer, Destination, Message
from ferrymq.core.consumer import DEFAULT_PREFETCH
from ferrymq.protocol.stomp import (
    HEARTBEAT_BYTES,
    SUPPORTED_VERSIONS,
    Frame,
    ProtocolViolation,
    StompParser,
    negotiate_version,
    serialize_frame,
)
from ferrymq.server.stomp_names import StompNames

if TYPE_CHECKING:
    from ferrymq.server.server import ServerContext

__all__ = ["StompSession"]

log = logging.getLogger(__name__)

# Headers of a SEND that steer the broker and are not part of the message.
_TRANSPORT_HEADERS = frozenset(
    {
        "destination",
        "receipt",
        "transaction",
        "content-length",
        "message-id",
        "subscription",
        "ack",
        "redelivered",
        "ferrymq-seq",
    }
)
_ACK_MODES = {mode.value: mode for mode in AckMode}
# The queue's sequence number of a message, on every MESSAGE.
SEQ_HEADER = "ferrymq-seq"
# Output buffered within one loop turn beyond this goes to the transport at
# once, so that its backpressure can act (see _write).
_FLUSH_AT = 256 * 1024


class _FrameRefused(Exception):
    """A client frame we answer with ERROR (then close)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def _require(frame: Frame, name: str) -> str:
    value = frame.headers.get(name)
    if value is None:
        raise _FrameRefused(f"{frame.command} frame is missing required header '{name}'")
    return value


class StompSession(asyncio.Protocol):
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.parser = StompParser(limits=ctx.stomp_limits)
        self.version = "1.0"
        self.conn: ClientConnection | None = None
        self.names: StompNames | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.connected_at = time.time()
        # Who logged in; None while the broker runs without a users file.
        self.user: User | None = None
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._closing = False
        self._reading_paused = False  # blocked as a producer over the memory budget
        self._last_read = self._loop.time()
        self._wrote_since_beat = False
        # At most one pending timer each: CONNECT deadline, outgoing beat, read check.
        self._connect_timer: asyncio.TimerHandle | None = None
        self._beat_timer: asyncio.TimerHandle | None = None
        self._check_timer: asyncio.TimerHandle | None = None
        self._grace = settings.heartbeat_grace
        # Ids of browser subscriptions: done at once, kept until UNSUBSCRIBE.
        self._browsers: set[str] = set()
        self._handlers: dict[str, Callable[[Frame], None]] = {
            "SEND": self._on_send,
            "SUBSCRIBE": self._on_subscribe,
            "UNSUBSCRIBE": self._on_unsubscribe,
            "ACK": self._on_ack,
            "NACK": self._on_nack,
            "BEGIN": self._on_begin,
            "COMMIT": self._on_commit,
            "ABORT": self._on_abort,
            "DISCONNECT": self._on_disconnect,
        }

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.ctx.session_opened(self):
            self._refuse("too many connections")
            return
        timeout = self.ctx.settings.connect_timeout
        self._connect_timer = self._loop.call_later(timeout, self._connect_timed_out)

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        broker = self.ctx.broker
        broker.hold_records()  # one store unit per read, not per frame
        try:
            for event in self.parser.feed(data):
                if self._closing:
                    return
                if type(event) is Frame:
                    self._handle(event)
                elif type(event) is ProtocolViolation:
                    self._error(event.message, detail=event.detail, receipt=event.receipt)
                # HeartBeat: nothing to do beyond noting the read time.
        finally:
            try:
                broker.release_records()
            except BrokerError as exc:
                # The store refused this read's changes: nothing of it was confirmed.
                if not self._closing:
                    self._error(exc.message)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._cancel_timers()
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # never let one connection's teardown hurt the broker
                log.exception("error while closing connection %s", self.peer)
        self.ctx.session_closed(self)

    def _cancel_timers(self) -> None:
        for timer in (self._connect_timer, self._beat_timer, self._check_timer):
            if timer is not None:
                timer.cancel()
        self._connect_timer = self._beat_timer = self._check_timer = None

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.set_writable(False)

    def resume_writing(self) -> None:
        if self.conn is not None and not self._closing:
            self.conn.set_writable(True)

    # -- output ------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes >= _FLUSH_AT:
            # Hand it to the transport now: if the peer is slow, the transport
            # calls pause_writing, which stops dispatch to this connection
            # within this loop turn instead of paging in a whole queue.
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._out_bytes = 0
        if self._out and self.transport is not None and not self.transport.is_closing():
            out, self._out = self._out, []
            self.transport.writelines(out)
            self._wrote_since_beat = True
        else:
            self._out.clear()

    def _send_frame(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        frame = Frame(command=command, headers=headers, body=body)
        self._write(serialize_frame(frame, self.version))

    def deliver(self, consumer: Consumer, message: Message) -> None:
        """Called by the core: one MESSAGE to this client."""
        assert self.names is not None
        headers = {
            "destination": self.names.render(message.destination),
            "message-id": message.id,
            "subscription": consumer.id,
        }
        if consumer.ack_mode is not AckMode.AUTO:
            headers["ack"] = f"{consumer.cid}:{message.id}"
        if message.delivery_count:
            headers["redelivered"] = "true"
            headers["delivery-count"] = str(message.delivery_count + 1)
        if message.seq:
            headers[SEQ_HEADER] = str(message.seq)
        for name, value in message.headers.items():
            headers.setdefault(name, value)
        self._send_frame("MESSAGE", headers, message.body)

    # -- errors and closing --------------------------------------------------

    def _error(self, message: str, *, detail: str = "", receipt: str | None = None) -> None:
        """ERROR frame naming the problem, then close: what STOMP asks of a server."""
        headers = {"message": message, "content-type": "text/plain"}
        if receipt is not None:
            headers["receipt-id"] = receipt
        log.info("closing %s after error: %s", self.peer, message)
        self._send_frame("ERROR", headers, (detail or message).encode())
        self._close_after_flush()

    def _refuse(self, message: str) -> None:
        self._send_frame("ERROR", {"message": message})
        self._close_after_flush()

    def _close_after_flush(self) -> None:
        self._closing = True
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now (server shutdown or heart-beat timeout)."""
        self._close_after_flush()

    def _connect_timed_out(self) -> None:
        if self.conn is None and not self._closing:
            self._error("no CONNECT frame within the connect timeout")

    # -- frames ----------------------------------------------------------------

    def _handle(self, frame: Frame) -> None:
        command = frame.command
        try:
            if self.conn is None:
                if command in ("CONNECT", "STOMP"):
                    self._on_connect(frame)
                else:
                    raise _FrameRefused(f"expected CONNECT, got {command}")
                return
            handler = self._handlers.get(command)
            if handler is None:
                if command in ("CONNECT", "STOMP"):
                    raise _FrameRefused("already connected")
                raise _FrameRefused(f"unexpected command {command} from a client")
            handler(frame)
        except (_FrameRefused, BrokerError) as exc:
            detail = exc.detail if isinstance(exc, _FrameRefused) else ""
            self._error(exc.message, detail=detail, receipt=frame.headers.get("receipt"))
        except Exception:
            log.exception("internal error handling %s from %s", command, self.peer)
            self._error("internal error", receipt=frame.headers.get("receipt"))

    def _receipt(self, frame: Frame, **extra: str) -> None:
        """RECEIPT once everything this frame changed is durable."""
        receipt = frame.headers.get("receipt")
        if receipt is None:
            return
        headers = {"receipt-id": receipt, **extra}
        broker = self.ctx.broker
        broker.flush_records(force=True)  # this frame's changes, before asking
        pending = broker.store.durable()
        if pending is None:
            self._send_frame("RECEIPT", headers)
        else:
            pending.add_done_callback(lambda fut: self._receipt_durable(fut, headers))

    def _receipt_durable(self, fut: asyncio.Future[None], headers: dict[str, str]) -> None:
        if self._closing:
            return
        if fut.cancelled() or fut.exception() is not None:
            self._error("message could not be stored", receipt=headers["receipt-id"])
        else:
            self._send_frame("RECEIPT", headers)

    def _on_connect(self, frame: Frame) -> None:
        headers = frame.headers
        version = negotiate_version(headers.get("accept-version"))
        if version is None:
            self._send_frame(
                "ERROR",
                {"version": ",".join(SUPPORTED_VERSIONS), "message": "unsupported STOMP version"},
                f"supported versions are {', '.join(SUPPORTED_VERSIONS)}".encode(),
            )
            self._close_after_flush()
            return
        self.version = version
        self.parser.version = version
        self._authenticate(headers.get("login"), headers.get("passcode"))
        client_id = headers.get("client-id") or None
        self.conn = self.ctx.broker.connect(self, client_id=client_id)
        self.names = StompNames(self.conn)
        self._cancel_timers()
        reply = {"version": version, "server": f"ferrymq/{__version__}", "session": self.conn.id}
        if version != "1.0":
            reply["heart-beat"] = self._negotiate_heartbeat(headers.get("heart-beat", "0,0"))
        self._send_frame("CONNECTED", reply)

    def _authenticate(self, login: str | None, passcode: str | None) -> None:
        auth = self.ctx.auth
        if auth is None:
            return
        user = auth.login(login, passcode)
        if user is None:
            log.warning("failed STOMP login as %r from %s", login, self.peer)
            raise _FrameRefused("authentication failed: wrong login or passcode")
        self.user = user

    def _authorize(self, action: str, destination: Destination) -> None:
        """ERROR naming the destination unless the user may use it (temporary
        destinations are private to their connection: always allowed)."""
        user = self.user
        if user is None or destination.kind.is_temporary:
            return
        text = str(destination)
        if not user.may(action, text):
            verb = "send to" if action == "write" else "subscribe to"
            raise _FrameRefused(f"user {user.name!r} may not {verb} {text}")

    def _negotiate_heartbeat(self, value: str) -> str:
        try:
            cx_text, cy_text = value.split(",")
            cx, cy = int(cx_text), int(cy_text)
            if cx < 0 or cy < 0:
                raise ValueError
        except ValueError:
            raise _FrameRefused(f"invalid heart-beat header {value!r}") from None
        floor = self.ctx.settings.min_heartbeat
        # We can send as often as the client wants and can read as often as it
        # can send, down to a floor that keeps timer load sane.
        send_ms = max(cy, floor) if cy else 0
        recv_ms = max(cx, floor) if cx else 0
        if send_ms:
            self._schedule_send_beat(send_ms / 1000)
        if recv_ms:
            self._schedule_read_check(recv_ms / 1000)
        return f"{send_ms},{recv_ms}"

    def _schedule_send_beat(self, interval: float) -> None:
        def beat() -> None:
            if self._closing:
                return
            # Only when nothing else went out since the last tick; written
            # directly so that the beat itself does not count as traffic.
            if not self._wrote_since_beat and self.transport is not None:
                self.transport.write(HEARTBEAT_BYTES)
            self._wrote_since_beat = False
            self._beat_timer = self._loop.call_later(interval, beat)

        self._beat_timer = self._loop.call_later(interval, beat)

    def _schedule_read_check(self, interval: float) -> None:
        limit = interval * self._grace

        def check() -> None:
            if self._closing:
                return
            silent = self._loop.time() - self._last_read
            if self._reading_paused:
                silent = 0.0  # we are not reading: the peer's beats wait in the socket
            if silent > limit:
                log.info("closing %s: no heart-beat for %.1f s", self.peer, silent)
                self.abort()
                return
            self._check_timer = self._loop.call_later(limit - silent, check)

        self._check_timer = self._loop.call_later(limit, check)

    def _on_send(self, frame: Frame) -> None:
        assert self.conn is not None and self.names is not None
        headers = frame.headers
        dest_text = _require(frame, "destination")
        destination: Destination | list[Destination]
        if "," in dest_text:
            # A composite destination (ActiveMQ): `/queue/a,/topic/b`.
            destination = [self.names.parse(part.strip()) for part in dest_text.split(",")]
            for target in destination:
                self._authorize("write", target)
        else:
            destination = self.names.parse(dest_text)
            self._authorize("write", destination)
        app_headers = {k: v for k, v in headers.items() if k not in _TRANSPORT_HEADERS}
        reply_to = app_headers.get("reply-to")
        if reply_to is not None:
            app_headers["reply-to"] = self.names.global_name(reply_to)
        self.conn.send(
            destination,
            app_headers,
            frame.body,
            persistent=headers.get("persistent") == "true",
            transaction=headers.get("transaction"),
            dedup_id=headers.get("dedup-id") or headers.get("_AMQ_DUPL_ID"),
        )
        self._receipt(frame)
        broker = self.ctx.broker
        if broker.memory.over and not self._reading_paused:
            broker.flush_records(force=True)  # pages out held persistent bodies
            if broker.memory.over:
                self._block_producer()

    def _block_producer(self) -> None:
        """Over the memory budget: stop reading this producer (TCP backpressure)
        until consumers bring use back down."""
        assert self.transport is not None
        self._reading_paused = True
        self.transport.pause_reading()
        self.ctx.block_producer(self)

    def unblock_producer(self) -> None:
        if self._reading_paused and self.transport is not None and not self._closing:
            self._reading_paused = False
            self._last_read = self._loop.time()  # we, not the peer, were silent
            self.transport.resume_reading()

    def _on_subscribe(self, frame: Frame) -> None:
        assert self.conn is not None and self.names is not None
        headers = frame.headers
        dest_text = _require(frame, "destination")
        sub_id = headers.get("id")
        if sub_id is None:
            if self.version != "1.0":
                raise _FrameRefused("SUBSCRIBE frame is missing required header 'id'")
            sub_id = dest_text  # STOMP 1.0 lets the destination name the subscription
        mode_text = headers.get("ack", "auto")
        ack_mode = _ACK_MODES.get(mode_text)
        if ack_mode is None:
            raise _FrameRefused(f"invalid ack mode {mode_text!r}")
        prefetch_text = headers.get("activemq.prefetchSize")
        prefetch = DEFAULT_PREFETCH
        if prefetch_text is not None:
            try:
                prefetch = int(prefetch_text)
            except ValueError:
                raise _FrameRefused(f"invalid activemq.prefetchSize {prefetch_text!r}") from None
        durable = headers.get("activemq.subscriptionName") or headers.get(
            "durable-subscription-name"
        )
        selector = headers.get("selector")
        if selector is not None and not selector.strip():
            selector = None  # an empty selector selects everything, as in ActiveMQ
        destination = self.names.parse(dest_text)
        self._authorize("read", destination)
        if headers.get("browser") == "true":
            self._browse(sub_id, destination)
            self._receipt(frame)
            return
        self.conn.subscribe(
            sub_id,
            destination,
            ack_mode=ack_mode,
            prefetch=prefetch,
            durable_name=durable,
            selector=selector,
            exclusive=headers.get("activemq.exclusive") == "true",
        )
        self._receipt(frame)

    def _browse(self, sub_id: str, destination: Destination) -> None:
        """ActiveMQ's STOMP queue browser: a MESSAGE per waiting message, left
        in the queue (no ack expected), then one with `browser:end`. The
        subscription id stays taken until the client unsubscribes it."""
        assert self.conn is not None and self.names is not None
        if sub_id in self.conn.consumers or sub_id in self._browsers:
            raise _FrameRefused(f"subscription id {sub_id!r} is already in use")
        snapshot = self.conn.browse(destination)
        self._browsers.add(sub_id)
        rendered = self.names.render(destination)
        for message in snapshot:
            headers = {
                "destination": self.names.render(message.destination),
                "message-id": message.id,
                "subscription": sub_id,
            }
            if message.delivery_count:
                headers["redelivered"] = "true"
            if message.seq:
                headers[SEQ_HEADER] = str(message.seq)
            for name, value in message.headers.items():
                headers.setdefault(name, value)
            self._send_frame("MESSAGE", headers, message.body)
        self._send_frame(
            "MESSAGE",
            {
                "subscription": sub_id,
                "browser": "end",
                "destination": rendered,
                "message-id": "0",
            },
        )

    def _on_unsubscribe(self, frame: Frame) -> None:
        assert self.conn is not None
        headers = frame.headers
        sub_id = headers.get("id")
        if sub_id is None:
            if self.version != "1.0" or "destination" not in headers:
                raise _FrameRefused("UNSUBSCRIBE frame is missing required header 'id'")
            sub_id = headers["destination"]
        durable = headers.get("activemq.subscriptionName") or headers.get(
            "durable-subscription-name"
        )
        if sub_id in self._browsers:
            self._browsers.discard(sub_id)
        elif sub_id in self.conn.consumers:
            self.conn.unsubscribe(sub_id, remove_durable=durable is not None)
        elif durable is not None:
            # ActiveMQ's way to delete an inactive durable subscription.
            self.conn.remove_durable_subscription(durable)
        else:
            self.conn.unsubscribe(sub_id)  # raises: unknown subscription
        self._receipt(frame)

    def _ack_target(self, frame: Frame) -> tuple[Consumer, str]:
        """Which subscription and message an ACK/NACK means, in any STOMP version."""
        assert self.conn is not None
        headers = frame.headers
        ack_id = headers.get("id")
        if ack_id is not None:
            cid_text, sep, message_id = ack_id.partition(":")
            consumer = self.conn.consumers_by_cid.get(int(cid_text)) if cid_text.isdigit() else None
            if sep and consumer is not None:
                return consumer, message_id
            if "message-id" not in headers:
                raise _FrameRefused(f"{frame.command} for unknown ack id {ack_id!r}")
        by_message_id = headers.get("message-id")
        if by_message_id is None:
            required = "id" if self.version == "1.2" else "message-id"
            raise _FrameRefused(f"{frame.command} frame is missing required header '{required}'")
        sub_id = headers.get("subscription")
        if sub_id is not None:
            return self.conn.consumer(sub_id), by_message_id
        return self.conn.consumer_holding(by_message_id), by_message_id

    def _on_ack(self, frame: Frame) -> None:
        assert self.conn is not None
        consumer, message_id = self._ack_target(frame)
        self.conn.ack(consumer, message_id, transaction=frame.headers.get("transaction"))
        self._receipt(frame)

    def _on_nack(self, frame: Frame) -> None:
        assert self.conn is not None
        if self.version == "1.0":
            raise _FrameRefused("NACK needs STOMP 1.1 or later")
        consumer, message_id = self._ack_target(frame)
        self.conn.nack(consumer, message_id, transaction=frame.headers.get("transaction"))
        self._receipt(frame)

    def _on_begin(self, frame: Frame) -> None:
        assert self.conn is not None
        self.conn.begin(_require(frame, "transaction"))
        self._receipt(frame)

    def _on_commit(self, frame: Frame) -> None:
        assert self.conn is not None
        tx_id = _require(frame, "transaction")
        if frame.headers.get("ferrymq-resolve") == "true" and tx_id not in self.conn.transactions:
            # A client whose COMMIT was in flight at a failover asks what became
            # of it: committed ids are remembered durably (see core/dedup.py).
            outcome = "committed" if self.ctx.broker.was_committed(tx_id) else "unknown"
            self._receipt(frame, **{"ferrymq-tx-outcome": outcome})
            return
        self.conn.commit(tx_id)
        self._receipt(frame, **{"ferrymq-tx-outcome": "committed"})

    def _on_abort(self, frame: Frame) -> None:
        assert self.conn is not None
        self.conn.abort(_require(frame, "transaction"))
        self._receipt(frame)

    def _on_disconnect(self, frame: Frame) -> None:
        receipt = frame.headers.get("receipt")
        if receipt is None:
            self._close_after_flush()
            return
        self._closing = True  # read nothing more; close once the receipt is out
        broker = self.ctx.broker
        broker.flush_records(force=True)
        pending = broker.store.durable()
        if pending is None:
            self._disconnect_receipt(receipt)
        else:
            pending.add_done_callback(lambda _fut: self._disconnect_receipt(receipt))

    def _disconnect_receipt(self, receipt: str) -> None:
        self._send_frame("RECEIPT", {"receipt-id": receipt})
        self._flush()
        if self.transport is not None:
            self.transport.close()
