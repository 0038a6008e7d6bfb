"""`POST /api/backup`: the broker snapshots its own journal into a directory.

Request: `{"path": "/absolute/dir"}` (on the broker's machine; new or empty).
Answer: the backup's manifest (200), or `{"error": "..."}` with 400 (bad
request, or a broker without a journal), 409 (the directory is not empty) or
500 (an I/O error while writing it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ferrymq.backup import BackupError, BackupTargetNotEmpty, backup_online

if TYPE_CHECKING:
    from ferrymq.server.server import BrokerServer

__all__ = ["handle_backup"]

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def handle_backup(server: BrokerServer, request: web.Request) -> web.Response:
    from ferrymq.store.journal import JournalError
    from ferrymq.store.journal_store import JournalStore

    store = server.broker.store
    if not isinstance(store, JournalStore):
        return _error(400, "this broker keeps no journal (store = memory): nothing to back up")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, 'expected a JSON body: {"path": "/absolute/directory"}')
    path = body.get("path") if isinstance(body, dict) else None
    if not isinstance(path, str) or not path:
        return _error(400, 'expected a JSON body: {"path": "/absolute/directory"}')
    try:
        manifest = await backup_online(
            store.journal, path, node=server.node_name, source=str(store.directory.parent)
        )
    except BackupTargetNotEmpty as exc:
        return _error(409, str(exc))
    except BackupError as exc:
        return _error(400, str(exc))
    except (OSError, JournalError) as exc:
        log.error("backup to %s failed: %s", path, exc)
        return _error(500, f"backup failed: {exc}")
    log.info(
        "backup written to %s: %d segments, %d bytes",
        path,
        len(manifest["segments"]),
        manifest["total_bytes"],
    )
    return web.json_response(manifest)
