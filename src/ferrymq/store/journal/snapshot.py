"""Consistent snapshots of a journal: pin the sealed segments, then link or copy them.

Why this is a point-in-time image: segments are append-only, a sealed segment
is fsynced and never written again, and space is reclaimed only by deleting
whole segments (compaction writes forward into the head). So once the writer
thread has sealed the head, the set of segments at that moment, as they are,
is exactly what the journal would recover from had it crashed right then; it
is a state recovery already handles.

Two steps, split so that the writer thread only does cheap work:

1. ``pin_segments`` (writer thread, ordered with writes): opens a read handle
   on every sealed segment. An open handle keeps the file's data even if the
   writer deletes it afterwards, so step 2 can take its time.
2. ``write_snapshot`` (any other thread): hard-links each pinned segment into
   the destination (instant, no extra space), or copies it from the pinned
   handle when it cannot (another file system, no hard links, or the segment
   was deleted in the meantime), fsyncs, and hashes every file for a manifest.

A file is only ever linked if nothing will write to it again: a sealed
segment of a running journal. The head of an offline journal, which the next
recovery may truncate and append to, is copied (``PinnedSegment.linkable``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from ferrymq.store.journal._fileio import FileIO
from ferrymq.store.journal.errors import JournalError
from ferrymq.store.journal.segment import SegmentFile

__all__ = [
    "PinnedSegment",
    "SnapshotFile",
    "pin_segments",
    "release",
    "write_and_release",
    "write_snapshot",
]

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PinnedSegment:
    """A segment held open for a snapshot: its first ``size`` bytes are the image."""

    name: str
    path: str
    handle: int
    size: int
    linkable: bool


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """One file of a written snapshot."""

    name: str
    size: int
    sha256: str
    linked: bool  # a hard link to the journal's own file (else a copy)


def pin_segments(io: FileIO, segments: Iterable[SegmentFile], *, head: int) -> list[PinnedSegment]:
    """Open a read handle on each segment, in log order; on error, close what was opened.

    ``head`` (a segment id) may still grow: it is copied at its current size,
    never linked. Every other segment must be sealed.
    """
    pinned: list[PinnedSegment] = []
    try:
        for seg in sorted(segments, key=lambda s: s.seg_id):
            handle = io.open(seg.path, "r")
            name = os.path.basename(seg.path)
            pinned.append(PinnedSegment(name, seg.path, handle, seg.size, seg.seg_id != head))
    except BaseException:
        release(io, pinned)
        raise
    return pinned


def release(io: FileIO, pinned: Iterable[PinnedSegment]) -> None:
    for p in pinned:
        with contextlib.suppress(OSError):  # nothing was written through it
            io.close(p.handle)


def write_snapshot(io: FileIO, pinned: list[PinnedSegment], directory: str) -> list[SnapshotFile]:
    """Link or copy every pinned segment into ``directory`` (created if missing,
    expected empty), durably; return each file with its SHA-256. Releases nothing:
    the caller owns the handles."""
    io.makedirs(directory)
    files: list[SnapshotFile] = []
    for p in pinned:
        dst = os.path.join(directory, p.name)
        linked = p.linkable and _try_link(io, p, dst)
        digest = _hash(io, p) if linked else _copy(io, p, dst)
        files.append(SnapshotFile(p.name, p.size, digest, linked))
    io.fsync_dir(directory)
    return files


def write_and_release(
    io: FileIO, pinned: list[PinnedSegment], directory: str
) -> list[SnapshotFile]:
    """``write_snapshot``, then close the handles, in the same thread: a caller that
    stops waiting must not close handles this is still reading (a reused descriptor
    number would put another file's bytes into the snapshot)."""
    try:
        return write_snapshot(io, pinned, directory)
    finally:
        release(io, pinned)


def _try_link(io: FileIO, p: PinnedSegment, dst: str) -> bool:
    try:
        io.link(p.path, dst)
    except FileExistsError:
        raise
    except OSError:
        # EXDEV, no hard links, or compaction deleted the segment since it was
        # pinned: the pinned handle still reads it, so copy instead.
        return False
    return True


def _hash(io: FileIO, p: PinnedSegment) -> str:
    # The link and the pinned handle are the same file: read it through the handle.
    digest = hashlib.sha256()
    offset = 0
    while offset < p.size:
        chunk = io.pread(p.handle, offset, min(_CHUNK, p.size - offset))
        if not chunk:
            raise JournalError(f"{p.path}: shorter than {p.size} bytes while snapshotting")
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _copy(io: FileIO, p: PinnedSegment, dst: str) -> str:
    digest = hashlib.sha256()
    out = io.open(dst, "a")
    try:
        if io.size(out) != 0:
            raise FileExistsError(f"{dst}: already exists in the snapshot directory")
        offset = 0
        while offset < p.size:
            chunk = io.pread(p.handle, offset, min(_CHUNK, p.size - offset))
            if not chunk:
                raise JournalError(f"{p.path}: shorter than {p.size} bytes while snapshotting")
            io.append(out, chunk)
            digest.update(chunk)
            offset += len(chunk)
        io.fsync(out)
    finally:
        io.close(out)
    return digest.hexdigest()
