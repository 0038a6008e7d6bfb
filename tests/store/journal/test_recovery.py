"""Recovery from torn writes and corruption, byte by byte, on a real and a simulated disk."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ferrymq.store.journal import FileIO, JournalCorruption, OsFileIO
from ferrymq.store.journal.record import SEGMENT_HEADER, encode_header
from ferrymq.testing.crashfs import CrashFileIO

from .conftest import add, body, flushed, open_journal, recover_only, remove


@dataclass
class Disk:
    """A journal directory on some FileIO, with raw access to its files."""

    io: FileIO
    directory: str

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def names(self) -> list[str]:
        return sorted(n for n in self.io.listdir(self.directory) if n.endswith(".seg"))

    def get(self, name: str) -> bytes:
        if isinstance(self.io, CrashFileIO):
            return self.io.get_bytes(self.path(name))
        with open(self.path(name), "rb") as f:
            return f.read()

    def put(self, name: str, data: bytes) -> None:
        if isinstance(self.io, CrashFileIO):
            self.io.set_bytes(self.path(name), data)
        else:
            with open(self.path(name), "wb") as f:
                f.write(data)


@pytest.fixture(params=["memory", "disk"])
def disk(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Disk]:
    if request.param == "memory":
        yield Disk(CrashFileIO(), "/data/journal")
    else:
        yield Disk(OsFileIO(), os.path.join(tmp_path, "journal"))


EARLIER = {1: body(1), 3: body(3, 90)}


async def write_then_last_record(disk: Disk) -> tuple[str, bytes, int]:
    """Earlier records, then a multi-entry last record; return (segment, bytes, its offset)."""
    j, _ = await open_journal(disk.directory, io=disk.io)
    j.append([add(1, body(1))])
    j.append([add(2, body(2)), add(3, body(3, 90))])
    j.append([remove(2)])
    await flushed(j)
    start = j.stats().disk_bytes
    j.append([add(4, body(4, 30)), remove(1), add(5, b"")])
    await j.close()
    (name,) = disk.names()
    return name, disk.get(name), start


async def check_recovers_earlier_and_accepts_appends(
    disk: Disk, name: str, start: int, truncated: int
) -> None:
    j, r = await open_journal(disk.directory, io=disk.io)
    assert r.entries == EARLIER
    assert r.truncated_bytes == truncated
    assert len(disk.get(name)) == start
    j.append([add(9, b"after the tear")])
    await j.close()
    r = await recover_only(disk.directory, io=disk.io)
    assert r.entries == {**EARLIER, 9: b"after the tear"}
    assert r.truncated_bytes == 0


async def test_truncated_at_every_byte_of_the_last_record(disk: Disk) -> None:
    name, data, start = await write_then_last_record(disk)
    for cut in range(start, len(data)):
        disk.put(name, data[:cut])
        await check_recovers_earlier_and_accepts_appends(disk, name, start, cut - start)


async def test_a_flipped_byte_anywhere_in_the_last_record(disk: Disk) -> None:
    name, data, start = await write_then_last_record(disk)
    for at in range(start, len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0xFF
        disk.put(name, bytes(damaged))
        await check_recovers_earlier_and_accepts_appends(disk, name, start, len(data) - start)


async def test_the_torn_tail_is_logged_with_file_and_offset(
    disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    name, data, start = await write_then_last_record(disk)
    disk.put(name, data[:-3])
    with caplog.at_level(logging.WARNING, logger="ferrymq.store.journal"):
        r = await recover_only(disk.directory, io=disk.io)
    assert r.truncated_bytes == len(data) - 3 - start
    (record,) = caplog.records
    assert name in record.getMessage() and f"offset {start}" in record.getMessage()


@pytest.mark.parametrize("tail", [bytes(100), b"\xff" * 7, os.urandom(5000)])
async def test_zeros_or_garbage_after_the_last_record(disk: Disk, tail: bytes) -> None:
    name, data, _ = await write_then_last_record(disk)
    disk.put(name, data + tail)
    r = await recover_only(disk.directory, io=disk.io)
    assert r.truncated_bytes == len(tail)
    assert len(disk.get(name)) == len(data)
    assert 4 in r.entries


async def test_a_replayed_old_frame_at_the_tail_is_not_applied(disk: Disk) -> None:
    # A stale but CRC-valid frame (as a crash could expose from a reused block)
    # has the wrong sequence number: it is a torn tail, not data.
    name, data, _ = await write_then_last_record(disk)
    first_frame = data[SEGMENT_HEADER : SEGMENT_HEADER + 8 + 1 + 12 + 13 + len(body(1))]
    disk.put(name, data + first_frame)
    r = await recover_only(disk.directory, io=disk.io)
    assert r.truncated_bytes == len(first_frame)
    assert 1 not in r.entries  # the last record's REMOVE 1 still wins


async def middle_record(disk: Disk) -> tuple[str, bytes, int, int]:
    j, _ = await open_journal(disk.directory, io=disk.io)
    j.append([add(1, body(1))])
    await flushed(j)
    start = j.stats().disk_bytes
    j.append([add(2, body(2, 200))])
    await flushed(j)
    end = j.stats().disk_bytes
    j.append([add(3, body(3))])
    await j.close()
    (name,) = disk.names()
    return name, disk.get(name), start, end


async def test_corruption_followed_by_valid_data_raises(disk: Disk) -> None:
    name, data, start, end = await middle_record(disk)
    for at in (start, start + 4, start + 30, end - 1):
        damaged = bytearray(data)
        damaged[at] ^= 0x01
        disk.put(name, bytes(damaged))
        with pytest.raises(JournalCorruption) as info:
            await recover_only(disk.directory, io=disk.io)
        message = str(info.value)
        assert disk.path(name) in message and f"offset {start}" in message
        assert f"valid data follows at offset {end}" in message
        assert disk.get(name) == bytes(damaged)  # nothing was truncated


async def test_skip_corrupt_keeps_what_follows_and_reports_it(disk: Disk) -> None:
    name, data, start, end = await middle_record(disk)
    damaged = bytearray(data)
    damaged[start + 40] ^= 0x10
    disk.put(name, bytes(damaged))
    j, r = await open_journal(disk.directory, io=disk.io, skip_corrupt=True)
    assert r.entries == {1: body(1), 3: body(3)}
    (skipped,) = r.skipped
    assert disk.path(name) in skipped and f"bytes {start}..{end}" in skipped
    assert r.truncated_bytes == 0
    j.append([add(4, b"more")])
    await j.compact()  # the damaged segment was sealed: its survivors move, it goes
    await j.close()
    assert name not in disk.names()
    r = await recover_only(disk.directory, io=disk.io)
    assert r.entries == {1: body(1), 3: body(3), 4: b"more"}


async def sealed_segments(disk: Disk) -> list[str]:
    j, _ = await open_journal(disk.directory, io=disk.io, segment_size=4096)
    for key in range(1, 61):
        j.append([add(key, body(key, 200))])
    await j.close()
    names = disk.names()
    assert len(names) >= 3
    return names


async def test_damage_at_the_end_of_a_sealed_segment_raises(disk: Disk) -> None:
    names = await sealed_segments(disk)
    data = disk.get(names[0])
    disk.put(names[0], data[:-1])
    with pytest.raises(JournalCorruption, match="sealed segment") as info:
        await recover_only(disk.directory, io=disk.io)
    assert disk.path(names[0]) in str(info.value)


async def test_skipped_damage_in_a_sealed_segment_is_compacted_away(disk: Disk) -> None:
    names = await sealed_segments(disk)
    data = bytearray(disk.get(names[1]))
    data[SEGMENT_HEADER + 50] ^= 0x55  # the first frame of the second segment
    disk.put(names[1], bytes(data))
    with pytest.raises(JournalCorruption):
        await recover_only(disk.directory, io=disk.io)
    j, r = await open_journal(disk.directory, io=disk.io, skip_corrupt=True, segment_size=4096)
    assert len(r.skipped) == 1 and names[1] in r.skipped[0]
    lost = set(range(1, 61)) - set(r.entries)
    assert len(lost) == 1
    await j.compact()  # rewrites the damaged segment's survivors and deletes it
    await j.close()
    assert names[1] not in disk.names()
    r2 = await recover_only(disk.directory, io=disk.io)
    assert r2.entries == r.entries and r2.skipped == []


async def test_a_torn_segment_header_of_the_last_file_is_removed(disk: Disk) -> None:
    _, _, _ = await write_then_last_record(disk)
    torn = "00000000000000000099.seg"
    disk.put(torn, encode_header(99, 10)[:20])
    r = await recover_only(disk.directory, io=disk.io)
    assert r.truncated_bytes == 20 and r.segments == 1 and torn not in disk.names()
    assert 4 in r.entries


async def test_bad_headers_elsewhere_are_corruption(disk: Disk) -> None:
    name, data, _ = await write_then_last_record(disk)
    disk.put("00000000000000000000.seg", encode_header(0, 1)[:20])  # not the last file
    with pytest.raises(JournalCorruption, match="offset 0: incomplete segment header"):
        await recover_only(disk.directory, io=disk.io)
    disk.io.remove(disk.path("00000000000000000000.seg"))
    disk.put(name, encode_header(7, 1) + data[SEGMENT_HEADER:])
    with pytest.raises(JournalCorruption, match="header says first sequence 7"):
        await recover_only(disk.directory, io=disk.io)
    damaged = bytearray(data)
    damaged[10] ^= 1
    disk.put(name, bytes(damaged))
    with pytest.raises(JournalCorruption, match="header CRC"):
        await recover_only(disk.directory, io=disk.io)
    r = await recover_only(disk.directory, io=disk.io, skip_corrupt=True)
    assert "header ignored" in r.skipped[0] and 4 in r.entries


async def test_other_files_in_the_directory_are_ignored(disk: Disk) -> None:
    await write_then_last_record(disk)
    disk.put("README", b"not a segment")
    disk.put("1.seg", b"not one either")
    r = await recover_only(disk.directory, io=disk.io)
    assert r.segments == 1 and 4 in r.entries
