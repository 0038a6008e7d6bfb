"""The journal's API: round trips, atomic batches, group commit, rollover, read, stats, errors."""

from __future__ import annotations

import asyncio
import os

import pytest

from ferrymq.store.journal import (
    Entry,
    EntryKind,
    Journal,
    JournalError,
    SyncPolicy,
)
from ferrymq.testing.crashfs import CrashFileIO

from .conftest import JDIR, add, body, flushed, open_journal, recover_only, remove, wait_for


async def test_round_trip_on_a_real_disk(tmp_path: os.PathLike[str]) -> None:
    directory = os.path.join(tmp_path, "journal")
    j, r = await open_journal(directory)
    assert (r.entries, r.next_key, r.truncated_bytes, r.skipped, r.segments) == ({}, 1, 0, [], 1)
    j.append([add(1, b"one")])
    j.append([add(2, b"two"), add(3, b"three")])
    j.append([remove(2)])
    fut = j.durable()
    assert fut is not None
    await fut
    assert j.durable() is None
    await j.close()
    assert os.listdir(directory) == ["00000000000000000001.seg"]
    r = await recover_only(directory)
    assert r.entries == {1: b"one", 3: b"three"}
    assert list(r.entries) == [1, 3]
    assert r.next_key == 4


async def test_entries_come_back_in_key_order(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    for key in (30, 10, 20):
        j.append([add(key, body(key))])
    await j.close()
    r = await recover_only(io=cio)
    assert list(r.entries) == [10, 20, 30]
    assert r.entries[20] == body(20)


async def test_an_append_is_atomic_across_a_crash(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"a")])
    await flushed(j)
    # Lose power in the middle of the write of the next batch (part of it may land).
    cio.crash_after(0)
    j.append([add(2, b"b" * 500), remove(1), add(3, b"c" * 500)])
    with pytest.raises(JournalError):
        await flushed(j)
    await j.close()
    cio.reboot()
    r = await recover_only(io=cio)
    assert r.entries == {1: b"a"}


@pytest.mark.parametrize("seed", range(20))
async def test_a_batch_survives_whole_or_not_at_all(seed: int) -> None:
    cio = CrashFileIO(seed)
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"a")])
    await flushed(j)
    j.append([add(k, body(k, 300)) for k in range(2, 12)] + [remove(1)])
    cio.crash()  # whatever the writer had done by now, synced or not
    with pytest.raises(JournalError):
        await j.close()
    cio.reboot()
    r = await recover_only(io=cio)
    assert r.entries in ({1: b"a"}, {k: body(k, 300) for k in range(2, 12)})


async def test_remove_in_a_later_batch_and_next_key(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(5, b"x")])
    j.append([add(7, b"y")])
    await flushed(j)
    j.append([remove(7)])
    await j.close()
    r = await recover_only(io=cio)
    assert r.entries == {5: b"x"}
    assert r.next_key == 8


async def test_add_and_remove_in_one_batch(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"a"), remove(1), add(2, b"b")])
    with pytest.raises(KeyError):
        j.read(1)
    assert j.read(2) == b"b"
    await j.close()
    assert (await recover_only(io=cio)).entries == {2: b"b"}


async def test_append_validates_the_whole_call_first(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"a")])
    with pytest.raises(ValueError, match="already live"):
        j.append([add(2, b"b"), add(1, b"again")])
    with pytest.raises(KeyError):
        j.append([remove(1), remove(3)])
    with pytest.raises(ValueError, match="key"):
        j.append([add(0, b"")])
    with pytest.raises(ValueError, match="empty payload"):
        j.append([Entry(EntryKind.REMOVE, 1, b"x")])
    with pytest.raises(TypeError):
        j.append([Entry(EntryKind.ADD, 9, bytearray(b"x"))])  # type: ignore[arg-type]
    j.append([])  # nothing to do
    # None of the refused calls changed anything.
    assert j.read(1) == b"a"
    with pytest.raises(KeyError):
        j.read(2)
    await j.close()
    assert (await recover_only(io=cio)).entries == {1: b"a"}


async def test_next_key_survives_deleting_every_segment_that_used_the_keys(
    cio: CrashFileIO,
) -> None:
    j, _ = await open_journal(io=cio, segment_size=4096)
    for key in range(100, 130):
        j.append([add(key, body(key, 60))])
    j.append([remove(key) for key in range(100, 130)])
    # A big ADD with a small key rolls over; the first segment then holds nothing live.
    j.append([add(1, b"z" * 3000)])
    await flushed(j)
    await j.compact()
    await j.close()
    assert cio.listdir(JDIR) == ["00000000000000000032.seg"]
    r = await recover_only(io=cio)
    assert r.entries == {1: b"z" * 3000}
    assert r.next_key == 130  # from the surviving segment's header, not its frames


async def test_segments_roll_over_and_recover_in_order(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=4096)
    for key in range(1, 301):
        j.append([add(key, body(key, 100))])
        if key % 7 == 0:
            await flushed(j)
    await j.close()
    names = cio.listdir(JDIR)
    assert len(names) > 5
    for name in names:
        assert len(cio.get_bytes(f"{JDIR}/{name}")) <= 4096
    r = await recover_only(io=cio)
    assert r.entries == {k: body(k, 100) for k in range(1, 301)}
    assert r.segments == len(names)


async def test_a_batch_larger_than_a_segment_gets_its_own(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=4096)
    j.append([add(1, b"small")])
    j.append([add(2, b"B" * 10_000), add(3, b"C" * 5_000)])
    j.append([add(4, b"after")])
    await j.close()
    sizes = [len(cio.get_bytes(f"{JDIR}/{n}")) for n in cio.listdir(JDIR)]
    assert len(sizes) == 3 and sizes[1] > 15_000 and sizes[0] < 100 and sizes[2] < 100
    r = await recover_only(io=cio)
    assert r.entries == {1: b"small", 2: b"B" * 10_000, 3: b"C" * 5_000, 4: b"after"}


async def test_read_from_buffer_then_disk_then_after_compaction(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, segment_size=4096)
    j.append([add(1, body(1, 500))])
    assert j.read(1) == body(1, 500)  # still buffered
    await flushed(j)
    assert j.read(1) == body(1, 500)  # from the file
    for key in range(2, 40):
        j.append([add(key, body(key, 200))])
        j.append([remove(key)])
    await j.compact(force=True)
    assert j.stats().compactions >= 1
    assert j.read(1) == body(1, 500)  # moved into a newer segment
    j.append([remove(1)])
    with pytest.raises(KeyError):
        j.read(1)
    await j.close()
    with pytest.raises(KeyError):
        j.read(1)


async def test_read_recovered_entries_without_starting(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(3, b"three")])
    await j.close()
    j2 = Journal(JDIR, io=cio)
    j2.recover()
    assert j2.read(3) == b"three"
    await j2.close()
    with pytest.raises(JournalError, match="closed"):
        j2.read(3)


async def test_stats(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"x" * 100), add(2, b"y" * 50)])
    j.append([add(3, b"z")])
    await flushed(j)
    j.append([remove(2)])
    await flushed(j)
    s = j.stats()
    assert (s.segments, s.live_entries, s.live_bytes) == (1, 2, 13 + 100 + 13 + 1)
    assert (s.batches_written, s.entries_written) == (3, 4)
    assert s.disk_bytes == len(cio.get_bytes(f"{JDIR}/00000000000000000001.seg"))
    assert s.fsyncs == 2 and s.writes == 2  # two groups: one write and one fsync each
    assert (s.compactions, s.segments_deleted) == (0, 0)
    await j.close()


async def test_durable_futures(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    assert j.durable() is None
    j.append([add(1, b"a")])
    first = j.durable()
    assert first is not None
    j.append([add(2, b"b")])
    assert j.durable() is first  # same loop turn: same future
    await asyncio.sleep(0)  # the turn ends: the group goes to the writer
    j.append([add(3, b"c")])
    second = j.durable()
    assert second is not None and second is not first
    order: list[str] = []
    first.add_done_callback(lambda _: order.append("first"))
    second.add_done_callback(lambda _: order.append("second"))
    await second
    await asyncio.sleep(0)
    assert order == ["first", "second"]
    assert j.durable() is None
    await j.close()


async def test_group_commit_shares_fsyncs(tmp_path: os.PathLike[str]) -> None:
    j, _ = await open_journal(os.path.join(tmp_path, "j"))
    next_key = iter(range(1, 1_000_000))

    async def producer() -> None:
        for _ in range(20):
            j.append([add(next(next_key), b"m" * 1024)])
            fut = j.durable()
            assert fut is not None
            await fut

    await asyncio.gather(*(producer() for _ in range(50)))
    s = j.stats()
    await j.close()
    assert s.entries_written == 1000
    assert s.fsyncs <= 1000 / 5  # 50 producers: many entries per fsync


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("always", SyncPolicy("always")),
        ("never", SyncPolicy("never")),
        ("interval:25", SyncPolicy("interval", 25)),
        (" Interval:1000 ", SyncPolicy("interval", 1000)),
    ],
)
def test_sync_policy_parse(text: str, policy: SyncPolicy) -> None:
    assert SyncPolicy.parse(text) == policy
    assert SyncPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize(
    "text", ["", "sometimes", "interval:", "interval:0", "interval:-5", "interval:1.5"]
)
def test_sync_policy_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="sync policy"):
        SyncPolicy.parse(text)


async def test_always_is_synced_when_the_future_resolves(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, sync=SyncPolicy.parse("always"))
    j.append([add(1, b"a" * 100)])
    await flushed(j)
    assert cio.unsynced_bytes() == 0
    cio.crash("lose")
    await j.close()  # nothing left to write: the crash goes unnoticed
    cio.reboot()
    assert (await recover_only(io=cio)).entries == {1: b"a" * 100}


async def test_never_resolves_after_the_write_and_syncs_at_close(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, sync=SyncPolicy.parse("never"))
    fsyncs = j.stats().fsyncs
    j.append([add(1, b"a" * 100)])
    await flushed(j)
    assert cio.unsynced_bytes() > 0 and j.stats().fsyncs == fsyncs
    await j.close()
    assert cio.unsynced_bytes() == 0


async def test_never_loses_unsynced_data_on_power_loss(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, sync=SyncPolicy.parse("never"))
    j.append([add(1, b"a")])
    await flushed(j)
    cio.crash("lose")
    with pytest.raises(JournalError):
        await j.close()
    cio.reboot()
    assert (await recover_only(io=cio)).entries == {}


async def test_interval_syncs_on_a_timer(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, sync=SyncPolicy.parse("interval:20"))
    j.append([add(1, b"a" * 100)])
    await flushed(j)
    await wait_for(lambda: cio.unsynced_bytes() == 0)
    assert j.stats().fsyncs >= 1
    await j.close()


async def test_io_error_fails_the_future_and_fences_the_journal(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    j.append([add(1, b"a")])
    await flushed(j)
    cio.inject_error("fsync")
    j.append([add(2, b"b")])
    fut = j.durable()
    assert fut is not None
    with pytest.raises(JournalError, match="injected"):
        await fut
    with pytest.raises(JournalError, match="failed"):
        j.append([add(3, b"c")])
    late = j.durable()
    assert late is not None
    with pytest.raises(JournalError):
        await late
    await j.close()  # the error was already reported: close does not raise it again
    with pytest.raises(JournalError):
        j.append([add(4, b"d")])


async def test_write_error_fails_every_pending_future(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio)
    cio.inject_error("append")
    j.append([add(1, b"a")])
    first = j.durable()
    await asyncio.sleep(0)
    j.append([add(2, b"b")])
    second = j.durable()
    assert first is not None and second is not None
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, JournalError) for r in results)
    await j.close()


async def test_error_during_close_is_raised(cio: CrashFileIO) -> None:
    j, _ = await open_journal(io=cio, sync=SyncPolicy.parse("never"))
    j.append([add(1, b"a")])
    await flushed(j)
    cio.inject_error("fsync")
    with pytest.raises(JournalError):
        await j.close()


async def test_lifecycle_misuse() -> None:
    cio = CrashFileIO()
    j = Journal(JDIR, io=cio)
    with pytest.raises(RuntimeError):
        j.append([add(1, b"")])
    with pytest.raises(RuntimeError):
        await j.start()
    j.recover()
    await j.start()
    with pytest.raises(RuntimeError):
        j.recover()
    await j.close()
    await j.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        j.append([add(1, b"")])
    with pytest.raises(ValueError):
        Journal(JDIR, segment_size=100)
    with pytest.raises(ValueError):
        Journal(JDIR, compact_min_dead_ratio=1.5)


async def test_recovery_error_is_a_journal_error(cio: CrashFileIO) -> None:
    cio.inject_error("listdir")
    with pytest.raises(JournalError, match="recovery failed"):
        Journal(JDIR, io=cio).recover()
