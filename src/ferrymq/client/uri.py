"""Broker URIs: `stomp://host:port` and ActiveMQ's `failover:` composite URI.

Pure parsing, no I/O. Accepted forms (ActiveMQ's "Failover Transport
Reference"):

    stomp://host:port                     one broker, no reconnect (like tcp://)
    tcp://host:port                       the same
    failover:(stomp://a:61613,stomp://b:61613)?initialReconnectDelay=100
    failover://(stomp://a:61613,stomp://b:61613)?randomize=false
    failover:stomp://a:61613,stomp://b:61613

Option names, defaults and meanings are ActiveMQ's; see `FailoverOptions`.
An unknown option is an error (a typo would otherwise silently keep a
default the user meant to change).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_PORT", "BrokerAddress", "FailoverOptions", "ParsedUri", "parse_uri"]

DEFAULT_PORT = 61613  # STOMP's registered port, ActiveMQ's and RabbitMQ's default
_SCHEMES = frozenset({"stomp", "tcp"})
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """One broker endpoint."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"stomp://{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FailoverOptions:
    """ActiveMQ's failover transport options, with ActiveMQ's defaults.

    Times are in milliseconds, as in the URI.
    """

    # Delay before the second pass over the broker list (the first is
    # immediate), then multiplied by backoff_multiplier after every pass.
    initial_reconnect_delay: int = 10
    max_reconnect_delay: int = 30_000
    use_exponential_backoff: bool = True
    backoff_multiplier: float = 2.0
    # -1: retry forever; 0: never reconnect; n: give up after n more passes.
    max_reconnect_attempts: int = -1
    # The same, for the very first connection; -1 means "as
    # max_reconnect_attempts" (ActiveMQ 5.6+).
    startup_max_reconnect_attempts: int = -1
    # Shuffle the broker list before every pass (spreads clients over brokers).
    randomize: bool = True
    # -1: a send waits for a connection as long as it takes; else it fails
    # with SendTimeout after this many ms without one.
    timeout: int = -1
    # While connected to a non-priority broker, keep probing the priority
    # ones and move back as soon as one answers.
    priority_backup: bool = False
    # The priority brokers; empty means the first of the list.
    priority_uris: tuple[BrokerAddress, ...] = ()

    def __post_init__(self) -> None:
        if self.initial_reconnect_delay < 0 or self.max_reconnect_delay < 0:
            raise ValueError("reconnect delays must not be negative")
        if self.backoff_multiplier < 1.0:
            raise ValueError("backOffMultiplier must be at least 1")
        if self.max_reconnect_attempts < -1 or self.startup_max_reconnect_attempts < -1:
            raise ValueError("reconnect attempts must be -1 (forever) or more")
        if self.timeout < -1:
            raise ValueError("timeout must be -1 (wait forever) or a number of ms")

    def attempt_limit(self, *, first_connection: bool) -> int:
        """Reconnect passes allowed after the first one; -1 for no limit."""
        if first_connection and self.startup_max_reconnect_attempts != -1:
            return self.startup_max_reconnect_attempts
        return self.max_reconnect_attempts


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _addresses(value: str) -> tuple[BrokerAddress, ...]:
    return tuple(parse_address(part) for part in value.split(",") if part.strip())


# URI option name -> (field name, converter).
_OPTIONS: dict[str, tuple[str, Callable[[str], object]]] = {
    "initialReconnectDelay": ("initial_reconnect_delay", int),
    "maxReconnectDelay": ("max_reconnect_delay", int),
    "useExponentialBackOff": ("use_exponential_backoff", _bool),
    "backOffMultiplier": ("backoff_multiplier", float),
    # The name the option had before ActiveMQ 5.x documented backOffMultiplier.
    "reconnectDelayExponent": ("backoff_multiplier", float),
    "maxReconnectAttempts": ("max_reconnect_attempts", int),
    "startupMaxReconnectAttempts": ("startup_max_reconnect_attempts", int),
    "randomize": ("randomize", _bool),
    "timeout": ("timeout", int),
    "priorityBackup": ("priority_backup", _bool),
    "priorityURIs": ("priority_uris", _addresses),
}


@dataclass(frozen=True, slots=True)
class ParsedUri:
    """What a URI names: the brokers, in order, and how to fail over."""

    addresses: tuple[BrokerAddress, ...]
    options: FailoverOptions
    failover: bool


def parse_address(text: str) -> BrokerAddress:
    """`stomp://host:port` or `tcp://host:port` (port defaults to 61613)."""
    text = text.strip()
    parts = urlsplit(text)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"unsupported scheme in {text!r}: use stomp:// or tcp://")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {text!r}") from exc
    if not parts.hostname:
        raise ValueError(f"no host in {text!r}")
    if parts.path not in ("", "/"):
        raise ValueError(f"unexpected path in {text!r}")
    return BrokerAddress(parts.hostname, port if port is not None else DEFAULT_PORT)


def parse_options(query: str, base: FailoverOptions | None = None) -> FailoverOptions:
    """Apply `name=value&...` (ActiveMQ names) on top of `base`."""
    changes: dict[str, Any] = {}
    for item in query.split("&"):
        if not item:
            continue
        name, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"option {name!r} has no value")
        entry = _OPTIONS.get(name)
        if entry is None:
            known = ", ".join(sorted(_OPTIONS))
            raise ValueError(f"unknown failover option {name!r} (known: {known})")
        field, convert = entry
        try:
            changes[field] = convert(unquote(raw))
        except ValueError as exc:
            raise ValueError(f"bad value for {name}: {raw!r}") from exc
    return dataclasses.replace(base or FailoverOptions(), **changes)


def parse_uri(uri: str) -> ParsedUri:
    """Parse a broker URI; raises ValueError naming what is wrong.

    A plain `stomp://` URI behaves as ActiveMQ's `tcp://`: one connection
    attempt and no reconnect. Wrap it as `failover:(stomp://...)` to get
    reconnection to a single broker.
    """
    text = uri.strip()
    if not text.startswith("failover:"):
        single = FailoverOptions(max_reconnect_attempts=0, startup_max_reconnect_attempts=0)
        return ParsedUri((parse_address(text),), single, failover=False)
    rest = text[len("failover:") :]
    if rest.startswith("//"):
        rest = rest[2:]
    if rest.startswith("("):
        close = rest.find(")")
        if close < 0:
            raise ValueError(f"unbalanced parenthesis in {uri!r}")
        inner, tail = rest[1:close], rest[close + 1 :]
        if tail and not tail.startswith("?"):
            raise ValueError(f"unexpected text after ')' in {uri!r}")
        query = tail[1:]
    else:
        # failover:a,b?opts: the query after the last address is taken as the
        # failover options (a bare address list has no place for nested ones).
        inner, _, query = rest.partition("?")
    addresses = tuple(parse_address(part) for part in inner.split(",") if part.strip())
    if not addresses:
        raise ValueError(f"no broker address in {uri!r}")
    return ParsedUri(addresses, parse_options(query), failover=True)
