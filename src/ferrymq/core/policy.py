"""Per-destination delivery policies: redelivery limits and delays, dead-letter
queues, expiry. Like ActiveMQ's policy map, entries match destinations with
wildcards (`/queue/orders.>`); the first entry that matches wins, and a
destination no entry matches gets the defaults.

In the TOML config file (the only place a list of policies fits):

    [[policy]]
    match = "/queue/orders.>"
    max-redeliveries = 3
    initial-redelivery-delay = 1000   # ms
    backoff-multiplier = 2.0
    max-redelivery-delay = 30000      # ms; 0: no cap
    dead-letter = "individual"        # DLQ.<name>, or "shared": one /queue/DLQ
    expired = "dlq"                   # or "drop"
    default-ttl = 0                   # ms; 0: messages without `expires` never expire
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ferrymq.core.destination import Destination, pattern_matches
from ferrymq.core.errors import InvalidDestination

__all__ = ["Policy", "PolicyError", "PolicyMap", "parse_policies"]

DEAD_LETTER_MODES = ("individual", "shared")
EXPIRED_MODES = ("dlq", "drop")


class PolicyError(ValueError):
    """A policy entry that cannot be used; the text names the problem."""


@dataclass(frozen=True, slots=True)
class Policy:
    # The destinations this entry applies to: `/queue/NAME` or `/topic/NAME`,
    # with `*` and `>` wildcards.
    match: str = "/queue/>"
    # NACKs or returns after which a message goes to the DLQ; -1: never.
    max_redeliveries: int = 6
    # ms a returned message waits before it is redelivered (0: at once).
    initial_redelivery_delay: int = 0
    # Each further redelivery waits this many times longer than the one before.
    backoff_multiplier: float = 1.0
    # Upper bound of the delay, ms; 0: none.
    max_redelivery_delay: int = 0
    dead_letter: str = "individual"
    expired: str = "dlq"
    # ms to live for messages sent without an `expires` header; 0: forever.
    default_ttl: int = 0

    def redelivery_delay(self, redeliveries: int) -> int:
        """ms to hold a message back before its `redeliveries`-th redelivery (1, 2, ...)."""
        delay = self.initial_redelivery_delay
        if delay <= 0:
            return 0
        scaled = delay * self.backoff_multiplier ** max(redeliveries - 1, 0)
        if self.max_redelivery_delay > 0:
            scaled = min(scaled, self.max_redelivery_delay)
        return int(scaled)

    def dead_letter_queue(self, destination: Destination) -> str:
        """`/queue/DLQ.<name>` (individual) or `/queue/DLQ` (shared)."""
        if self.dead_letter == "shared":
            return "/queue/DLQ"
        return f"/queue/DLQ.{destination.name}"


DEFAULT = Policy()


class PolicyMap:
    """The policy of each destination: the first matching entry, else defaults."""

    def __init__(self, entries: Iterable[Policy] = ()) -> None:
        self.entries = tuple(entries)
        # Lets the send path skip the lookup when no entry sets a default TTL.
        self.any_default_ttl = any(e.default_ttl > 0 for e in self.entries)
        # One lookup per destination name, not per message.
        self._cache: dict[str, Policy] = {}

    def for_destination(self, destination: str) -> Policy:
        found = self._cache.get(destination)
        if found is None:
            found = self._cache[destination] = self._find(destination)
        return found

    def _find(self, destination: str) -> Policy:
        kind, _, name = destination.lstrip("/").partition("/")
        for entry in self.entries:
            entry_kind, _, pattern = entry.match.lstrip("/").partition("/")
            if entry_kind == kind and pattern_matches(pattern, name):
                return entry
        return DEFAULT


_FIELDS = {f.name: f for f in fields(Policy)}


def parse_policies(raw: Any, *, where: str = "policy") -> tuple[Policy, ...]:
    """Policies from the TOML `[[policy]]` tables; PolicyError names what is wrong."""
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: expected a list of [[policy]] tables")
    return tuple(_parse_one(entry, f"{where}[{i}]") for i, entry in enumerate(raw))


def _parse_one(entry: Any, where: str) -> Policy:
    if not isinstance(entry, Mapping):
        raise PolicyError(f"{where}: expected a table")
    values: dict[str, Any] = {}
    for key, value in entry.items():
        name = key.replace("-", "_")
        f = _FIELDS.get(name)
        if f is None:
            raise PolicyError(f"{where}: unknown policy setting {key!r}")
        values[name] = _coerce(f"{where}.{key}", value, f.type)
    if "match" not in values:
        raise PolicyError(f"{where}: 'match' is required (e.g. \"/queue/orders.>\")")
    try:
        # Normalised (`#` -> `>`) so that matching compares like with like.
        values["match"] = str(Destination.parse(values["match"]))
    except InvalidDestination as exc:
        raise PolicyError(f"{where}.match: {exc.message}") from None
    policy = Policy(**values)
    _validate(policy, where)
    return policy


def _coerce(where: str, value: Any, type_name: Any) -> Any:
    name = type_name if isinstance(type_name, str) else type_name.__name__
    if name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{where}: expected a whole number, got {value!r}")
        return value
    if name == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise PolicyError(f"{where}: expected a string, got {value!r}")
    return value


def _validate(policy: Policy, where: str) -> None:
    if Destination.parse(policy.match).kind.is_temporary:
        raise PolicyError(f"{where}.match: policies apply to /queue/ and /topic/ names")
    if policy.max_redeliveries < -1:
        raise PolicyError(f"{where}.max-redeliveries: must be -1 (never) or more")
    for name in ("initial_redelivery_delay", "max_redelivery_delay", "default_ttl"):
        if getattr(policy, name) < 0:
            raise PolicyError(f"{where}.{name.replace('_', '-')}: must not be negative")
    if policy.backoff_multiplier < 1.0:
        raise PolicyError(f"{where}.backoff-multiplier: must be at least 1.0")
    if policy.dead_letter not in DEAD_LETTER_MODES:
        raise PolicyError(f"{where}.dead-letter: expected individual or shared")
    if policy.expired not in EXPIRED_MODES:
        raise PolicyError(f"{where}.expired: expected dlq or drop")
