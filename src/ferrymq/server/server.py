"""The broker process: listeners, sessions, start and orderly stop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ferrymq import __version__
from ferrymq.auth import Authenticator
from ferrymq.config import HostPort, Settings
from ferrymq.core import Broker
from ferrymq.ha.file_lock import FileLock
from ferrymq.ha.lease import LeaseLock
from ferrymq.ha.shared_fs import SharedFsLock
from ferrymq.protocol.stomp import Limits
from ferrymq.server.stomp_session import StompSession
from ferrymq.store import MemoryStore, Store

__all__ = ["BrokerServer", "ServerContext"]

log = logging.getLogger(__name__)


@dataclass
class ServerContext:
    """What every session shares: the broker, settings and the session registry."""

    broker: Broker
    settings: Settings
    stomp_limits: Limits
    # Checks logins and permissions; None: no users file, everyone may do anything.
    auth: Authenticator | None = None
    sessions: set[StompSession] = field(default_factory=set)
    blocked_producers: set[StompSession] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.broker.memory.on_relief = self.resume_producers

    def session_opened(self, session: StompSession) -> bool:
        if len(self.sessions) >= self.settings.max_connections:
            log.warning("refusing %s: max_connections reached", session.peer)
            return False
        self.sessions.add(session)
        return True

    def session_closed(self, session: StompSession) -> None:
        self.sessions.discard(session)
        self.blocked_producers.discard(session)

    def block_producer(self, session: StompSession) -> None:
        if not self.blocked_producers:
            log.warning(
                "memory budget of %d bytes reached: blocking producers until consumers catch up",
                self.broker.memory.limit,
            )
        self.blocked_producers.add(session)
        self.broker.memory.blocked = True

    def resume_producers(self) -> None:
        sessions, self.blocked_producers = self.blocked_producers, set()
        log.info("memory back under budget: resuming %d producers", len(sessions))
        for session in sessions:
            session.unblock_producer()


class BrokerServer:
    """Runs one broker node: `await start()`, then `await stop()`."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        node = settings.node_name or socket.gethostname()
        self.node_name = node
        self.data_lock: FileLock | None = None
        self.ha_lock: SharedFsLock | LeaseLock | None = None
        # --store postgres without --ha: the lease still guards the database.
        self.db_lease: LeaseLock | None = None
        if store is None:
            store = self._make_store(settings)
        self.broker = Broker(
            store,
            node_name=node,
            memory_budget=settings.memory_budget,
            dedup_window=settings.dedup_window,
            policies=settings.policy,
        )
        self.ctx = ServerContext(
            broker=self.broker,
            settings=settings,
            stomp_limits=Limits(
                max_frame_size=settings.max_frame_size,
                max_headers=settings.max_headers,
                max_header_line=settings.max_header_line,
                max_body=settings.max_body,
            ),
            auth=Authenticator(settings.users) if settings.users else None,
        )
        self.role = "master" if settings.ha == "none" else "slave"
        # Set when this master fenced itself (lost its lock or its storage).
        self.fenced = asyncio.Event()
        self.fence_reason = ""
        self._fencing_task: asyncio.Task[None] | None = None
        self._broker_started = False
        self._stomp_server: asyncio.Server | None = None
        self._http: object | None = None
        self.stomp_address: HostPort | None = None
        self.http_address: HostPort | None = None

    def _make_store(self, settings: Settings) -> Store:
        if settings.store == "memory":
            return MemoryStore()
        if settings.store == "postgres":
            return self._make_postgres_store(settings)
        from ferrymq.store.journal_store import JournalStore

        guard = None
        if settings.ha == "shared-fs":
            fs_lock = self.ha_lock = SharedFsLock(
                settings.data, poll_interval=settings.lock_poll_interval / 1000
            )
            guard = fs_lock.quick_check
        else:
            self.data_lock = FileLock(settings.data)
        return JournalStore(
            settings.data,
            segment_size=settings.segment_size,
            sync=settings.sync,
            skip_corrupt=settings.recover_skip_corrupt,
            guard=guard,
        )

    def _make_postgres_store(self, settings: Settings) -> Store:
        from ferrymq.store.postgres import PostgresStore

        lease = LeaseLock(
            settings.store_url,
            lease=settings.lease,
            renew_interval=settings.lease_renew_interval,
            poll_interval=settings.lock_poll_interval / 1000,
            wait_for_store=settings.wait_for_store,
        )
        if settings.ha == "shared-db":
            self.ha_lock = lease
        else:
            self.db_lease = lease
        return PostgresStore(settings.store_url, fencing=lease, wait=settings.wait_for_store)

    async def start(self) -> None:
        """Become master (a slave first waits for the lock), recover the store,
        open the client port. With --ha, HTTP is up (role slave) meanwhile."""
        loop = asyncio.get_running_loop()
        if self.ha_lock is not None:
            await self._start_http()
            log.info(
                "ferrymq %s node=%s role=slave http=%s waiting for the lock %s (holder: %s)",
                __version__,
                self.node_name,
                self.http_address or "off",
                self.ha_lock.path,
                self.ha_lock.holder(),
            )
            waited = time.monotonic()
            await self.ha_lock.acquire(self.node_name)
            log.warning(
                "node %s took the lock %s after %.3f s: becoming master",
                self.node_name,
                self.ha_lock.path,
                time.monotonic() - waited,
            )
            self.role = "master"
        if self.data_lock is not None:
            self.data_lock.acquire_or_fail(self.node_name)
        if self.db_lease is not None:
            await self.db_lease.acquire(self.node_name, wait=False)
        try:
            await self.broker.start()
            self._broker_started = True
        except BaseException:
            self._release_locks()
            raise
        addr = self.settings.stomp_address()
        self._stomp_server = await loop.create_server(
            lambda: StompSession(self.ctx), addr.host, addr.port, reuse_address=True, backlog=1024
        )
        sock = self._stomp_server.sockets[0].getsockname()
        self.stomp_address = HostPort(addr.host, sock[1])
        if self._http is None:
            await self._start_http()
        lease = self.db_lease or self.ha_lock
        if isinstance(lease, LeaseLock):  # always: the database fences writes anyway
            self._fencing_task = loop.create_task(lease.keep_alive(self.fence))
        elif isinstance(self.ha_lock, SharedFsLock) and self.settings.fencing:
            self._fencing_task = loop.create_task(self._watch_lock(self.ha_lock))
        if self.data_lock is not None or isinstance(self.ha_lock, SharedFsLock):
            self._publish_address()
        log.info(
            "ferrymq %s node=%s role=%s stomp=%s http=%s",
            __version__,
            self.node_name,
            self.role,
            self.stomp_address,
            self.http_address or "off",
        )
        if self.ctx.auth is None:
            # After the start line, which tools and tests read first.
            log.warning(
                "no users file: anyone who can reach the ports may use the broker "
                "(see `ferrymq user add` and --users)"
            )

    async def _start_http(self) -> None:
        http_addr = self.settings.http_address()
        if http_addr is not None:
            from ferrymq.admin.http import start_http

            self._http, port = await start_http(self, http_addr)
            self.http_address = HostPort(http_addr.host, port)

    async def _watch_lock(self, lock: SharedFsLock) -> None:
        """Fencing: check the lock every poll interval, off the event loop; a
        failed or hung check fences this node at once."""
        interval = lock.poll_interval
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                reason = await asyncio.wait_for(
                    loop.run_in_executor(None, lock.check), timeout=max(2 * interval, 1.0)
                )
            except TimeoutError:
                reason = "the lock check hung (shared storage not responding)"
            if reason is not None:
                self.fence(reason)
                return

    def ha_status(self) -> dict[str, Any] | None:
        """Mode, lock and holder for /healthz and the API; None without HA."""
        if self.ha_lock is None:
            return None
        status: dict[str, Any] = {
            "mode": self.settings.ha,
            "lock": str(self.ha_lock.path),
            "holder": self.ha_lock.holder(),
            "fenced": self.fence_reason or None,
        }
        describe = getattr(self.ha_lock, "describe", None)
        if describe is not None:  # shared-db: holder, epoch, lease expiry
            status.update(describe())
        return status

    def fence(self, reason: str) -> None:
        """Another node may be master now: stop writing and serving at once."""
        if self.fenced.is_set():
            return
        log.critical("node %s fencing itself: %s", self.node_name, reason)
        self.role = "fenced"
        self.fence_reason = reason
        self.broker.store.fence()
        if self._stomp_server is not None:
            self._stomp_server.close()
        for session in list(self.ctx.sessions):
            session.abort()
        self.fenced.set()

    def _release_locks(self) -> None:
        if self.data_lock is not None:
            self.data_lock.release()
        if self.ha_lock is not None:
            self.ha_lock.release()

    def _publish_address(self) -> None:
        """DATA/broker.json, so that tools (`ferrymq backup`) find this broker."""
        from ferrymq.server.broker_info import BrokerInfo, write_broker_info

        try:
            write_broker_info(
                self.settings.data,
                BrokerInfo(
                    pid=os.getpid(),
                    node=self.node_name,
                    version=__version__,
                    stomp=str(self.stomp_address),
                    http=str(self.http_address) if self.http_address else None,
                ),
            )
        except OSError as exc:  # only tools need it; the broker serves without it
            log.warning("cannot write %s/broker.json: %s", self.settings.data, exc)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, then close the store."""
        if self._stomp_server is not None:
            self._stomp_server.close()
        for session in list(self.ctx.sessions):
            session.abort()
        if self._stomp_server is not None:
            try:
                await asyncio.wait_for(self._stomp_server.wait_closed(), timeout)
            except TimeoutError:
                log.warning("connections did not close within %.0f s", timeout)
        if self._http is not None:
            from ferrymq.admin.http import stop_http

            await stop_http(self._http)
        if self._fencing_task is not None:
            self._fencing_task.cancel()
        if self._broker_started:
            await self.broker.stop()
        if self._broker_started and (
            self.data_lock is not None or isinstance(self.ha_lock, SharedFsLock)
        ):
            from ferrymq.server.broker_info import remove_broker_info

            remove_broker_info(self.settings.data)
        for lease in (self.ha_lock, self.db_lease):
            if isinstance(lease, LeaseLock):
                await lease.close()
        self._release_locks()
        log.info("ferrymq stopped")
