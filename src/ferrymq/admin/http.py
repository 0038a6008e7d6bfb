"""The HTTP management listener (aiohttp, in the broker's own loop).

`/healthz`, the JSON API under `/api` (admin/api.py), Prometheus `/metrics`
(admin/metrics.py) and the web console's static files at `/`
(admin/static/), and `POST /api/backup`
(admin/backup_api.py). Errors anywhere come back as JSON.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ferrymq import __version__
from ferrymq.admin import api
from ferrymq.admin.errors import ApiError, json_error
from ferrymq.admin.metrics import metrics_handler
from ferrymq.admin.sampler import Sampler
from ferrymq.admin.security import Handler, auth_middleware, require
from ferrymq.admin.state import STATE_KEY, AdminState, state
from ferrymq.config import HostPort

if TYPE_CHECKING:
    from ferrymq.server.server import BrokerServer

__all__ = ["make_app", "start_http", "stop_http"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


async def _healthz(request: web.Request) -> web.Response:
    server = state(request).server
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
    if server.ha_lock is not None:
        body["ha"] = {
            "mode": server.settings.ha,
            "lock": str(server.ha_lock.path),
            "holder": server.ha_lock.holder(),
            "fenced": server.fence_reason or None,
        }
        describe = getattr(server.ha_lock, "describe", None)
        if describe is not None:  # shared-db: holder, epoch, lease expiry
            body["ha"].update(describe())
    return web.json_response(body)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as `{"error": ..., "status": ...}`, never an HTML page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason
        if exc.status == 404:
            message = f"no such resource: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        return json_error(exc.status, message)
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return json_error(500, "internal error (see the broker's log)")


async def _backup(request: web.Request) -> web.Response:
    from ferrymq.admin.backup_api import handle_backup

    require(request, "admin", ">")  # it writes files wherever the broker may
    return await handle_backup(state(request).server, request)


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def make_app(server: BrokerServer, sampler: Sampler) -> web.Application:
    app = web.Application(
        middlewares=[_json_errors, auth_middleware(server.ctx.auth)],
        client_max_size=server.settings.max_body + 1024 * 1024,
    )
    app[STATE_KEY] = AdminState(server, sampler)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", metrics_handler(server))
    api.add_routes(app)
    app.router.add_post("/api/backup", _backup)
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC)
    return app


async def start_http(server: BrokerServer, addr: HostPort) -> tuple[web.AppRunner, int]:
    sampler = Sampler(server.broker)
    app = make_app(server, sampler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, addr.host, addr.port, reuse_address=True)
    await site.start()
    sampler.start()
    port = runner.addresses[0][1] if runner.addresses else addr.port
    return runner, int(port)


async def stop_http(runner: object) -> None:
    assert isinstance(runner, web.AppRunner)
    await runner.app[STATE_KEY].sampler.stop()
    await runner.cleanup()
