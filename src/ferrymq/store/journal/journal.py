"""The journal facade: recover, append, durable, read, compact, snapshot, close, stats.

Threading: everything here runs on the event-loop thread except the writer
(``writer.py``). ``append`` validates, updates the key index and adds the
call to the current loop turn's group; a ``call_soon`` hands the group to the
writer once per turn. The writer reports back with ``call_soon_threadsafe``;
futures are only created and resolved on the loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from ferrymq.store.journal._fileio import FileIO, OsFileIO
from ferrymq.store.journal.compactor import Unit
from ferrymq.store.journal.errors import JournalError
from ferrymq.store.journal.histogram import HistogramSnapshot
from ferrymq.store.journal.liveness import Slot
from ferrymq.store.journal.policy import SyncPolicy
from ferrymq.store.journal.record import MAX_KEY, MAX_PAYLOAD, Entry, EntryKind
from ferrymq.store.journal.recovery import RecoveredState, RecoveryResult, recover_directory
from ferrymq.store.journal.segment import NO_HANDLE
from ferrymq.store.journal.snapshot import (
    PinnedSegment,
    SnapshotFile,
    release,
    write_and_release,
)
from ferrymq.store.journal.writer import Group, Writer

__all__ = ["Journal", "JournalStats"]

_ADD = EntryKind.ADD
_REMOVE = EntryKind.REMOVE
_FRESH, _RECOVERED, _RUNNING, _FAILED, _CLOSING, _CLOSED = range(6)


@dataclass(frozen=True, slots=True)
class JournalStats:
    """A snapshot. ``live_*`` count what is written (not what is still buffered);
    ``batches_written``/``entries_written`` include compaction frames, which are
    also counted in ``compactions``."""

    segments: int
    disk_bytes: int
    live_entries: int
    live_bytes: int
    batches_written: int
    entries_written: int
    fsyncs: int
    compactions: int
    segments_deleted: int
    writes: int = 0


class Journal:
    """An append-only, segmented, group-committing journal of keyed records."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_size: int = 32 * 1024 * 1024,
        sync: SyncPolicy | None = None,
        io: FileIO | None = None,
        compact_min_dead_ratio: float = 0.5,
        compact_step_bytes: int = 1024 * 1024,
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        if segment_size < 4096:
            raise ValueError(f"segment_size must be at least 4096 bytes, got {segment_size}")
        if not 0.0 <= compact_min_dead_ratio <= 1.0:
            raise ValueError(
                f"compact_min_dead_ratio must be in [0, 1], got {compact_min_dead_ratio}"
            )
        if compact_step_bytes <= 0:
            raise ValueError(f"compact_step_bytes must be positive, got {compact_step_bytes}")
        self._dir = os.fspath(directory)
        self._segment_size = segment_size
        self._sync = sync if sync is not None else SyncPolicy("always")
        self._io = io if io is not None else OsFileIO()
        self._max_live_ratio = 1.0 - compact_min_dead_ratio
        # A step never writes a frame much larger than half a segment.
        self._step_bytes = min(compact_step_bytes, segment_size // 2)
        # Checked by the writer before each write (see Writer): fencing.
        self._guard = guard
        self._lock = threading.Lock()
        self._phase = _FRESH
        self._state: RecoveredState | None = None
        self._index: dict[int, Slot] = {}
        self._writer: Writer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: JournalError | None = None
        # Group commit bookkeeping (loop thread only).
        self._group: Group | None = None
        self._next_gen = 1
        self._appended_gen = 0  # newest group that holds appends
        self._durable_gen = 0  # newest group the writer reported durable
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._compact_waiters: list[asyncio.Future[None]] = []
        self._stopped: asyncio.Future[None] | None = None

    @property
    def directory(self) -> str:
        return self._dir

    # -- lifecycle ----------------------------------------------------------

    def recover(
        self,
        *,
        skip_corrupt: bool = False,
        summarize: Callable[[memoryview], object] | None = None,
    ) -> RecoveryResult:
        """Scan the directory, verify every frame, cut a torn tail; see recovery.py.

        ``result.entries`` holds each live key's payload, or with ``summarize``
        what it returns for the payload (so that recovering a journal larger
        than memory does not hold every payload at once).
        """
        if self._phase not in (_FRESH, _RECOVERED):
            raise RuntimeError("recover() must be called before start()")
        self._release_state()
        try:
            result, state = recover_directory(
                self._io, self._dir, skip_corrupt=skip_corrupt, summarize=summarize
            )
        except OSError as exc:
            raise JournalError(f"{self._dir}: recovery failed: {exc}") from exc
        self._state = state
        self._index = state.index
        self._phase = _RECOVERED
        return result

    async def start(self) -> None:
        """Start the writer thread; durable() futures belong to the running loop."""
        if self._phase != _RECOVERED or self._state is None:
            raise RuntimeError("call recover() before start(), and start() only once")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped = loop.create_future()
        self._writer = Writer(
            io=self._io,
            directory=self._dir,
            state=self._state,
            lock=self._lock,
            policy=self._sync,
            segment_size=self._segment_size,
            max_live_ratio=self._max_live_ratio,
            compact_step_bytes=self._step_bytes,
            loop=loop,
            on_durable=self._on_durable,
            on_failed=self._on_failed,
            on_compacted=self._on_compacted,
            on_stopped=self._on_stopped,
            guard=self._guard,
        )
        self._phase = _RUNNING
        self._writer.start()

    async def close(self) -> None:
        """Write and fsync everything pending, stop the writer, close the files.

        Raises JournalError if that final write fails (not if the journal had
        already failed: that error went to the futures).
        """
        if self._phase == _CLOSED:
            return
        if self._writer is None or self._stopped is None:
            self._release_state()
            self._phase = _CLOSED
            return
        if self._phase != _CLOSING:
            already_failed = self._error is not None
            self._handoff()
            self._phase = _CLOSING  # append refuses from here on
            self._writer.stop()
            await self._stopped
            self._fail_waiters(self._error or JournalError("journal closed"))
            self._phase = _CLOSED
            if self._error is not None and not already_failed:
                raise self._error
        else:
            await self._stopped

    def abandon(self) -> None:
        """Fencing: refuse every append from now on and stop the writer without
        writing what is pending; waiters fail. For when another node may have
        taken the files over. ``close()`` still waits for the writer to end."""
        if self._phase in (_CLOSING, _CLOSED):
            return
        self._group = None
        if self._writer is not None:
            self._writer.abandon()
        self._on_failed(JournalError("journal abandoned: this node was fenced"))

    # -- the hot path ---------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Buffer one atomic unit; never blocks. After a crash, all of it or none of it.

        Raises ValueError for an ADD of a key that is live, KeyError for a
        REMOVE of a key that is not (nothing of the call is applied then),
        JournalError once the journal failed or closed.
        """
        if self._phase != _RUNNING:
            self._refuse()
        if not entries:
            return
        index = self._index
        if len(entries) == 1:
            entry = entries[0]
            key = entry.key
            if entry.kind == _ADD:
                payload = _check_add(entry, key in index)
                slot = Slot(key, payload, len(payload))
                index[key] = slot
            elif entry.kind == _REMOVE:
                _check_remove(entry)
                slot = index.pop(key)
            else:
                raise ValueError(f"unknown entry kind {entry.kind!r}")
            unit = Unit((entry,), [slot], key)
        else:
            unit = self._batch(entries)
        group = self._group
        if group is None:
            group = self._group = Group(self._next_gen)
            self._next_gen += 1
            self._appended_gen = group.gen
            assert self._loop is not None
            self._loop.call_soon(self._handoff)
        group.units.append(unit)

    def _batch(self, entries: Sequence[Entry]) -> Unit:
        index = self._index
        overlay: dict[int, Slot | None] = {}  # this call's effect, applied once all is valid
        slots: list[Slot | None] = []
        max_key = 0
        for entry in entries:
            key = entry.key
            current = overlay[key] if key in overlay else index.get(key)
            if entry.kind == _ADD:
                payload = _check_add(entry, current is not None)
                slot = Slot(key, payload, len(payload))
                overlay[key] = slot
            elif entry.kind == _REMOVE:
                _check_remove(entry)
                if current is None:
                    raise KeyError(key)
                slot = current
                overlay[key] = None
            else:
                raise ValueError(f"unknown entry kind {entry.kind!r}")
            slots.append(slot)
            max_key = max(max_key, key)
        for key, maybe in overlay.items():
            if maybe is None:
                index.pop(key, None)  # absent if this call added it first
            else:
                index[key] = maybe
        return Unit(tuple(entries), slots, max_key)

    def _handoff(self) -> None:
        group = self._group
        if group is None:
            return
        self._group = None
        if self._writer is not None and self._phase == _RUNNING:
            self._writer.submit(group)

    def durable(self) -> asyncio.Future[None] | None:
        """A future for "everything appended so far is durable"; None if it already is."""
        gen = self._appended_gen
        if gen <= self._durable_gen:
            return None
        loop = self._loop
        assert loop is not None
        if self._error is not None:
            fut: asyncio.Future[None] = loop.create_future()
            fut.set_exception(self._error)
            return fut
        waiters = self._waiters
        if waiters and waiters[-1][0] == gen:
            return waiters[-1][1]
        fut = loop.create_future()
        waiters.append((gen, fut))
        return fut

    def live_count(self) -> int:
        """How many keys are live (appended and not removed)."""
        return len(self._index)

    def __contains__(self, key: int) -> bool:
        """Whether ``key`` is live (appended and not removed)."""
        return key in self._index

    def read(self, key: int) -> bytes:
        """The payload of live ADD ``key`` (from disk once written); KeyError if not live."""
        slot = self._index[key]
        with self._lock:
            payload = slot.payload
            if payload is not None:
                return payload
            state = self._state
            seg = state.segments.get(slot.seg) if state is not None else None
            if seg is None or seg.read_fd == NO_HANDLE:
                raise JournalError(f"cannot read key {key}: the journal is closed")
            try:
                data = self._io.pread(seg.read_fd, slot.offset, slot.length)
            except OSError as exc:
                raise JournalError(f"{seg.path}: read of key {key} failed: {exc}") from exc
        if len(data) != slot.length:
            raise JournalError(f"{seg.path}: offset {slot.offset}: short read for key {key}")
        return data

    async def compact(self, *, force: bool = False) -> None:
        """Wait until the writer has deleted every dead segment and compacted every
        sparse one. ``force``: first mark every sealed segment for rewriting, dense
        or not (tests and operators; copies all live data once)."""
        if self._phase != _RUNNING or self._writer is None or self._loop is None:
            self._refuse()
        fut: asyncio.Future[None] = self._loop.create_future()
        self._compact_waiters.append(fut)
        self._handoff()
        self._writer.request_compaction(force=force)
        await fut

    def snapshot(self, directory: str | os.PathLike[str]) -> asyncio.Future[list[SnapshotFile]]:
        """Write a consistent image of the journal into ``directory`` (new or empty;
        recovery opens it as a journal): everything appended before this call,
        nothing appended after it. Sealed segments are hard-linked where possible,
        else copied (see snapshot.py). The returned future resolves to the files."""
        if self._phase != _RUNNING or self._writer is None or self._loop is None:
            self._refuse()
        self._handoff()  # appends made before this call are written first
        request = self._writer.request_snapshot(self._appended_gen)
        return self._loop.create_task(self._write_snapshot(request, os.fspath(directory)))

    async def _write_snapshot(
        self, request: concurrent.futures.Future[list[PinnedSegment]], directory: str
    ) -> list[SnapshotFile]:
        try:
            pinned = await asyncio.wrap_future(request)
        except asyncio.CancelledError:
            # The writer may pin anyway; nobody will use the handles then.
            io = self._io
            request.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() else release(io, f.result())
            )
            raise
        return await asyncio.to_thread(write_and_release, self._io, pinned, directory)

    def histograms(self) -> dict[str, HistogramSnapshot]:
        """fsync latency (seconds) and appends per group-commit write round."""
        with self._lock:
            c = self._writer.counters if self._writer is not None else None
            if c is None:
                return {}
            return {
                "fsync_seconds": c.fsync_seconds.snapshot(),
                "batch_appends": c.batch_sizes.snapshot(),
            }

    def stats(self) -> JournalStats:
        with self._lock:
            state = self._state
            if state is None:
                return JournalStats(0, 0, 0, 0, 0, 0, 0, 0, 0)
            lv = state.liveness
            c = self._writer.counters if self._writer is not None else None
            return JournalStats(
                segments=len(lv.segments),
                disk_bytes=lv.disk_bytes(),
                live_entries=lv.live_entries(),
                live_bytes=lv.live_bytes(),
                batches_written=c.batches_written if c else 0,
                entries_written=c.entries_written if c else 0,
                fsyncs=c.fsyncs if c else 0,
                compactions=c.compactions if c else 0,
                segments_deleted=c.segments_deleted if c else 0,
                writes=c.writes if c else 0,
            )

    # -- writer callbacks (on the loop thread) ----------------------------------

    def _on_durable(self, gen: int) -> None:
        if gen > self._durable_gen:
            self._durable_gen = gen
        waiters = self._waiters
        while waiters and waiters[0][0] <= gen:
            fut = waiters.popleft()[1]
            if not fut.done():
                fut.set_result(None)

    def _on_failed(self, error: JournalError) -> None:
        self._error = error
        if self._phase == _RUNNING:
            self._phase = _FAILED
        self._fail_waiters(error)

    def _on_compacted(self) -> None:
        waiters, self._compact_waiters = self._compact_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _on_stopped(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    def _fail_waiters(self, error: JournalError) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()[1]
            if not fut.done():
                fut.set_exception(error)
        compact, self._compact_waiters = self._compact_waiters, []
        for fut in compact:
            if not fut.done():
                fut.set_exception(error)

    def _refuse(self) -> NoReturn:
        if self._error is not None:
            raise JournalError(f"journal failed earlier: {self._error}") from self._error
        if self._phase in (_CLOSING, _CLOSED):
            raise JournalError("journal is closed")
        raise RuntimeError("journal not started: call recover() then start()")

    def _release_state(self) -> None:
        if self._state is not None:
            with self._lock:
                for seg in self._state.segments.values():
                    seg.close(self._io)


def _check_add(entry: Entry, live: bool) -> bytes:
    key = entry.key
    if not 0 < key <= MAX_KEY:
        raise ValueError(f"entry key must be in 1..2**64-1, got {key!r}")
    if live:
        raise ValueError(f"ADD of key {key}, which is already live")
    payload = entry.payload
    if type(payload) is not bytes:
        raise TypeError(f"ADD payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"ADD payload of {len(payload)} bytes is too large")
    return payload


def _check_remove(entry: Entry) -> None:
    if entry.payload:
        raise ValueError(f"REMOVE of key {entry.key} must have an empty payload")
