"""event_facts: one row per AgentGoals event, for aggregates over the event stream.

Each fact keeps the event's type, agent, recorded instant (`at`), log position, aggregate
version, actor and data (`payload`, JSON), plus the numbers bucketed aggregates need without
opening the JSON: `overall` (overall progress of a ProgressRecorded) and `value` (threshold of
a MilestoneReached).

On PostgreSQL the table is partitioned by month of `at`: a page creates the partitions of
the months it touches before it inserts, so the DEFAULT partition only catches what was not
anticipated. Should the default hold rows of a month whose partition does not exist yet,
they are moved into the new partition in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from projections.goal_history import encoded_entry
from projections.runner import LogPage

Bucket = Literal["hour", "day", "week"]
BUCKETS: tuple[Bucket, ...] = ("hour", "day", "week")

# The types a fact can have: the names of the AgentGoals event classes.
EVENT_TYPES: tuple[str, ...] = tuple(
    cls.__name__
    for cls in (
        AgentGoals.Registered,
        AgentGoals.GoalsSet,
        AgentGoals.ProgressRecorded,
        AgentGoals.MilestoneReached,
        AgentGoals.StatusChanged,
        AgentGoals.AutoUpdateConfigured,
    )
)

COLUMNS = "position, at, tenant, agent_id, type, version, actor, payload, overall, value"
INDEXES = (
    "CREATE INDEX IF NOT EXISTS event_facts_by_type ON event_facts (tenant, type, at)",
    "CREATE INDEX IF NOT EXISTS event_facts_by_agent ON event_facts (tenant, agent_id, at)",
)
SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS event_facts ("
    " position BIGINT PRIMARY KEY, at TEXT NOT NULL, tenant TEXT NOT NULL, agent_id TEXT NOT NULL,"
    " type TEXT NOT NULL, version INTEGER NOT NULL, actor TEXT NOT NULL, payload TEXT NOT NULL,"
    " overall DOUBLE PRECISION, value DOUBLE PRECISION)",
    *INDEXES,
)
POSTGRES_DDL = (
    "CREATE TABLE IF NOT EXISTS event_facts ("
    " position BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL, tenant TEXT NOT NULL, agent_id TEXT NOT NULL,"
    " type TEXT NOT NULL, version INTEGER NOT NULL, actor TEXT NOT NULL, payload JSONB NOT NULL,"
    " overall DOUBLE PRECISION, value DOUBLE PRECISION,"
    " PRIMARY KEY (position, at)) PARTITION BY RANGE (at)",
    "CREATE TABLE IF NOT EXISTS event_facts_default PARTITION OF event_facts DEFAULT",
    *INDEXES,
)


def fact_type(event: AgentGoals.Event) -> str:
    return type(event).__name__


def fact_payload(event: AgentGoals.Event) -> str:
    """The event's data as JSON, as the goal history shows it ({} for Registered)."""
    entry = encoded_entry(event)
    return entry[1] if entry is not None else "{}"


def fact_numbers(event: AgentGoals.Event) -> tuple[float | None, float | None]:
    """(overall, value): overall progress of a ProgressRecorded, threshold of a MilestoneReached."""
    if isinstance(event, AgentGoals.ProgressRecorded):
        return float(event.overall_progress), None
    if isinstance(event, AgentGoals.MilestoneReached):
        return None, float(event.threshold)
    return None, None


def utc(moment: datetime) -> datetime:
    """An aware instant in UTC (a naive one is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


def sqlite_instant(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text, so that text order is time order."""
    return utc(moment).isoformat(timespec="microseconds")


def month_start(moment: datetime) -> tuple[int, int]:
    at = utc(moment)
    return at.year, at.month


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


class EventFactsProjection:
    name = "event_facts"
    tables = ("event_facts",)

    def create_tables(self, tx: Tx) -> None:
        for statement in POSTGRES_DDL if tx.dialect == "postgres" else SQLITE_DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        postgres = tx.dialect == "postgres"
        rows: list[tuple[Any, ...]] = []
        months: set[tuple[int, int]] = set()
        for position, event in events:
            if not isinstance(event, AgentGoals.Event):
                continue
            overall, value = fact_numbers(event)
            at = utc(event.timestamp)
            months.add(month_start(at))
            rows.append(
                (
                    position,
                    at if postgres else sqlite_instant(at),
                    event.tenant,
                    event.agent_id,
                    fact_type(event),
                    event.originator_version,
                    event.actor,
                    fact_payload(event),
                    overall,
                    value,
                )
            )
        if not rows:
            return
        if postgres:
            for year, month in sorted(months):
                ensure_month_partition(tx, year, month)
        tx.append_rows("event_facts", COLUMNS.split(", "), rows)


class _Stats:
    """count/sum/min/max of one column over some rows of a bucket, merged across types."""

    def __init__(self) -> None:
        self.count, self.total = 0, 0.0
        self.low: float | None = None
        self.high: float | None = None

    def add(self, count: Any, total: Any, low: Any, high: Any) -> None:
        if not count:
            return
        self.count += int(count)
        self.total += float(total)
        self.low = float(low) if self.low is None else min(self.low, float(low))
        self.high = float(high) if self.high is None else max(self.high, float(high))

    def json(self) -> dict[str, Any] | None:
        if not self.count:
            return None
        return {"count": self.count, "avg": self.total / self.count, "min": self.low, "max": self.high}


class EventFactsQueries:
    """Aggregates over event_facts, computed by the database."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def buckets(
        self,
        tenant: str,
        *,
        type: str | None = None,
        agent: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket: Bucket = "hour",
    ) -> list[dict[str, Any]]:
        """Facts per time bucket (UTC; weeks start on Monday), oldest first; empty buckets are
        left out. `start` is inclusive and `end` exclusive. Each bucket has its `count`, the
        count/avg/min/max of `overall` and of `value` (None when the bucket has none), and,
        without a `type` filter, `count_by_type`.

        One statement groups by bucket and type (so the figures are of one snapshot); the few
        rows per bucket, one per type, are merged here."""
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        postgres = self._store.dialect == "postgres"
        where, params = self._where(tenant, type, agent, start, end, postgres)
        with self._store.read() as tx:
            rows = tx.fetchall(
                f"SELECT {_bucket_sql(bucket, postgres)}, type, COUNT(*),"
                " COUNT(overall), SUM(overall), MIN(overall), MAX(overall),"
                " COUNT(value), SUM(value), MIN(value), MAX(value)"
                f" FROM event_facts WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2",
                params,
            )
        merged: dict[str, tuple[dict[str, int], _Stats, _Stats]] = {}
        for r in rows:
            by_type, overall, value = merged.setdefault(_bucket_iso(r[0]), ({}, _Stats(), _Stats()))
            by_type[r[1]] = int(r[2])
            overall.add(*r[3:7])
            value.add(*r[7:11])
        answer = []
        for at, (by_type, overall, value) in merged.items():
            item: dict[str, Any] = {
                "bucket": at,
                "count": sum(by_type.values()),
                "overall": overall.json(),
                "value": value.json(),
            }
            if type is None:
                item["count_by_type"] = by_type
            answer.append(item)
        return answer

    def version_at(self, tenant: str, agent_id: str, as_of: datetime) -> int | None:
        """The aggregate version an agent's goals had at `as_of`, from the facts (a hint that
        the audit replay checks against the log)."""
        postgres = self._store.dialect == "postgres"
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT MAX(version) FROM event_facts WHERE tenant = ? AND agent_id = ? AND at <= ?",
                (tenant, agent_id, utc(as_of) if postgres else sqlite_instant(as_of)),
            )
        return int(row[0]) if row and row[0] is not None else None

    @staticmethod
    def _where(
        tenant: str,
        type: str | None,
        agent: str | None,
        start: datetime | None,
        end: datetime | None,
        postgres: bool,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = ["tenant = ?"]
        params: list[Any] = [tenant]
        if type is not None:
            clauses.append("type = ?")
            params.append(type)
        if agent is not None:
            clauses.append("agent_id = ?")
            params.append(agent)
        for op, moment in ((">=", start), ("<", end)):
            if moment is not None:
                clauses.append(f"at {op} ?")
                params.append(utc(moment) if postgres else sqlite_instant(moment))
        return " AND ".join(clauses), params


def _bucket_sql(bucket: Bucket, postgres: bool) -> str:
    if postgres:
        return f"date_trunc('{bucket}', at, 'UTC')"
    # `at` is fixed-width UTC text, so its prefixes are exact truncations; SQLite's date
    # arithmetic is only used on whole dates (it rounds fractional seconds to milliseconds).
    return {
        "hour": "substr(at, 1, 13) || ':00:00'",
        "day": "substr(at, 1, 10) || 'T00:00:00'",
        # Back six days, then forward to the next Monday (or stay on it): the week's Monday.
        "week": "strftime('%Y-%m-%dT00:00:00', substr(at, 1, 10), '-6 days', 'weekday 1')",
    }[bucket]


def _bucket_iso(value: Any) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return utc(moment).isoformat()
