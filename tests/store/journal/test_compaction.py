"""Reclaiming space: dead segments are deleted, sparse ones compacted, disk stays bounded."""

from __future__ import annotations

import os

import pytest

from ferrymq.store.journal import FileIO, Journal, JournalError, OsFileIO
from ferrymq.testing.crashfs import CrashFileIO

from .conftest import JDIR, add, body, flushed, open_journal, recover_only, remove

SEGMENT = 16 * 1024


async def produce_consume(
    journal: Journal, cycles: int, *, window: int = 20, size: int = 200
) -> list[int]:
    """A queue with one old message never acked; every other message is acked
    ``window`` messages later. Returns the disk usage seen after each group."""
    journal.append([add(1, b"the one old message")])
    seen = []
    for key in range(2, cycles + 2):
        journal.append([add(key, body(key, size))])
        if key - window >= 2:
            journal.append([remove(key - window)])
        if key % 100 == 0:
            fut = journal.durable()
            assert fut is not None
            await fut
            seen.append(journal.stats().disk_bytes)
    return seen


async def test_one_unconsumed_message_does_not_pin_the_disk(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=SEGMENT)
    seen = await produce_consume(j, 20_000)
    stats = j.stats()
    assert stats.entries_written >= 40_000
    assert max(seen) <= 5 * SEGMENT, f"disk grew to {max(seen)} bytes"
    assert stats.segments <= 5
    assert stats.segments_deleted > 200 and stats.compactions > 10
    assert j.read(1) == b"the one old message"
    await j.close()
    r = await recover_only(io=cio, segment_size=SEGMENT)
    assert r.entries[1] == b"the one old message"
    assert len(r.entries) == 1 + 20
    assert len(cio.listdir(JDIR)) == r.segments <= 5


async def test_without_compaction_the_old_message_pins_every_segment(cio: CrashFileIO) -> None:
    # The KahaDB complaint, reproduced with compaction switched off.
    j, _ = await open_journal(io=cio, segment_size=SEGMENT, compact_min_dead_ratio=1.0)
    seen = await produce_consume(j, 3_000)
    stats = j.stats()
    await j.close()
    assert stats.compactions == 0
    # Segment 1 keeps the old message; each later segment holds the tombstones of
    # messages in the one before it, so the whole chain is pinned.
    assert stats.segments_deleted == 0
    assert seen[-1] > 10 * SEGMENT


async def test_bounded_on_a_real_disk(tmp_path: os.PathLike[str]) -> None:
    directory = os.path.join(tmp_path, "journal")
    j, _ = await open_journal(directory, segment_size=SEGMENT)
    seen = await produce_consume(j, 3_000)
    assert max(seen) <= 5 * SEGMENT
    await j.close()
    assert len(os.listdir(directory)) <= 5
    r = await recover_only(directory)
    assert r.entries[1] == b"the one old message" and len(r.entries) == 21


async def test_a_big_sparse_segment_is_compacted_in_bounded_steps(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=64 * 1024, compact_step_bytes=2048)
    keys = range(1, 301)
    for key in keys:
        j.append([add(key, body(key, 150))])
    j.append([add(1000, b"x" * 70_000)])  # seals the first segment, then a segment of its own
    j.append([remove(k) for k in keys if k % 3])  # a third of the first segment stays live
    await j.compact()
    stats = j.stats()
    # 100 survivors of 163 bytes, at most 2048 bytes per step.
    assert stats.compactions >= 100 * 163 // 2048
    assert "00000000000000000001.seg" not in cio.listdir(JDIR)
    for key in keys:
        if key % 3 == 0:
            assert j.read(key) == body(key, 150)
    await j.close()
    r = await recover_only(io=cio)
    assert set(r.entries) == {k for k in keys if k % 3 == 0} | {1000}


async def test_forced_compaction_rewrites_dense_segments_too(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=4096)
    for key in range(1, 60):
        j.append([add(key, body(key, 100))])
    await flushed(j)
    before = cio.listdir(JDIR)
    await j.compact(force=True)
    after = cio.listdir(JDIR)
    assert not set(before[:-1]) & set(after)  # every sealed segment was rewritten
    assert all(j.read(k) == body(k, 100) for k in range(1, 60))
    await j.close()
    assert (await recover_only(io=cio)).entries == {k: body(k, 100) for k in range(1, 60)}


async def test_tombstones_survive_until_what_they_cancel_is_gone(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=4096)
    for key in range(1, 25):  # segment 1: keys 1..24
        j.append([add(key, body(key, 150))])
    j.append([add(100, b"y" * 3000)])  # rolls over
    j.append([remove(k) for k in range(2, 25)])  # tombstones in segment 2 for segment 1
    await flushed(j)
    # Segment 1 still holds key 1, so segment 2's tombstones must stay; after the
    # compaction moves key 1 forward both go, and nothing comes back.
    await j.compact()
    await j.close()
    r = await recover_only(io=cio)
    assert set(r.entries) == {1, 100}


async def test_failure_between_compaction_and_deletion(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=4096)
    for key in range(1, 25):
        j.append([add(key, body(key, 150))])
    j.append([add(100, b"y" * 3000)])
    await flushed(j)
    # The unlink of the compacted segment fails: the copy of key 1 is written and
    # synced, the old segment is still there. Recovery sees both copies.
    cio.inject_error("remove")
    j.append([remove(k) for k in range(2, 25)])
    await flushed(j)
    with pytest.raises(JournalError, match="injected"):
        await j.compact()
    await j.close()
    assert len(cio.listdir(JDIR)) == 2  # the compacted segment and the head
    j, r = await open_journal(io=cio, segment_size=4096)
    assert r.entries == {1: body(1, 150), 100: b"y" * 3000}
    await j.compact()  # and now the leftovers go
    assert j.stats().segments == 1
    await j.close()
    assert (await recover_only(io=cio)).entries == r.entries


async def test_deleted_segments_leave_the_directory(tmp_path: os.PathLike[str]) -> None:
    directory = os.path.join(tmp_path, "journal")
    io: FileIO = OsFileIO()
    j, _ = await open_journal(directory, io=io, segment_size=4096)
    for key in range(1, 200):
        j.append([add(key, body(key, 100))])
        j.append([remove(key)])
    await j.compact()
    stats = j.stats()
    await j.close()
    names = os.listdir(directory)
    assert stats.segments == len(names) <= 2
    assert stats.disk_bytes == sum(os.stat(os.path.join(directory, n)).st_size for n in names)
