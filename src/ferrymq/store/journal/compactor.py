"""Compaction: rewrite a sparse segment's survivors forward so the segment can go.

One step copies at most ``budget`` bytes of a segment's live ADDs (and then
its still-needed tombstones) into a single frame for the head, so a step is
as atomic as any batch and the writer never stalls commits for long: a large
sparse segment is emptied over several steps, oldest segment first. The
copies keep their keys; recovery treats a second ADD of a live key as the
newer copy of the same record (see ``liveness``).
"""

from __future__ import annotations

from ferrymq.store.journal._fileio import FileIO
from ferrymq.store.journal.errors import JournalError
from ferrymq.store.journal.liveness import SegmentState, Slot
from ferrymq.store.journal.record import ENTRY_HEADER, Entry, EntryKind
from ferrymq.store.journal.segment import SegmentFile

__all__ = ["Unit", "plan_compaction"]

_ENTRY = ENTRY_HEADER.size


class Unit:
    """One frame to write: an ``append`` call's entries, or one compaction step.

    ``slots[i]`` belongs to ``entries[i]``: for an append, the new slot of an
    ADD or the removed slot of a REMOVE; for a compaction step (``source`` is
    the segment being emptied), the live slot an ADD copies, None for a
    carried tombstone.
    """

    __slots__ = ("entries", "max_key", "slots", "source")

    def __init__(
        self,
        entries: tuple[Entry, ...] | list[Entry],
        slots: list[Slot | None],
        max_key: int,
        source: int | None = None,
    ) -> None:
        self.entries = entries
        self.slots = slots
        self.max_key = max_key
        self.source = source


def plan_compaction(io: FileIO, seg: SegmentFile, state: SegmentState, budget: int) -> Unit:
    """Read up to ``budget`` bytes of survivors of ``seg`` into a compaction unit."""
    entries: list[Entry] = []
    slots: list[Slot | None] = []
    used = 0
    max_key = 0
    for slot in state.live.values():
        cost = _ENTRY + slot.length
        if entries and used + cost > budget:
            break
        at = slot.offset - _ENTRY
        raw = io.pread(seg.read_fd, at, cost)
        if len(raw) == cost:
            kind, key, length = ENTRY_HEADER.unpack_from(raw)
        else:
            kind = key = length = -1
        if (kind, key, length) != (EntryKind.ADD, slot.key, slot.length):
            raise JournalError(
                f"{seg.path}: offset {at}: entry for key {slot.key} does not match the index"
                " (the file changed under the journal)"
            )
        entries.append(Entry(EntryKind.ADD, key, raw[_ENTRY:]))
        slots.append(slot)
        used += cost
        max_key = max(max_key, key)
    if used < budget:
        for key in state.tombs:
            if entries and used + _ENTRY > budget:
                break
            entries.append(Entry(EntryKind.REMOVE, key))
            slots.append(None)
            used += _ENTRY
            max_key = max(max_key, key)
    return Unit(entries, slots, max_key, source=state.seg_id)
