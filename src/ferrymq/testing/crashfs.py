"""An in-memory file system that can crash: the journal's answer to SQLite's test VFS.

``CrashFileIO`` implements the journal's ``FileIO`` in memory and remembers,
for every file, what was fsynced, and for every directory, which creations,
removals and renames were made durable by a directory fsync. A crash
(``crash()`` now, or ``crash_after(n)`` mutating calls) freezes it: every
later call raises ``SimulatedCrash`` (an OSError, so the journal fails the
way it would on a dying disk). ``reboot()`` then installs what a disk could
hold after power loss, chosen by a seeded random generator (or, after a
``crash("process")``, everything, still unsynced, as the page cache keeps it):

- each directory keeps a prefix (possibly empty, possibly all) of its
  unsynced namespace operations, in order, as a journaling file system does,
  or (half the time) any subset of them, as one without ordering might;
- each file keeps its synced bytes, and of its unsynced bytes either none,
  all, a prefix, or a prefix whose end is garbled (random bytes or zeros,
  as when the size reached the disk before the data).

Never garbled: anything fsynced. Not modelled: unsynced data persisting out
of order (a later write surviving an earlier one that did not), which
ext4/xfs in their default modes do not produce for appends; the journal
reports that case as corruption rather than guessing (docs/durability.md).
"""

from __future__ import annotations

import errno
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ferrymq.store.journal._fileio import FileIO, OpenMode

__all__ = ["CrashFileIO", "CrashMode", "SimulatedCrash"]

# "process": only the process dies; the OS keeps its page cache, so nothing is
# lost now, but what was not fsynced is still unsynced after the reboot.
CrashMode = Literal["random", "lose", "keep", "process"]


class SimulatedCrash(OSError):
    """The simulated machine lost power; nothing more reaches the disk."""

    def __init__(self) -> None:
        super().__init__(errno.EIO, "simulated crash")


class _Inode:
    __slots__ = ("data", "dirty_from", "synced")

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.synced = bytes(data)
        self.dirty_from = len(data)  # lowest offset changed since the last fsync

    def touch(self, offset: int) -> None:
        self.dirty_from = min(self.dirty_from, offset)

    def sync(self) -> None:
        self.synced = bytes(self.data)
        self.dirty_from = len(self.data)


@dataclass(frozen=True, slots=True)
class _Op:
    kind: Literal["create", "remove", "rename"]
    name: str
    inode: _Inode | None = None
    new_name: str = ""


@dataclass(slots=True)
class _Handle:
    inode: _Inode
    mode: OpenMode
    path: str


_MUTATING = frozenset({"create", "append", "pwrite", "fsync", "truncate", "remove", "rename"})


class CrashFileIO(FileIO):
    """A crash-simulating in-memory ``FileIO`` (thread-safe)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._lock = threading.RLock()
        self._dirs: set[str] = set()
        self._names: dict[str, _Inode] = {}  # current namespace: path -> inode
        self._durable: dict[str, _Inode] = {}  # namespace as of the last directory fsyncs
        self._pending: dict[str, list[_Op]] = {}  # directory -> unsynced namespace ops
        self._handles: dict[int, _Handle] = {}
        self._next_handle = 3
        self._countdown: int | None = None
        self._crash_mode: CrashMode = "random"
        self._down = False
        self._image: dict[str, bytes] | None = None  # None after a process crash
        self._faults: list[tuple[str, str, int]] = []  # (op, path suffix, errno)
        self.crashes = 0
        self.ops = 0  # mutating calls so far: pick crash points from it

    # -- crash control ------------------------------------------------------

    @property
    def crashed(self) -> bool:
        return self._down

    def crash(self, mode: CrashMode = "random") -> None:
        """Lose power now (or, with "process", kill the process only).

        ``mode``: what happens to unsynced data (see the module doc).
        """
        with self._lock:
            if not self._down:
                self._down = True
                self._crash_mode = mode
                self._image = None if mode == "process" else self._after_power_loss(mode)
                self.crashes += 1

    def crash_after(self, n: int, mode: CrashMode = "random") -> None:
        """Lose power at the ``n+1``-th mutating call from now (0: the next one).

        A write interrupted this way may first land partially, as it would.
        """
        with self._lock:
            self._countdown = n
            self._crash_mode = mode

    def reboot(self) -> None:
        """Install the post-crash disk image; every old handle becomes invalid."""
        with self._lock:
            if not self._down:
                raise RuntimeError("reboot() without a crash")
            image, self._image = self._image, None
            self._down = False
            self._countdown = None
            self._handles.clear()
            if image is not None:
                self._pending.clear()
                self._names = {path: _Inode(data) for path, data in image.items()}
                self._durable = dict(self._names)

    def inject_error(self, op: str, path_suffix: str = "", err: int = errno.EIO) -> None:
        """Make the next ``op`` call (on a path ending with ``path_suffix``) fail with ``err``.

        ops: open, append, pwrite, pread, fsync, truncate, remove, rename, link, fsync_dir,
        listdir.
        """
        with self._lock:
            self._faults.append((op, path_suffix, err))

    # -- inspection and set-up for tests ---------------------------------

    def get_bytes(self, path: str) -> bytes:
        with self._lock:
            return bytes(self._names[os.path.normpath(path)].data)

    def set_bytes(self, path: str, data: bytes) -> None:
        """Replace a file's content, durably (to plant corruption before a recovery)."""
        with self._lock:
            path = os.path.normpath(path)
            inode = self._names.get(path)
            if inode is None:
                self._dirs.add(os.path.dirname(path))
                inode = self._names[path] = self._durable[path] = _Inode()
            inode.data[:] = data
            inode.sync()

    def unsynced_bytes(self) -> int:
        """How many bytes a crash could lose right now (tests assert on it)."""
        with self._lock:
            return sum(len(i.data) - i.dirty_from for i in set(self._names.values()))

    # -- FileIO ---------------------------------------------------------------

    def open(self, path: str, mode: OpenMode) -> int:
        path = os.path.normpath(path)
        with self._lock:
            self._enter("open", path)
            inode = self._names.get(path)
            if inode is None:
                if mode == "r":
                    raise FileNotFoundError(errno.ENOENT, "no such file", path)
                if os.path.dirname(path) not in self._dirs:
                    raise FileNotFoundError(errno.ENOENT, "no such directory", path)
                self._mutation("create")
                inode = self._names[path] = _Inode()
                self._log(path, _Op("create", path, inode))
            handle = self._next_handle
            self._next_handle += 1
            self._handles[handle] = _Handle(inode, mode, path)
            return handle

    def close(self, handle: int) -> None:
        with self._lock:
            self._handles.pop(handle, None)

    def append(self, handle: int, data: bytes) -> None:
        with self._lock:
            h = self._handle(handle, "append")
            if h.mode != "a":
                raise OSError(errno.EBADF, "not opened for appending", h.path)
            inode = h.inode
            self._mutation("append", inode, len(inode.data), data)
            inode.touch(len(inode.data))
            inode.data += data

    def pwrite(self, handle: int, data: bytes, offset: int) -> None:
        with self._lock:
            h = self._handle(handle, "pwrite")
            if h.mode != "w":
                raise OSError(errno.EBADF, "not opened for pwrite", h.path)
            inode = h.inode
            self._mutation("pwrite", inode, offset, data)
            _write_at(inode, offset, data)

    def pread(self, handle: int, offset: int, length: int) -> bytes:
        with self._lock:
            h = self._handle(handle, "pread")
            return bytes(h.inode.data[offset : offset + length])

    def fsync(self, handle: int) -> None:
        with self._lock:
            h = self._handle(handle, "fsync")
            self._mutation("fsync")
            h.inode.sync()

    def truncate(self, handle: int, size: int) -> None:
        with self._lock:
            h = self._handle(handle, "truncate")
            if h.mode == "r":
                raise OSError(errno.EBADF, "not opened for writing", h.path)
            self._mutation("truncate")
            inode = h.inode
            if size < len(inode.data):
                del inode.data[size:]
            else:
                inode.data.extend(bytes(size - len(inode.data)))
            inode.touch(size)

    def size(self, handle: int) -> int:
        with self._lock:
            return len(self._handle(handle, "size").inode.data)

    def makedirs(self, path: str) -> None:
        path = os.path.normpath(path)
        with self._lock:
            self._enter("makedirs", path)
            while path and path not in self._dirs:  # directories are durable at once
                self._dirs.add(path)
                path = os.path.dirname(path)

    def listdir(self, path: str) -> list[str]:
        path = os.path.normpath(path)
        with self._lock:
            self._enter("listdir", path)
            if path not in self._dirs:
                raise FileNotFoundError(errno.ENOENT, "no such directory", path)
            return sorted(os.path.basename(p) for p in self._names if os.path.dirname(p) == path)

    def remove(self, path: str) -> None:
        path = os.path.normpath(path)
        with self._lock:
            self._enter("remove", path)
            inode = self._names.get(path)
            if inode is None:
                raise FileNotFoundError(errno.ENOENT, "no such file", path)
            self._mutation("remove")
            del self._names[path]
            self._log(path, _Op("remove", path))

    def rename(self, src: str, dst: str) -> None:
        src, dst = os.path.normpath(src), os.path.normpath(dst)
        with self._lock:
            self._enter("rename", src)
            if src not in self._names:
                raise FileNotFoundError(errno.ENOENT, "no such file", src)
            if os.path.dirname(src) != os.path.dirname(dst):
                raise OSError(errno.EXDEV, "rename across directories is not modelled", src)
            self._mutation("rename")
            self._names[dst] = self._names.pop(src)
            self._log(src, _Op("rename", src, new_name=dst))

    def link(self, src: str, dst: str) -> None:
        src, dst = os.path.normpath(src), os.path.normpath(dst)
        with self._lock:
            self._enter("link", src)
            inode = self._names.get(src)
            if inode is None:
                raise FileNotFoundError(errno.ENOENT, "no such file", src)
            if dst in self._names:
                raise FileExistsError(errno.EEXIST, "file exists", dst)
            if os.path.dirname(dst) not in self._dirs:
                raise FileNotFoundError(errno.ENOENT, "no such directory", dst)
            self._mutation("create")
            self._names[dst] = inode  # one inode, two names: a crash keeps the data alike
            self._log(dst, _Op("create", dst, inode))

    def fsync_dir(self, path: str) -> None:
        path = os.path.normpath(path)
        with self._lock:
            self._enter("fsync_dir", path)
            self._mutation("fsync")
            for op in self._pending.pop(path, []):
                _apply(self._durable, op)

    # -- internals --------------------------------------------------------------

    def _enter(self, op: str, path: str) -> None:
        if self._down:
            raise SimulatedCrash()
        for i, (fop, suffix, err) in enumerate(self._faults):
            if fop == op and path.endswith(suffix):
                del self._faults[i]
                raise OSError(err, f"injected {os.strerror(err)}", path)

    def _handle(self, handle: int, op: str) -> _Handle:
        h = self._handles.get(handle)
        if self._down:
            raise SimulatedCrash()
        if h is None:
            raise OSError(errno.EBADF, "bad file handle")
        self._enter(op, h.path)
        return h

    def _mutation(
        self, op: str, inode: _Inode | None = None, offset: int = 0, data: bytes = b""
    ) -> None:
        """Count a mutating call; crash here if the countdown says so."""
        assert op in _MUTATING
        self.ops += 1
        if self._countdown is None:
            return
        if self._countdown > 0:
            self._countdown -= 1
            return
        if inode is not None and data and self.rng.random() < 0.5:
            _write_at(inode, offset, data[: self.rng.randrange(len(data))])  # torn write
        self.crash(self._crash_mode)
        raise SimulatedCrash()

    def _log(self, path: str, op: _Op) -> None:
        self._pending.setdefault(os.path.dirname(path), []).append(op)

    def _after_power_loss(self, mode: CrashMode) -> dict[str, bytes]:
        rng = self.rng
        names = dict(self._durable)
        for ops in self._pending.values():
            if mode == "random" and rng.random() < 0.5:
                kept = [op for op in ops if rng.random() < 0.5]  # no ordering at all
            else:
                n = {"random": rng.randint(0, len(ops)), "lose": 0, "keep": len(ops)}[mode]
                kept = ops[:n]
            for op in kept:
                _apply(names, op)
        image: dict[str, bytes] = {}
        fates: dict[int, bytes] = {}
        for path, inode in sorted(names.items()):
            if id(inode) not in fates:
                fates[id(inode)] = _fate(inode, mode, rng)
            image[path] = fates[id(inode)]
        return image


def _apply(names: dict[str, _Inode], op: _Op) -> None:
    if op.kind == "create":
        assert op.inode is not None
        names[op.name] = op.inode
    elif op.kind == "remove":
        names.pop(op.name, None)
    elif op.name in names:
        names[op.new_name] = names.pop(op.name)


def _write_at(inode: _Inode, offset: int, data: bytes) -> None:
    if offset > len(inode.data):
        inode.data.extend(bytes(offset - len(inode.data)))
    inode.touch(offset)
    inode.data[offset : offset + len(data)] = data


def _fate(inode: _Inode, mode: CrashMode, rng: random.Random) -> bytes:
    """What survives of one file's unsynced bytes."""
    data, start = bytes(inode.data), inode.dirty_from
    if start >= len(data) and len(data) == len(inode.synced):
        return data
    if mode == "lose":
        return inode.synced
    if mode == "keep":
        return data
    roll = rng.random()
    if roll < 0.3:
        return inode.synced
    if roll < 0.5:
        return data
    end = rng.randint(start, len(data))
    kept = bytearray(data[:end])
    if roll >= 0.8 and end > start:
        garbled = rng.randint(1, end - start)
        filler: Callable[[int], bytes] = rng.randbytes if rng.random() < 0.5 else bytes
        kept[end - garbled : end] = filler(garbled)
    if len(data) >= len(inode.synced):
        # No truncation pending: synced bytes past the kept prefix are still there.
        kept += inode.synced[end:]
    return bytes(kept)
