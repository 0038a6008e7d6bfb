"""What happens to messages a consumer gives back (NACK, or it went away).

Each returned message has had its `delivery_count` raised by its queue. Here,
per the destination's policy, it is dead-lettered (past `max-redeliveries`,
or expired meanwhile), or held back for the redelivery delay, or put back at
the head of its queue at once. The new count of a stored message is stored
too (a `Redelivered` record), so that a restart does not reset it.

Held-back messages wait in one heap under one Alarm; the queue keeps
dispatching the others meanwhile. A held-back message that is due goes back
to the head of its queue. A restart ends the wait: the message is stored in
its queue and is redelivered at once.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

from ferrymq.core.alarm import Alarm, now_ms
from ferrymq.core.dlq import DeadLetters, is_dead_letter_queue
from ferrymq.core.expiry import expires_at
from ferrymq.core.message import Message
from ferrymq.store.base import Redelivered

if TYPE_CHECKING:
    from ferrymq.core.broker import Broker
    from ferrymq.core.queue import Queue

__all__ = ["Redelivery"]


class Redelivery:
    def __init__(self, broker: Broker, dead_letters: DeadLetters) -> None:
        self.broker = broker
        self.dead_letters = dead_letters
        self._held: list[tuple[int, int, Queue, Message]] = []
        self._seq = itertools.count()
        self.alarm = Alarm(self.poll)

    @property
    def held(self) -> int:
        return len(self._held)

    def on_requeue(self, queue: Queue, returned: list[Message]) -> list[Message]:
        """The queue's hook: which of `returned` go back to its head now."""
        broker = self.broker
        dead_letters = self.dead_letters
        now = now_ms()
        in_dlq = is_dead_letter_queue(queue.name)
        stored = queue.durable
        back: list[Message] = []
        for msg in returned:
            if "expires" in msg.headers:
                expiry = expires_at(msg)
                if expiry is not None and expiry <= now:
                    policy = dead_letters.policy(queue, msg)
                    dead_letters.remove(queue, msg, "expired", dlq=policy.expired == "dlq")
                    continue
            policy = dead_letters.policy(queue, msg)
            limit = policy.max_redeliveries
            if 0 <= limit < msg.delivery_count and not in_dlq:
                dead_letters.remove(queue, msg, "max-redeliveries")
                continue
            if stored and msg.persistent:
                broker.add_record(Redelivered(queue.name, msg))
            delay = policy.redelivery_delay(msg.delivery_count)
            if delay > 0:
                heapq.heappush(self._held, (now + delay, next(self._seq), queue, msg))
                self.alarm.arm(self._held[0][0])
            else:
                back.append(msg)
        return back

    def poll(self, now: int | None = None) -> None:
        """Put every message whose delay is over back at the head of its queue."""
        now = now_ms() if now is None else now
        held = self._held
        due: dict[Queue, list[Message]] = {}
        while held and held[0][0] <= now:
            _, _, queue, msg = heapq.heappop(held)
            due.setdefault(queue, []).append(msg)
        for queue, messages in due.items():
            if self.broker.is_live(queue):
                queue.requeue_now(messages)
            else:  # deleted meanwhile: like its other messages, gone
                for msg in messages:
                    self.dead_letters.remove(queue, msg, "deleted", dlq=False)
        if due:
            self.broker.flush_records()
        if held:
            self.alarm.arm(held[0][0])

    def close(self) -> None:
        self.alarm.cancel()
