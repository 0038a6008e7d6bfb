"""One settings object, filled from defaults, a TOML file, FERRYMQ_* env vars
and command-line flags, each overriding the one before.

Every field is a setting with one name: `max_body` is `--max-body` on the
command line, `max_body` (or `max-body`) in the TOML file and
`FERRYMQ_MAX_BODY` in the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ferrymq.core.policy import Policy, PolicyError, parse_policies
from ferrymq.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "load_settings", "parse_hostport"]

ENV_PREFIX = "FERRYMQ_"
# FERRYMQ_* variables that are not broker settings: the config file's path and
# what the admin CLI reads (`ferrymq status --url ...`). Not rejected as unknown.
CLIENT_ENV = frozenset(f"{ENV_PREFIX}{name}" for name in ("CONFIG", "URL", "USER", "PASSWORD"))


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_hostport(text: str, *, setting: str) -> HostPort:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT`; port 0 picks a free one."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ConfigError(f"{setting}: expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{setting}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{setting}: port {port} is out of range 0-65535")
    return HostPort(host or "0.0.0.0", port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_sync_policy(text: str) -> None:
    """`always`, `never` or `interval:<ms>` (the journal's fsync policies)."""
    if text in ("always", "never"):
        return
    kind, _, ms = text.partition(":")
    if kind == "interval" and ms.isdigit() and int(ms) > 0:
        return
    raise ConfigError(f"sync: expected always, never or interval:<ms>, got {text!r}")


def _check_store_url(url: str) -> None:
    if not url:
        raise ConfigError("store postgres needs --store-url postgresql://USER@HOST:PORT/DB")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except ProgrammingError as exc:
        shown = url if "@" not in url else "...@" + url.rsplit("@", 1)[1]
        raise ConfigError(f"store_url: not a PostgreSQL URL ({shown!r}): {exc}") from None


def _doc(text: str) -> dict[str, Any]:
    return {"doc": text}


# Metadata of a setting that only a config file can give (a list of tables):
# it has no flag and no environment variable.
FILE_ONLY = {"doc": "", "file_only": True}


@dataclass(frozen=True, slots=True)
class Settings:
    stomp: str = field(default="127.0.0.1:61613", metadata=_doc("STOMP listen address"))
    http: str = field(default="127.0.0.1:8161", metadata=_doc("HTTP management address"))
    data: str = field(default="./ferrymq-data", metadata=_doc("data directory"))
    node_name: str = field(default="", metadata=_doc("node name (default: host name)"))
    log_level: str = field(default="info", metadata=_doc("debug, info, warning or error"))
    # STOMP limits. Defaults after ActiveMQ's (10 KiB header line, 1000
    # headers); 64 MiB bodies is a bound on memory, not a protocol limit.
    max_frame_size: int = field(default=64 * 1024 * 1024, metadata=_doc("largest frame, bytes"))
    max_body: int = field(default=64 * 1024 * 1024, metadata=_doc("largest message body, bytes"))
    max_headers: int = field(default=1000, metadata=_doc("most headers in one frame"))
    max_header_line: int = field(default=10 * 1024, metadata=_doc("longest header line, bytes"))
    max_connections: int = field(default=10_000, metadata=_doc("most client connections"))
    connect_timeout: float = field(
        default=10.0, metadata=_doc("seconds a new connection has to send CONNECT")
    )
    heartbeat_grace: float = field(
        default=1.5,
        metadata=_doc("a peer silent for this many negotiated heart-beat intervals is closed"),
    )
    min_heartbeat: int = field(
        default=100, metadata=_doc("shortest heart-beat interval the broker agrees to, ms")
    )
    memory_budget: int = field(
        default=256 * 1024 * 1024,
        metadata=_doc(
            "bytes of messages held in memory (body + 1 KiB each) before producers are"
            " blocked; persistent ones are paged out beyond a quarter of it"
        ),
    )
    store: str = field(
        default="journal",
        metadata=_doc(
            "journal (DATA/journal), postgres (see store_url) or memory (nothing persists)"
        ),
    )
    store_url: str = field(
        default="", metadata=_doc("PostgreSQL URL for --store postgres: postgresql://user@host/db")
    )
    wait_for_store: bool = field(
        default=False,
        metadata=_doc("at start, retry (with backoff) a database that is unreachable"),
    )
    sync: str = field(
        default="always", metadata=_doc("journal fsync policy: always, interval:<ms> or never")
    )
    segment_size: int = field(
        default=32 * 1024 * 1024, metadata=_doc("journal segment file size, bytes")
    )
    users: str = field(
        default="",
        metadata=_doc("users file (JSON, see `ferrymq user`); none: no authentication"),
    )
    allow_open: bool = field(
        default=False,
        metadata=_doc("without a users file, still listen on non-loopback addresses"),
    )
    recover_skip_corrupt: bool = field(
        default=False,
        metadata=_doc("start even if the journal is corrupt mid-segment, skipping the damage"),
    )
    dedup_window: int = field(
        default=20_000,
        metadata=_doc("dedup-ids remembered per destination (and committed transaction ids)"),
    )
    ha: str = field(
        default="none",
        metadata=_doc(
            "none, shared-fs (master/slave on a shared data directory) or shared-db "
            "(master/slave on the PostgreSQL store, with a lease)"
        ),
    )
    lease: float = field(
        default=5.0, metadata=_doc("shared-db: seconds a master's lease lasts unless renewed")
    )
    lease_renew_interval: float = field(
        default=1.0, metadata=_doc("shared-db: seconds between the master's lease renewals")
    )
    lock_poll_interval: int = field(
        default=500,
        metadata=_doc("ms between lock checks: a master's fencing check, a slave's retry"),
    )
    fencing: bool = field(
        default=True,
        metadata=_doc("a master that loses its lock or its data directory stops at once"),
    )
    # Redelivery, dead-letter and expiry policies: `[[policy]]` tables in the
    # config file (see ferrymq.core.policy).
    policy: tuple[Policy, ...] = field(default=(), metadata=FILE_ONLY)

    def stomp_address(self) -> HostPort:
        return parse_hostport(self.stomp, setting="stomp")

    def http_address(self) -> HostPort | None:
        if self.http in ("", "off", "none"):
            return None
        return parse_hostport(self.http, setting="http")

    def validate(self) -> Settings:
        self.stomp_address()
        self.http_address()
        for name in ("max_frame_size", "max_body", "max_headers", "max_header_line"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.memory_budget < 1:
            raise ConfigError("memory_budget must be at least 1")
        if self.max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        if self.heartbeat_grace < 1.0:
            raise ConfigError("heartbeat_grace must be at least 1.0")
        if self.store not in ("journal", "memory", "postgres"):
            raise ConfigError(f"store: expected journal, postgres or memory, got {self.store!r}")
        if self.store == "postgres":
            _check_store_url(self.store_url)
        if self.segment_size < 64 * 1024:
            raise ConfigError("segment_size must be at least 65536 bytes")
        _check_sync_policy(self.sync)
        if self.dedup_window < 1:
            raise ConfigError("dedup_window must be at least 1")
        if self.ha not in ("none", "shared-fs", "shared-db"):
            raise ConfigError(f"ha: expected none, shared-fs or shared-db, got {self.ha!r}")
        if self.ha == "shared-db" and self.store != "postgres":
            raise ConfigError("ha shared-db needs the PostgreSQL store (store = postgres)")
        if not 0 < self.lease_renew_interval <= self.lease / 2:
            raise ConfigError("lease_renew_interval must be positive and at most half the lease")
        if self.ha == "shared-fs" and self.store != "journal":
            raise ConfigError("ha shared-fs needs the journal store (store = journal)")
        if self.lock_poll_interval < 10:
            raise ConfigError("lock_poll_interval must be at least 10 ms")
        if not self.users and not self.allow_open:
            for name, addr in (("stomp", self.stomp_address()), ("http", self.http_address())):
                if addr is not None and not is_loopback(addr.host):
                    raise ConfigError(
                        f"{name}: {addr.host} is not a loopback address and there is no "
                        "users file: give --users FILE (see `ferrymq user add`), or "
                        "--allow-open to accept anyone"
                    )
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level: unknown level {self.log_level!r}")
        return self


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _coerce(name: str, value: Any, target: type[Any]) -> Any:
    if target is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if target is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
    if target is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not isinstance(value, str | int | float):
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return str(value)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _field_types() -> dict[str, type[Any]]:
    return {
        f.name: _TYPES[f.type if isinstance(f.type, str) else f.type.__name__]
        for f in fields(Settings)
        if not f.metadata.get("file_only")
    }


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < TOML file < environment < overrides (flags); validated."""
    types = _field_types()
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            with path.open("rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for key, value in doc.items():
            name = key.replace("-", "_")
            if name == "policy":
                try:
                    values[name] = parse_policies(value)
                except PolicyError as exc:
                    raise ConfigError(f"config file {path}: {exc}") from None
                continue
            if name not in types:
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[name] = _coerce(name, value, types[name])
    environ = os.environ if env is None else env
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in CLIENT_ENV:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in types:
            raise ConfigError(f"environment: unknown setting {key}")
        values[name] = _coerce(key, value, types[name])
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in types:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _coerce(name, value, types[name])
    return dataclasses.replace(Settings(), **values).validate()
