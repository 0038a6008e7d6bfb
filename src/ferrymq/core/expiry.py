"""Message expiry: the `expires` header (epoch ms, as ActiveMQ) or the
destination policy's `default-ttl`, which the broker turns into an `expires`
header at send (so it is stored with the message and survives a restart).

An expired message is never delivered: it goes to the DLQ, or is dropped
when the policy says `expired = "drop"`. Queues check each message as they
dispatch it (paged-out ones once read back), and a sweep removes expired
messages that sit unread: per queue the earliest expiry it holds, in one
heap under one Alarm, so only queues with expiring messages are ever scanned,
and each only when one of its messages is due.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

from ferrymq.core.alarm import Alarm, now_ms
from ferrymq.core.message import Message

if TYPE_CHECKING:
    from ferrymq.core.broker import Broker
    from ferrymq.core.dlq import DeadLetters
    from ferrymq.core.queue import Queue

__all__ = ["Expiry", "expires_at"]

# A queue is swept at most this often (ms): messages expiring one after the
# other are removed in batches, not by a full scan each. They are never
# delivered meanwhile: dispatch checks each one.
SWEEP_INTERVAL = 1000


def expires_at(message: Message) -> int | None:
    """Epoch ms the message expires at; None if never (absent, 0 or not a number)."""
    text = message.headers.get("expires")
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value > 0 else None


class Expiry:
    def __init__(self, broker: Broker, dead_letters: DeadLetters) -> None:
        self.broker = broker
        self.dead_letters = dead_letters
        self.expired = 0
        # queue -> the earliest expiry it may hold; the heap may hold older,
        # superseded entries for a queue, which are skipped.
        self._next: dict[Queue, int] = {}
        self._heap: list[tuple[int, int, Queue]] = []
        self._seq = itertools.count()
        self.alarm = Alarm(self.poll)

    def watch(self, queue: Queue, message: Message) -> None:
        """`message` (with an `expires` header) is going into `queue`."""
        expiry = expires_at(message)
        if expiry is None:
            return
        current = self._next.get(queue)
        if current is None or expiry < current:
            self._next[queue] = expiry
            heapq.heappush(self._heap, (expiry, next(self._seq), queue))
            self.alarm.arm(self._heap[0][0])

    def at_dispatch(self, queue: Queue, message: Message) -> bool:
        """The queue's hook, for a message with an `expires` header about to
        be delivered: True if it expired (and was dead-lettered or dropped)."""
        expiry = expires_at(message)
        if expiry is None or expiry > now_ms():
            return False
        self._expire(queue, message)
        return True

    def _expire(self, queue: Queue, message: Message) -> None:
        self.expired += 1
        queue.stats.expired += 1
        policy = self.dead_letters.policy(queue, message)
        self.dead_letters.remove(queue, message, "expired", dlq=policy.expired == "dlq")

    def poll(self, now: int | None = None) -> None:
        """Sweep the queues whose earliest expiry is due."""
        now = now_ms() if now is None else now
        heap = self._heap
        swept = False
        while heap and heap[0][0] <= now:
            due, _, queue = heapq.heappop(heap)
            if self._next.get(queue) != due:
                continue  # superseded by an earlier entry, already swept
            del self._next[queue]
            swept = True
            if not self.broker.is_live(queue):
                continue
            for message in queue.remove_if(lambda m: _expired(m, now)):
                self._expire(queue, message)
            # What remains: re-watch its earliest expiry (paged-out messages
            # are checked when read back).
            soonest = min(
                (e for m in queue.messages if not isinstance(m, int) and (e := expires_at(m))),
                default=None,
            )
            if soonest is not None:
                soonest = max(soonest, now + SWEEP_INTERVAL)
                self._next[queue] = soonest
                heapq.heappush(heap, (soonest, next(self._seq), queue))
        if swept:
            self.broker.flush_records()
        if heap:
            self.alarm.arm(heap[0][0])

    def close(self) -> None:
        self.alarm.cancel()


def _expired(message: Message, now: int) -> bool:
    expiry = expires_at(message)
    return expiry is not None and expiry <= now
