"""The blocking client: `client = ferrymq.client.connect(uri)`.

A thin wrapper: the asyncio client runs on an event loop in a background
thread (`LoopThread`) and every method here hands it a coroutine and waits.
Message callbacks run on one dispatcher thread per client, in order, so a
callback may call the client (send, ack) without deadlocking the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from ferrymq.client import aio
from ferrymq.client._loop_thread import LoopThread
from ferrymq.client.errors import ClientClosed
from ferrymq.client.message import Message
from ferrymq.client.subscription import MessageHandler
from ferrymq.client.subscription import Subscription as AioSubscription
from ferrymq.client.transaction import Transaction as AioTransaction

__all__ = ["Client", "Subscription", "Transaction", "connect"]

log = logging.getLogger("ferrymq.client")

T = TypeVar("T")
_Callback = Callable[[Message], object]


class _Dispatcher:
    """One thread running the application's message callbacks, in order."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[_Callback, Message] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="ferrymq-client-callbacks", daemon=True
        )
        self._thread.start()

    def put(self, callback: _Callback, message: Message) -> None:
        self._queue.put((callback, message))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            callback, message = item
            try:
                callback(message)
            except Exception:
                log.exception("message callback failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


class Subscription:
    """Iterate it (`for message in sub`) or `get(timeout)`; or give a callback."""

    def __init__(self, client: Client, inner: AioSubscription) -> None:
        self._client = client
        self._inner = inner

    @property
    def id(self) -> str:
        return self._inner.id

    def get(self, timeout: float | None = None) -> Message:
        """The next message; TimeoutError after `timeout` seconds."""
        return self._client._run(self._inner.get(timeout))

    def __iter__(self) -> Iterator[Message]:
        while True:
            try:
                yield self.get()
            except ClientClosed:
                return

    def unsubscribe(self) -> None:
        self._client._run(self._inner.unsubscribe())


class Transaction:
    """`with client.transaction() as tx:` commits, or aborts on an exception."""

    def __init__(self, client: Client, inner: AioTransaction) -> None:
        self._client = client
        self._inner = inner

    @property
    def id(self) -> str:
        return self._inner.id

    def send(
        self,
        destination: str,
        body: aio.Body = b"",
        headers: dict[str, str] | None = None,
        *,
        persistent: bool = True,
        dedup_id: str | None = None,
    ) -> None:
        self._client._run(
            self._inner.send(destination, body, headers, persistent=persistent, dedup_id=dedup_id)
        )

    def ack(self, message: Message) -> None:
        self._client._run(self._inner.ack(message))

    def nack(self, message: Message) -> None:
        self._client._run(self._inner.nack(message))

    def commit(self) -> None:
        """Returns once committed; raises TransactionRolledBack otherwise."""
        self._client._run(self._inner.commit())

    def abort(self) -> None:
        self._client._run(self._inner.abort())

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class Client:
    """The blocking face of `ferrymq.client.aio.Client`; same semantics."""

    def __init__(self, thread: LoopThread, inner: aio.Client) -> None:
        self._thread = thread
        self._inner = inner
        self._dispatcher: _Dispatcher | None = None
        self._lock = threading.Lock()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._thread.run(coro)

    @overload
    def send(
        self,
        destination: str,
        body: aio.Body = ...,
        headers: dict[str, str] | None = ...,
        *,
        persistent: bool = ...,
        dedup_id: str | None = ...,
        wait: Literal[True] = ...,
    ) -> None: ...

    @overload
    def send(
        self,
        destination: str,
        body: aio.Body = ...,
        headers: dict[str, str] | None = ...,
        *,
        persistent: bool = ...,
        dedup_id: str | None = ...,
        wait: Literal[False],
    ) -> concurrent.futures.Future[None]: ...

    def send(
        self,
        destination: str,
        body: aio.Body = b"",
        headers: dict[str, str] | None = None,
        *,
        persistent: bool = True,
        dedup_id: str | None = None,
        wait: bool = True,
    ) -> concurrent.futures.Future[None] | None:
        """Send; return once the broker confirmed it (see aio.Client.send).

        With `wait=False`, return a future for the confirmation as soon as
        the frame is queued (this blocks only while the window is full).
        """
        if wait:
            self._run(
                self._inner.send(
                    destination, body, headers, persistent=persistent, dedup_id=dedup_id
                )
            )
            return None
        result: concurrent.futures.Future[None] = concurrent.futures.Future()

        async def queue_send() -> None:
            waiter = await self._inner.send(
                destination, body, headers, persistent=persistent, dedup_id=dedup_id, wait=False
            )

            def copy(done: asyncio.Future[None]) -> None:
                if done.cancelled():
                    result.cancel()
                elif (exc := done.exception()) is not None:
                    result.set_exception(exc)
                else:
                    result.set_result(None)

            waiter.add_done_callback(copy)

        self._run(queue_send())
        return result

    def flush(self) -> None:
        """Wait until every send so far is confirmed or failed (first failure raised)."""
        self._run(self._inner.flush())

    def subscribe(
        self,
        destination: str,
        callback: _Callback | None = None,
        *,
        ack: str = "auto",
        id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Subscription:
        """Subscribe; `callback` runs on the client's callback thread, or iterate."""
        handler: MessageHandler | None = None
        if callback is not None:
            dispatcher = self._callbacks()
            handler = lambda message: dispatcher.put(callback, message)  # noqa: E731
        inner = self._run(
            self._inner.subscribe(destination, handler, ack=ack, id=id, headers=headers)
        )
        return Subscription(self, inner)

    def _callbacks(self) -> _Dispatcher:
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = _Dispatcher()
            return self._dispatcher

    def ack(self, message: Message) -> None:
        """Acknowledge; a no-op for a message from before a failover (redelivered)."""
        self._run(self._inner.ack(message))

    def nack(self, message: Message) -> None:
        self._run(self._inner.nack(message))

    def begin(self) -> Transaction:
        return Transaction(self, self._run(self._inner.begin()))

    def transaction(self) -> Transaction:
        """`with client.transaction() as tx:` (begins now)."""
        return self.begin()

    def statistics(self) -> aio.ClientStatistics:
        return self._inner.statistics()

    def close(self, timeout: float = 10.0) -> None:
        """DISCONNECT and stop the client's threads (see aio.Client.close)."""
        try:
            self._run(self._inner.close(timeout))
        finally:
            if self._dispatcher is not None:
                self._dispatcher.stop()
            self._thread.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(uri: str, **kwargs: Any) -> Client:
    """Connect to the broker(s) of `uri`; blocking. Options as aio.connect().

    `on_event` callbacks run on the client's event loop thread: keep them short.
    """
    thread = LoopThread()
    try:
        inner = thread.run(aio.connect(uri, **kwargs))
    except BaseException:
        with contextlib.suppress(Exception):
            thread.stop()
        raise
    return Client(thread, inner)
