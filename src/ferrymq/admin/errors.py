"""Errors of the HTTP layer, answered as JSON: `{"error": MESSAGE, "status": CODE}`."""

from __future__ import annotations

from aiohttp import web

__all__ = ["ApiError", "json_error"]


class ApiError(Exception):
    """Raised by a handler; the error middleware turns it into a JSON response."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)
