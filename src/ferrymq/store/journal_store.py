"""The broker's Store on the embedded journal (`ferrymq.store.journal`).

Translates the core's records into journal entries: every queue, durable
subscription and persistent message is an ADD under its own key; an ack or a
queue deletion is a REMOVE of those keys. One `append` of the core (one
operation, or one whole transaction) is one atomic journal batch.

Per queue, a sequence mark records the last sequence number given, written
in the same batch as the removal of the queue's newest stored message (as
long as that message is live, recovery reads its number from it instead):
so numbering continues exactly after a restart, at the cost of two small
entries only when a queue drains.

Per queue, a "delivered" mark (the highest key handed to a consumer) is kept
current with at most one small entry per queue per loop turn, so that after a
crash the messages that may have been delivered come back `redelivered`.

A message given back for redelivery gets a small count entry (its key and
new delivery count), replaced at each return and removed with the message,
so a restart keeps delivery counts. A scheduled delivery is one entry too,
replaced each time it fires (in the batch of the message it delivered).

A message's journal key is its `store_key`. Recovery keeps no message in
memory: every recovered message comes back as its key (paged out), and is
read from the journal when dispatched, so a restart with a million queued
messages costs a few hundred bytes of index per message, not its body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from ferrymq.core.errors import BrokerError
from ferrymq.core.message import DEFAULT_PRIORITY, Message
from ferrymq.core.scheduler import ScheduledJob
from ferrymq.store.base import (
    AddMessage,
    AddScheduled,
    DeleteQueue,
    ForgetId,
    QueueSpec,
    Record,
    RecoveredState,
    Redelivered,
    RememberId,
    RemoveMessage,
    RemoveScheduled,
    Store,
    UpsertQueue,
)
from ferrymq.store.codec import (
    DeliveredMark,
    RedeliveryCount,
    RememberedId,
    SequenceMark,
    decode,
    encode_delivered,
    encode_id,
    encode_message,
    encode_meta,
    encode_queue,
    encode_redelivered,
    encode_scheduled,
    encode_sequence,
    message_summary,
)
from ferrymq.store.journal import Entry, EntryKind, Journal, JournalError, SyncPolicy
from ferrymq.store.journal.histogram import HistogramSnapshot

__all__ = ["JournalStore", "StoreUnavailable"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ADD = EntryKind.ADD
REMOVE = EntryKind.REMOVE


class StoreUnavailable(BrokerError):
    """The journal cannot write: the client gets an ERROR, not a false RECEIPT."""


# Memory per live journal entry (its key, Slot, index and per-segment entries,
# its place in a queue): measured ~250 bytes per paged-out message.
INDEX_ENTRY_BYTES = 256

class JournalStore(Store):
    pages = True

    def __init__(
        self,
        data_dir: str | Path,
        *,
        segment_size: int = 32 * 1024 * 1024,
        sync: str = "always",
        skip_corrupt: bool = False,
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        self.directory = Path(data_dir) / "journal"
        self.journal = Journal(
            self.directory, segment_size=segment_size, sync=SyncPolicy.parse(sync), guard=guard
        )
        self.skip_corrupt = skip_corrupt
        self._next_key = 1
        self._queue_keys: dict[str, int] = {}
        # queue -> (key of the mark entry, highest delivered key it records)
        self._marks: dict[str, tuple[int, int]] = {}
        # queue -> its mark as recovered: paged-in messages at or below it may
        # have been delivered before the restart.
        self._recovered_marks: dict[str, int] = {}
        self._delivered: list[tuple[str, Message]] = []
        # (scope, id) -> journal key of each remembered id
        self._id_keys: dict[tuple[str, str], int] = {}
        self._marks_scheduled = False
        # queue -> last sequence number of a stored message; and the stored
        # sequence mark (its entry key, its number) where there is one.
        self._seq_high: dict[str, int] = {}
        self._seq_marks: dict[str, tuple[int, int]] = {}
        # message key -> key of its delivery count entry
        self._count_keys: dict[int, int] = {}
        # message key -> delivery count recovered for it (applied at `load`)
        self._recovered_counts: dict[int, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _key(self) -> int:
        key = self._next_key
        self._next_key = key + 1
        return key

    async def open(self) -> RecoveredState:
        self._loop = asyncio.get_running_loop()
        started = time.monotonic()
        result = await asyncio.to_thread(
            self.journal.recover, skip_corrupt=self.skip_corrupt, summarize=_summarize
        )
        self._next_key = result.next_key
        specs: dict[str, QueueSpec] = {}
        messages: dict[str, list[int]] = {}
        stale: list[Entry] = []
        meta_seen = False
        state = RecoveredState()
        counts: list[tuple[int, RedeliveryCount]] = []
        for key, item in result.entries.items():  # ascending key = send order
            if type(item) is str:  # a message, by the name of its queue
                keys = messages.get(item)
                if keys is None:
                    keys = messages[item] = []
                keys.append(key)
            elif type(item) is tuple:  # a message with a priority or a group
                name, priority, grouped = item
                keys = messages.get(name)
                if keys is None:
                    keys = messages[name] = []
                keys.append(key)
                if priority != DEFAULT_PRIORITY:
                    state.priorities.setdefault(name, {})[key] = priority
                if grouped:
                    state.grouped.add(name)
            elif isinstance(item, SequenceMark):
                if item.queue in self._seq_marks:  # superseded mark left by a crash
                    stale.append(Entry(REMOVE, self._seq_marks[item.queue][0]))
                self._seq_marks[item.queue] = (key, item.seq)
            elif isinstance(item, QueueSpec):
                self._queue_keys[item.name] = key
                specs[item.name] = item
            elif isinstance(item, RememberedId):
                self._id_keys[item.scope, item.ident] = key
                state.remembered.setdefault(item.scope, []).append(item.ident)
            elif isinstance(item, RedeliveryCount):
                counts.append((key, item))
            elif isinstance(item, ScheduledJob):
                item.store_key = key
                state.scheduled.append(item)
            elif isinstance(item, DeliveredMark):
                if item.queue in self._marks:  # superseded mark left by a crash
                    stale.append(Entry(REMOVE, self._marks[item.queue][0]))
                self._marks[item.queue] = (key, item.key)
                self._recovered_marks[item.queue] = item.key
            else:
                meta_seen = True
                assert isinstance(item, dict)
                if item.get("format", FORMAT_VERSION) > FORMAT_VERSION:
                    raise StoreUnavailable(
                        f"journal format {item['format']} is newer than this broker knows"
                    )
        live_messages = {key for keys in messages.values() for key in keys} if counts else set()
        for key, count in counts:  # ascending: a crash may have left an old one too
            old = self._count_keys.get(count.key)
            if old is not None:
                stale.append(Entry(REMOVE, old))
            if count.key not in live_messages:
                stale.append(Entry(REMOVE, key))
                continue
            self._count_keys[count.key] = key
            self._recovered_counts[count.key] = count.count
        del live_messages
        state.queues = list(specs.values())
        recovered = 0
        for queue, keyed in messages.items():
            if queue not in specs:  # its queue was deleted but a crash kept the message
                stale.extend(Entry(REMOVE, key) for key in keyed)
                continue
            # list is invariant, but nothing adds a Message to these lists.
            state.messages[queue] = cast("list[Message | int]", keyed)
            recovered += len(keyed)
        await self.journal.start()
        for queue, recovered_keys in state.messages.items():
            # The newest message has the queue's highest number: one read.
            newest = decode(self.journal.read(cast(int, recovered_keys[-1])))
            if isinstance(newest, tuple) and newest[1].seq:
                self._seq_high[queue] = newest[1].seq
        for queue, (_, seq) in self._seq_marks.items():
            if seq > self._seq_high.get(queue, 0):
                self._seq_high[queue] = seq
        for queue in list(self._seq_marks):
            if queue not in specs:
                stale.append(Entry(REMOVE, self._seq_marks.pop(queue)[0]))
        state.sequences = {q: n for q, n in self._seq_high.items() if q in specs}
        for name in set(state.priorities).union(state.grouped) - specs.keys():
            state.priorities.pop(name, None)
            state.grouped.discard(name)
        if not meta_seen:
            stale.append(Entry(ADD, self._key(), encode_meta({"format": FORMAT_VERSION})))
        if stale:
            self.journal.append(stale)
        log.info(
            "journal recovered: %d queues, %d messages, %d segments in %.2f s%s",
            len(specs),
            recovered,
            result.segments,
            time.monotonic() - started,
            f", truncated {result.truncated_bytes} torn bytes" if result.truncated_bytes else "",
        )
        for skipped in result.skipped:
            log.error("journal: skipped corrupt data: %s", skipped)
        return state

    def append(self, records: Sequence[Record]) -> None:
        entries: list[Entry] = []
        keyed: list[Message] = []
        # Keys of this batch's ADDs: a REMOVE of one of them (an auto-acked
        # delivery in the same operation) is not yet known to the journal.
        added: set[int] = set()
        journal = self.journal
        seq_high = self._seq_high
        # Queues whose newest stored message leaves in this batch: their
        # sequence mark must move with it.
        drained: list[str] | None = None
        for rec in records:
            if type(rec) is AddMessage:
                key = self._key()
                message = rec.message
                message.store_key = key
                keyed.append(message)
                added.add(key)
                entries.append(Entry(ADD, key, encode_message(rec.queue, message)))
                if message.seq:
                    seq_high[rec.queue] = message.seq
            elif type(rec) is RemoveMessage:
                ref = rec.message
                key = ref if isinstance(ref, int) else ref.store_key
                if key in added or key in journal:
                    added.discard(key)
                    entries.append(Entry(REMOVE, key))
                    # A paged-out message's number is unknown: assume the newest.
                    if isinstance(ref, int) or ref.seq >= seq_high.get(rec.queue, 0):
                        if drained is None:
                            drained = []
                        drained.append(rec.queue)
                count_key = self._count_keys.pop(key, None)
                if count_key is not None:
                    self._recovered_counts.pop(key, None)
                    entries.append(Entry(REMOVE, count_key))
            elif type(rec) is Redelivered:
                msg_key = rec.message.store_key
                if msg_key in added or msg_key in journal:
                    old = self._count_keys.get(msg_key)
                    key = self._count_keys[msg_key] = self._key()
                    entries.append(
                        Entry(
                            ADD,
                            key,
                            encode_redelivered(rec.queue, msg_key, rec.message.delivery_count),
                        )
                    )
                    if old is not None:
                        entries.append(Entry(REMOVE, old))
            elif type(rec) is AddScheduled:
                job = rec.job
                old = job.store_key
                key = job.store_key = self._key()
                added.add(key)
                entries.append(Entry(ADD, key, encode_scheduled(job)))
                if old and (old in added or old in journal):
                    added.discard(old)
                    entries.append(Entry(REMOVE, old))
            elif type(rec) is RemoveScheduled:
                old = rec.job.store_key
                if old and (old in added or old in journal):
                    added.discard(old)
                    entries.append(Entry(REMOVE, old))
            elif type(rec) is UpsertQueue:
                name = rec.spec.name
                old = self._queue_keys.get(name)
                key = self._queue_keys[name] = self._key()
                entries.append(Entry(ADD, key, encode_queue(rec.spec)))
                if old is not None:
                    entries.append(Entry(REMOVE, old))
            elif type(rec) is RememberId:
                key = self._id_keys[rec.scope, rec.ident] = self._key()
                added.add(key)
                entries.append(Entry(ADD, key, encode_id(rec.scope, rec.ident)))
            elif type(rec) is ForgetId:
                found = self._id_keys.pop((rec.scope, rec.ident), None)
                if found is not None and (found in added or found in journal):
                    added.discard(found)
                    entries.append(Entry(REMOVE, found))
            elif type(rec) is DeleteQueue:
                entries.extend(self._delete_queue_entries(rec.name))
        if drained is not None:
            for queue in dict.fromkeys(drained):
                entries.extend(self._sequence_mark_entries(queue))
        if entries:
            try:
                journal.append(entries)
            except JournalError as exc:
                for message in keyed:  # a message holds a key only if its ADD was taken
                    message.store_key = 0
                raise StoreUnavailable(f"message store unavailable: {exc}") from exc

    def _sequence_mark_entries(self, queue: str) -> list[Entry]:
        high = self._seq_high.get(queue, 0)
        old = self._seq_marks.get(queue)
        if (old is not None and old[1] >= high) or not high or queue not in self._queue_keys:
            return []
        key = self._key()
        self._seq_marks[queue] = (key, high)
        entries = [Entry(ADD, key, encode_sequence(queue, high))]
        if old is not None:
            entries.append(Entry(REMOVE, old[0]))
        return entries

    def _delete_queue_entries(self, name: str) -> list[Entry]:
        entries: list[Entry] = []
        key = self._queue_keys.pop(name, None)
        if key is not None:
            entries.append(Entry(REMOVE, key))
        self._seq_high.pop(name, None)
        seq_mark = self._seq_marks.pop(name, None)
        if seq_mark is not None:
            entries.append(Entry(REMOVE, seq_mark[0]))
        self._recovered_marks.pop(name, None)
        mark = self._marks.pop(name, None)
        if mark is not None:
            entries.append(Entry(REMOVE, mark[0]))
        return entries

    def delivered(self, queue: str, message: Message) -> None:
        # Only noted here: the message's own ADD may still be in the core's
        # unflushed records. Marks are worked out once per loop turn.
        self._delivered.append((queue, message))
        if not self._marks_scheduled and self._loop is not None:
            self._marks_scheduled = True
            self._loop.call_soon(self._write_marks)

    def _write_marks(self) -> None:
        """One batch per loop turn moving every changed queue's delivered mark."""
        self._marks_scheduled = False
        delivered, self._delivered = self._delivered, []
        highest: dict[str, int] = {}
        for queue, message in delivered:
            key = message.store_key
            if key > highest.get(queue, 0):
                highest[queue] = key
        entries: list[Entry] = []
        for queue, top in highest.items():
            old = self._marks.get(queue)
            if (old is not None and old[1] >= top) or queue not in self._queue_keys:
                continue
            key = self._key()
            entries.append(Entry(ADD, key, encode_delivered(queue, top)))
            if old is not None:
                entries.append(Entry(REMOVE, old[0]))
            self._marks[queue] = (key, top)
        if entries:
            try:
                self.journal.append(entries)
            except JournalError:
                log.warning("journal unavailable; delivered marks not written")

    def load(self, queue: str, key: int) -> Message:
        try:
            payload = self.journal.read(key)
        except (KeyError, JournalError) as exc:
            raise StoreUnavailable(f"cannot read message {key} of {queue}: {exc!r}") from exc
        item = decode(payload)
        if not isinstance(item, tuple):
            raise StoreUnavailable(f"journal key {key} of {queue} is not a message")
        message = item[1]
        message.store_key = key
        count = self._recovered_counts.get(key)
        if count is not None and count > message.delivery_count:
            message.delivery_count = count  # given back this often before the restart
        if message.delivery_count == 0 and key <= self._recovered_marks.get(queue, 0):
            message.delivery_count = 1  # may have been delivered before the restart
        return message

    def fence(self) -> None:
        self.journal.abandon()

    def index_bytes(self) -> int:
        return self.journal.live_count() * INDEX_ENTRY_BYTES

    def histograms(self) -> dict[str, HistogramSnapshot]:
        return self.journal.histograms()

    def statistics(self) -> dict[str, int]:
        return dataclasses.asdict(self.journal.stats())

    def durable(self) -> asyncio.Future[None] | None:
        return self.journal.durable()

    async def close(self) -> None:
        self._write_marks()
        await self.journal.close()


def _summarize(payload: memoryview) -> object:
    """What recovery keeps of a live entry: a message only as its queue's name
    (one shared string per queue; a small tuple if it has a priority or a
    group), anything else decoded."""
    if payload[0] == 0x4D:  # b"M"
        return message_summary(payload)
    return decode(bytes(payload))
