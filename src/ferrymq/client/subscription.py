"""A subscription of the asyncio client: a callback, or an async iterator.

Messages arrive in order on the client's loop. With a plain callback each is
handed over at once; with a coroutine function one task per subscription
awaits the callback for each message in turn (order kept, no task per
message); without a callback they wait in a queue for `get()` or
`async for`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
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
