"""A private PostgreSQL for the whole session (initdb in a temp dir, a free
port), and a fresh database per test. Skipped, saying why, only when
PostgreSQL cannot be had at all (.ci/run installs Debian's package)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ferrymq.testing.postgres import PostgresCluster, unavailable_reason


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"no private PostgreSQL: {reason}")
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    return pg_cluster.create_database()
