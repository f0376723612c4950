"""event_facts: one row per AgentGoals event, for aggregates over the event stream and for
each agent's timeline (the goal history reads its pages from here, see `goal_history`).

Each fact keeps the event's type, agent, recorded instant (`at`), log position, aggregate
version, actor, request id and data (`payload`, JSON, as the history shows it), plus the
numbers bucketed aggregates need without opening the JSON: `overall` (overall progress of a
ProgressRecorded) and `value` (threshold of a MilestoneReached), and `observed_at` (when a
ProgressRecorded was observed).

The facts are rolled up per tenant, type and UTC hour in `event_facts_hourly` (see that
module), in the same transaction: buckets read whole hours from there.

On PostgreSQL the table is partitioned by month of `at`: a page creates the partitions of
the months it touches before it inserts, so the DEFAULT partition only catches what was not
anticipated. Should the default hold rows of a month whose partition does not exist yet,
they are moved into the new partition in the same transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from application.json_encoding import encode_json
from application.ports import ReadStore, Row, Tx
from domain.goals import AgentGoals
from projections import event_facts_hourly as hourly
from projections.event_facts_hourly import Hours, Stats
from projections.runner import LogPage
from projections.views import auto_update_json, definition_json

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


def fact_type(event: AgentGoals.Event) -> str:
    return type(event).__name__


def history_data(event: AgentGoals.Event) -> dict[str, Any] | None:
    """The data of an event as the history shows it (None for Registered). It is for orjson,
    which writes a datetime as ISO 8601 text, exactly as `datetime.isoformat()` does."""
    match event:
        case AgentGoals.GoalsSet():
            return {
                "goal_version": event.goal_version,
                "goals": definition_json(event.definition),
                "target_date": event.definition.target_date,
            }
        case AgentGoals.ProgressRecorded():
            return {
                "objective_progress": event.objective_progress,
                "overall_progress": event.overall_progress,
                "previous_overall_progress": event.previous_overall,
                "kpi_values": event.kpi_values,
                "source": event.source,
                "observed_at": event.observed_at,
            }
        case AgentGoals.MilestoneReached():
            return {
                "objective_id": event.objective_id,
                "threshold": event.threshold,
                "goal_version": event.goal_version,
                "progress": event.progress,
            }
        case AgentGoals.StatusChanged():
            return {
                "from": event.from_status,
                "to": event.to_status,
                "reason": event.reason,
            }
        case AgentGoals.AutoUpdateConfigured():
            return auto_update_json(event.config) or {}
    return None


def fact_payload(event: AgentGoals.Event) -> bytes:
    """The event's data as JSON (UTF-8), as the goal history shows it ({} for Registered)."""
    data = history_data(event)
    return encode_json(data) if data is not None else b"{}"


def fact_numbers(event: AgentGoals.Event) -> tuple[float | None, float | None]:
    """(overall, value): overall progress of a ProgressRecorded, threshold of a MilestoneReached."""
    if isinstance(event, AgentGoals.ProgressRecorded):
        return float(event.overall_progress), None
    if isinstance(event, AgentGoals.MilestoneReached):
        return None, float(event.threshold)
    return None, None


def hour_of(moment: datetime) -> datetime:
    """The UTC hour `moment` falls in."""
    return utc(moment).replace(minute=0, second=0, microsecond=0)


def fact_observed(event: AgentGoals.Event) -> datetime | None:
    """When a ProgressRecorded was observed (UTC); None for other events."""
    return utc(event.observed_at) if isinstance(event, AgentGoals.ProgressRecorded) else None


def utc(moment: datetime) -> datetime:
    """An aware instant in UTC (a naive one is taken to be UTC already)."""
    if moment.tzinfo is UTC:  # what events carry: no conversion
        return moment
    return moment.replace(tzinfo=UTC) if moment.utcoffset() is None else moment.astimezone(UTC)


def sqlite_instant(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text, so that text order is time order."""
    return utc(moment).isoformat(timespec="microseconds")


def stored_instant(postgres: bool, moment: datetime) -> Any:
    """An instant as the facts' instant columns (`at`, `observed_at`) compare with it."""
    return utc(moment) if postgres else sqlite_instant(moment)


def instant(value: Any) -> datetime:
    """An instant read back from a read model, in UTC: a datetime from PostgreSQL, ISO 8601
    text from SQLite (or from a stored view)."""
    return utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


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


def _has_column(tx: Tx, table: str, column: str) -> bool:
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


class EventFactsProjection:
    """Remembers the months whose partitions it has seen, so that a page reads nothing
    (a read in a pipelined page waits for the page before it to commit)."""

    name = "event_facts"
    # µs of replay per event (ops/bench/projections.py, 1M events): how rebuilds share the work
    replay_cost = 13
    tables = ("event_facts", hourly.TABLE)

    def __init__(self) -> None:
        self._months: set[tuple[int, int]] = set()

    def fresh(self) -> EventFactsProjection:
        return EventFactsProjection()

    def forget(self) -> None:
        self._months.clear()

    def create_tables(self, tx: Tx) -> None:
        postgres = tx.dialect == "postgres"
        had_facts, had_rollup = _table_exists(tx, "event_facts"), _table_exists(tx, hourly.TABLE)
        if not had_facts and had_rollup:
            tx.execute(f"DROP TABLE {hourly.TABLE}")  # a rollup of facts that are gone
            had_rollup = False
        for statement in POSTGRES_DDL if postgres else SQLITE_DDL:
            tx.execute(statement)
        tx.execute(hourly.ddl(postgres))
        if had_facts and not _has_column(tx, "event_facts", "observed_at"):
            add_observed_at(tx)
        if had_facts and not _has_column(tx, "event_facts", "request_id"):
            tx.execute("ALTER TABLE event_facts ADD COLUMN request_id TEXT NOT NULL DEFAULT ''")
        if _table_exists(tx, "goal_history"):
            retire_goal_history(tx)
        for statement in INDEXES:
            tx.execute(statement)
        if had_facts and not had_rollup:
            hourly.fill(tx)

    def apply(self, tx: Tx, events: LogPage) -> None:
        postgres = tx.dialect == "postgres"
        rows: list[tuple[Any, ...]] = []
        months: set[tuple[int, int]] = set()
        hours = Hours()
        for position, event in events:
            if not isinstance(event, AgentGoals.Event):
                continue
            overall, value = fact_numbers(event)
            observed = fact_observed(event)
            at = utc(event.timestamp)
            kind = fact_type(event)
            payload = fact_payload(event)  # jsonb takes the bytes as they are
            months.add((at.year, at.month))
            hours.add(event.tenant, kind, at, overall, value)
            rows.append(
                (
                    position,
                    at if postgres else sqlite_instant(at),
                    event.tenant,
                    event.agent_id,
                    kind,
                    event.originator_version,
                    event.actor,
                    event.request_id,
                    payload if postgres else payload.decode(),
                    overall,
                    value,
                    observed if postgres or observed is None else sqlite_instant(observed),
                )
            )
        if not rows:
            return
        if postgres:
            for year, month in sorted(months - self._months):
                ensure_month_partition(tx, year, month)
            self._months |= months
        tx.append_rows("event_facts", COLUMNS.split(", "), rows)
        hours.write(tx)


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

        Whole hours are read from the hourly rollup, and only the part of an hour that an
        unaligned `start` or `end` cuts from the facts themselves; with an `agent` filter,
        everything from that agent's facts. One statement groups by bucket and type (so the
        figures are of one snapshot); the few rows per bucket, one per type, are merged here."""
        if agent is not None:
            return self.buckets_from_facts(
                tenant, type=type, agent=agent, start=start, end=end, bucket=bucket
            )
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        postgres = self._store.dialect == "postgres"
        first = None if start is None else _next_hour(start)
        last = None if end is None else hour_of(end)
        if first is not None and last is not None and first >= last:  # no whole hour in between
            return self.buckets_from_facts(tenant, type=type, start=start, end=end, bucket=bucket)
        where, params = self._where(tenant, type, None, None, None, postgres)
        for op, moment in ((">=", first), ("<", last)):
            if moment is not None:
                where += f" AND hour {op} ?"
                params.append(stored_instant(postgres, moment))
        parts = [
            f"SELECT {_bucket_sql(bucket, postgres, 'hour')} AS b, type, events, overall_n, overall_sum,"
            " overall_min, overall_max, value_n, value_sum, value_min, value_max"
            f" FROM {hourly.TABLE} WHERE {where}"
        ]
        for low, high in ((start, first), (last, end)):
            if low is not None and high is not None and low < high:  # a partial hour at an edge
                edge, edge_params = self._where(tenant, type, None, low, high, postgres)
                parts.append(_facts_select(bucket, postgres, edge))
                params += edge_params
        stats = "SUM(events), SUM(overall_n), SUM(overall_sum), MIN(overall_min), MAX(overall_max),"
        stats += " SUM(value_n), SUM(value_sum), MIN(value_min), MAX(value_max)"
        with self._store.read() as tx:
            rows = tx.fetchall(
                f"SELECT b, type, {stats} FROM ({' UNION ALL '.join(parts)}) AS hours"
                " GROUP BY b, type ORDER BY b, type",
                params,
            )
        return _merged(rows, type)

    def buckets_from_facts(
        self,
        tenant: str,
        *,
        type: str | None = None,
        agent: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket: Bucket = "hour",
    ) -> list[dict[str, Any]]:
        """`buckets` computed from every fact in range, without the rollup: what an `agent`
        filter reads, and the reference the rollup answers are checked against."""
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {BUCKETS}")
        postgres = self._store.dialect == "postgres"
        where, params = self._where(tenant, type, agent, start, end, postgres)
        with self._store.read() as tx:
            rows = tx.fetchall(f"{_facts_select(bucket, postgres, where)} ORDER BY 1, 2", params)
        return _merged(rows, type)

    def version_at(self, tenant: str, agent_id: str, as_of: datetime) -> int | None:
        """The aggregate version an agent's goals had at `as_of`, from the facts (a hint that
        the audit replay checks against the log)."""
        postgres = self._store.dialect == "postgres"
        with self._store.read() as tx:
            # The newest fact at or before `as_of`: one step back along (tenant, agent_id, at),
            # where MAX(version) would read every earlier fact of the agent.
            row = tx.fetchone(
                "SELECT version FROM event_facts WHERE tenant = ? AND agent_id = ? AND at <= ?"
                " ORDER BY at DESC, version DESC LIMIT 1",
                (tenant, agent_id, stored_instant(postgres, as_of)),
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
                params.append(stored_instant(postgres, moment))
        return " AND ".join(clauses), params


def _facts_select(bucket: Bucket, postgres: bool, where: str) -> str:
    """Facts grouped by bucket and type: the columns of the rollup, from the facts."""
    return (
        f"SELECT {_bucket_sql(bucket, postgres)}, type, COUNT(*),"
        " COUNT(overall), SUM(overall), MIN(overall), MAX(overall),"
        " COUNT(value), SUM(value), MIN(value), MAX(value)"
        f" FROM event_facts WHERE {where} GROUP BY 1, 2"
    )


def _merged(rows: list[Row], type: str | None) -> list[dict[str, Any]]:
    """Rows of (bucket, type, count, overall count/sum/min/max, value count/sum/min/max), in
    bucket order, merged into one item per bucket."""
    merged: dict[str, tuple[dict[str, int], Stats, Stats]] = {}
    for r in rows:
        by_type, overall, value = merged.setdefault(_bucket_iso(r[0]), ({}, Stats(), Stats()))
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


def _next_hour(moment: datetime) -> datetime:
    """The first whole UTC hour starting at or after `moment`."""
    hour = hour_of(moment)
    return hour if hour == utc(moment) else hour + timedelta(hours=1)


def _bucket_sql(bucket: Bucket, postgres: bool, column: str = "at") -> str:
    """The start of the bucket an instant column falls in (the rollup's `hour` works too)."""
    if postgres:
        return f"date_trunc('{bucket}', {column}, 'UTC')"
    # Instants are fixed-width UTC text, so their prefixes are exact truncations; SQLite's date
    # arithmetic is only used on whole dates (it rounds fractional seconds to milliseconds).
    return {
        "hour": f"substr({column}, 1, 13) || ':00:00'",
        "day": f"substr({column}, 1, 10) || 'T00:00:00'",
        # Back six days, then forward to the next Monday (or stay on it): the week's Monday.
        "week": f"strftime('%Y-%m-%dT00:00:00', substr({column}, 1, 10), '-6 days', 'weekday 1')",
    }[bucket]


def _bucket_iso(value: Any) -> str:
    return instant(value).isoformat()
