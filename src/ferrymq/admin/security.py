"""HTTP basic auth for the admin port, against the broker's users file.

With no users file the port is open (the broker then listens on loopback
only, unless told otherwise) and every request acts as an anonymous admin.
`/healthz` and `/metrics` stay open either way: they hold no message
contents, and Prometheus scrapers and load balancers expect them so.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ferrymq.admin.errors import ApiError, json_error
from ferrymq.auth import Authenticator, User

__all__ = ["auth_middleware", "request_user", "require"]

# aiohttp >= 3.13 wants typed keys for request storage (and warns otherwise).
_USER: Any = web.RequestKey("user", object) if hasattr(web, "RequestKey") else "ferrymq.user"
_OPEN_PATHS = frozenset({"/healthz", "/metrics"})
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="ferrymq", charset="UTF-8"'}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def auth_middleware(auth: Authenticator | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if auth is None or request.path in _OPEN_PATHS:
            request[_USER] = None
            return await handler(request)
        creds = _credentials(request)
        if creds is None:
            return json_error(401, "authentication required", _CHALLENGE)
        user = auth.cached(*creds)
        if user is None:
            # scrypt takes tens of ms: keep it off the broker's loop.
            loop = asyncio.get_running_loop()
            user = await loop.run_in_executor(None, auth.login, *creds)
        if user is None:
            return json_error(401, "wrong user name or password", _CHALLENGE)
        request[_USER] = user
        return await handler(request)

    return middleware


def request_user(request: web.Request) -> User | None:
    """The authenticated user, or None when the broker runs without users."""
    user = request.get(_USER)
    return user if isinstance(user, User) else None


def require(request: web.Request, action: str, destination: str) -> None:
    """403 unless the request's user may `action` on `destination` (`>`: everything)."""
    user = request_user(request)
    if user is None or user.may(action, destination):
        return
    what = "the whole broker" if destination == ">" else destination
    raise ApiError(403, f"user {user.name!r} has no {action} permission on {what}")
