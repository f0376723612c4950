"""Serialises schema creation between processes starting at once on one database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from infrastructure.connections import connect_kwargs
from infrastructure.settings import Settings

# Any constant both processes agree on; the value itself means nothing.
SCHEMA_LOCK_KEY = 0x6132615F676F616C


@contextmanager
def schema_lock(settings: Settings) -> Iterator[None]:
    """On PostgreSQL, hold an advisory lock while tables are created: concurrent
    CREATE TABLE IF NOT EXISTS races on the catalogue. SQLite needs nothing."""
    if not settings.is_postgres:
        yield
        return
    with psycopg.connect(settings.database_url, autocommit=True, **connect_kwargs()) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
