"""Master/slave on a shared PostgreSQL database: a lease with a fencing token.

The lock is one row (`ferrymq_lock`: holder, epoch, expires_at). All times
are the database's (`now()`), so the nodes' clocks do not matter.

- A slave polls every `poll_interval`. It takes the lease when it has
  expired, or when the master's session is gone: the master holds a
  session-level advisory lock (`pg_try_advisory_lock`) that PostgreSQL frees
  the moment the master's connection dies (kill -9, crash, lost host), so a
  slave need not wait out a whole lease. Taking the lease increments the
  epoch: the fencing token.
- The master renews every `renew_interval` (`expires_at = now() + lease`,
  only while the epoch is still its own). It counts its lease from just
  before each renewal was sent, on its own monotonic clock, so it always
  believes the lease ends no later than the database does; if no renewal
  succeeds before then it fences itself (`on_lost`).
- Every write the store makes is conditional on the epoch and an unexpired
  lease, in the same transaction (`ferrymq.store.postgres.store`): a master
  that lost its lease, stalled or partitioned, cannot commit anything, even
  before it notices. Early takeover is therefore always safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ferrymq.errors import FerrymqError
from ferrymq.store.postgres.connect import Conn, StoreConnectError, connect
from ferrymq.store.postgres.schema import ADVISORY_KEY, migrate, redact

__all__ = ["LeaseHeld", "LeaseLock"]

log = logging.getLogger(__name__)


def _key(epoch: int) -> tuple[int, int]:
    return ADVISORY_KEY, epoch % (1 << 31)


class LeaseHeld(FerrymqError):
    """Another live node holds the lease (a node that may not wait for it)."""


class LeaseLock:
    def __init__(
        self,
        url: str,
        *,
        lease: float = 5.0,
        renew_interval: float = 1.0,
        poll_interval: float = 0.5,
        wait_for_store: bool = False,
    ) -> None:
        self.url = url
        self.path = redact(url)  # what logs and /healthz show of "the lock"
        self.lease = lease
        self.renew_interval = renew_interval
        self.poll_interval = poll_interval
        self.wait_for_store = wait_for_store
        # The fencing token: this node's once it holds the lease, else the last seen.
        self.epoch = 0
        self._taken = False
        self.expires_at: datetime.datetime | None = None
        self._holder = "unknown"
        self._owner = ""
        self._valid_until = 0.0  # monotonic: this node's lease ends by then
        self._conn: Conn | None = None
        self._has_advisory = False  # this session holds this epoch's advisory lock
        self._on_lost: Callable[[str], None] | None = None
        self.lost_reason = ""

    @property
    def held(self) -> bool:
        return self._taken and not self.lost_reason

    def holder(self) -> str:
        return self._holder

    def seconds_left(self) -> float:
        if not self.held:
            return 0.0
        return max(0.0, self._valid_until - time.monotonic())

    def describe(self) -> dict[str, Any]:
        """For /healthz: who holds the lease, the epoch, when it ends."""
        return {
            "holder": self._holder,
            "epoch": self.epoch,
            "lease_expires": self.expires_at.isoformat() if self.expires_at else None,
            "lease_seconds_left": round(self.seconds_left(), 3) if self.held else None,
        }

    # -- taking the lease -----------------------------------------------------------

    async def acquire(self, owner: str, *, wait: bool = True) -> None:
        """Return once this node holds the lease; `wait=False`: raise LeaseHeld
        if another node holds a live one."""
        self._owner = owner
        conn = await self._connection(first=True)
        await migrate(conn)
        announced = False
        while True:
            try:
                if await self._try_take(await self._connection()):
                    return
            except (psycopg.Error, StoreConnectError) as exc:
                log.warning("lease: database trouble while waiting: %s", exc)
                await self._drop_connection()
            if not wait:
                raise LeaseHeld(
                    f"the database {self.path} is in use by {self._holder} "
                    f"(lease until {self.expires_at}); use --ha shared-db to run a slave"
                )
            if not announced:
                log.info(
                    "lease held by %s (epoch %d, expires %s): waiting",
                    self._holder,
                    self.epoch,
                    self.expires_at,
                )
                announced = True
            await asyncio.sleep(self.poll_interval)

    async def _try_take(self, conn: Conn) -> bool:
        started = time.monotonic()
        try:
            async with conn.transaction():
                # A stalled master mid-write holds the row: do not hang on it.
                await conn.execute("SET LOCAL lock_timeout = '1s'")
                cur = await conn.execute(
                    "SELECT holder, epoch, expires_at, expires_at <= now() FROM ferrymq_lock"
                    " WHERE id = 1 FOR UPDATE"
                )
                row = await cur.fetchone()
                assert row is not None, "ferrymq_lock has no row"
                holder, epoch, expires, expired = row
                self._holder, self.expires_at = holder or "none", expires
                self.epoch = epoch
                # The master of this epoch holds (KEY, epoch) for as long as its
                # session lives: getting it is proof that the session is gone.
                gone = holder is not None and await self._advisory(conn, epoch)
                if not (holder is None or expired or gone):
                    return False
                cur = await conn.execute(
                    "UPDATE ferrymq_lock SET holder = %s, epoch = epoch + 1,"
                    " expires_at = now() + make_interval(secs => %s) WHERE id = 1"
                    " RETURNING epoch, expires_at",
                    (self._owner, self.lease),
                )
                taken = await cur.fetchone()
                assert taken is not None
                # Before COMMIT: no slave can probe the new epoch before we hold it.
                if not await self._advisory(conn, taken[0]):
                    log.warning("lease: advisory lock of epoch %d is taken already", taken[0])
                if gone:
                    await conn.execute("SELECT pg_advisory_unlock(%s, %s)", _key(epoch))
        except psycopg.errors.LockNotAvailable:
            return False
        self.epoch, self.expires_at = taken
        self._taken = True
        self._has_advisory = True
        self._valid_until = started + self.lease
        self._holder = self._owner
        why = (
            "first holder"
            if holder is None
            else "the master's session is gone"
            if gone and not expired
            else "the lease expired"
        )
        log.warning(
            "lease taken by %s: epoch %d (was %d, held by %s), expires %s (%s)",
            self._owner,
            self.epoch,
            epoch,
            holder or "nobody",
            self.expires_at,
            why,
        )
        return True

    async def _advisory(self, conn: Conn, epoch: int) -> bool:
        """pg_try_advisory_lock for `epoch` (session-level: kept after the
        transaction, freed when the session ends)."""
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", _key(epoch))
        row = await cur.fetchone()
        return bool(row and row[0])

    async def _connection(self, *, first: bool = False) -> Conn:
        if self._conn is None or self._conn.closed:
            self._has_advisory = False  # it went with the old session
            self._conn = await connect(
                self.url, wait=self.wait_for_store or not first, purpose="lease"
            )
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._has_advisory = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- keeping it -----------------------------------------------------------------

    async def keep_alive(self, on_lost: Callable[[str], None]) -> None:
        """The master's renewal loop (a task): calls `on_lost(reason)` once the
        lease cannot be confirmed, then returns."""
        self._on_lost = on_lost
        while not self.lost_reason:
            await asyncio.sleep(self.renew_interval)
            if self.lost_reason:
                return
            sent = time.monotonic()
            left = self._valid_until - sent
            if left <= 0:
                self.lost(f"the lease ended {-left:.1f} s ago without a renewal")
                return
            try:
                renewed = await asyncio.wait_for(self._renew(), timeout=left)
            except TimeoutError:
                self.lost("the lease could not be renewed before it ended (database not answering)")
                return
            except (psycopg.Error, StoreConnectError) as exc:
                log.warning("lease renewal failed (%.1f s of lease left): %s", left, exc)
                await self._drop_connection()
                continue
            if renewed is None:
                self.lost(f"the lease was taken over by another node ({self._holder})")
                return
            self.expires_at = renewed
            self._valid_until = sent + self.lease

    async def _renew(self) -> datetime.datetime | None:
        conn = await self._connection()
        if not self._has_advisory:  # a new session (reconnected): take it again
            self._has_advisory = await self._advisory(conn, self.epoch)
        cur = await conn.execute(
            "UPDATE ferrymq_lock SET expires_at = now() + make_interval(secs => %s)"
            " WHERE id = 1 AND epoch = %s AND expires_at > now() RETURNING expires_at",
            (self.lease, self.epoch),
        )
        row = await cur.fetchone()
        if row is not None:
            expires: datetime.datetime = row[0]
            return expires
        cur = await conn.execute("SELECT holder, epoch FROM ferrymq_lock WHERE id = 1")
        now = await cur.fetchone()
        if now is not None:
            self._holder = f"{now[0]}, epoch {now[1]}"
        return None

    def lost(self, reason: str) -> None:
        """The lease is gone (found by the renewal loop or by a refused write)."""
        if self.lost_reason:
            return
        self.lost_reason = reason
        log.critical("lease lost (epoch %d): %s", self.epoch, reason)
        if self._on_lost is not None:
            self._on_lost(reason)

    def release(self) -> None:
        """Nothing to do synchronously: `close()` gives the lease up."""

    async def close(self) -> None:
        """Give the lease up (a slave takes over at its next poll) and disconnect."""
        conn = self._conn
        if conn is not None and not conn.closed and self.held:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    conn.execute(
                        "UPDATE ferrymq_lock SET expires_at = now() WHERE id = 1 AND epoch = %s",
                        (self.epoch,),
                    ),
                    timeout=2,
                )
                log.info("lease released (epoch %d)", self.epoch)
        self.lost_reason = self.lost_reason or "released"
        await self._drop_connection()
