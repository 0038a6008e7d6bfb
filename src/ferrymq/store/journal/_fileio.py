"""The small file interface every journal I/O call goes through, and the real one.

Modelled on Redis's ``rio``: the journal never calls ``os`` directly, so a
crash-simulating fake (``ferrymq.testing.crashfs.CrashFileIO``) can stand in
for the disk, the way SQLite's test VFS does.

Handles are opaque ints. Implementations must be thread-safe: the writer
thread appends and fsyncs while the event-loop thread calls ``pread``.
"""

from __future__ import annotations

import errno
import os
from abc import ABC, abstractmethod
from typing import Literal

__all__ = ["FileIO", "OpenMode", "OsFileIO"]

# "r": read only. "a": read + append, created if missing. "w": read + pwrite, created if missing.
OpenMode = Literal["r", "a", "w"]


class FileIO(ABC):
    """What the journal needs from a file system. Errors are OSError."""

    @abstractmethod
    def open(self, path: str, mode: OpenMode) -> int:
        """Open ``path``; "a" and "w" create it if missing and never truncate."""

    @abstractmethod
    def close(self, handle: int) -> None: ...

    @abstractmethod
    def append(self, handle: int, data: bytes) -> None:
        """Write all of ``data`` at the end of the file (handle opened with "a")."""

    @abstractmethod
    def pwrite(self, handle: int, data: bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset`` (handle opened with "w")."""

    @abstractmethod
    def pread(self, handle: int, offset: int, length: int) -> bytes:
        """Read up to ``length`` bytes at ``offset`` (fewer only at end of file)."""

    @abstractmethod
    def fsync(self, handle: int) -> None:
        """Make the file's data (and its size) durable."""

    @abstractmethod
    def truncate(self, handle: int, size: int) -> None: ...

    @abstractmethod
    def size(self, handle: int) -> int: ...

    @abstractmethod
    def makedirs(self, path: str) -> None:
        """Create the directory and missing parents, durably; no error if it exists."""

    @abstractmethod
    def listdir(self, path: str) -> list[str]: ...

    @abstractmethod
    def remove(self, path: str) -> None:
        """Unlink a file; durable only after ``fsync_dir`` of its directory."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Atomically replace ``dst``; durable only after ``fsync_dir``."""

    @abstractmethod
    def fsync_dir(self, path: str) -> None:
        """Make creations, removals and renames in directory ``path`` durable."""

    def link(self, src: str, dst: str) -> None:
        """Make ``dst`` a hard link to ``src``; durable only after ``fsync_dir``.

        Optional: snapshots copy instead when this raises OSError (the default,
        and what a file system without hard links, or EXDEV, does).
        """
        raise OSError(errno.ENOTSUP, "hard links not supported", src)


_fdatasync = getattr(os, "fdatasync", os.fsync)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FLAGS: dict[str, int] = {
    "r": os.O_RDONLY,
    "a": os.O_RDWR | os.O_CREAT | os.O_APPEND,
    "w": os.O_RDWR | os.O_CREAT,
}


class OsFileIO(FileIO):
    """The real file system through ``os`` calls (which release the GIL).

    ``fsync`` is ``fdatasync`` where it exists: it flushes the data and the
    metadata needed to read it back (the file size), which is all an
    append-only segment needs, and skips the timestamps.
    """

    def open(self, path: str, mode: OpenMode) -> int:
        return os.open(path, _FLAGS[mode] | _O_BINARY | _O_CLOEXEC, 0o644)

    def close(self, handle: int) -> None:
        os.close(handle)

    def append(self, handle: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(handle, view)
            view = view[written:]

    def pwrite(self, handle: int, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(handle, view, offset)
            view = view[written:]
            offset += written

    def pread(self, handle: int, offset: int, length: int) -> bytes:
        data = os.pread(handle, length, offset)
        if len(data) == length or not data:
            return data
        chunks = [data]
        got = len(data)
        while got < length:
            more = os.pread(handle, length - got, offset + got)
            if not more:
                break
            chunks.append(more)
            got += len(more)
        return b"".join(chunks)

    def fsync(self, handle: int) -> None:
        _fdatasync(handle)

    def truncate(self, handle: int, size: int) -> None:
        os.ftruncate(handle, size)

    def size(self, handle: int) -> int:
        return os.fstat(handle).st_size

    def makedirs(self, path: str) -> None:
        if os.path.isdir(path):
            return
        parent = os.path.dirname(os.path.abspath(path))
        self.makedirs(parent)
        try:
            os.mkdir(path)
        except FileExistsError:
            return
        self.fsync_dir(parent)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def remove(self, path: str) -> None:
        os.remove(path)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def link(self, src: str, dst: str) -> None:
        os.link(src, dst)

    def fsync_dir(self, path: str) -> None:
        if os.name == "nt":  # directories cannot be opened (or fsynced) on Windows
            return
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
