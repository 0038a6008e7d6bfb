"""Measure the journal: ``python -m ferrymq.store.journal._bench [DIR] [--seconds S]``.

Prints the disk's raw ceiling (one write + one fsync at a time) and the
journal's throughput with N concurrent appenders on one event loop, each
appending one ADD and awaiting ``durable()`` before the next (a producer
waiting for its receipt), then acknowledging it with a REMOVE later.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time

from ferrymq.store.journal import Entry, EntryKind, Journal, SyncPolicy

_fdatasync = getattr(os, "fdatasync", os.fsync)


def raw_fsync_rate(directory: str, seconds: float, size: int = 1024) -> float:
    path = os.path.join(directory, "raw.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = b"x" * size
    n = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            os.write(fd, buf)
            _fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        os.remove(path)
    return n / (time.perf_counter() - start)


async def journal_rate(
    directory: str, seconds: float, producers: int, sync: str, size: int = 1024
) -> dict[str, float]:
    journal = Journal(directory, sync=SyncPolicy.parse(sync), segment_size=8 * 1024 * 1024)
    journal.recover()
    await journal.start()
    payload = b"m" * size
    next_key = 1
    done = 0
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def producer() -> None:
        nonlocal next_key, done
        pending: list[int] = []
        while time.perf_counter() < stop:
            key = next_key
            next_key += 1
            entries = [Entry(EntryKind.ADD, key, payload)]
            if len(pending) > 10:  # ack an older message: the journal also reclaims space
                entries.append(Entry(EntryKind.REMOVE, pending.pop(0)))
            t0 = time.perf_counter()
            journal.append(entries)
            fut = journal.durable()
            if fut is not None:
                await fut
            latencies.append(time.perf_counter() - t0)
            pending.append(key)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(producers)))
    elapsed = time.perf_counter() - start
    stats = journal.stats()
    await journal.close()
    latencies.sort()
    return {
        "entries/s": done / elapsed,
        "fsyncs/s": stats.fsyncs / elapsed,
        "entries/fsync": done / max(stats.fsyncs, 1),
        "p50 ms": 1000 * statistics.median(latencies),
        "p99 ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "segments deleted": stats.segments_deleted,
        "compactions": stats.compactions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", help="where to write (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="journal-bench-", dir=args.directory)
    try:
        print(f"directory: {base}")
        print(f"raw 1 KiB write+fdatasync: {raw_fsync_rate(base, args.seconds):,.0f}/s")
        for sync, producers in (("always", 1), ("always", 50), ("always", 200), ("never", 50)):
            sub = os.path.join(base, f"{sync}-{producers}")
            result = asyncio.run(journal_rate(sub, args.seconds, producers, sync))
            shown = ", ".join(f"{k} {v:,.1f}" for k, v in result.items())
            print(f"sync={sync:6} producers={producers:3}: {shown}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
