"""The broker's delivery features in one place: redelivery policy and
dead-letter queues, expiry, scheduled delivery. The broker calls in at a few
points (a message sent, routed, enqueued; start and stop) and its queues call
the redelivery and expiry hooks; the rest lives in the modules named here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferrymq.core.alarm import now_ms
from ferrymq.core.destination import Destination
from ferrymq.core.dlq import DeadLetters
from ferrymq.core.expiry import Expiry
from ferrymq.core.message import Message
from ferrymq.core.redelivery import Redelivery
from ferrymq.core.scheduler import ScheduledJob, Scheduler, is_scheduled, make_job
from ferrymq.store.base import AddScheduled, RecoveredState, RemoveScheduled

if TYPE_CHECKING:
    from ferrymq.core.broker import Broker

__all__ = ["DeliveryFeatures"]


class DeliveryFeatures:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.dead_letters = DeadLetters(broker)
        self.redelivery = Redelivery(broker, self.dead_letters)
        self.expiry = Expiry(broker, self.dead_letters)
        self.scheduler = Scheduler(self._fire)

    def sent(self, message: Message) -> None:
        """A producer's new message: check its scheduling headers (an error
        goes back to the producer now, not at a later COMMIT) and give it the
        policy's default TTL (a scheduled one gets it when it fires)."""
        if is_scheduled(message.headers):
            make_job(message.destination, message)
            return
        self._default_ttl(message)

    def _default_ttl(self, message: Message) -> None:
        policies = self.broker.policies
        if not policies.any_default_ttl:
            return
        ttl = policies.for_destination(str(message.destination)).default_ttl
        if ttl > 0 and "expires" not in message.headers:
            message.headers["expires"] = str(message.timestamp + ttl)

    def schedule(self, destination: Destination, message: Message) -> None:
        """Hold a message with scheduling headers until it is due."""
        job = make_job(destination, message)
        if self._stored(job):
            self.broker.add_record(AddScheduled(job))
        self.scheduler.add(job)

    @staticmethod
    def _stored(job: ScheduledJob) -> bool:
        # As for messages: only persistent ones, and none for temporary
        # destinations, which do not outlive their connection.
        return job.message.persistent and not job.destination.kind.is_temporary

    def _fire(self, jobs: list[ScheduledJob]) -> None:
        broker = self.broker
        now = now_ms()
        for job in jobs:
            held = job.message
            message = Message(
                broker.next_message_id(),
                held.destination,
                dict(held.headers),
                held.body,
                persistent=held.persistent,
                timestamp=now,
            )
            self._default_ttl(message)
            broker.route(None, job.destination, message)
            again = job.advance(now)
            if self._stored(job):
                # In the same store write as the delivered message: after a
                # crash, the job has fired exactly as often as it delivered.
                broker.add_record(AddScheduled(job) if again else RemoveScheduled(job))
            if again:
                self.scheduler.add(job)
        broker.flush_records()

    def recovered(self, state: RecoveredState) -> None:
        for job in state.scheduled:
            self.scheduler.add(job)

    def close(self) -> None:
        self.scheduler.close()
        self.redelivery.close()
        self.expiry.close()
