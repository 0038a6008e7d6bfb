"""The asyncio failover client: `client = await ferrymq.client.aio.connect(uri)`.

One supervisor task per client runs the connection's life: pass over the
brokers with ActiveMQ's backoff until one answers (`_establish`), bring the
new link up to date (`_activate`: resolve in-doubt COMMITs, SUBSCRIBE again,
write every unconfirmed SEND again in order), then wait for the link to die.
What must be replayed lives in a `FailoverBook`, which does no I/O.

Sends are pipelined: each carries a `receipt` and a `dedup-id`; up to
`window` wait for their RECEIPT at once. A send made while no link is up is
held and written by the replay, after the older ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, overload

from ferrymq.client._link import Link
from ferrymq.client.backoff import ReconnectBudget, pass_order, priority_addresses
from ferrymq.client.connection import ProtocolError, StompConnection
from ferrymq.client.errors import (
    BrokerError,
    ClientClosed,
    ConnectFailed,
    OperationTimeout,
    SendTimeout,
    TransactionInDoubt,
    TransactionRolledBack,
)
from ferrymq.client.failover import (
    FailoverBook,
    PendingSend,
    SubscriptionSpec,
    TxRecord,
    TxState,
    commit_outcome,
    resolve_frame,
)
from ferrymq.client.message import Message
from ferrymq.client.subscription import MessageHandler, Subscription
from ferrymq.client.transaction import Transaction
from ferrymq.client.uri import BrokerAddress, parse_uri
from ferrymq.protocol.stomp import Frame

__all__ = ["Body", "Client", "ClientStatistics", "ConnectionEvent", "connect"]

log = logging.getLogger("ferrymq.client")

Body = bytes | str
_Waiter = asyncio.Future[None]
ACK_MODES = frozenset({"auto", "client", "client-individual"})


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """Reported to `on_event`: "connected", "disconnected" or "failed"."""

    kind: str
    address: BrokerAddress | None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientStatistics:
    """An immutable snapshot of the client's counters."""

    connected_to: BrokerAddress | None
    connections: int  # links established: 1 + failovers
    sends_confirmed: int
    sends_resent: int  # SENDs written again after a failover
    sends_pending: int


class _LinkLost(Exception):
    """Internal: the link died before answering a control frame."""


class Client:
    """A STOMP client that fails over; build it with `connect()`."""

    def __init__(
        self,
        uri: str,
        *,
        login: str | None = None,
        passcode: str | None = None,
        client_id: str | None = None,
        vhost: str | None = None,
        heartbeat: tuple[int, int] = (10_000, 10_000),
        window: int = 1000,
        connect_timeout: float = 10.0,
        on_event: Callable[[ConnectionEvent], object] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        parsed = parse_uri(uri)
        self.addresses = parsed.addresses
        self.options = parsed.options
        self._login = login
        self._passcode = passcode
        self._client_id = client_id
        self._vhost = vhost
        self._heartbeat = heartbeat
        self._window = window
        self._connect_timeout = connect_timeout
        self._on_event = on_event
        self._rng = rng or random.Random()
        self._timeout = self.options.timeout / 1000 if self.options.timeout >= 0 else None

        self._loop = asyncio.get_running_loop()
        self._book: FailoverBook[_Waiter] = FailoverBook()
        self._budget = ReconnectBudget(self.options)
        self._link: Link | None = None
        self._ready = asyncio.Event()  # a link is up and replayed
        self._space = asyncio.Event()  # fewer than `window` sends unconfirmed
        self._space.set()
        self._subs: dict[str, Subscription] = {}
        self._controls: dict[str, asyncio.Future[Frame]] = {}
        self._commits: dict[str, TxRecord[_Waiter]] = {}
        self._receipts = itertools.count(1)
        self._sub_ids = itertools.count(1)
        self._failure: BaseException | None = None
        self._closed = False
        self._first: asyncio.Future[None] = self._loop.create_future()
        self._supervisor: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._connections = 0
        self._confirmed = 0
        self._resent = 0

    # -- life cycle --------------------------------------------------------------------

    async def _start(self) -> None:
        self._supervisor = self._loop.create_task(self._supervise(), name="ferrymq-client")
        await asyncio.shield(self._first)

    async def close(self, timeout: float = 10.0) -> None:
        """DISCONNECT (the broker has then read everything sent) and stop.

        Sends still unconfirmed fail with ClientClosed: call `flush()` first
        to wait for them. Waits at most `timeout` seconds for the broker.
        """
        if self._closed:
            return
        link = self._writable_link()
        self._closed = True
        if link is not None:
            with contextlib.suppress(BrokerError, _LinkLost, TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._control(link, Frame(command="DISCONNECT"))
        for task in (self._supervisor, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._link is not None:
            self._link.abort()
        self._fail_all(ClientClosed("the client is closed"))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def statistics(self) -> ClientStatistics:
        link = self._writable_link()
        return ClientStatistics(
            connected_to=link.address if link is not None else None,
            connections=self._connections,
            sends_confirmed=self._confirmed,
            sends_resent=self._resent,
            sends_pending=len(self._book.sends),
        )

    # -- sending ----------------------------------------------------------------------

    @overload
    async def send(
        self,
        destination: str,
        body: Body = ...,
        headers: dict[str, str] | None = ...,
        *,
        persistent: bool = ...,
        dedup_id: str | None = ...,
        wait: Literal[True] = ...,
    ) -> None: ...

    @overload
    async def send(
        self,
        destination: str,
        body: Body = ...,
        headers: dict[str, str] | None = ...,
        *,
        persistent: bool = ...,
        dedup_id: str | None = ...,
        wait: Literal[False],
    ) -> _Waiter: ...

    async def send(
        self,
        destination: str,
        body: Body = b"",
        headers: dict[str, str] | None = None,
        *,
        persistent: bool = True,
        dedup_id: str | None = None,
        wait: bool = True,
    ) -> _Waiter | None:
        """Send a message; return when the broker's RECEIPT says it is stored.

        With `wait=False`, return a future for that RECEIPT as soon as the
        frame is queued (after waiting for window space): many sends in
        flight, then `flush()`. The message carries `dedup-id` (`dedup_id`,
        or a fresh uuid) and, by default, `persistent:true`. Across a
        failover it is resent until confirmed. Raises SendTimeout (the
        `timeout` option), BrokerError (refused), ConnectFailed, ClientClosed.
        """
        self._check_open()
        frame = _send_frame(destination, body, headers, persistent, dedup_id)
        try:
            async with asyncio.timeout(self._timeout):
                while len(self._book.sends) >= self._window:
                    self._space.clear()
                    await self._space.wait()
                    self._check_open()
        except TimeoutError:
            raise SendTimeout(
                "no room in the send window within the timeout",
                dedup_id=frame.headers["dedup-id"],
                maybe_sent=False,
            ) from None
        receipt = self._next_receipt()
        frame.headers["receipt"] = receipt
        waiter: _Waiter = self._loop.create_future()
        entry = self._book.add_send(receipt, frame, waiter)
        link = self._writable_link()
        if link is not None:
            link.write(frame)
            self._book.mark_written(entry)
        elif self._timeout is not None:
            entry.timer = self._loop.call_later(self._timeout, self._send_timed_out, entry)
        if not wait:
            return waiter
        # Shielded: a caller that gives up waiting does not withdraw the send.
        await asyncio.shield(waiter)
        return None

    async def flush(self) -> None:
        """Wait until every send so far is confirmed or has failed.

        Raises the first failure among them (each future also holds its own).
        """
        waiters = [entry.waiter for entry in self._book]
        if not waiters:
            return
        await asyncio.wait(waiters)
        for waiter in waiters:
            if not waiter.cancelled() and waiter.exception() is not None:
                raise waiter.exception()  # type: ignore[misc]

    # -- subscribing and acknowledging ---------------------------------------------------

    async def subscribe(
        self,
        destination: str,
        callback: MessageHandler | None = None,
        *,
        ack: str = "auto",
        id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Subscription:
        """Subscribe; messages go to `callback`, or iterate the result.

        `ack` is `auto`, `client` or `client-individual`. The subscription is
        restored with the same id, ack mode and headers after a failover.
        Returns once the broker has confirmed it (or, when disconnected, once
        it is registered for the next connection).
        """
        self._check_open()
        if ack not in ACK_MODES:
            raise ValueError(f"ack must be one of {sorted(ACK_MODES)}, not {ack!r}")
        spec = SubscriptionSpec(
            id or f"sub-{next(self._sub_ids)}", destination, ack, tuple((headers or {}).items())
        )
        self._book.subscribe(spec)
        sub = Subscription(self, spec, callback)
        self._subs[spec.id] = sub
        link = self._writable_link()
        if link is not None:
            try:
                await self._control(link, spec.frame())
            except _LinkLost:
                pass  # registered: the next link's replay subscribes
            except BrokerError:
                self._forget_subscription(sub)
                raise
        return sub

    async def _unsubscribe(self, sub: Subscription) -> None:
        if self._subs.get(sub.id) is not sub:
            return
        self._forget_subscription(sub)
        headers = {"id": sub.id}
        link = self._writable_link()
        if link is not None:
            with contextlib.suppress(_LinkLost):
                await self._control(link, Frame(command="UNSUBSCRIBE", headers=headers))

    def _forget_subscription(self, sub: Subscription) -> None:
        self._book.unsubscribe(sub.id)
        self._subs.pop(sub.id, None)
        sub._end(ClientClosed("unsubscribed"))

    async def ack(self, message: Message) -> None:
        """Acknowledge a message of a `client`/`client-individual` subscription.

        A message received before a failover is acked through its redelivery
        (which the application does not see twice), or, if its redelivery has
        not arrived yet, when it does.
        """
        self._write_ack("ACK", message, None)

    async def nack(self, message: Message) -> None:
        """Hand a message back for redelivery (STOMP 1.1+)."""
        self._write_ack("NACK", message, None)

    def _write_ack(self, command: str, message: Message, tx: str | None) -> bool:
        self._check_open()
        sub = self._subs.get(message.subscription)
        if sub is not None:
            # Acks outside a transaction are remembered even if this link is
            # down: the redelivery that follows is then acked quietly. One in a
            # transaction is not (a rollback must show the message again).
            message = sub._current(message, settled=True, remember=command == "ACK" and tx is None)
        link = self._writable_link()
        if link is None or message.generation != link.generation:
            log.debug("%s of %s dropped: it came on an earlier connection", command, message)
            return False
        link.write(_ack_frame(command, message, link.conn.version, tx))
        return True

    # -- transactions --------------------------------------------------------------------

    async def begin(self) -> Transaction:
        """BEGIN a transaction (id: a uuid). Prefer `async with client.transaction()`."""
        link = await self._wait_link()
        record = self._book.begin(uuid.uuid4().hex)
        link.write(Frame(command="BEGIN", headers={"transaction": record.id}))
        return Transaction(self, record)

    def transaction(self) -> _TransactionContext:
        """`async with client.transaction() as tx:` commits, or aborts on error."""
        return _TransactionContext(self)

    def _usable_link(self, record: TxRecord[_Waiter]) -> Link:
        link = self._writable_link()
        if link is None or not self._book.usable(record):
            self._book.finish(record)
            self._release_held()
            raise TransactionRolledBack(
                f"transaction {record.id} was rolled back: the connection was lost"
            )
        return link

    async def _tx_send(
        self,
        record: TxRecord[_Waiter],
        destination: str,
        body: Body,
        headers: dict[str, str] | None,
        *,
        persistent: bool,
        dedup_id: str | None,
    ) -> None:
        self._check_open()
        link = self._usable_link(record)
        frame = _send_frame(destination, body, headers, persistent, dedup_id)
        frame.headers["transaction"] = record.id
        # No receipt: the COMMIT's RECEIPT confirms every frame before it.
        link.write(frame)

    async def _tx_ack(self, record: TxRecord[_Waiter], message: Message, command: str) -> None:
        self._check_open()
        self._usable_link(record)
        if not self._write_ack(command, message, record.id):
            # The message came before the failover that rolled this
            # transaction back; unreachable while the transaction is usable.
            self._release_held()
            raise TransactionRolledBack(f"transaction {record.id}: message from a lost link")

    async def _commit(self, record: TxRecord[_Waiter]) -> None:
        self._check_open()
        if record.state in (TxState.COMMITTING, TxState.IN_DOUBT):
            raise RuntimeError(f"transaction {record.id} is already being committed")
        link = self._usable_link(record)
        waiter: _Waiter = self._loop.create_future()
        receipt = self._next_receipt()
        self._book.committing(record, waiter)
        self._commits[receipt] = record
        link.write(Frame(command="COMMIT", headers={"transaction": record.id, "receipt": receipt}))
        # Settled by the RECEIPT, an ERROR, or (if the link dies first) by
        # asking the next broker; see _activate.
        await asyncio.shield(waiter)

    async def _abort(self, record: TxRecord[_Waiter]) -> None:
        if record.state in (TxState.COMMITTING, TxState.IN_DOUBT):
            raise RuntimeError(f"transaction {record.id} is being committed")
        link = self._writable_link()
        if link is not None and self._book.usable(record):
            link.write(Frame(command="ABORT", headers={"transaction": record.id}))
        # Otherwise the broker already dropped it with its connection.
        self._book.finish(record)

    def _settle_commit(self, record: TxRecord[_Waiter], committed: bool, why: str) -> None:
        self._book.finish(record)
        if record.timer is not None:
            record.timer.cancel()
        waiter = record.waiter
        if waiter is None or waiter.done():
            return
        if committed:
            waiter.set_result(None)
        else:
            self._release_held()
            waiter.set_exception(TransactionRolledBack(f"transaction {record.id}: {why}"))

    def _release_held(self) -> None:
        """After a transaction rolled back by a failover (see Subscription._release)."""
        link = self._writable_link()
        current = link.generation if link is not None else None
        for sub in self._subs.values():
            sub._release(current)

    # -- the connection's life --------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            while True:
                link = await self._establish()
                await self._activate(link)
                await link.lost
        except ConnectFailed as exc:
            log.error("%s", exc)
            self._emit(ConnectionEvent("failed", None, exc))
            self._fail_all(exc)
        except Exception as exc:
            # A bug here must not leave every caller waiting forever.
            log.exception("ferrymq client supervisor failed")
            self._fail_all(ConnectFailed(f"client failed: {exc!r}"))

    async def _establish(self) -> Link:
        """Pass over the brokers, with backoff, until one completes CONNECT."""
        last_error: BaseException | None = None
        while True:
            delay = self._budget.next_delay()
            if delay is None:
                raise ConnectFailed(
                    f"no broker of {', '.join(map(str, self.addresses))} answered "
                    f"after {self._budget.failures} attempts: {last_error}"
                )
            if delay > 0:
                await asyncio.sleep(delay)
            for address in pass_order(self.addresses, self.options, self._rng):
                try:
                    link = await Link.open(
                        address,
                        self._new_connection(address),
                        self._on_frame,
                        self._on_lost,
                        self._connect_timeout,
                    )
                except (OSError, TimeoutError, BrokerError, ProtocolError) as exc:
                    log.debug("cannot connect to %s: %s", address, exc)
                    last_error = exc
                    continue
                self._budget.connected()
                return link
            self._budget.failed()

    def _new_connection(self, address: BrokerAddress) -> StompConnection:
        return StompConnection(
            host=self._vhost or address.host,
            login=self._login,
            passcode=self._passcode,
            client_id=self._client_id,
            heartbeat=self._heartbeat,
        )

    async def _activate(self, link: Link) -> None:
        """Make a new link current: resolve, resubscribe, resend, then serve."""
        link.generation = self._book.link_up()
        self._link = link
        self._connections += 1
        for record in self._book.in_doubt():
            if not link.alive:
                return
            try:
                answer = await self._control(
                    link, resolve_frame(record.id, self._next_receipt()), receipt_set=True
                )
            except BrokerError as exc:
                # A broker without the resolve extension knows no such
                # transaction; it closes the link after its ERROR.
                self._settle_commit(record, False, f"rolled back ({exc.message})")
                return
            except _LinkLost:
                if isinstance(link.error, BrokerError):
                    self._settle_commit(record, False, f"rolled back ({link.error.message})")
                return  # otherwise still in doubt: asked again on the next link
            committed = commit_outcome(answer)
            self._settle_commit(record, committed, "rolled back (outcome after failover)")
        if not link.alive:
            return
        subscribes, sends = self._book.replay()
        frames = [*subscribes, *(entry.frame for entry in sends)]
        if frames:
            link.write_many(frames)
        for entry in sends:
            if entry.ever_written:
                self._resent += 1
            self._book.mark_written(entry)
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
        self._ready.set()
        if self._connections > 1:
            log.info(
                "reconnected to %s: %d subscriptions restored, %d sends resent",
                link.address,
                len(subscribes),
                len(sends),
            )
        else:
            log.info("connected to %s", link.address)
        if not self._first.done():
            self._first.set_result(None)
        self._emit(ConnectionEvent("connected", link.address))
        if link.address not in priority_addresses(self.addresses, self.options) and (
            self.options.priority_backup
        ):
            self._prober = self._loop.create_task(self._probe_priority(link))

    def _on_lost(self, link: Link) -> None:
        """Called by the link, synchronously, the moment it is known dead."""
        if link is not self._link:
            return
        self._link = None
        self._ready.clear()
        if self._prober is not None:
            self._prober.cancel()
            self._prober = None
        for fut in self._controls.values():
            if not fut.done():
                fut.set_exception(_LinkLost())
                fut.exception()  # retrieved here: its waiter may be gone
        self._controls.clear()
        self._commits.clear()
        lost = self._book.link_lost()
        for sub in self._subs.values():
            sub._drop_unacked(link.generation)
        if self._timeout is not None and not self._closed:
            for record in lost.in_doubt:
                record.timer = self._loop.call_later(self._timeout, self._commit_timed_out, record)
            for entry in lost.unconfirmed:
                entry.timer = self._loop.call_later(self._timeout, self._send_timed_out, entry)
        if not self._closed:
            log.warning("lost connection to %s: %s", link.address, link.error)
            self._emit(ConnectionEvent("disconnected", link.address, link.error))

    def _on_frame(self, link: Link, frame: Frame) -> None:
        if link is not self._link:
            return
        command = frame.command
        if command == "MESSAGE":
            sub = self._subs.get(frame.headers.get("subscription", ""))
            if sub is not None:
                message = Message(
                    headers=frame.headers, body=frame.body, generation=link.generation
                )
                verdict = sub._admit(message)
                if verdict == "deliver":
                    sub._deliver(message)
                elif verdict == "ack":
                    link.write(_ack_frame("ACK", message, link.conn.version, None))
        elif command == "RECEIPT":
            receipt = frame.headers.get("receipt-id", "")
            entry = self._book.confirm(receipt)
            if entry is not None:
                self._confirmed += 1
                if not entry.waiter.done():
                    entry.waiter.set_result(None)
                if len(self._book.sends) < self._window:
                    self._space.set()
                return
            record = self._commits.pop(receipt, None)
            if record is not None:
                self._settle_commit(record, True, "")
                return
            control = self._controls.pop(receipt, None)
            if control is not None and not control.done():
                control.set_result(frame)
        elif command == "ERROR":
            self._on_error(link, frame)

    def _on_error(self, link: Link, frame: Frame) -> None:
        error = BrokerError(
            frame.headers.get("message", "ERROR"), frame.body.decode(errors="replace").strip()
        )
        receipt = frame.headers.get("receipt-id")
        log.warning("%s sent ERROR: %s", link.address, error)
        if receipt is not None:
            entry = self._book.sends.get(receipt)
            record = self._commits.pop(receipt, None)
            control = self._controls.pop(receipt, None)
            if entry is not None:
                # Refused, not lost: resending would be refused again.
                self._book.drop(entry)
                if not entry.waiter.done():
                    entry.waiter.set_exception(error)
                self._space.set()
            elif record is not None:
                self._settle_commit(record, False, f"rolled back by the broker ({error.message})")
            elif control is not None and not control.done():
                control.set_exception(error)
        # STOMP: the broker closes the connection after an ERROR; fail over now.
        link.error = error
        link.abort()

    async def _probe_priority(self, link: Link) -> None:
        """priorityBackup: poll the priority brokers; move back when one listens."""
        priorities = priority_addresses(self.addresses, self.options)
        failures = 0
        while link is self._link:
            failures += 1
            # Never a busy loop, even with initialReconnectDelay=0.
            await asyncio.sleep(max(self._budget.backoff.compute(failures), 0.01))
            for address in priorities:
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        _, writer = await asyncio.open_connection(address.host, address.port)
                except (OSError, TimeoutError):
                    continue
                writer.close()
                log.info("priority broker %s is reachable again: moving to it", address)
                self._ready.clear()  # hold new frames for the next link
                with contextlib.suppress(BrokerError, _LinkLost, TimeoutError):
                    async with asyncio.timeout(self._connect_timeout):
                        await self._control(link, Frame(command="DISCONNECT"))
                link.error = ConnectionAbortedError(f"moving to priority broker {address}")
                self._prober = None
                link.abort()
                return

    # -- helpers -------------------------------------------------------------------------------

    def _next_receipt(self) -> str:
        return f"r{next(self._receipts)}"

    def _writable_link(self) -> Link | None:
        link = self._link
        if self._ready.is_set() and link is not None and link.alive:
            return link
        return None

    async def _wait_link(self) -> Link:
        """The current link, waiting for one (bounded by the `timeout` option)."""
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    self._check_open()
                    link = self._writable_link()
                    if link is not None:
                        return link
                    await self._ready.wait()
                    if self._writable_link() is None and self._failure is None:
                        # Set but the link died in the same turn: let
                        # _on_lost run before looking again.
                        await asyncio.sleep(0)
        except TimeoutError:
            raise OperationTimeout("no broker connection within the timeout") from None

    async def _control(self, link: Link, frame: Frame, *, receipt_set: bool = False) -> Frame:
        """Write a frame with a receipt and wait for the broker's answer."""
        if not receipt_set:
            frame.headers["receipt"] = self._next_receipt()
        fut: asyncio.Future[Frame] = self._loop.create_future()
        self._controls[frame.headers["receipt"]] = fut
        link.write(frame)
        return await fut

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise ClientClosed("the client is closed")

    def _send_timed_out(self, entry: PendingSend[_Waiter]) -> None:
        entry.timer = None
        if entry.written or not self._book.drop(entry):
            return
        self._space.set()
        if not entry.waiter.done():
            entry.waiter.set_exception(
                SendTimeout(
                    f"no broker connection within {self.options.timeout} ms",
                    dedup_id=entry.dedup_id,
                    maybe_sent=entry.ever_written,
                )
            )

    def _commit_timed_out(self, record: TxRecord[_Waiter]) -> None:
        record.timer = None
        if record.state is not TxState.IN_DOUBT:
            return
        self._book.finish(record)
        if record.waiter is not None and not record.waiter.done():
            record.waiter.set_exception(
                TransactionInDoubt(
                    f"transaction {record.id}: COMMIT sent, no broker to ask within "
                    f"{self.options.timeout} ms"
                )
            )

    def _fail_all(self, error: BaseException) -> None:
        """The client is finished: wake every waiter with `error`."""
        if self._failure is None and not isinstance(error, ClientClosed):
            self._failure = error
        if not self._first.done():
            self._first.set_exception(error)
        for entry in list(self._book):
            if entry.timer is not None:
                entry.timer.cancel()
            if not entry.waiter.done():
                entry.waiter.set_exception(error)
        self._book.sends.clear()
        for record in list(self._book.transactions.values()):
            if record.timer is not None:
                record.timer.cancel()
            if record.waiter is not None and not record.waiter.done():
                record.waiter.set_exception(
                    TransactionInDoubt(f"transaction {record.id}: outcome unknown ({error})")
                )
        self._book.transactions.clear()
        for sub in self._subs.values():
            sub._end(error)
        self._ready.set()  # wake _wait_link; it raises the failure
        self._space.set()

    def _emit(self, event: ConnectionEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("on_event callback failed")


class _TransactionContext:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._tx: Transaction | None = None

    async def __aenter__(self) -> Transaction:
        self._tx = await self._client.begin()
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tx is not None
        await self._tx.__aexit__(exc_type, exc, tb)


def _send_frame(
    destination: str,
    body: Body,
    headers: dict[str, str] | None,
    persistent: bool,
    dedup_id: str | None,
) -> Frame:
    fields: dict[str, str] = dict(headers) if headers else {}
    dedup = dedup_id or fields.get("dedup-id") or fields.get("_AMQ_DUPL_ID") or uuid.uuid4().hex
    fields["destination"] = destination
    fields.setdefault("persistent", "true" if persistent else "false")
    fields["dedup-id"] = dedup
    data = body.encode() if isinstance(body, str) else bytes(body)
    return Frame(command="SEND", headers=fields, body=data)


def _ack_frame(command: str, message: Message, version: str, tx: str | None) -> Frame:
    if version == "1.2":
        headers = {"id": message.headers.get("ack", message.message_id)}
    else:
        headers = {"message-id": message.message_id, "subscription": message.subscription}
    if tx is not None:
        headers["transaction"] = tx
    return Frame(command=command, headers=headers)


async def connect(uri: str, **kwargs: Any) -> Client:
    """Connect to the broker(s) of `uri` and return a ready Client.

    Keyword arguments are Client's: login, passcode, client_id, vhost,
    heartbeat=(send_ms, receive_ms), window, connect_timeout, on_event.
    Raises ConnectFailed when startupMaxReconnectAttempts is used up.
    """
    client = Client(uri, **kwargs)
    await client._start()
    return client
