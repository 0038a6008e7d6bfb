"""What is live where: the key index's slots and per-segment accounting.

Recovery replays the log through these same methods, and so does the writer
as it writes, so the state after a restart is the state before it.

The rule this module keeps is the one that makes deleting files safe:

    a REMOVE must stay on disk while any copy of the ADD it cancels does.

Copies multiply because compaction rewrites live ADDs forward: until the old
segment is deleted, the key has a *stale copy* there. When the key is
removed, its tombstone (the REMOVE) is *needed* while any segment other than
the tombstone's own holds a copy; the tombstone's segment (its *owner*) may
not be deleted while it holds a needed tombstone, and compaction carries such
tombstones forward (the owner changes). A segment is deletable when it holds
no live ADD and no needed tombstone.

Only the writer thread (or recovery, before it starts) calls the mutating
methods; the journal holds its lock around them so that ``read`` on the
event-loop thread sees a slot's location change atomically.
"""

from __future__ import annotations

from ferrymq.store.journal.record import ENTRY_HEADER

__all__ = ["NO_SEGMENT", "Liveness", "SegmentState", "Slot"]

NO_SEGMENT = -1
_ENTRY = ENTRY_HEADER.size


class Slot:
    """One live ADD: where its newest copy is, or its payload while not yet written."""

    __slots__ = ("key", "length", "offset", "payload", "seg", "stale")

    def __init__(self, key: int, payload: bytes | None, length: int) -> None:
        self.key = key
        self.payload = payload  # held only until the writer has written it
        self.length = length
        self.seg = NO_SEGMENT
        self.offset = 0  # of the payload, in segment ``seg``
        self.stale: list[int] | None = None  # segments holding older copies


class SegmentState:
    """Accounting for one segment file."""

    __slots__ = (
        "dead_copies",
        "entry_bytes",
        "force",
        "live",
        "live_bytes",
        "seg_id",
        "size",
        "tombs",
    )

    def __init__(self, seg_id: int, size: int) -> None:
        self.seg_id = seg_id
        self.size = size
        # Bytes of all entries ever written here (headers + payloads, no framing):
        # the base of the dead ratio, so a freshly rewritten segment never looks
        # sparse because of its frame and file headers alone.
        self.entry_bytes = 0
        self.live: dict[int, Slot] = {}  # insertion order is file order: compaction reads in order
        self.live_bytes = 0  # entry headers + payloads of the live ADDs
        self.tombs: set[int] = set()  # keys of needed tombstones owned here
        self.dead_copies: set[int] = set()  # keys of dead ADD copies here some tombstone cancels
        self.force = False  # compact regardless of the dead ratio (forced, or had corruption)

    @property
    def kept_bytes(self) -> int:
        """Bytes compaction would have to copy forward to empty this segment."""
        return self.live_bytes + _ENTRY * len(self.tombs)


class _Dead:
    __slots__ = ("copies", "owner")

    def __init__(self, owner: int, copies: set[int]) -> None:
        self.owner = owner
        self.copies = copies


class Liveness:
    """Per-segment live/dead accounting and the tombstone rule."""

    def __init__(self) -> None:
        self.segments: dict[int, SegmentState] = {}  # ascending segment id (= file order)
        self._dead: dict[int, _Dead] = {}  # only keys whose tombstone is still needed
        self._emptied: set[int] = set()  # segments that may have become deletable

    def add_segment(self, seg_id: int, size: int) -> SegmentState:
        state = SegmentState(seg_id, size)
        self.segments[seg_id] = state
        # Checked once by `deletable`: a recovered segment may hold nothing live.
        self._emptied.add(seg_id)
        return state

    # -- replaying the log ------------------------------------------------

    def on_add(self, slot: Slot, seg_id: int, offset: int) -> None:
        """A new ADD (not a copy of a live one) was written at ``offset`` in ``seg_id``."""
        key = slot.key
        dead = self._dead.pop(key, None)
        if dead is not None:
            # The key was used before (callers should not, but it must stay correct):
            # this ADD shadows the old dead copies, so the old tombstone is no
            # longer needed and those copies become stale copies of this one.
            self._release(key, dead)
            slot.stale = [s for s in dead.copies if s in self.segments]
        seg = self.segments[seg_id]
        slot.seg = seg_id
        slot.offset = offset
        seg.live[key] = slot
        seg.live_bytes += _ENTRY + slot.length

    def on_move(self, slot: Slot, seg_id: int, offset: int, length: int) -> None:
        """A copy of the live ``slot`` was written into ``seg_id``: it is the newest now."""
        old = self.segments[slot.seg]
        del old.live[slot.key]
        old.live_bytes -= _ENTRY + slot.length
        if not old.live and not old.tombs:
            self._emptied.add(old.seg_id)
        stale = [s for s in slot.stale or () if s in self.segments]
        stale.append(old.seg_id)
        slot.stale = stale
        slot.seg = seg_id
        slot.offset = offset
        slot.length = length
        seg = self.segments[seg_id]
        seg.live[slot.key] = slot
        seg.live_bytes += _ENTRY + length

    def on_remove(self, slot: Slot, seg_id: int) -> None:
        """A REMOVE of the live ``slot`` was written into ``seg_id``."""
        key = slot.key
        cur = self.segments[slot.seg]
        del cur.live[key]
        cur.live_bytes -= _ENTRY + slot.length
        if not cur.live and not cur.tombs:
            self._emptied.add(cur.seg_id)
        copies = {slot.seg}
        copies.update(s for s in slot.stale or () if s in self.segments)
        slot.seg = NO_SEGMENT
        slot.stale = None
        if copies - {seg_id}:
            self._dead[key] = _Dead(seg_id, copies)
            self.segments[seg_id].tombs.add(key)
            for s in copies:
                if s != seg_id:
                    self.segments[s].dead_copies.add(key)

    def on_tombstone_copy(self, key: int, seg_id: int) -> None:
        """A REMOVE of a key that is not live was written into (or read from) ``seg_id``.

        Either compaction carried a needed tombstone forward, or recovery reads
        such a carried copy; the newest copy becomes the owner. A REMOVE whose
        ADD copies are all gone is simply dead bytes.
        """
        dead = self._dead.get(key)
        if dead is None or dead.owner == seg_id:
            return
        old = self.segments[dead.owner]
        old.tombs.discard(key)
        if not old.live and not old.tombs:
            self._emptied.add(old.seg_id)
        if dead.owner in dead.copies:
            old.dead_copies.add(key)
        dead.owner = seg_id
        if seg_id in dead.copies:  # cannot happen (ADDs precede their REMOVE), but stay exact
            self.segments[seg_id].dead_copies.discard(key)
        if dead.copies - {seg_id}:
            self.segments[seg_id].tombs.add(key)
        else:
            del self._dead[key]
            self._release(key, dead)

    # -- reclaiming -------------------------------------------------------

    def deletable(self, head: int) -> list[int]:
        """Segments (never the head) with no live ADD and no needed tombstone."""
        found = []
        for seg_id in sorted(self._emptied):
            seg = self.segments.get(seg_id)
            if seg is None or seg.live or seg.tombs:
                self._emptied.discard(seg_id)  # re-added if it empties again
            elif seg_id != head:  # an empty head stays listed: deletable once sealed
                self._emptied.discard(seg_id)
                found.append(seg_id)
        return found

    def drop_segment(self, seg_id: int) -> None:
        """The file is durably gone: tombstones that only cancelled copies here are free."""
        seg = self.segments.pop(seg_id)
        assert not seg.live and not seg.tombs, f"segment {seg_id} dropped while still needed"
        for key in seg.dead_copies:
            dead = self._dead.get(key)
            if dead is None:
                continue
            dead.copies.discard(seg_id)
            if not dead.copies - {dead.owner}:
                del self._dead[key]
                self._release(key, dead)

    def compaction_candidate(self, head: int, max_live_ratio: float) -> SegmentState | None:
        """The oldest sealed segment worth rewriting: forced ones first, then sparse ones."""
        sparse = None
        for seg in self.segments.values():
            if seg.seg_id == head or (not seg.live and not seg.tombs):
                continue
            if seg.force:
                return seg
            if sparse is None and seg.kept_bytes < max_live_ratio * seg.entry_bytes:
                sparse = seg
        return sparse

    def mark_forced(self, head: int) -> None:
        for seg in self.segments.values():
            if seg.seg_id != head:
                seg.force = True

    def forced_pending(self, head: int) -> bool:
        """Whether a segment marked by ``mark_forced`` is still on disk."""
        return any(s.force and s.seg_id != head for s in self.segments.values())

    # -- figures ----------------------------------------------------------

    def live_entries(self) -> int:
        return sum(len(s.live) for s in self.segments.values())

    def live_bytes(self) -> int:
        return sum(s.live_bytes for s in self.segments.values())

    def disk_bytes(self) -> int:
        return sum(s.size for s in self.segments.values())

    def _release(self, key: int, dead: _Dead) -> None:
        owner = self.segments.get(dead.owner)
        if owner is not None:
            owner.tombs.discard(key)
            if not owner.live and not owner.tombs:
                self._emptied.add(owner.seg_id)
        for s in dead.copies:
            seg = self.segments.get(s)
            if seg is not None:
                seg.dead_copies.discard(key)
