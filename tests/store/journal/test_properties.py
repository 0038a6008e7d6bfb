"""Hypothesis drives the journal through appends, removes, compactions, rollovers and crashes.

The model is the list of batches appended since the last recovery. After a
simulated crash (power loss that may drop, keep, cut or garble anything not
fsynced, and undo unsynced file creations and deletions), recovery must give
exactly the state after some prefix of those batches: never a partial batch,
never a removed record back, and never less than every batch whose
``durable()`` future completed (with ``sync=always``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from ferrymq.store.journal import Entry, EntryKind, Journal, JournalError, SyncPolicy
from ferrymq.testing.crashfs import CrashFileIO

from .conftest import JDIR, body

T = TypeVar("T")
Model = dict[int, bytes]


def apply(state: Model, batch: list[Entry]) -> None:
    for e in batch:
        if e.kind == EntryKind.ADD:
            state[e.key] = e.payload
        else:
            del state[e.key]


class JournalMachine(RuleBasedStateMachine):
    policy = "always"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.io = CrashFileIO()
        self.base: Model = {}  # what the last recovery returned
        self.batches: list[list[Entry]] = []  # appended since then, in order
        self.acked = 0  # how many of them a completed durable() future covers
        self.live: Model = {}  # base + every batch: what the journal should hold now
        self.next_key = 1
        self.journal: Journal | None = None
        self.crashes = 0

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    @initialize(segment_size=st.sampled_from([4096, 8192]), step=st.sampled_from([256, 2048]))
    def open(self, segment_size: int, step: int) -> None:
        self.options = {
            "segment_size": segment_size,
            "compact_step_bytes": step,
            "sync": SyncPolicy.parse(self.policy),
        }
        self._recover()

    def _recover(self) -> None:
        journal = Journal(JDIR, io=self.io, **self.options)  # type: ignore[arg-type]
        result = journal.recover()
        self.check_recovered(result.entries)
        assert result.next_key > max(result.entries, default=0)
        assert result.next_key <= max(self.next_key, 1)
        self.next_key = result.next_key  # keys of lost batches get used again
        self.base = dict(result.entries)
        self.live = dict(result.entries)
        self.batches = []
        self.acked = 0
        self.run(journal.start())
        self.journal = journal

    def check_recovered(self, entries: Model) -> None:
        state = dict(self.base)
        lowest = self.acked if self.policy == "always" else 0
        candidates = [dict(state)] if lowest == 0 else []
        for i, batch in enumerate(self.batches, start=1):
            apply(state, batch)
            if i >= lowest:
                candidates.append(dict(state))
        assert entries in candidates, (
            f"recovered {sorted(entries)} is no state between batch {lowest} and"
            f" {len(self.batches)} of {[[(e.kind.name, e.key) for e in b] for b in self.batches]}"
        )

    @property
    def j(self) -> Journal:
        assert self.journal is not None
        return self.journal

    def append(self, batch: list[Entry]) -> None:
        self.j.append(batch)
        self.batches.append(batch)
        apply(self.live, batch)

    # -- rules ------------------------------------------------------------------

    # Draws never depend on the model's state (which depends on what a crash
    # kept): indices are taken modulo the live keys, so replays stay exact.
    @rule(
        sizes=st.lists(st.one_of(st.integers(0, 700), st.just(5000)), min_size=1, max_size=6),
        victims=st.lists(st.integers(0, 10**6), max_size=3),
        remove_own=st.booleans(),
    )
    def append_batch(self, sizes: list[int], victims: list[int], remove_own: bool) -> None:
        keys = sorted(self.live)
        removed = sorted({keys[i % len(keys)] for i in victims}) if keys else []
        batch: list[Entry] = []
        for size in sizes:
            key = self.next_key
            self.next_key += 1
            batch.append(Entry(EntryKind.ADD, key, body(key, size)))
        batch += [Entry(EntryKind.REMOVE, k) for k in removed]
        if remove_own:
            batch.append(Entry(EntryKind.REMOVE, batch[0].key))
        self.append(batch)

    @rule(index=st.integers(0, 10**6))
    def remove(self, index: int) -> None:
        if self.live:
            keys = sorted(self.live)
            self.append([Entry(EntryKind.REMOVE, keys[index % len(keys)])])

    @rule()
    def let_the_loop_turn(self) -> None:
        self.run(asyncio.sleep(0))

    @rule()
    def await_durable(self) -> None:
        fut = self.j.durable()
        if fut is not None:
            self.run(fut)
        self.acked = len(self.batches)

    @rule(force=st.booleans())
    def compact(self, force: bool) -> None:
        self.run(self.j.compact(force=force))
        stats = self.j.stats()
        if self.j.durable() is None:
            assert stats.live_entries == len(self.live)

    @rule(index=st.integers(0, 10**6))
    def read(self, index: int) -> None:
        if self.live:
            keys = sorted(self.live)
            key = keys[index % len(keys)]
            assert self.j.read(key) == self.live[key]

    @rule(
        seed=st.integers(0, 2**32),
        mode=st.sampled_from(["random", "random", "lose", "keep", "process"]),
    )
    def crash(self, seed: int, mode: str) -> None:
        self.io.rng.seed(seed)
        self.io.crash(mode)  # type: ignore[arg-type]
        self._restart()

    @rule(
        after=st.integers(0, 40),
        seed=st.integers(0, 2**32),
        force=st.booleans(),
        mode=st.sampled_from(["random", "random", "process"]),
    )
    def crash_during_io(self, after: int, seed: int, force: bool, mode: str) -> None:
        """Power fails (or the process dies) at the n-th mutating call from now."""
        self.io.rng.seed(seed)
        self.io.crash_after(after, mode)  # type: ignore[arg-type]
        with contextlib.suppress(JournalError):
            fut = self.j.durable()
            if fut is not None:
                self.run(fut)
                self.acked = len(self.batches)
            self.run(self.j.compact(force=force))
        if not self.io.crashed:
            self.io.crash(mode)  # type: ignore[arg-type]
        self._restart()

    def _restart(self) -> None:
        self.crashes += 1
        stats = self.j.stats()
        event(f"compactions before a crash: {min(stats.compactions, 3)}+")
        event(f"segments before a crash: {min(stats.segments, 5)}+")
        with contextlib.suppress(JournalError):
            self.run(self.j.close())
        self.io.reboot()
        self._recover()

    @rule()
    def clean_restart(self) -> None:
        """A clean close keeps exactly everything, with nothing torn."""
        self.run(self.j.close())
        self.acked = len(self.batches)
        journal = Journal(JDIR, io=self.io, **self.options)  # type: ignore[arg-type]
        result = journal.recover()
        self.run(journal.close())
        assert result.entries == self.live
        assert result.truncated_bytes == 0
        self._recover()

    @invariant()
    def stats_are_consistent(self) -> None:
        if self.journal is None or self.io.crashed:
            return
        stats = self.j.stats()
        assert stats.segments >= 1
        assert stats.disk_bytes >= stats.live_bytes

    def teardown(self) -> None:
        event(f"crashes: {min(self.crashes, 3)}+")
        try:
            if self.journal is not None:
                with contextlib.suppress(JournalError):
                    self.run(self.j.close())
        finally:
            self.loop.close()


class NeverSyncMachine(JournalMachine):
    policy = "never"


# FERRYMQ_JOURNAL_EXAMPLES=3000 for a long hunt; the default keeps the suite quick.
_EXAMPLES = int(os.environ.get("FERRYMQ_JOURNAL_EXAMPLES", "500"))
_settings = settings(
    max_examples=_EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TestJournalMachine = pytest.mark.slow(JournalMachine.TestCase)
TestJournalMachine.settings = _settings
TestNeverSyncMachine = pytest.mark.slow(NeverSyncMachine.TestCase)
TestNeverSyncMachine.settings = settings(_settings, max_examples=max(_EXAMPLES // 4, 10))
