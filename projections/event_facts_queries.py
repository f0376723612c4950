"""Aggregates over event_facts, computed by the database: facts per time bucket (from the
hourly rollup where whole hours allow), and the version an agent had at an instant."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from application.ports import ReadStore, Row
from projections import event_facts_hourly as hourly
from projections.event_facts_hourly import Stats
from projections.instants import hour_of, instant, stored_instant, utc

Bucket = Literal["hour", "day", "week"]
BUCKETS: tuple[Bucket, ...] = ("hour", "day", "week")


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
