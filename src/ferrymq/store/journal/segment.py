"""Segment files: their names, their open handles, and creating one durably.

A segment is ``<20-digit first frame sequence>.seg`` in the journal directory,
so lexical order is log order. Every segment keeps a read-only handle (for
``Journal.read`` and compaction); the head, the one being appended to, also
keeps an append handle.
"""

from __future__ import annotations

import contextlib
import os
import re

from ferrymq.store.journal._fileio import FileIO
from ferrymq.store.journal.errors import JournalError
from ferrymq.store.journal.record import SEGMENT_HEADER, encode_header

__all__ = ["SegmentFile", "create_segment", "parse_segment_name", "segment_name"]

_NAME = re.compile(r"^(\d{20})\.seg$")
NO_HANDLE = -1


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


def parse_segment_name(name: str) -> int | None:
    """The first sequence encoded in a segment file name, or None if it is not one."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


class SegmentFile:
    """Open handles and sizes of one segment file."""

    __slots__ = ("path", "read_fd", "seg_id", "size", "synced_size", "write_fd")

    def __init__(self, seg_id: int, path: str, read_fd: int, size: int) -> None:
        self.seg_id = seg_id  # = the first frame sequence
        self.path = path
        self.read_fd = read_fd
        self.write_fd = NO_HANDLE
        self.size = size  # bytes written (the writer's view; reads see them at once)
        self.synced_size = size  # bytes known durable

    @property
    def dirty(self) -> bool:
        return self.synced_size < self.size

    def close(self, io: FileIO) -> None:
        """Close both handles; never raises (used on shutdown and failure paths)."""
        for fd in (self.write_fd, self.read_fd):
            if fd != NO_HANDLE:
                with contextlib.suppress(OSError):
                    io.close(fd)
        self.write_fd = self.read_fd = NO_HANDLE


def create_segment(io: FileIO, directory: str, first_seq: int, next_key: int) -> SegmentFile:
    """Create a segment with its header, durably, and open it for appending.

    The header (and with it ``next_key``) is fsynced and the directory entry
    is fsynced before the first frame goes in: a segment with frames always
    has a durable header, so a bad header on a segment with frames is
    corruption, never a torn write; and deleting older segments can rely on
    this header to remember ``next_key``.
    """
    path = os.path.join(directory, segment_name(first_seq))
    write_fd = io.open(path, "a")
    try:
        if io.size(write_fd) != 0:
            raise JournalError(f"{path}: refusing to create a segment over an existing file")
        io.append(write_fd, encode_header(first_seq, next_key))
        io.fsync(write_fd)
        io.fsync_dir(directory)
        read_fd = io.open(path, "r")
    except BaseException:
        io.close(write_fd)
        raise
    seg = SegmentFile(first_seq, path, read_fd, SEGMENT_HEADER)
    seg.write_fd = write_fd
    return seg
