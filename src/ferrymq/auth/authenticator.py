"""Checks logins against the users file, which it re-reads when it changes.

scrypt is slow on purpose (tens of ms), and the console polls the API every
second with basic auth: a verified (user, password) pair is remembered, keyed
by a SHA-256 of the password, until the file changes. The first check of a
pair still costs one scrypt; the HTTP layer runs it off the event loop,
STOMP CONNECT runs it inline (once per pair per process).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from ferrymq.auth.passwords import dummy_hash, verify_password
from ferrymq.auth.users import User, UsersFile, load_users
from ferrymq.errors import ConfigError

__all__ = ["Authenticator"]

log = logging.getLogger(__name__)


class Authenticator:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._users = UsersFile()
        self._stamp: tuple[int, int] | None = None
        self._verified: dict[tuple[str, bytes], User] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file now; raises ConfigError if it is missing or invalid."""
        stat = self.path.stat() if self.path.exists() else None
        users = load_users(self.path)
        with self._lock:
            self._users = users
            self._stamp = None if stat is None else (stat.st_mtime_ns, stat.st_size)
            self._verified = {}

    def _refresh(self) -> None:
        """Pick up `ferrymq user add/remove` without a restart; keep the old
        users if the new file is broken (and say so)."""
        try:
            stat = self.path.stat()
        except OSError:
            return
        if (stat.st_mtime_ns, stat.st_size) == self._stamp:
            return
        try:
            self.reload()
            log.info("users file %s reloaded: %d users", self.path, len(self._users.users))
        except ConfigError as exc:
            log.error("users file not reloaded, keeping the previous users: %s", exc)
            self._stamp = (stat.st_mtime_ns, stat.st_size)

    @property
    def users(self) -> dict[str, User]:
        self._refresh()
        return self._users.users

    def cached(self, name: str, password: str) -> User | None:
        """The user if this exact pair was verified before (cheap)."""
        self._refresh()
        return self._verified.get((name, hashlib.sha256(password.encode()).digest()))

    def login(self, name: str | None, password: str | None) -> User | None:
        """The user if the name and password match, else None (slow: scrypt)."""
        if name is None or password is None:
            return None
        hit = self.cached(name, password)
        if hit is not None:
            return hit
        user = self._users.users.get(name)
        ok = verify_password(password, user.password if user is not None else dummy_hash())
        if not ok or user is None:
            return None
        with self._lock:
            if self._users.users.get(name) is user:
                self._verified[(name, hashlib.sha256(password.encode()).digest())] = user
        return user
