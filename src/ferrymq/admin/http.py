"""The HTTP management listener (aiohttp, in the broker's own loop).

`/healthz` and `POST /api/backup` (admin/backup_api.py) so far; the
management API and console grow here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ferrymq import __version__
from ferrymq.config import HostPort

if TYPE_CHECKING:
    from ferrymq.server.server import BrokerServer

__all__ = ["start_http", "stop_http"]

_SERVER_KEY = web.AppKey("server", object)


def _server(request: web.Request) -> BrokerServer:
    return request.app[_SERVER_KEY]  # type: ignore[return-value]


async def _healthz(request: web.Request) -> web.Response:
    server = _server(request)
    body: dict[str, Any] = {
        "status": "ok",
        "role": server.role,
        "version": __version__,
        "node": server.node_name,
        "uptime_s": round(time.time() - server.broker.started_at, 3),
        "connections": len(server.ctx.sessions),
        "memory": {"used": server.broker.memory.used, "budget": server.broker.memory.limit},
        "store": server.broker.store.statistics(),
    }
    return web.json_response(body)


async def _backup(request: web.Request) -> web.Response:
    from ferrymq.admin.backup_api import handle_backup

    return await handle_backup(_server(request), request)


async def start_http(server: BrokerServer, addr: HostPort) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app[_SERVER_KEY] = server
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/api/backup", _backup)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, addr.host, addr.port, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else addr.port
    return runner, int(port)


async def stop_http(runner: object) -> None:
    assert isinstance(runner, web.AppRunner)
    await runner.cleanup()
