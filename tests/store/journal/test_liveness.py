"""The tombstone rule, checked on a model log without I/O.

A hypothesis state machine plays the writer's part (appends, rollovers,
compaction steps that copy survivors and carry tombstones forward, deletion
waves) against ``Liveness`` and keeps the log as it would be on disk. After
every deletion (so also halfway through a wave, as a crash would leave it)
replaying what is left on disk must give exactly the live keys, and a
``Liveness`` rebuilt by recovery's replay must keep that true from then on.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ferrymq.store.journal.liveness import NO_SEGMENT, Liveness, Slot
from ferrymq.store.journal.record import EntryKind, ParsedEntry
from ferrymq.store.journal.recovery import _Scan

ADD, REMOVE = EntryKind.ADD, EntryKind.REMOVE
LENGTH = 20  # payload bytes of every ADD


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lv = Liveness()
        self.disk: dict[int, list[tuple[int, int]]] = {}
        self.slots: dict[int, Slot] = {}  # live key -> slot
        self.next_key = 1
        self.removed: list[int] = []
        self.head = 0
        self.roll()

    # -- what the writer does ---------------------------------------------------

    def write(self, kind: int, key: int, slot: Slot | None, source: int | None = None) -> None:
        self.disk[self.head].append((kind, key))
        self.lv.segments[self.head].entry_bytes += 13 + (LENGTH if kind == ADD else 0)
        offset = len(self.disk[self.head])
        if kind == ADD:
            assert slot is not None
            if source is None:
                self.lv.on_add(slot, self.head, offset)
            else:
                self.lv.on_move(slot, self.head, offset, LENGTH)
        elif slot is not None:
            self.lv.on_remove(slot, self.head)
        else:
            self.lv.on_tombstone_copy(key, self.head)

    def roll(self) -> None:
        self.head += 1
        self.disk[self.head] = []
        self.lv.add_segment(self.head, 32)

    # Rolling over is a flag of the writing rules rather than a rule of its
    # own: fewer rules make the interesting interleavings likelier.
    @rule(n=st.integers(1, 4), roll=st.booleans())
    def add(self, n: int, roll: bool) -> None:
        for _ in range(n):
            slot = Slot(self.next_key, None, LENGTH)
            self.slots[slot.key] = slot
            self.next_key += 1
            self.write(ADD, slot.key, slot)
        if roll:
            self.roll()

    @rule(index=st.integers(0, 10**6), roll=st.booleans())
    def remove(self, index: int, roll: bool) -> None:
        if self.slots:
            keys = sorted(self.slots)
            slot = self.slots.pop(keys[index % len(keys)])
            self.write(REMOVE, slot.key, slot)
            self.removed.append(slot.key)
        if roll:
            self.roll()

    @rule(index=st.integers(0, 10**6), roll=st.booleans())
    def add_a_removed_key_again(self, index: int, roll: bool) -> None:
        """Callers should not reuse keys, but if one does, nothing may break."""
        candidates = sorted(set(self.removed) - set(self.slots))
        if candidates:
            slot = Slot(candidates[index % len(candidates)], None, LENGTH)
            self.slots[slot.key] = slot
            self.write(ADD, slot.key, slot)
        if roll:
            self.roll()

    @rule(budget=st.integers(1, 3), force=st.booleans(), ratio=st.sampled_from([0.5, 1.0]))
    def compact_step(self, budget: int, force: bool, ratio: float) -> None:
        if force:
            self.lv.mark_forced(self.head)
        state = self.lv.compaction_candidate(self.head, ratio)
        if state is None:
            return
        moves = list(state.live.values())[:budget]
        tombs = sorted(state.tombs)[: max(0, budget - len(moves))]
        source = state.seg_id
        for slot in moves:
            self.write(ADD, slot.key, slot, source)
        for key in tombs:
            self.write(REMOVE, key, None, source)

    @rule(data=st.data())
    def delete_wave(self, data: st.DataObject) -> None:
        victims = self.lv.deletable(self.head)
        order = data.draw(st.permutations(victims))
        for seg_id in order:
            del self.disk[seg_id]
            self.lv.drop_segment(seg_id)
            self.check_replay()  # a crash may leave any prefix of the wave done

    @rule()
    def crash_and_recover(self) -> None:
        scan = _Scan(skip_corrupt=False)
        for seg_id, ops in self.disk.items():
            scan.liveness.add_segment(seg_id, 32)
            entries = [ParsedEntry(kind, key, 0, LENGTH if kind == ADD else 0) for kind, key in ops]
            scan.apply(b"", seg_id, entries)
            scan.liveness.segments[seg_id].entry_bytes = sum(
                13 + (LENGTH if kind == ADD else 0) for kind, _ in ops
            )
        self.lv = scan.liveness
        self.slots = scan.index
        assert set(self.slots) == self.replay()

    @rule()
    def reclaim_everything(self) -> None:
        """With nothing live, housekeeping must end with only the head on disk."""
        for key in sorted(self.slots):
            self.write(REMOVE, key, self.slots.pop(key))
            self.removed.append(key)
        self.roll()
        for _ in range(4 * len(self.disk) + 4):
            self.lv.mark_forced(self.head)
            while (state := self.lv.compaction_candidate(self.head, 1.0)) is not None:
                for key in sorted(state.tombs):
                    self.write(REMOVE, key, None, state.seg_id)
            for seg_id in self.lv.deletable(self.head):
                del self.disk[seg_id]
                self.lv.drop_segment(seg_id)
        assert list(self.disk) == [self.head]
        assert not self.lv.segments[self.head].tombs  # no tombstone kept alive for nothing

    # -- checks -----------------------------------------------------------------

    def replay(self) -> set[int]:
        live: set[int] = set()
        for seg_id in sorted(self.disk):
            for kind, key in self.disk[seg_id]:
                if kind == ADD:
                    live.add(key)
                else:
                    live.discard(key)
        return live

    @invariant()
    def check_replay(self) -> None:
        assert self.replay() == set(self.slots)
        for key, slot in self.slots.items():
            assert slot.seg != NO_SEGMENT and self.lv.segments[slot.seg].live[key] is slot
        assert self.lv.live_entries() == len(self.slots)
        assert self.lv.live_bytes() == len(self.slots) * (13 + LENGTH)


TestLiveness = pytest.mark.slow(LogMachine.TestCase)
TestLiveness.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


def test_a_moved_copy_keeps_its_tombstone_needed() -> None:
    """The case compaction in several steps creates: a stale copy outlives the newest."""
    lv = Liveness()
    for seg in (1, 2, 3):
        lv.add_segment(seg, 32)
    slot = Slot(7, None, LENGTH)
    lv.on_add(slot, 1, 0)
    lv.on_move(slot, 2, 0, LENGTH)  # compaction copied it; segment 1 still holds the old copy
    lv.on_remove(slot, 3)
    assert lv.deletable(head=4) == [1, 2]  # copy holders may go, in any order
    lv.drop_segment(2)
    assert lv.segments[3].tombs == {7}  # but the REMOVE must stay while segment 1 exists
    assert lv.deletable(head=4) == []
    lv.drop_segment(1)
    assert lv.segments[3].tombs == set()
    assert lv.deletable(head=4) == [3]


def test_a_reused_key_keeps_the_old_copy_cancelled() -> None:
    lv = Liveness()
    lv.add_segment(1, 32)
    other = Slot(1, None, LENGTH)
    lv.on_add(other, 1, 0)  # keeps segment 1 on disk throughout
    old = Slot(7, None, LENGTH)
    lv.on_add(old, 1, 1)
    lv.add_segment(2, 32)
    lv.on_remove(old, 2)
    lv.add_segment(3, 32)
    again = Slot(7, None, LENGTH)
    lv.on_add(again, 3, 0)  # the same key again: its ADD now shadows the copy in segment 1
    assert lv.deletable(head=3) == [2]
    lv.drop_segment(2)
    lv.add_segment(4, 32)
    lv.on_remove(again, 4)
    lv.add_segment(5, 32)
    assert lv.deletable(head=5) == [3]
    lv.drop_segment(3)
    assert lv.segments[4].tombs == {7}  # still cancels the first life's ADD in segment 1
    assert lv.deletable(head=5) == []
