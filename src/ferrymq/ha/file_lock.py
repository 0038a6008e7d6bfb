"""An OS lock (`fcntl.flock`) on `DATA/lock`: one broker per data directory.

The kernel releases the lock when its holder dies, however it dies, so a
lock left by a killed broker never needs cleaning up. The file's content
(pid and node name of the holder) is for people, not for the lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ferrymq.errors import FerrymqError

__all__ = ["DataDirLocked", "FileLock"]


class DataDirLocked(FerrymqError):
    """Another live broker holds the data directory."""


class FileLock:
    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / "lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, owner: str) -> bool:
        """Take the lock if it is free; never blocks."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {owner}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire_or_fail(self, owner: str) -> None:
        if not self.try_acquire(owner):
            raise DataDirLocked(
                f"data directory {self.path.parent} is in use by another broker "
                f"(pid and node: {self.holder()})"
            )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
