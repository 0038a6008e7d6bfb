"""Journal.snapshot: a consistent image, ordered with appends, safe against compaction."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import threading

import pytest

from ferrymq.store.journal import Journal, JournalError, SyncPolicy
from ferrymq.store.journal.snapshot import SnapshotFile
from ferrymq.testing.crashfs import CrashFileIO

from .conftest import JDIR, add, body, flushed, open_journal, recover_only, remove

SNAP = "/backup/journal"
SEGMENT = 8 * 1024


async def test_snapshot_on_a_real_disk_links_sealed_segments(tmp_path: os.PathLike[str]) -> None:
    directory = os.path.join(tmp_path, "journal")
    dest = os.path.join(tmp_path, "snap")
    j, _ = await open_journal(directory, segment_size=SEGMENT)
    for key in range(1, 101):
        j.append([add(key, body(key, 200))])
    j.append([remove(5)])
    files = await j.snapshot(dest)
    j.append([add(1000, b"after the snapshot")])
    await flushed(j)
    await j.close()
    # Every file but the (empty) head is a hard link to the journal's own segment.
    assert [f.name for f in files] == sorted(os.listdir(dest))
    assert [f.linked for f in files] == [True] * (len(files) - 1) + [False]
    for f in files[:-1]:
        assert (
            os.stat(os.path.join(dest, f.name)).st_ino
            == os.stat(os.path.join(directory, f.name)).st_ino
        )
        assert os.stat(os.path.join(dest, f.name)).st_size == f.size
    r = await recover_only(dest)
    assert r.entries == {k: body(k, 200) for k in range(1, 101) if k != 5}
    assert r.next_key == 101
    # The journal itself is untouched by the snapshot.
    r = await recover_only(directory)
    assert r.entries[1000] == b"after the snapshot"


async def test_snapshot_holds_exactly_what_was_appended_before_the_call(
    cio: CrashFileIO,
) -> None:
    j, _ = await open_journal(io=cio, segment_size=SEGMENT)
    j.append([add(1, b"durable already")])
    await flushed(j)
    j.append([add(2, b"same loop turn, before the call")])
    snapshot = j.snapshot(SNAP)
    j.append([add(3, b"same loop turn, after the call")])  # the call handed over first
    await snapshot
    await j.close()
    r = await recover_only(SNAP, io=cio)
    assert r.entries == {1: b"durable already", 2: b"same loop turn, before the call"}


async def test_snapshots_while_appending_and_compacting(cio: CrashFileIO) -> None:
    """A producer/consumer workload with compaction deleting segments all along;
    each snapshot recovers to the live state at the moment it was asked for."""
    j, _ = await open_journal(io=cio, segment_size=SEGMENT, compact_step_bytes=2048)
    rng = random.Random(7)
    live: dict[int, bytes] = {1: b"the one old message"}
    j.append([add(1, live[1])])
    expected: dict[str, dict[int, bytes]] = {}
    pending: list[asyncio.Future[list[SnapshotFile]]] = []
    for key in range(2, 3000):
        live[key] = body(key, rng.randrange(20, 300))
        j.append([add(key, live[key])])
        if key > 30 and key - 20 in live:
            j.append([remove(key - 20)])
            del live[key - 20]
        if key % 250 == 0:
            dest = f"/backup/{key}"
            expected[dest] = dict(live)
            pending.append(j.snapshot(dest))
        if key % 50 == 0:
            await flushed(j)  # let loop turns, writes and compaction interleave
    await asyncio.gather(*pending)
    stats = j.stats()
    await j.close()
    assert stats.segments_deleted > 10 and stats.compactions > 0
    for dest, entries in expected.items():
        r = await recover_only(dest, io=cio)
        assert r.entries == entries, dest


class _GatedLinks(CrashFileIO):
    """Holds the first snapshot link until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(seed=3)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def link(self, src: str, dst: str) -> None:
        self.entered.set()
        assert self.gate.wait(10), "test did not open the gate"
        super().link(src, dst)


async def test_segments_deleted_after_pinning_are_copied_from_the_pinned_handles() -> None:
    io = _GatedLinks()
    j, _ = await open_journal(io=io, segment_size=SEGMENT)
    for key in range(1, 201):
        j.append([add(key, body(key, 300))])
    await flushed(j)
    task = j.snapshot(SNAP)
    assert await asyncio.to_thread(io.entered.wait, 10)  # pinned, now linking
    before = set(io.listdir(JDIR))
    j.append([remove(key) for key in range(1, 201)])
    await j.compact()  # every sealed segment is dead now: the writer deletes them
    assert not before & set(io.listdir(JDIR)) - {max(before)}
    io.gate.set()
    files = await task
    await j.close()
    assert not any(f.linked for f in files)
    r = await recover_only(SNAP, io=io)
    assert r.entries == {key: body(key, 300) for key in range(1, 201)}


class _NoLinks(CrashFileIO):
    def link(self, src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "cross-device link", src)


async def test_copy_fallback_and_durability_with_sync_never() -> None:
    io = _NoLinks(seed=5)
    j, _ = await open_journal(io=io, segment_size=SEGMENT, sync=SyncPolicy("never"))
    for key in range(1, 60):
        j.append([add(key, body(key, 200))])
    files = await j.snapshot(SNAP)  # no fsync was ever asked for: the snapshot seals
    assert files and not any(f.linked for f in files)
    j.append([add(100, b"after")])
    io.crash("lose")  # power loss: only what was fsynced survives
    with pytest.raises(JournalError):
        await j.close()
    io.reboot()
    r = await recover_only(SNAP, io=io)
    assert r.entries == {key: body(key, 200) for key in range(1, 60)}


async def test_snapshot_of_a_failed_or_closed_journal_is_refused(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"x")])
    cio.inject_error("append")
    with pytest.raises(JournalError):
        await flushed(j)
    with pytest.raises(JournalError):
        await j.snapshot(SNAP)
    await j.close()
    j2 = Journal(JDIR, io=CrashFileIO())
    j2.recover()
    await j2.start()
    await j2.close()
    with pytest.raises(JournalError):
        await j2.snapshot(SNAP)


async def test_a_failed_pin_fails_the_snapshot_not_the_journal(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"x")])
    await flushed(j)
    # Sealing creates segment 2; pinning then opens segment 1, which fails.
    cio.inject_error("open", "00000000000000000001.seg", errno.EMFILE)
    with pytest.raises(JournalError, match="snapshot failed"):
        await j.snapshot(SNAP)
    j.append([add(2, b"y")])
    await flushed(j)
    await j.snapshot("/backup/again")
    await j.close()
    assert (await recover_only("/backup/again", io=cio)).entries == {1: b"x", 2: b"y"}
