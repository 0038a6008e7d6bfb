"""The broker's tables in PostgreSQL, created and migrated by the broker.

`ferrymq_migrations` lists every migration applied (version, when). A broker
applies the ones it knows that are missing, in order, each in its own
transaction under a transaction-level advisory lock (two brokers starting at
once do not both migrate), and refuses a database migrated by a newer broker.

Tables (version 1):

    ferrymq_lock      one row: the HA lease (holder, epoch = fencing token,
                      expires_at by the database's clock) and write_seq, the
                      number of the master's last committed write transaction
                      (how a writer whose connection broke during COMMIT learns
                      whether it committed)
    ferrymq_queues    queues and durable subscriptions (topic_pattern set)
    ferrymq_messages  one row per stored message copy: key = its store_key,
                      payload = `ferrymq.store.codec.encode_message`
    ferrymq_ids       the id window (dedup-ids, committed transaction ids),
                      oldest first by key
    ferrymq_marks     per queue, the highest message key handed to a consumer
                      (messages at or below it come back redelivered)

Keys are one counter for messages, ids and marks: a new master starts above
the highest key any table holds.
"""

from __future__ import annotations

import re

import psycopg

from ferrymq.errors import FerrymqError

__all__ = ["ADVISORY_KEY", "MIGRATIONS", "SchemaError", "migrate", "redact"]

# pg_advisory_lock(ADVISORY_KEY, epoch) is held by the session of the master
# of that epoch ("ferr" as int32): free means that master's session is gone.
ADVISORY_KEY = 0x6665_7272
# Taken (transaction-level) while migrating ("ferrymq!" as int64).
_MIGRATE_KEY = 0x6665_7272_796D_7121

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE ferrymq_lock (
        id int PRIMARY KEY CHECK (id = 1),
        holder text,
        epoch bigint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT 'epoch',
        write_seq bigint NOT NULL DEFAULT 0
    );
    INSERT INTO ferrymq_lock (id) VALUES (1);
    CREATE TABLE ferrymq_queues (
        name text PRIMARY KEY,
        topic_pattern text
    );
    CREATE TABLE ferrymq_messages (
        key bigint PRIMARY KEY,
        queue text NOT NULL,
        payload bytea NOT NULL
    );
    CREATE INDEX ferrymq_messages_queue ON ferrymq_messages (queue, key);
    CREATE TABLE ferrymq_ids (
        key bigint PRIMARY KEY,
        scope text NOT NULL,
        ident text NOT NULL
    );
    CREATE TABLE ferrymq_marks (
        queue text PRIMARY KEY,
        key bigint NOT NULL
    );
    """,
]


class SchemaError(FerrymqError):
    """The database holds a schema this broker cannot use."""


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact(url: str) -> str:
    """The URL for logs and errors: a password in it replaced by ***."""
    url = _PASSWORD.sub(r"\1***@", url)
    return re.sub(r"(password=)\S+", r"\1***", url)


async def migrate(conn: psycopg.AsyncConnection[object]) -> int:
    """Bring the schema up to date; returns its version. Autocommit connection."""
    known = len(MIGRATIONS)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_KEY,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ferrymq_migrations ("
            " version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM ferrymq_migrations")
        row = await cur.fetchone()
        current = int(row[0]) if row else 0  # type: ignore[index]
        if current > known:
            raise SchemaError(
                f"the database schema is version {current}, newer than this broker "
                f"knows ({known}): upgrade ferrymq"
            )
        for version in range(current + 1, known + 1):
            await conn.execute(MIGRATIONS[version - 1].encode())
            await conn.execute("INSERT INTO ferrymq_migrations (version) VALUES (%s)", (version,))
    return known
