"""Scheduled delivery, with ActiveMQ's headers: `AMQ_SCHEDULED_DELAY` (ms),
`AMQ_SCHEDULED_PERIOD` (ms) with `AMQ_SCHEDULED_REPEAT` (further deliveries;
-1: forever) and `AMQ_SCHEDULED_CRON` (five-field cron, in UTC).

A message carrying them is held as a ScheduledJob instead of being routed;
the broker routes a copy (without these headers) each time the job is due.
Jobs wait in a heap by due time under one Alarm for the earliest: no task and
no timer per message. The broker stores persistent jobs (see
`store.base.AddScheduled`), so they survive a restart.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

from ferrymq.core.alarm import Alarm, now_ms
from ferrymq.core.destination import Destination
from ferrymq.core.errors import BrokerError
from ferrymq.core.message import Message

__all__ = [
    "SCHEDULE_HEADERS",
    "InvalidSchedule",
    "ScheduledJob",
    "Scheduler",
    "is_scheduled",
    "make_job",
]

DELAY = "AMQ_SCHEDULED_DELAY"
PERIOD = "AMQ_SCHEDULED_PERIOD"
REPEAT = "AMQ_SCHEDULED_REPEAT"
CRON = "AMQ_SCHEDULED_CRON"
SCHEDULE_HEADERS = (DELAY, PERIOD, REPEAT, CRON)


class InvalidSchedule(BrokerError):
    """A scheduling header that cannot be used."""


def is_scheduled(headers: Mapping[str, str]) -> bool:
    # Three lookups rather than a set operation: this runs for every message.
    return DELAY in headers or CRON in headers or PERIOD in headers


class ScheduledJob:
    """A message waiting for its next due time, and how often it fires."""

    __slots__ = (
        "cron",
        "destination",
        "due",
        "fired",
        "message",
        "period",
        "remaining",
        "store_key",
    )

    def __init__(
        self,
        destination: Destination,
        message: Message,
        *,
        due: int,
        remaining: int,
        period: int = 0,
        cron: str = "",
        fired: int = 0,
    ) -> None:
        self.destination = destination
        # The message as sent, minus the scheduling headers.
        self.message = message
        self.due = due  # epoch ms
        self.remaining = remaining  # deliveries still to make; -1: forever
        self.period = period
        self.cron = cron
        self.fired = fired
        self.store_key = 0  # the store's handle once stored

    @property
    def id(self) -> str:
        return self.message.id

    def advance(self, now: int) -> bool:
        """Count one delivery; False when it was the last. The next due time
        skips any missed while the broker was down: one catch-up delivery."""
        self.fired += 1
        if self.remaining > 0:
            self.remaining -= 1
            if self.remaining == 0:
                return False
        if self.cron:
            self.due = next_cron(self.cron, max(now, self.due))
        elif self.period > 0:
            due = self.due + self.period
            if due <= now:
                due = now + self.period - (now - self.due) % self.period
            self.due = due
        else:
            self.due = now
        return True

    def __repr__(self) -> str:
        return f"<ScheduledJob {self.id} to {self.destination} due={self.due}>"


def next_cron(expr: str, after_ms: int) -> int:
    """The first time (epoch ms) after `after_ms` that `expr` names, in UTC."""
    start = datetime.fromtimestamp(after_ms / 1000, UTC)
    return int(next(CronSim(expr, start)).timestamp() * 1000)


def _int(headers: Mapping[str, str], name: str, default: int) -> int:
    text = headers.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidSchedule(f"{name}: expected a whole number, got {text!r}") from None


def make_job(destination: Destination, message: Message, now: int | None = None) -> ScheduledJob:
    """The job for a message with scheduling headers (raises InvalidSchedule)."""
    headers = message.headers
    now = now_ms() if now is None else now
    delay = _int(headers, DELAY, 0)
    period = _int(headers, PERIOD, 0)
    repeat = _int(headers, REPEAT, 0)
    cron = headers.get(CRON, "").strip()
    if delay < 0 or period < 0:
        raise InvalidSchedule(f"{DELAY} and {PERIOD} must not be negative")
    if repeat < -1:
        raise InvalidSchedule(f"{REPEAT}: expected -1 (forever) or more, got {repeat}")
    if repeat == -1 and period == 0 and not cron:
        raise InvalidSchedule(f"{REPEAT} -1 (forever) needs {PERIOD} or {CRON}")
    if cron:
        try:
            due = next_cron(cron, now + delay)
        except (CronSimError, ValueError) as exc:
            raise InvalidSchedule(f"{CRON}: invalid cron expression {cron!r}: {exc}") from None
        remaining = -1 if REPEAT not in headers or repeat == -1 else repeat + 1
    else:
        due = now + delay
        remaining = -1 if repeat == -1 else repeat + 1
    stripped = {k: v for k, v in headers.items() if k not in SCHEDULE_HEADERS}
    held = Message(
        message.id,
        message.destination,
        stripped,
        message.body,
        persistent=message.persistent,
        timestamp=message.timestamp,
    )
    return ScheduledJob(destination, held, due=due, remaining=remaining, period=period, cron=cron)


class Scheduler:
    """Jobs by due time; calls `fire(due_jobs)` when the earliest are due."""

    def __init__(self, fire: Callable[[list[ScheduledJob]], None]) -> None:
        self._fire = fire
        self._heap: list[tuple[int, int, ScheduledJob]] = []
        self._seq = itertools.count()  # ties keep insertion order
        self.alarm = Alarm(self.poll)

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, job: ScheduledJob) -> None:
        heapq.heappush(self._heap, (job.due, next(self._seq), job))
        self.alarm.arm(self._heap[0][0])

    def jobs(self) -> list[ScheduledJob]:
        return [job for _, _, job in sorted(self._heap)]

    def poll(self, now: int | None = None) -> None:
        """Hand every due job to `fire` (the broker re-adds repeating ones)."""
        now = now_ms() if now is None else now
        heap = self._heap
        due: list[ScheduledJob] = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        if due:
            self._fire(due)
        if heap:
            self.alarm.arm(heap[0][0])

    def close(self) -> None:
        self.alarm.cancel()
