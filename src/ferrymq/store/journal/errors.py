"""The two ways the journal fails: it could not do I/O, or it found bad data on disk."""

from __future__ import annotations

__all__ = ["JournalCorruption", "JournalError"]


class JournalError(Exception):
    """The journal cannot go on: an I/O call failed, or it was used after failing or closing.

    Once the writer has hit an I/O error the journal is fenced: every pending
    `durable()` future and every later `append` raises this, because what is on
    disk after a failed write or fsync is unknown (an fsync error may have
    dropped dirty pages; retrying it would claim durability that is not there).
    """


class JournalCorruption(Exception):
    """Recovery found damaged data that is not a torn tail.

    The message names the segment file, the byte offset and what is wrong, so
    an operator can inspect it before choosing `skip_corrupt`.
    """
