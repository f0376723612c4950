"""The tables of event_facts: their DDL, the monthly partitions on PostgreSQL, and the
migrations that bring a store written by an earlier version up to date.

On PostgreSQL the table is partitioned by month of `at`: a page creates the partitions of
the months it touches before it inserts, so the DEFAULT partition only catches what was not
anticipated. Should the default hold rows of a month whose partition does not exist yet,
they are moved into the new partition in the same transaction.
"""

from __future__ import annotations

import json
from datetime import datetime

from application.ports import Tx
from projections import event_facts_hourly as hourly
from projections.instants import sqlite_instant

COLUMNS = (
    "position, at, tenant, agent_id, type, version, actor, request_id, payload, overall, value, observed_at"
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS event_facts_by_type ON event_facts (tenant, type, at)",
    # an agent's facts over time (per-agent buckets, the version at an instant)
    "CREATE INDEX IF NOT EXISTS event_facts_by_agent ON event_facts (tenant, agent_id, at)",
    # an agent's timeline in log order (the history's pages)
    "CREATE INDEX IF NOT EXISTS event_facts_timeline ON event_facts (tenant, agent_id, position)",
)
SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS event_facts ("
    " position BIGINT PRIMARY KEY, at TEXT NOT NULL, tenant TEXT NOT NULL, agent_id TEXT NOT NULL,"
    " type TEXT NOT NULL, version INTEGER NOT NULL, actor TEXT NOT NULL,"
    " request_id TEXT NOT NULL DEFAULT '', payload TEXT NOT NULL,"
    " overall DOUBLE PRECISION, value DOUBLE PRECISION, observed_at TEXT)",
)
POSTGRES_DDL = (
    "CREATE TABLE IF NOT EXISTS event_facts ("
    " position BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL, tenant TEXT NOT NULL, agent_id TEXT NOT NULL,"
    " type TEXT NOT NULL, version INTEGER NOT NULL, actor TEXT NOT NULL,"
    " request_id TEXT NOT NULL DEFAULT '', payload JSONB NOT NULL,"
    " overall DOUBLE PRECISION, value DOUBLE PRECISION, observed_at TIMESTAMPTZ,"
    " PRIMARY KEY (position, at)) PARTITION BY RANGE (at)",
    "CREATE TABLE IF NOT EXISTS event_facts_default PARTITION OF event_facts DEFAULT",
)


def partition_name(year: int, month: int) -> str:
    return f"event_facts_{year:04d}_{month:02d}"


def _month_bounds(year: int, month: int) -> tuple[str, str]:
    after = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-01 00:00:00+00", f"{after[0]:04d}-{after[1]:02d}-01 00:00:00+00"


def ensure_month_partition(tx: Tx, year: int, month: int) -> None:
    """Create the partition of one month unless it exists (PostgreSQL only).

    Rows of that month already in the DEFAULT partition would make CREATE ... PARTITION OF
    fail; they are moved into a new table that is then attached as the month's partition.
    """
    name = partition_name(year, month)
    found = tx.fetchone(f"SELECT to_regclass('{name}') IS NOT NULL")
    if found is not None and found[0]:
        return
    low, high = _month_bounds(year, month)
    bounds = f"FROM ('{low}') TO ('{high}')"
    stray = tx.fetchone(f"SELECT 1 FROM event_facts_default WHERE at >= '{low}' AND at < '{high}' LIMIT 1")
    if stray is None:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF event_facts FOR VALUES {bounds}")
        return
    tx.execute(f"CREATE TABLE {name} (LIKE event_facts INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    tx.execute(
        f"WITH moved AS (DELETE FROM event_facts_default WHERE at >= '{low}' AND at < '{high}'"
        f" RETURNING {COLUMNS}) INSERT INTO {name} ({COLUMNS}) SELECT {COLUMNS} FROM moved"
    )
    tx.execute(f"ALTER TABLE event_facts ATTACH PARTITION {name} FOR VALUES {bounds}")


def _table_exists(tx: Tx, name: str) -> bool:
    if tx.dialect == "postgres":
        found = tx.fetchone("SELECT to_regclass(?) IS NOT NULL", (name,))
    else:
        found = tx.fetchone(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
    return bool(found and found[0])


def has_column(tx: Tx, table: str, column: str) -> bool:
    if tx.dialect == "postgres":
        found = tx.fetchone(
            "SELECT COUNT(*) > 0 FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?",
            (table, column),
        )
    else:
        found = tx.fetchone(
            f"SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?", (column,)
        )
    return bool(found and found[0])


def retire_goal_history(tx: Tx) -> None:
    """The goal_history table of earlier versions, which the facts replace: the facts take
    their request ids from it, then it and its tracking row go."""
    tx.execute(
        "UPDATE event_facts SET request_id = goal_history.request_id FROM goal_history"
        " WHERE event_facts.position = goal_history.position AND event_facts.request_id = ''"
    )
    tx.execute("DROP TABLE goal_history")
    tx.execute("DELETE FROM projection_tracking WHERE name = 'goal_history'")


def add_observed_at(tx: Tx) -> None:
    """Add `observed_at` to facts written before it existed, from their payload."""
    if tx.dialect == "postgres":
        tx.execute("ALTER TABLE event_facts ADD COLUMN observed_at TIMESTAMPTZ")
        tx.execute(
            "UPDATE event_facts SET observed_at = (payload->>'observed_at')::timestamptz"
            " WHERE type = 'ProgressRecorded'"
        )
        return
    tx.execute("ALTER TABLE event_facts ADD COLUMN observed_at TEXT")
    found = tx.fetchall("SELECT position, payload FROM event_facts WHERE type = 'ProgressRecorded'")
    tx.executemany(
        "UPDATE event_facts SET observed_at = ? WHERE position = ?",
        [(sqlite_instant(datetime.fromisoformat(json.loads(p)["observed_at"])), pos) for pos, p in found],
    )


def create_tables(tx: Tx) -> None:
    """Create the facts and their hourly rollup, or bring an earlier version's up to date."""
    postgres = tx.dialect == "postgres"
    had_facts, had_rollup = _table_exists(tx, "event_facts"), _table_exists(tx, hourly.TABLE)
    if not had_facts and had_rollup:
        tx.execute(f"DROP TABLE {hourly.TABLE}")  # a rollup of facts that are gone
        had_rollup = False
    for statement in POSTGRES_DDL if postgres else SQLITE_DDL:
        tx.execute(statement)
    tx.execute(hourly.ddl(postgres))
    if had_facts and not has_column(tx, "event_facts", "observed_at"):
        add_observed_at(tx)
    if had_facts and not has_column(tx, "event_facts", "request_id"):
        tx.execute("ALTER TABLE event_facts ADD COLUMN request_id TEXT NOT NULL DEFAULT ''")
    if _table_exists(tx, "goal_history"):
        retire_goal_history(tx)
    for statement in INDEXES:
        tx.execute(statement)
    if had_facts and not had_rollup:
        hourly.fill(tx)
