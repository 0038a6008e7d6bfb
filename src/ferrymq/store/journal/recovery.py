"""Recovery: scan every segment, verify every frame, rebuild the index, cut a torn tail.

Like Kafka's ``LogSegment.recover``: the index is derived data, rebuilt here
from the frames, and a tail that does not verify is truncated and its size
reported. Unlike a torn tail, damage followed by valid data (or in a sealed
segment) is never dropped silently: it raises JournalCorruption, or with
``skip_corrupt`` is skipped to the next frame that verifies and reported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ferrymq.store.journal._fileio import FileIO
from ferrymq.store.journal.errors import JournalCorruption
from ferrymq.store.journal.liveness import Liveness, Slot
from ferrymq.store.journal.record import (
    BATCH_HEADER,
    FRAME_HEADER,
    FRAME_OVERHEAD,
    MIN_FRAME,
    SEGMENT_HEADER,
    TYPE_OFFSET,
    EntryKind,
    FrameError,
    ParsedEntry,
    decode_header,
    parse_frame,
)
from ferrymq.store.journal.segment import (
    SegmentFile,
    create_segment,
    parse_segment_name,
)

__all__ = ["RecoveredState", "RecoveryResult", "recover_directory"]

log = logging.getLogger("ferrymq.store.journal")


@dataclass(frozen=True)
class RecoveryResult:
    """What recovery found. ``entries`` iterates in ascending key order."""

    entries: dict[int, Any]  # payloads, or what ``summarize`` made of them
    next_key: int  # strictly greater than every key ever used in this journal
    truncated_bytes: int  # torn tail dropped
    skipped: list[str]  # corrupt regions skipped (only with skip_corrupt)
    segments: int


@dataclass
class RecoveredState:
    """Everything the writer starts from (internal)."""

    segments: dict[int, SegmentFile]
    liveness: Liveness
    index: dict[int, Slot]
    next_seq: int
    next_key: int
    head: SegmentFile = field(init=False)


class _Scan:
    """Replays frames into the index and accounting as they are verified."""

    def __init__(
        self, skip_corrupt: bool, summarize: Callable[[memoryview], object] | None = None
    ) -> None:
        self.skip_corrupt = skip_corrupt
        self.summarize = summarize
        self.liveness = Liveness()
        self.index: dict[int, Slot] = {}
        self.payloads: dict[int, object] = {}
        self.next_key = 1
        self.in_order = True  # keys first seen in ascending order (no sort needed)
        self.truncated = 0
        self.skipped: list[str] = []

    def apply(self, data: bytes, seg_id: int, entries: list[ParsedEntry]) -> None:
        index, payloads, liveness = self.index, self.payloads, self.liveness
        summarize = self.summarize
        view = memoryview(data) if summarize is not None else None
        for e in entries:
            key = e.key
            if key >= self.next_key:
                self.next_key = key + 1
            if e.kind == EntryKind.ADD:
                if view is not None and summarize is not None:
                    payloads[key] = summarize(view[e.offset : e.offset + e.length])
                else:
                    payloads[key] = data[e.offset : e.offset + e.length]
                slot = index.get(key)
                if slot is None:
                    if key < self.next_key - 1:
                        self.in_order = False
                    slot = Slot(key, None, e.length)
                    index[key] = slot
                    liveness.on_add(slot, seg_id, e.offset)
                else:  # a copy written by compaction: the newest copy wins
                    liveness.on_move(slot, seg_id, e.offset, e.length)
            else:
                slot = index.pop(key, None)
                if slot is None:
                    liveness.on_tombstone_copy(key, seg_id)
                else:
                    del payloads[key]
                    liveness.on_remove(slot, seg_id)


def _resync(data: bytes, pos: int, expected: int) -> tuple[int, int] | None:
    """The next offset after ``pos`` where a frame verifies, and its seq; None if none does.

    Frames lost in ``[pos, q)`` take at least MIN_FRAME bytes each, which bounds
    the sequence a genuine next frame can carry; the cheap checks (type byte,
    sequence range) come before the CRC, so the search stays linear.
    """
    n = len(data)
    i = pos + 1 + TYPE_OFFSET
    while True:
        i = data.find(b"\x01", i)
        q = i - TYPE_OFFSET
        if i < 0 or q + MIN_FRAME > n:
            return None
        hi = expected + (q - pos) // MIN_FRAME
        _, seq, _ = BATCH_HEADER.unpack_from(data, q + FRAME_HEADER.size)
        if expected <= seq <= hi:
            try:
                _, seq, _ = parse_frame(data, q, expected, hi)
            except FrameError:
                pass
            else:
                return q, seq
        i += 1


def _scan_segment(
    io: FileIO, scan: _Scan, seg: SegmentFile, data: bytes, first_seq: int, last: bool
) -> int:
    """Replay one segment's frames; return the sequence the next frame would have."""
    path, size = seg.path, len(data)
    pos, expected = SEGMENT_HEADER, first_seq
    while pos < size:
        try:
            end, seq, entries = parse_frame(data, pos, expected, expected)
        except FrameError as exc:
            found = _resync(data, pos, expected)
            if found is None and last:
                log.warning(
                    "journal %s: torn tail at offset %d (%s): truncating %d bytes",
                    path,
                    pos,
                    exc,
                    size - pos,
                )
                fd = io.open(path, "w")
                try:
                    io.truncate(fd, pos)
                    io.fsync(fd)
                finally:
                    io.close(fd)
                scan.truncated += size - pos
                seg.size = seg.synced_size = pos
                break
            where = f"{path}: offset {pos}: {exc}"
            if not scan.skip_corrupt:
                if found is None:
                    raise JournalCorruption(
                        f"{where} (in a sealed segment, not the last one)"
                    ) from None
                raise JournalCorruption(
                    f"{where}; valid data follows at offset {found[0]}"
                ) from None
            scan.liveness.segments[seg.seg_id].force = True
            if found is None:
                scan.skipped.append(f"{where}: skipped bytes {pos}..{size} (end of segment)")
                log.error("journal %s: skipped bytes %d..%d", path, pos, size)
                break
            scan.skipped.append(f"{where}: skipped bytes {pos}..{found[0]}")
            log.error("journal %s: skipped bytes %d..%d", path, pos, found[0])
            pos, expected = found
            continue
        scan.apply(data, seg.seg_id, entries)
        scan.liveness.segments[seg.seg_id].entry_bytes += end - pos - FRAME_OVERHEAD
        pos, expected = end, seq + 1
    return expected


def recover_directory(
    io: FileIO,
    directory: str,
    *,
    skip_corrupt: bool,
    summarize: Callable[[memoryview], object] | None = None,
) -> tuple[RecoveryResult, RecoveredState]:
    """Scan ``directory`` (created if missing) and rebuild the journal's state.

    Opens a read handle on every segment and an append handle on the last
    one (creating a first segment if there is none); the caller owns them.
    """
    io.makedirs(directory)
    names = sorted(
        (seq, name)
        for name in io.listdir(directory)
        if (seq := parse_segment_name(name)) is not None
    )
    scan = _Scan(skip_corrupt, summarize)
    segments: dict[int, SegmentFile] = {}
    next_seq = 1
    try:
        for i, (name_seq, name) in enumerate(names):
            path = os.path.join(directory, name)
            last = i == len(names) - 1
            fd = io.open(path, "r")
            seg = SegmentFile(name_seq, path, fd, 0)
            segments[name_seq] = seg
            size = io.size(fd)
            data = io.pread(fd, 0, size)
            seg.size = seg.synced_size = len(data)
            try:
                header = decode_header(data)
                if header.first_seq != name_seq:
                    raise FrameError(f"header says first sequence {header.first_seq}")
                if name_seq < next_seq:
                    raise FrameError(f"starts at sequence {name_seq}, before {next_seq}")
            except FrameError as exc:
                if last and len(data) <= SEGMENT_HEADER:
                    # A crash while creating the segment: no frame can be in it, since
                    # frames are only written after the header is durable.
                    log.warning("journal %s: torn segment header (%s): removing it", path, exc)
                    seg.close(io)
                    del segments[name_seq]
                    io.remove(path)
                    io.fsync_dir(directory)
                    scan.truncated += len(data)
                    continue
                where = f"{path}: offset 0: {exc}"
                if not skip_corrupt:
                    raise JournalCorruption(where) from None
                scan.skipped.append(f"{where}: header ignored")
                log.error("journal %s: header ignored", path)
                next_key = 0
            else:
                next_key = header.next_key
            scan.next_key = max(scan.next_key, next_key)
            scan.liveness.add_segment(name_seq, len(data))
            next_seq = _scan_segment(io, scan, seg, data, name_seq, last)
            scan.liveness.segments[name_seq].size = seg.size
        state = RecoveredState(segments, scan.liveness, scan.index, next_seq, scan.next_key)
        if segments and scan.liveness.segments[max(segments)].force:
            # Skipped damage in the last segment: seal it, so that compaction can
            # rewrite its survivors and delete it like any other damaged segment.
            head = create_segment(io, directory, next_seq, scan.next_key)
            segments[head.seg_id] = head
            scan.liveness.add_segment(head.seg_id, head.size)
        elif segments:
            head = segments[max(segments)]
            head.write_fd = io.open(head.path, "a")
            # After a process crash the tail may be only in the page cache: make it
            # durable before anything (acknowledgements, deletions) relies on it.
            io.fsync(head.write_fd)
            io.fsync_dir(directory)
        else:
            head = create_segment(io, directory, next_seq, scan.next_key)
            segments[head.seg_id] = head
            scan.liveness.add_segment(head.seg_id, head.size)
        state.head = head
        state.next_seq = next_seq
    except BaseException:
        for seg in segments.values():
            seg.close(io)
        raise
    entries = scan.payloads
    if not scan.in_order:  # compaction moved old keys past newer ones
        entries = {key: entries[key] for key in sorted(entries)}
    result = RecoveryResult(
        entries=entries,
        next_key=scan.next_key,
        truncated_bytes=scan.truncated,
        skipped=scan.skipped,
        segments=len(segments),
    )
    return result, state
