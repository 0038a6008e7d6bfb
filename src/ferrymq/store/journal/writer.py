"""The writer thread: group commit, segment rollover, reclaiming space.

The event loop hands over, once per loop turn, a ``Group`` of every
``append`` made in that turn. The writer takes all groups waiting at that
moment, encodes each append as one frame, writes them with one write call
and makes them durable with one fsync, then reports the last group's number
back to the loop, which resolves the ``durable()`` futures up to it. Between
rounds it deletes dead segments and does at most one bounded compaction step.

Ordering rules that make deletion crash-safe (see docs/durability.md):

- a segment is sealed with an fsync before the next one is created, so only
  the head can ever hold unsynced bytes;
- before deleting segments the head is fsynced, so whatever made them dead
  (a REMOVE, a compaction copy, a carried tombstone) is on disk first;
- deletions happen in waves with a directory fsync between waves: a
  tombstone's segment is deleted only after the segments holding the ADD
  copies it cancels are durably gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from ferrymq.store.journal._fileio import FileIO
from ferrymq.store.journal.compactor import Unit, plan_compaction
from ferrymq.store.journal.errors import JournalError
from ferrymq.store.journal.histogram import BATCH_BUCKETS, FSYNC_BUCKETS, Histogram
from ferrymq.store.journal.liveness import NO_SEGMENT, Liveness
from ferrymq.store.journal.policy import SyncPolicy
from ferrymq.store.journal.record import FRAME_OVERHEAD, SEGMENT_HEADER, EntryKind, encode_frame
from ferrymq.store.journal.recovery import RecoveredState
from ferrymq.store.journal.segment import NO_HANDLE, SegmentFile, create_segment
from ferrymq.store.journal.snapshot import PinnedSegment, pin_segments

__all__ = ["Counters", "Group", "Writer"]

_ADD = EntryKind.ADD
# unit, frame offset in the segment, payload offsets in the frame, frame size
_Placed = tuple[Unit, int, list[int], int]
_Snapshot = tuple[int, "Future[list[PinnedSegment]]"]


class Group:
    """The appends of one event-loop turn; ``gen`` numbers it for ``durable()``."""

    __slots__ = ("gen", "units")

    def __init__(self, gen: int) -> None:
        self.gen = gen
        self.units: list[Unit] = []


class Counters:
    """Writer statistics; written by the writer under the journal lock."""

    __slots__ = (
        "batch_sizes",
        "batches_written",
        "compactions",
        "entries_written",
        "fsync_seconds",
        "fsyncs",
        "segments_deleted",
        "writes",
    )

    def __init__(self) -> None:
        self.batches_written = 0
        self.entries_written = 0
        self.writes = 0
        self.fsyncs = 0
        self.compactions = 0
        self.segments_deleted = 0
        self.fsync_seconds = Histogram(FSYNC_BUCKETS)
        self.batch_sizes = Histogram(BATCH_BUCKETS)  # appends per write round


class Writer:
    """Owns the head segment and the accounting; all its I/O runs in its thread."""

    def __init__(
        self,
        *,
        io: FileIO,
        directory: str,
        state: RecoveredState,
        lock: threading.Lock,
        policy: SyncPolicy,
        segment_size: int,
        max_live_ratio: float,
        compact_step_bytes: int,
        loop: asyncio.AbstractEventLoop,
        on_durable: Callable[[int], None],
        on_failed: Callable[[JournalError], None],
        on_compacted: Callable[[], None],
        on_stopped: Callable[[], None],
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        self._io = io
        self._dir = directory
        self._segments = state.segments  # shared with Journal.read, mutated under lock
        self._liveness: Liveness = state.liveness
        self._head: SegmentFile = state.head
        self._next_seq = state.next_seq
        self._next_key = state.next_key
        self._lock = lock
        self._policy = policy
        self._segment_size = segment_size
        self._max_live_ratio = max_live_ratio
        self._step_bytes = compact_step_bytes
        self._loop = loop
        self._on_durable = on_durable
        self._on_failed = on_failed
        self._on_compacted = on_compacted
        self._on_stopped = on_stopped
        # Asked before every write round: a reason means another node may own
        # the files now (fencing), and nothing more may be written.
        self._guard = guard
        self.counters = Counters()
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[Group] = []
        self._stopping = False
        self._abandoned = False
        self._compact_requests = 0
        self._force_request = False
        self._compact_waiting = False
        # (last group it covers, future): requested, then taken by the thread
        self._snapshots: list[_Snapshot] = []
        self._snapshots_taken: list[_Snapshot] = []
        self._last_sync = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name="ferrymq-journal-writer", daemon=True
        )

    # -- called on the event-loop thread -----------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, group: Group) -> None:
        with self._cond:
            self._queue.append(group)
            self._cond.notify()

    def request_compaction(self, *, force: bool) -> None:
        """Report (``on_compacted``) once housekeeping has nothing left to do;
        ``force`` first marks every sealed segment for rewriting."""
        with self._cond:
            self._compact_requests += 1
            self._force_request = self._force_request or force
            self._cond.notify()

    def request_snapshot(self, last_gen: int) -> Future[list[PinnedSegment]]:
        """Once groups up to ``last_gen`` are written (and no later one), seal the
        head and pin every segment (see snapshot.py); the caller must release the
        handles."""
        fut: Future[list[PinnedSegment]] = Future()
        with self._cond:
            if self._stopping:
                fut.set_exception(JournalError("journal is closed"))
                return fut
            self._snapshots.append((last_gen, fut))
            self._cond.notify()
        return fut

    def stop(self) -> None:
        """Write what was submitted, fsync, close the files and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def abandon(self) -> None:
        """Stop at once, dropping what was submitted and not yet written: another
        node may own the files now (a write already under way still finishes)."""
        with self._cond:
            self._abandoned = self._stopping = True
            self._queue.clear()
            self._compact_requests = 0
            self._cond.notify()

    # -- the thread -------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        # A closed loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        error = JournalError("journal closed")
        try:
            self._main()
        except BaseException as exc:
            if isinstance(exc, JournalError):
                error = exc
            else:
                error = JournalError(f"journal writer failed: {exc!r}")
                error.__cause__ = exc
            self._post(self._on_failed, error)
        finally:
            with self._cond:
                snapshots, self._snapshots = self._snapshots, []
            for _, fut in (*self._snapshots_taken, *snapshots):
                if not fut.done():
                    fut.set_exception(error)
            with self._lock:
                for seg in self._segments.values():
                    seg.close(self._io)
            self._post(self._on_stopped)

    def _main(self) -> None:
        busy = True  # the recovered state may have dead or sparse segments
        while True:
            with self._cond:
                while not (self._queue or self._snapshots or self._stopping) and not (
                    self._compact_requests or busy
                ):
                    timeout = self._sync_due()
                    if timeout is not None and timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._abandoned:
                    return
                groups, self._queue = self._queue, []
                stopping = self._stopping
                requested, self._compact_requests = self._compact_requests, 0
                forced, self._force_request = self._force_request, False
                self._snapshots_taken, self._snapshots = self._snapshots, []
            for last_gen, fut in self._snapshots_taken:
                # Groups handed over after the request wait for the next round.
                n = sum(1 for g in groups if g.gen <= last_gen)
                self._commit(groups[:n])
                groups = groups[n:]
                self._snapshot(fut)
            self._snapshots_taken = []
            self._commit(groups)
            if stopping:
                self._sync_head()
                return
            if self._policy.mode == "interval":
                due = self._sync_due()
                if due is not None and due <= 0:
                    self._sync_head()
            if forced:
                with self._lock:
                    self._liveness.mark_forced(self._head.seg_id)
            if requested:
                self._compact_waiting = True
            busy = self._delete_dead_segments()
            busy = self._compact_step() or busy
            if self._compact_waiting and not busy:
                self._compact_waiting = False
                self._post(self._on_compacted)

    def _commit(self, groups: list[Group]) -> None:
        if groups:
            if self._guard is not None and (reason := self._guard()) is not None:
                raise JournalError(f"not writing: {reason}")
            self.counters.batch_sizes.observe(sum(len(g.units) for g in groups))
            self._write_units(u for g in groups for u in g.units)
            if self._policy.mode == "always":
                self._sync_head()
            self._post(self._on_durable, groups[-1].gen)

    def _sync_due(self) -> float | None:
        """Seconds until the interval fsync is due (<= 0: now); None if none is pending."""
        if self._policy.mode != "interval" or not self._head.dirty:
            return None
        return self._last_sync + self._policy.interval_s - time.monotonic()

    def _sync_head(self) -> None:
        head = self._head
        if head.dirty:
            started = time.perf_counter()
            self._io.fsync(head.write_fd)
            self.counters.fsync_seconds.observe(time.perf_counter() - started)
            head.synced_size = head.size
            self.counters.fsyncs += 1
            self._last_sync = time.monotonic()

    def _write_units(self, units: Iterable[Unit]) -> None:
        """Encode units as consecutive frames; one write per segment they land in."""
        parts: list[bytes] = []
        placed: list[_Placed] = []
        head = self._head
        pos = head.size
        seq = self._next_seq
        for unit in units:
            start = len(parts)
            size, offsets = encode_frame(seq, unit.entries, parts)
            if pos > SEGMENT_HEADER and pos + size > self._segment_size:
                frame = parts[start:]
                del parts[start:]
                self._write(parts, placed, seq)
                head = self._roll(seq)
                pos = head.size
                parts, placed = frame, []
            placed.append((unit, pos, offsets, size))
            pos += size
            seq += 1
        self._write(parts, placed, seq)

    def _write(self, parts: list[bytes], placed: list[_Placed], seq: int) -> None:
        if not parts:
            return
        head = self._head
        data = b"".join(parts)
        self._io.append(head.write_fd, data)
        seg_id = head.seg_id
        liveness = self._liveness
        counters = self.counters
        with self._lock:
            head.size += len(data)
            seg = liveness.segments[seg_id]
            seg.size = head.size
            on_add, on_remove = liveness.on_add, liveness.on_remove
            entries_written = 0
            for unit, base, offsets, size in placed:
                seg.entry_bytes += size - FRAME_OVERHEAD
                if unit.max_key >= self._next_key:
                    self._next_key = unit.max_key + 1
                entries = unit.entries
                entries_written += len(entries)
                if unit.source is None:
                    for entry, slot, offset in zip(entries, unit.slots, offsets, strict=True):
                        assert slot is not None  # an append has a slot for every entry
                        if entry.kind == _ADD:
                            on_add(slot, seg_id, base + offset)
                            slot.payload = None  # the file has it now
                        else:
                            on_remove(slot, seg_id)
                else:
                    counters.compactions += 1
                    for entry, slot, offset in zip(entries, unit.slots, offsets, strict=True):
                        if slot is not None:
                            liveness.on_move(slot, seg_id, base + offset, slot.length)
                        else:
                            liveness.on_tombstone_copy(entry.key, seg_id)
            counters.entries_written += entries_written
            counters.batches_written += len(placed)
            counters.writes += 1
        self._next_seq = seq

    def _roll(self, first_seq: int) -> SegmentFile:
        """Seal the head (fsync, whatever the policy) and start a new segment."""
        old = self._head
        self._sync_head()
        self._io.close(old.write_fd)
        old.write_fd = NO_HANDLE
        new = create_segment(self._io, self._dir, first_seq, self._next_key)
        with self._lock:
            self._segments[new.seg_id] = new
            self._liveness.add_segment(new.seg_id, new.size)
        self._head = new
        return new

    def _snapshot(self, fut: Future[list[PinnedSegment]]) -> None:
        """Seal the head (so every frame written so far is in a sealed, fsynced
        segment) and pin every segment. Runs between writes and deletions, so the
        pinned set is a state a crash right now could leave."""
        if not fut.set_running_or_notify_cancel():
            return  # the caller gave up before we started
        if self._head.size > SEGMENT_HEADER:
            self._roll(self._next_seq)
        try:
            pinned = pin_segments(self._io, self._segments.values(), head=self._head.seg_id)
        except OSError as exc:  # fails this snapshot, not the journal
            fut.set_exception(JournalError(f"snapshot failed: {exc}"))
        else:
            fut.set_result(pinned)

    def _delete_dead_segments(self) -> bool:
        deleted = False
        while victims := self._liveness.deletable(self._head.seg_id):
            self._sync_head()
            for seg_id in victims:
                with self._lock:
                    seg = self._segments.pop(seg_id)
                    seg.close(self._io)
                    self._liveness.drop_segment(seg_id)
                    self.counters.segments_deleted += 1
                self._io.remove(seg.path)
            # The next wave may delete tombstones that cancelled copies in this one.
            self._io.fsync_dir(self._dir)
            deleted = True
        return deleted

    def _compact_step(self) -> bool:
        head = self._head.seg_id
        state = self._liveness.compaction_candidate(head, self._max_live_ratio)
        if state is None:
            return False
        assert state.seg_id != head and state.seg_id != NO_SEGMENT
        unit = plan_compaction(self._io, self._segments[state.seg_id], state, self._step_bytes)
        self._write_units((unit,))
        return True
