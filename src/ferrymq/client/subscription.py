"""A subscription of the asyncio client: a callback, or an async iterator.

Messages arrive in order on the client's loop. With a plain callback each is
handed over at once; with a coroutine function one task per subscription
awaits the callback for each message in turn (order kept, no task per
message); without a callback they wait in a queue for `get()` or
`async for`.

Audit (like ActiveMQ's message audit), for subscriptions that ack: after a
failover the broker redelivers what it had not seen acked. A redelivery of a
message the application already acked (the ACK was lost with the link) is
acked again quietly; one the application holds but has not acked yet is
not handed over a second time: its ack goes to the new delivery instead.
So the application sees each message once across failovers. Messages are
known by their `dedup-id` when they have one: a message the old master
delivered before it was durable, and that the producer then resent to the
new master, is the same message under a new message-id.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ferrymq.client.errors import ClientClosed
from ferrymq.client.failover import SubscriptionSpec
from ferrymq.client.message import Message

if TYPE_CHECKING:
    from ferrymq.client.aio import Client

__all__ = ["MessageHandler", "Subscription"]

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], object] | Callable[[Message], Awaitable[object]]

# Ids of messages the application acked, remembered to recognise redeliveries
# whose first ACK was lost at a failover.
AUDIT_WINDOW = 65_536


class Subscription:
    """Created by `Client.subscribe`; iterate it, or let its callback run."""

    def __init__(
        self, client: Client, spec: SubscriptionSpec, callback: MessageHandler | None
    ) -> None:
        self._client = client
        self.spec = spec
        self._callback = callback
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        # message-id -> its newest delivery, for messages handed over, not acked
        self._handed: OrderedDict[str, Message] = OrderedDict()
        # message-id -> link generation of the copy the application holds
        self._held: dict[str, int] = {}
        self._acked: OrderedDict[str, None] = OrderedDict()
        if callback is not None and inspect.iscoroutinefunction(callback):
            self._task = asyncio.get_running_loop().create_task(self._run_async(callback))

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def destination(self) -> str:
        return self.spec.destination

    @property
    def ack(self) -> str:
        return self.spec.ack

    # -- the audit ------------------------------------------------------------------

    def _admit(self, message: Message) -> str:
        """ "deliver", "ack" (a redelivery of what the application acked), or
        "drop" (the application holds it already: its ack goes to this copy)."""
        if self.spec.ack == "auto":
            return "deliver"
        mid = _audit_key(message)
        if mid in self._acked:
            return "ack"
        if mid in self._handed:
            self._handed[mid] = message
            return "drop"
        self._handed[mid] = message
        self._held[mid] = message.generation
        return "deliver"

    def _current(self, message: Message, *, settled: bool, remember: bool) -> Message:
        """The delivery an ACK/NACK of `message` must name (the newest copy);
        `settled`: the application is done with it; `remember`: it was acked."""
        mid = _audit_key(message)
        current = self._handed.get(mid, message)
        if settled:
            if self.spec.ack == "client":  # cumulative: everything before it too
                while self._handed:
                    done, _ = self._handed.popitem(last=False)
                    self._held.pop(done, None)
                    if remember:
                        self._remember(done)
                    if done == mid:
                        break
            else:
                self._handed.pop(mid, None)
                self._held.pop(mid, None)
            if remember:
                self._remember(mid)
        return current

    def _release(self, current: int | None) -> None:
        """A transaction the application worked in was rolled back by a
        failover: what it holds from an earlier link (`current`: the link up
        now, None if none) is shown again, as a JMS transacted session
        redelivers after a rollback; the redelivery if it came already, else
        when it comes."""
        for mid, newest in list(self._handed.items()):
            held = self._held.get(mid, newest.generation)
            if current is not None and held >= current:
                continue
            if newest.generation > held:
                self._held[mid] = newest.generation
                self._deliver(newest)
            else:
                del self._handed[mid]
                self._held.pop(mid, None)

    def _remember(self, mid: str) -> None:
        self._acked[mid] = None
        if len(self._acked) > AUDIT_WINDOW:
            self._acked.popitem(last=False)

    # -- fed by the client ---------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        if self._callback is None or self._task is not None:
            self._queue.put_nowait(message)
            return
        try:
            self._callback(message)
        except Exception:
            # The application's bug must not kill the connection's reader.
            log.exception("message callback of subscription %s failed", self.id)

    def _drop_unacked(self, generation: int) -> None:
        """Forget queued messages from a dead link that need an ack.

        The broker redelivers them (it never got the ack); handing over the
        old copy too would show the application each one twice, and its ack
        would go nowhere. `auto` messages count as consumed: kept.
        """
        if self.spec.ack == "auto" or self._queue.empty():
            return
        kept: list[Message | None] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None or item.generation > generation:
                kept.append(item)
            else:  # never handed over: its redelivery is new to the application
                self._handed.pop(_audit_key(item), None)
                self._held.pop(_audit_key(item), None)
        for item in kept:
            self._queue.put_nowait(item)

    def _end(self, error: BaseException | None) -> None:
        """No more messages: the subscription or the client is closed."""
        if self._error is None:
            self._error = error or ClientClosed("subscription closed")
        self._queue.put_nowait(None)

    # -- application side ------------------------------------------------------------

    async def get(self, timeout: float | None = None) -> Message:
        """The next message; TimeoutError after `timeout` seconds.

        Raises the client's failure (ClientClosed, ConnectFailed) once the
        subscription has ended.
        """
        if self._callback is not None:
            raise RuntimeError("this subscription delivers to its callback")
        async with asyncio.timeout(timeout):
            item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # later get() calls end too
            assert self._error is not None
            raise self._error
        return item

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.get()
        except ClientClosed:
            raise StopAsyncIteration from None

    async def unsubscribe(self) -> None:
        await self._client._unsubscribe(self)

    async def _run_async(self, callback: Callable[[Message], Awaitable[object]]) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            try:
                await callback(item)
            except Exception:
                log.exception("message callback of subscription %s failed", self.id)


def _audit_key(message: Message) -> str:
    return message.headers.get("dedup-id") or message.message_id
