"""The broker process: listeners, sessions, start and orderly stop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field

from ferrymq import __version__
from ferrymq.config import HostPort, Settings
from ferrymq.core import Broker
from ferrymq.ha.file_lock import FileLock
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
        if store is None:
            store = self._make_store(settings)
        self.broker = Broker(store, node_name=node, memory_budget=settings.memory_budget)
        self.ctx = ServerContext(
            broker=self.broker,
            settings=settings,
            stomp_limits=Limits(
                max_frame_size=settings.max_frame_size,
                max_headers=settings.max_headers,
                max_header_line=settings.max_header_line,
                max_body=settings.max_body,
            ),
        )
        self.role = "master"
        self._stomp_server: asyncio.Server | None = None
        self._http: object | None = None
        self.stomp_address: HostPort | None = None
        self.http_address: HostPort | None = None

    def _make_store(self, settings: Settings) -> Store:
        if settings.store == "memory":
            return MemoryStore()
        from ferrymq.store.journal_store import JournalStore

        self.data_lock = FileLock(settings.data)
        return JournalStore(
            settings.data,
            segment_size=settings.segment_size,
            sync=settings.sync,
            skip_corrupt=settings.recover_skip_corrupt,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.data_lock is not None:
            self.data_lock.acquire_or_fail(self.node_name)
        try:
            await self.broker.start()
        except BaseException:
            if self.data_lock is not None:
                self.data_lock.release()
            raise
        addr = self.settings.stomp_address()
        self._stomp_server = await loop.create_server(
            lambda: StompSession(self.ctx), addr.host, addr.port, reuse_address=True, backlog=1024
        )
        sock = self._stomp_server.sockets[0].getsockname()
        self.stomp_address = HostPort(addr.host, sock[1])
        http_addr = self.settings.http_address()
        if http_addr is not None:
            from ferrymq.admin.http import start_http

            self._http, port = await start_http(self, http_addr)
            self.http_address = HostPort(http_addr.host, port)
        if self.data_lock is not None:
            self._publish_address()
        log.info(
            "ferrymq %s node=%s role=%s stomp=%s http=%s",
            __version__,
            self.node_name,
            self.role,
            self.stomp_address,
            self.http_address or "off",
        )

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
        await self.broker.stop()
        if self.data_lock is not None:
            from ferrymq.server.broker_info import remove_broker_info

            remove_broker_info(self.settings.data)
            self.data_lock.release()
        log.info("ferrymq stopped")
