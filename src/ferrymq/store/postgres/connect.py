"""Connecting to PostgreSQL with errors an operator can act on.

A bad URL, wrong credentials or an unreachable server at start is one clear
line and a non-zero exit (`StoreConnectError`); with `wait` the broker keeps
retrying with backoff instead (the database may still be starting).
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg.rows import TupleRow

from ferrymq.errors import FerrymqError
from ferrymq.store.postgres.schema import redact

__all__ = ["Conn", "StoreConnectError", "connect", "connect_sync"]

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[TupleRow]

# Seconds to establish one connection: an unreachable host fails this fast.
CONNECT_TIMEOUT = 5


class StoreConnectError(FerrymqError):
    """PostgreSQL cannot be reached or refuses us."""


def _explain(url: str, exc: Exception) -> StoreConnectError:
    text = " ".join(str(exc).split())
    if _bad_url(exc):
        return StoreConnectError(f"bad store URL {redact(url)!r}: {text}")
    return StoreConnectError(f"cannot connect to PostgreSQL at {redact(url)}: {text}")


def _bad_url(exc: Exception) -> bool:
    """Errors no retry can fix: the URL itself does not parse."""
    return isinstance(exc, psycopg.ProgrammingError) or "for connection option" in str(exc)


async def connect(url: str, *, wait: bool = False, purpose: str = "store") -> Conn:
    """An autocommit connection; with `wait`, retry (backoff up to 5 s) until it works."""
    delay = 0.1
    while True:
        try:
            return await psycopg.AsyncConnection.connect(
                url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name=f"ferrymq-{purpose}",
            )
        except psycopg.Error as exc:
            error = _explain(url, exc)
            if not wait or _bad_url(exc):
                raise error from None
            log.warning("%s; retrying in %.1f s (--wait-for-store)", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def connect_sync(url: str, purpose: str = "store-reader") -> psycopg.Connection[TupleRow]:
    try:
        return psycopg.Connection.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=f"ferrymq-{purpose}",
        )
    except psycopg.Error as exc:
        raise _explain(url, exc) from None
