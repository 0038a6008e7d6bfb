"""Master/slave on a shared data directory: the lock, and the master's fencing.

Whoever holds an OS lock (`fcntl.flock`) on `DATA/lock` is master. A slave
waits for it in a blocking `flock` on a thread of its own, so it takes over
the moment the kernel drops a dead master's lock, not a poll interval later.

Fencing (ActiveMQ's KahaDB leaves its lock keep-alive off, which allows two
masters): every poll interval the master checks that `DATA/lock` is still
the inode it locked, still says what it wrote, and that the directory still
takes writes; if not, or if the check hangs, the server fences itself.

A lock file replaced or removed under a live master is the one way two nodes
could both hold "the" lock: the old master's journal writer checks the lock
file's inode before every write (`quick_check`), and the new holder waits two
poll intervals (at least a second) before touching the journal, by which
time the old master has fenced itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path

__all__ = ["SharedFsLock"]

log = logging.getLogger(__name__)

_PROBE = ".ferrymq-alive"


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


class SharedFsLock:
    def __init__(self, data_dir: str | os.PathLike[str], *, poll_interval: float) -> None:
        self.directory = Path(data_dir)
        self.path = self.directory / "lock"
        self.poll_interval = poll_interval
        self._fd: int | None = None
        self._inode = 0
        self._content = b""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str:
        """What the lock file says of its holder (for people and /healthz)."""
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    async def acquire(self, owner: str) -> None:
        """Wait until this node holds the lock, then write `owner` into it."""
        loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        cautious = False  # the file we finally lock may be a replacement
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                # A lock file missing from a directory that has a journal may
                # have been removed under a live master.
                cautious = cautious or (self.directory / "journal").exists()
            except FileExistsError:
                fd = os.open(self.path, os.O_RDWR)
            inode = os.fstat(fd).st_ino
            got: asyncio.Future[None] = loop.create_future()
            wanted = threading.Event()
            wanted.set()
            threading.Thread(
                target=self._wait_for_lock,
                args=(fd, loop, got, wanted),
                name="ferrymq-lock-wait",
                daemon=True,
            ).start()
            while not got.done():
                await asyncio.wait([got], timeout=self.poll_interval)
                if not got.done() and _inode(self.path) != inode:
                    break  # replaced or removed while we waited: wait on the new one
            if got.done() and _inode(self.path) == inode:
                break
            wanted.clear()  # the thread closes fd when (if ever) it gets that old lock
            if got.done():
                os.close(fd)
            cautious = True
        if cautious:
            # Give a master still holding a replaced lock file time to notice
            # (its writer checks before every write; its full check runs every
            # poll interval, later under load: hence the floor of a second).
            await asyncio.sleep(max(2 * self.poll_interval, 1.0))
            if _inode(self.path) != inode:
                os.close(fd)
                await self.acquire(owner)
                return
        content = (
            f"{os.getpid()} {owner} since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
        )
        self._content = content.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._content, 0)
        os.fsync(fd)
        self._fd = fd
        self._inode = inode

    @staticmethod
    def _wait_for_lock(
        fd: int,
        loop: asyncio.AbstractEventLoop,
        got: asyncio.Future[None],
        wanted: threading.Event,
    ) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            log.error("waiting for the lock failed: %s", exc)
            return
        if not wanted.is_set():
            os.close(fd)
            return

        def done() -> None:
            if got.done():
                return
            if wanted.is_set():
                got.set_result(None)
            else:
                os.close(fd)

        try:
            loop.call_soon_threadsafe(done)
        except RuntimeError:  # the loop is gone: so is the broker
            os.close(fd)

    def quick_check(self) -> str | None:
        """The journal writer's check before each write: one stat, so that a
        master whose lock file was replaced writes nothing more even before
        its next full check fences it."""
        if self._fd is None:
            return "the lock is not held"
        if _inode(self.path) != self._inode:
            return f"lock file {self.path} was replaced or removed"
        return None

    def check(self) -> str | None:
        """Why this master must fence itself, or None while all is well.
        Blocking file system calls: run it off the event loop."""
        fd = self._fd
        if fd is None:
            return "the lock is not held"
        inode = _inode(self.path)
        if inode is None:
            return f"lock file {self.path} was removed"
        if inode != self._inode:
            return f"lock file {self.path} was replaced"
        try:
            content = os.pread(fd, 4096, 0)
        except OSError as exc:
            return f"lock file {self.path} cannot be read: {exc}"
        if content != self._content:
            return f"lock file {self.path} was rewritten by someone else: {content[:200]!r}"
        probe = self.directory / _PROBE
        try:
            pfd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(pfd, b"ok\n")
            finally:
                os.close(pfd)
        except OSError as exc:
            return f"data directory {self.directory} is not writable: {exc}"
        return None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
