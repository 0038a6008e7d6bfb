"""The broker's Store on PostgreSQL: shared-database master/slave.

Group commit: `append` (synchronous, never blocks) only queues the rows an
operation changes; one writer task takes everything queued since its last
transaction and writes it as ONE database transaction (bulk `unnest` inserts
and `= ANY` deletes, not a statement per message), then completes the
`durable()` futures of those appends, in append order, after COMMIT. While a
transaction is in flight the next group gathers, so many producers share one
commit (and one WAL flush).

Fencing: every write transaction first updates the lock row
(`ferrymq_lock`) on condition that it still carries this master's epoch and
an unexpired lease. A master that lost its lease (however slow, stopped or
partitioned) therefore commits nothing: the database refuses, the pending
receipts fail, the server fences itself. The same UPDATE stores the
transaction's sequence number: after a connection broke during COMMIT, the
writer reconnects (within the lease) and reads it back to learn whether the
transaction committed, and retries it if not.

Paging (`pages = True`): recovered messages come back as keys; `load` is
synchronous, so it is served from a small cache of payloads, filled on open
(the head of every queue) and on a miss by one synchronous query that reads
the next `read_ahead` messages of that queue (a queue is drained in key
order, so one round trip serves hundreds of loads). Payloads not yet
committed are served from memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, cast

import psycopg
from psycopg.rows import TupleRow

from ferrymq.core.errors import BrokerError
from ferrymq.core.message import Message
from ferrymq.store.base import (
    AddMessage,
    DeleteQueue,
    ForgetId,
    QueueSpec,
    Record,
    RecoveredState,
    RememberId,
    RemoveMessage,
    Store,
    UpsertQueue,
)
from ferrymq.store.codec import decode, encode_message
from ferrymq.store.postgres.connect import Conn, connect, connect_sync
from ferrymq.store.postgres.schema import migrate, redact

__all__ = ["Fencing", "PostgresStore", "StoreUnavailable"]

log = logging.getLogger(__name__)


class StoreUnavailable(BrokerError):
    """The database refused or lost a write: the client gets an ERROR, never a false RECEIPT."""


class Fenced(StoreUnavailable):
    """The lease moved on: this node may not write any more."""


class Fencing(Protocol):
    """What the store needs of the HA lease (`ferrymq.ha.lease.LeaseLock`)."""

    @property
    def epoch(self) -> int: ...

    def seconds_left(self) -> float:
        """How long the lease is known to last from now (0 if lost)."""

    def lost(self, reason: str) -> None:
        """The store found the lease gone (a write was refused)."""


# Ops queued by append, in order: (kind, argument).
_ADD, _DEL, _UPSERT_Q, _DEL_Q, _ADD_ID, _DEL_ID = range(6)

_LOCK_SQL = (
    "UPDATE ferrymq_lock SET write_seq = %s WHERE id = 1"
    " AND (%s::bigint IS NULL OR (epoch = %s AND expires_at > now()))"
)


class PostgresStore(Store):
    pages = True

    def __init__(
        self,
        url: str,
        *,
        fencing: Fencing | None = None,
        wait: bool = False,
        read_ahead: int = 256,
        cache_bytes: int = 16 * 1024 * 1024,
        retry_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self.fencing = fencing
        self.wait = wait
        self.read_ahead = read_ahead
        self.cache_bytes = cache_bytes
        # Without a lease: how long a broken connection is retried before failing.
        self.retry_seconds = retry_seconds
        self._conn: Conn | None = None
        self._reader: psycopg.Connection[TupleRow] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_key = 1
        self._seq = 0
        self._queues: set[str] = set()
        self._id_keys: dict[tuple[str, str], int] = {}
        self._recovered_marks: dict[str, int] = {}
        self._marks: dict[str, int] = {}  # highest delivered key written, per queue
        self._delivered: list[tuple[str, Message]] = []
        self._pending: list[tuple[int, Any]] = []
        # Payloads appended but not yet committed: `load` serves them from here.
        self._unwritten: dict[int, bytes] = {}
        self._cache: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self._cached_bytes = 0
        self._appended_gen = 0
        self._durable_gen = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._error: StoreUnavailable | None = None
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "transactions",
                "appends_written",
                "rows_written",
                "largest_group",
                "reconnects",
                "cache_hits",
                "cache_misses",
                "read_batches",
            ),
            0,
        )

    # -- open ------------------------------------------------------------------

    async def open(self) -> RecoveredState:
        self._loop = asyncio.get_running_loop()
        started = time.monotonic()
        conn = self._conn = await self._connect(wait=self.wait)
        try:
            return await self._recover(conn, started)
        except BaseException:
            self._conn = None
            await conn.close()
            raise

    async def _recover(self, conn: Conn, started: float) -> RecoveredState:
        version = await migrate(conn)
        state = RecoveredState()
        cur = await conn.execute("SELECT write_seq FROM ferrymq_lock WHERE id = 1")
        row = await cur.fetchone()
        self._seq = int(row[0]) if row else 0
        top = 0
        cur = await conn.execute("SELECT name, topic_pattern FROM ferrymq_queues ORDER BY name")
        for name, pattern in await cur.fetchall():
            state.queues.append(QueueSpec(name, pattern))
            self._queues.add(name)
        cur = await conn.execute("SELECT key, scope, ident FROM ferrymq_ids ORDER BY key")
        for key, scope, ident in await cur.fetchall():
            self._id_keys[scope, ident] = key
            state.remembered.setdefault(scope, []).append(ident)
            top = max(top, key)
        cur = await conn.execute("SELECT queue, key FROM ferrymq_marks")
        for queue, key in await cur.fetchall():
            self._marks[queue] = self._recovered_marks[queue] = key
            top = max(top, key)
        stale: list[int] = []
        recovered = 0
        messages: dict[str, list[int]] = {}
        async with conn.cursor() as cur:  # server-side order; only keys, no bodies
            await cur.execute("SELECT key, queue FROM ferrymq_messages ORDER BY key")
            async for key, queue in cur:
                top = max(top, key)
                if queue not in self._queues:  # its queue was deleted
                    stale.append(key)
                    continue
                keys = messages.get(queue)
                if keys is None:
                    keys = messages[queue] = []
                keys.append(key)
                recovered += 1
        # list is invariant, but nothing adds a Message to these lists.
        state.messages = cast("dict[str, list[Message | int]]", messages)
        self._next_key = top + 1
        if stale:
            self._pending.extend((_DEL, k) for k in stale)
        for queue, keys in messages.items():
            await self._prefetch(conn, queue, keys[0])
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        if self._pending:
            self._wake.set()
        log.info(
            "postgres store %s (schema v%d): %d queues, %d messages, %d ids in %.2f s",
            redact(self.url),
            version,
            len(state.queues),
            recovered,
            len(self._id_keys),
            time.monotonic() - started,
        )
        return state

    async def _connect(self, *, wait: bool = False) -> Conn:
        conn = await connect(self.url, wait=wait, purpose="store")
        if self.fencing is not None:
            # A master stopped mid-transaction holds the lock row; the server
            # ends that transaction (and session) once a lease has passed.
            ms = max(1000, int(self.fencing.seconds_left() * 1000)) if self.fencing.epoch else 5000
            await conn.execute(f"SET idle_in_transaction_session_timeout = {ms}")
        return conn

    async def _prefetch(self, conn: Conn, queue: str, first: int) -> None:
        cur = await conn.execute(
            "SELECT key, payload FROM ferrymq_messages WHERE queue = %s AND key >= %s"
            " ORDER BY key LIMIT %s",
            (queue, first, self.read_ahead),
        )
        self._cache_rows(await cur.fetchall())

    def _cache_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        cache = self._cache
        for key, payload in rows:
            if key not in cache:
                cache[key] = payload
                self._cached_bytes += len(payload)
        while self._cached_bytes > self.cache_bytes and cache:
            _, old = cache.popitem(last=False)
            self._cached_bytes -= len(old)

    # -- writes ------------------------------------------------------------------

    def _key(self) -> int:
        key = self._next_key
        self._next_key = key + 1
        return key

    def append(self, records: Sequence[Record]) -> None:
        if self._error is not None:
            for rec in records:
                if type(rec) is AddMessage:
                    rec.message.store_key = 0
            raise StoreUnavailable(f"message store unavailable: {self._error.message}")
        ops = self._pending
        before = len(ops)
        for rec in records:
            if type(rec) is AddMessage:
                key = self._key()
                rec.message.store_key = key
                payload = encode_message(rec.queue, rec.message)
                self._unwritten[key] = payload
                ops.append((_ADD, (key, rec.queue, payload)))
            elif type(rec) is RemoveMessage:
                ref = rec.message
                key = ref if isinstance(ref, int) else ref.store_key
                if key:
                    ops.append((_DEL, key))
                    self._uncache(key)
            elif type(rec) is UpsertQueue:
                self._queues.add(rec.spec.name)
                ops.append((_UPSERT_Q, rec.spec))
            elif type(rec) is RememberId:
                key = self._id_keys[rec.scope, rec.ident] = self._key()
                ops.append((_ADD_ID, (key, rec.scope, rec.ident)))
            elif type(rec) is ForgetId:
                found = self._id_keys.pop((rec.scope, rec.ident), None)
                if found is not None:
                    ops.append((_DEL_ID, found))
            elif type(rec) is DeleteQueue:
                self._queues.discard(rec.name)
                self._marks.pop(rec.name, None)
                self._recovered_marks.pop(rec.name, None)
                ops.append((_DEL_Q, rec.name))
        if len(ops) > before:
            self._appended_gen += 1
            self._wake.set()

    def _uncache(self, key: int) -> None:
        payload = self._cache.pop(key, None)
        if payload is not None:
            self._cached_bytes -= len(payload)

    def delivered(self, queue: str, message: Message) -> None:
        # Worked out by the writer: the message's key may not be assigned yet.
        self._delivered.append((queue, message))
        self._wake.set()

    def _take_marks(self) -> dict[str, int]:
        delivered, self._delivered = self._delivered, []
        changed: dict[str, int] = {}
        for queue, message in delivered:
            key = message.store_key
            if key > self._marks.get(queue, 0) and key > changed.get(queue, 0):
                changed[queue] = key
        for queue in list(changed):
            if queue not in self._queues:
                del changed[queue]
        self._marks.update(changed)
        return changed

    def durable(self) -> asyncio.Future[None] | None:
        gen = self._appended_gen
        if gen <= self._durable_gen:
            return None
        loop = self._loop
        assert loop is not None
        if self._error is not None:
            fut: asyncio.Future[None] = loop.create_future()
            fut.set_exception(self._error)
            return fut
        waiters = self._waiters
        if waiters and waiters[-1][0] == gen:
            return waiters[-1][1]
        fut = loop.create_future()
        waiters.append((gen, fut))
        return fut

    async def _write_loop(self) -> None:
        while True:
            if not self._closing:
                await self._wake.wait()
            self._wake.clear()
            ops, self._pending = self._pending, []
            gen = self._appended_gen
            marks = self._take_marks()
            if not ops and not marks:
                if self._closing:
                    return
                continue
            seq = self._seq + 1
            try:
                await self._commit(ops, marks, seq)
            except StoreUnavailable as exc:
                self._fail(exc)
                return
            except Exception as exc:  # a bug or a refused statement: stop writing
                log.exception("postgres store: write failed")
                self._fail(StoreUnavailable(f"write failed: {exc}"))
                return
            self._seq = seq
            stats = self.stats
            stats["transactions"] += 1
            stats["rows_written"] += len(ops)
            group = gen - self._durable_gen
            stats["appends_written"] += group
            stats["largest_group"] = max(stats["largest_group"], group)
            for op, arg in ops:
                if op == _ADD:
                    self._unwritten.pop(arg[0], None)
            self._durable_gen = gen
            waiters = self._waiters
            while waiters and waiters[0][0] <= gen:
                fut = waiters.popleft()[1]
                if not fut.done():
                    fut.set_result(None)

    async def _commit(self, ops: list[tuple[int, Any]], marks: dict[str, int], seq: int) -> None:
        """One transaction; on a broken connection, find out whether it
        committed and retry it if not, while the lease (or retry time) lasts."""
        fencing = self.fencing
        epoch = fencing.epoch if fencing is not None else None
        while True:
            try:
                conn = self._conn
                if conn is None or conn.closed:
                    conn = self._conn = await self._connect()
                async with conn.transaction():
                    cur = await conn.execute(_LOCK_SQL, (seq, epoch, epoch))
                    if cur.rowcount != 1:
                        raise Fenced("this node's lease is lost (epoch moved on or expired)")
                    await self._write(conn, ops, marks)
                return
            except psycopg.OperationalError as exc:
                log.warning("postgres store: connection lost during a write: %s", exc)
            if await self._committed_after_reconnect(seq, epoch):
                return

    async def _committed_after_reconnect(self, seq: int, epoch: int | None) -> bool:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None
        fencing = self.fencing
        limit = fencing.seconds_left() if fencing is not None else self.retry_seconds
        deadline = time.monotonic() + limit
        while True:
            if time.monotonic() >= deadline:
                raise StoreUnavailable("database unreachable for longer than the lease")
            try:
                conn = self._conn = await self._connect()
                cur = await conn.execute("SELECT write_seq, epoch FROM ferrymq_lock WHERE id = 1")
                row = await cur.fetchone()
                break
            except (psycopg.Error, BrokerError) as exc:
                self._conn = None
                log.warning("postgres store: reconnecting: %s", exc)
                await asyncio.sleep(0.2)
        self.stats["reconnects"] += 1
        assert row is not None
        if epoch is not None and row[1] != epoch:
            raise Fenced(f"the lease moved on to epoch {row[1]} while reconnecting")
        return bool(row[0] == seq)

    async def _write(self, conn: Conn, ops: list[tuple[int, Any]], marks: dict[str, int]) -> None:
        adds: list[tuple[int, str, bytes]] = []
        dels: list[int] = []
        id_adds: list[tuple[int, str, str]] = []
        id_dels: list[int] = []

        async def flush() -> None:
            if adds and dels:  # added and removed in one group (auto ack): never written
                gone = set(dels).intersection(a[0] for a in adds)
                if gone:
                    adds[:] = [a for a in adds if a[0] not in gone]
                    dels[:] = [d for d in dels if d not in gone]
            if adds:
                await conn.execute(
                    "INSERT INTO ferrymq_messages (key, queue, payload)"
                    " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bytea[])",
                    ([a[0] for a in adds], [a[1] for a in adds], [a[2] for a in adds]),
                )
            if dels:
                await conn.execute("DELETE FROM ferrymq_messages WHERE key = ANY(%s)", (dels,))
            if id_adds:
                await conn.execute(
                    "INSERT INTO ferrymq_ids (key, scope, ident)"
                    " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[])",
                    ([a[0] for a in id_adds], [a[1] for a in id_adds], [a[2] for a in id_adds]),
                )
            if id_dels:
                await conn.execute("DELETE FROM ferrymq_ids WHERE key = ANY(%s)", (id_dels,))
            adds.clear()
            dels.clear()
            id_adds.clear()
            id_dels.clear()

        for op, arg in ops:
            if op == _ADD:
                adds.append(arg)
            elif op == _DEL:
                dels.append(arg)
            elif op == _ADD_ID:
                id_adds.append(arg)
            elif op == _DEL_ID:
                id_dels.append(arg)
            else:  # queue changes keep their place among the message rows
                await flush()
                if op == _UPSERT_Q:
                    await conn.execute(
                        "INSERT INTO ferrymq_queues (name, topic_pattern) VALUES (%s, %s)"
                        " ON CONFLICT (name) DO UPDATE SET topic_pattern = EXCLUDED.topic_pattern",
                        (arg.name, arg.topic_pattern),
                    )
                else:
                    await conn.execute("DELETE FROM ferrymq_queues WHERE name = %s", (arg,))
                    await conn.execute("DELETE FROM ferrymq_messages WHERE queue = %s", (arg,))
                    await conn.execute("DELETE FROM ferrymq_marks WHERE queue = %s", (arg,))
        await flush()
        if marks:
            await conn.execute(
                "INSERT INTO ferrymq_marks (queue, key)"
                " SELECT * FROM unnest(%s::text[], %s::bigint[])"
                " ON CONFLICT (queue) DO UPDATE"
                " SET key = greatest(ferrymq_marks.key, EXCLUDED.key)",
                (list(marks), list(marks.values())),
            )

    def _fail(self, error: StoreUnavailable) -> None:
        if self._error is None:
            self._error = error
            log.error("postgres store stops writing: %s", error.message)
            if self.fencing is not None:
                # Fenced, or the database was out of reach for a whole lease:
                # either way this master stops (and a supervisor restarts it).
                self.fencing.lost(error.message)
        waiters, self._waiters = self._waiters, collections.deque()
        for _, fut in waiters:
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()

    # -- reads -------------------------------------------------------------------

    def load(self, queue: str, key: int) -> Message:
        payload = self._unwritten.get(key)
        if payload is None:
            payload = self._cache.pop(key, None)
            if payload is None:
                self.stats["cache_misses"] += 1
                payload = self._read_ahead(queue, key)
            else:
                self.stats["cache_hits"] += 1
                self._cached_bytes -= len(payload)
        item = decode(payload)
        if not isinstance(item, tuple):
            raise StoreUnavailable(f"stored key {key} of {queue} is not a message")
        message = item[1]
        message.store_key = key
        if message.delivery_count == 0 and key <= self._recovered_marks.get(queue, 0):
            message.delivery_count = 1  # may have been delivered before the restart
        return message

    def _read_ahead(self, queue: str, key: int) -> bytes:
        """A synchronous read (the Store's `load` is): `key` and the queue's
        next messages, so that the following loads hit the cache."""
        rows: list[tuple[Any, ...]] = []
        for attempt in (1, 2):
            try:
                if self._reader is None or self._reader.closed:
                    self._reader = connect_sync(self.url)
                rows = self._reader.execute(
                    "SELECT key, payload FROM ferrymq_messages WHERE queue = %s AND key >= %s"
                    " ORDER BY key LIMIT %s",
                    (queue, key, self.read_ahead),
                ).fetchall()
                break
            except (psycopg.Error, BrokerError) as exc:
                self._reader = None
                if attempt == 2:
                    raise StoreUnavailable(f"cannot read message {key} of {queue}: {exc}") from exc
        self.stats["read_batches"] += 1
        if not rows or rows[0][0] != key:
            raise StoreUnavailable(f"message {key} of {queue} is not in the database")
        payload: bytes = rows[0][1]
        self._cache_rows(rows[1:])
        return payload

    # -- the rest ----------------------------------------------------------------

    def fence(self) -> None:
        self._fail(Fenced("this node was fenced"))
        if self._writer is not None:
            self._writer.cancel()

    def statistics(self) -> dict[str, int]:
        return {**self.stats, "cached_bytes": self._cached_bytes, "epoch": self._epoch()}

    def _epoch(self) -> int:
        return self.fencing.epoch if self.fencing is not None else 0

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._closing = True
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
