"""Helpers for the journal tests: entries, opening journals on a real or crashing disk."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from ferrymq.store.journal import Entry, EntryKind, FileIO, Journal, RecoveryResult
from ferrymq.testing.crashfs import CrashFileIO

JDIR = "/data/journal"


def add(key: int, payload: bytes = b"") -> Entry:
    return Entry(EntryKind.ADD, key, payload)


def remove(key: int) -> Entry:
    return Entry(EntryKind.REMOVE, key)


def body(key: int, size: int = 40) -> bytes:
    """A payload that differs per key (so a mixed-up read shows)."""
    return (f"<{key}>".encode() * (size // 3 + 1))[:size]


async def open_journal(
    directory: str = JDIR, *, io: FileIO | None = None, skip_corrupt: bool = False, **kw: Any
) -> tuple[Journal, RecoveryResult]:
    journal = Journal(directory, io=io, **kw)
    result = journal.recover(skip_corrupt=skip_corrupt)
    await journal.start()
    return journal, result


async def recover_only(
    directory: str = JDIR, *, io: FileIO | None = None, skip_corrupt: bool = False, **kw: Any
) -> RecoveryResult:
    """Recover and release the files without starting a writer."""
    journal = Journal(directory, io=io, **kw)
    try:
        return journal.recover(skip_corrupt=skip_corrupt)
    finally:
        await journal.close()


async def wait_for(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll a condition the writer thread makes true (a timer, not an event we can await)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.002)


@pytest.fixture
def cio() -> CrashFileIO:
    return CrashFileIO(seed=1)


async def flushed(journal: Journal) -> None:
    """Wait until everything appended so far is durable."""
    fut = journal.durable()
    if fut is not None:
        await fut
