"""The embedded append-only journal: segmented, CRC-framed, group-committed, compacting.

Layout and the atomic-commit and recovery steps are described in
docs/durability.md; the byte layout lives in ``record.py``.
"""

from ferrymq.store.journal._fileio import FileIO, OpenMode, OsFileIO
from ferrymq.store.journal.errors import JournalCorruption, JournalError
from ferrymq.store.journal.journal import Journal, JournalStats
from ferrymq.store.journal.policy import SyncPolicy
from ferrymq.store.journal.record import Entry, EntryKind
from ferrymq.store.journal.recovery import RecoveryResult

__all__ = [
    "Entry",
    "EntryKind",
    "FileIO",
    "Journal",
    "JournalCorruption",
    "JournalError",
    "JournalStats",
    "OpenMode",
    "OsFileIO",
    "RecoveryResult",
    "SyncPolicy",
]
