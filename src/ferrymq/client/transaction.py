"""A STOMP transaction of the asyncio client.

`async with client.transaction() as tx:` begins, commits on a clean exit
and aborts on an exception. `commit()` either returns (committed) or raises
TransactionRolledBack: a failover in the middle never leaves the
application guessing (see docs/client.md).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from ferrymq.client.failover import TxRecord
from ferrymq.client.message import Message

if TYPE_CHECKING:
    import asyncio

    from ferrymq.client.aio import Body, Client

__all__ = ["Transaction"]


class Transaction:
    def __init__(self, client: Client, record: TxRecord[asyncio.Future[None]]) -> None:
        self._client = client
        self._record = record

    @property
    def id(self) -> str:
        return self._record.id

    async def send(
        self,
        destination: str,
        body: Body = b"",
        headers: dict[str, str] | None = None,
        *,
        persistent: bool = True,
        dedup_id: str | None = None,
    ) -> None:
        """Send inside the transaction: stored only if the transaction commits.

        Raises TransactionRolledBack if the transaction was lost to a failover.
        """
        await self._client._tx_send(
            self._record, destination, body, headers, persistent=persistent, dedup_id=dedup_id
        )

    async def ack(self, message: Message) -> None:
        await self._client._tx_ack(self._record, message, "ACK")

    async def nack(self, message: Message) -> None:
        await self._client._tx_ack(self._record, message, "NACK")

    async def commit(self) -> None:
        """Returns once committed; raises TransactionRolledBack otherwise."""
        await self._client._commit(self._record)

    async def abort(self) -> None:
        await self._client._abort(self._record)

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self.abort()
