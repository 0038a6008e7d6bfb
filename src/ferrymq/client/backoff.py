"""When to try again, and which broker first: small values, no I/O, no clock.

ActiveMQ's failover transport makes one *pass* over its broker list per
attempt; after a pass in which no broker answered it sleeps, then grows the
sleep: `initialReconnectDelay`, times `backOffMultiplier` after every failed
pass, capped at `maxReconnectDelay`. `maxReconnectAttempts` counts the passes
after the first one. This module computes exactly that; the caller sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ferrymq.client.uri import BrokerAddress, FailoverOptions

__all__ = ["Backoff", "ReconnectBudget", "pass_order", "priority_addresses"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """The delay schedule between passes, in seconds."""

    initial: float
    maximum: float
    exponential: bool
    multiplier: float

    @classmethod
    def from_options(cls, options: FailoverOptions) -> Backoff:
        return cls(
            initial=options.initial_reconnect_delay / 1000,
            maximum=options.max_reconnect_delay / 1000,
            exponential=options.use_exponential_backoff,
            multiplier=options.backoff_multiplier,
        )

    def compute(self, failures: int) -> float:
        """Seconds to wait before the next pass, after `failures` failed passes.

        The first pass (no failure yet) starts at once: a client whose broker
        just died should reach the next one without waiting.
        """
        if failures <= 0:
            return 0.0
        if not self.exponential:
            return min(self.initial, self.maximum)
        # Computed step by step, not as a power, so a long outage cannot
        # overflow a float: the cap is reached long before.
        delay = self.initial
        for _ in range(failures - 1):
            if delay >= self.maximum:
                break
            delay *= self.multiplier
        return min(delay, self.maximum)


class ReconnectBudget:
    """Counts failed passes against the limit of the current phase.

    `first_connection` picks startupMaxReconnectAttempts (when set) over
    maxReconnectAttempts, as ActiveMQ does until the first success.
    """

    def __init__(self, options: FailoverOptions) -> None:
        self._options = options
        self.backoff = Backoff.from_options(options)
        self.first_connection = True
        self.failures = 0

    def next_delay(self) -> float | None:
        """Seconds to wait before the next pass, or None: give up."""
        limit = self._options.attempt_limit(first_connection=self.first_connection)
        # `limit` passes are allowed after the first one.
        if limit != -1 and self.failures > limit:
            return None
        return self.backoff.compute(self.failures)

    def failed(self) -> None:
        self.failures += 1

    def connected(self) -> None:
        self.first_connection = False
        self.failures = 0


def priority_addresses(
    addresses: Sequence[BrokerAddress], options: FailoverOptions
) -> tuple[BrokerAddress, ...]:
    """The brokers priorityBackup moves back to (the first one by default)."""
    if not options.priority_backup:
        return ()
    return options.priority_uris or tuple(addresses[:1])


def pass_order(
    addresses: Sequence[BrokerAddress], options: FailoverOptions, rng: random.Random
) -> list[BrokerAddress]:
    """The order in which one pass tries the brokers.

    Decided afresh for every pass (never cached): priority brokers first in
    their given order, then the others, shuffled when `randomize` is set.
    """
    priority = priority_addresses(addresses, options)
    rest = [a for a in addresses if a not in priority]
    if options.randomize:
        rng.shuffle(rest)
    return [*priority, *rest]
