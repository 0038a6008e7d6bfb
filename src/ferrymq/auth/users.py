"""The users file: names, password hashes, roles and destination patterns.

JSON, so that `ferrymq user add` can rewrite it with the standard library:

    {"users": {"alice": {"password": "scrypt$...", "roles": ["admin"],
                         "read": [], "write": ["/queue/orders.>"], "admin": []}}}

A user's rights are the union of its roles' patterns and its own. Built-in
roles: `admin` (everything), `producer` (write `>`), `consumer` (read `>`),
`monitor` (no destination rights: the read-only API only).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferrymq.auth.permissions import ACTIONS, covers
from ferrymq.errors import ConfigError

__all__ = ["ROLES", "User", "UsersFile", "load_users", "save_users"]

ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "admin": {"read": (">",), "write": (">",), "admin": (">",)},
    "producer": {"write": (">",)},
    "consumer": {"read": (">",)},
    "monitor": {},
}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str  # the scrypt hash string, never the password
    roles: tuple[str, ...] = ()
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()

    def patterns(self, action: str) -> tuple[str, ...]:
        own: tuple[str, ...] = getattr(self, action)
        from_roles = tuple(p for role in self.roles for p in ROLES.get(role, {}).get(action, ()))
        return own + from_roles

    def may(self, action: str, destination: str) -> bool:
        """Whether this user may `action` (read/write/admin) on `destination`."""
        return any(covers(p, destination) for p in self.patterns(action))

    @property
    def is_admin(self) -> bool:
        """Admin of the whole broker (closing connections, say)."""
        return self.may("admin", ">")

    def public(self) -> dict[str, Any]:
        """What `user list` and the API show: everything but the hash."""
        return {
            "name": self.name,
            "roles": list(self.roles),
            **{action: list(getattr(self, action)) for action in ACTIONS},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "password": self.password,
            "roles": list(self.roles),
            **{action: list(getattr(self, action)) for action in ACTIONS},
        }


@dataclass(slots=True)
class UsersFile:
    users: dict[str, User] = field(default_factory=dict)


def _strings(path: Path, name: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"users file {path}: {name}.{key} must be a list of strings")
    return tuple(value)


def load_users(path: str | os.PathLike[str]) -> UsersFile:
    """Read a users file; a missing file is an error, an empty one has no users."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"users file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"users file {p}: {exc}") from None
    try:
        doc = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"users file {p}: not valid JSON: {exc}") from None
    entries = doc.get("users", {}) if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"users file {p}: expected an object with a 'users' object")
    users: dict[str, User] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("password"), str):
            raise ConfigError(f"users file {p}: user {name!r} needs a 'password' hash")
        roles = _strings(p, name, "roles", entry.get("roles"))
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ConfigError(f"users file {p}: user {name!r} has unknown roles {unknown}")
        users[name] = User(
            name,
            entry["password"],
            roles,
            *(_strings(p, name, action, entry.get(action)) for action in ACTIONS),
        )
    return UsersFile(users)


def save_users(path: str | os.PathLike[str], users: UsersFile) -> None:
    """Write atomically (temp file + rename), readable by its owner only."""
    p = Path(path)
    doc = {"users": {name: users.users[name].to_json() for name in sorted(users.users)}}
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
