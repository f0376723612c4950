"""event_facts_hourly: the event facts rolled up per tenant, type and UTC hour.

Each row holds how many facts of that type the tenant's hour has, and the count/sum/min/max
of their `overall` and of their `value` (min/max NULL when there is none). The event_facts
projection adds each page's hours in the same transaction as the page's facts, so that
buckets over the whole stream read a few thousand rollup rows instead of every fact. It is not
partitioned: it is small.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from application.ports import Tx

TABLE = "event_facts_hourly"
COLUMNS = (
    "tenant",
    "type",
    "hour",
    "events",
    "overall_n",
    "overall_sum",
    "overall_min",
    "overall_max",
    "value_n",
    "value_sum",
    "value_min",
    "value_max",
)
# The statistics of one column of the facts, as the rollup keeps them.
_FACT_STATS = "COUNT({0}), COALESCE(SUM({0}), 0), MIN({0}), MAX({0})"


def ddl(postgres: bool) -> str:
    instant = "TIMESTAMPTZ" if postgres else "TEXT"  # SQLite: fixed-width UTC text, like event_facts.at
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        f" tenant TEXT NOT NULL, type TEXT NOT NULL, hour {instant} NOT NULL, events BIGINT NOT NULL,"
        " overall_n BIGINT NOT NULL, overall_sum DOUBLE PRECISION NOT NULL,"
        " overall_min DOUBLE PRECISION, overall_max DOUBLE PRECISION,"
        " value_n BIGINT NOT NULL, value_sum DOUBLE PRECISION NOT NULL,"
        " value_min DOUBLE PRECISION, value_max DOUBLE PRECISION,"
        " PRIMARY KEY (tenant, type, hour))"
    )


@lru_cache(maxsize=2)
def _upsert(postgres: bool) -> str:
    """Add hours to the rollup: counts and sums add up, min/max combine."""
    least, greatest = ("LEAST", "GREATEST") if postgres else ("MIN", "MAX")
    sets = [
        f"{c} = {TABLE}.{c} + excluded.{c}"
        for c in ("events", "overall_n", "overall_sum", "value_n", "value_sum")
    ]
    for column, pick in (
        ("overall_min", least),
        ("overall_max", greatest),
        ("value_min", least),
        ("value_max", greatest),
    ):
        # COALESCE both ways, because SQLite's MIN/MAX of a NULL is NULL
        sets.append(
            f"{column} = {pick}(COALESCE({TABLE}.{column}, excluded.{column}),"
            f" COALESCE(excluded.{column}, {TABLE}.{column}))"
        )
    marks = ", ".join("?" * len(COLUMNS))
    return (
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({marks})"
        f" ON CONFLICT (tenant, type, hour) DO UPDATE SET {', '.join(sets)}"
    )


def fill(tx: Tx) -> None:
    """Roll up every fact into an empty rollup (facts that were written before it existed)."""
    postgres = tx.dialect == "postgres"
    hour = "date_trunc('hour', at, 'UTC')" if postgres else "substr(at, 1, 13) || ':00:00.000000+00:00'"
    tx.execute(
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)})"
        f" SELECT tenant, type, {hour}, COUNT(*), {_FACT_STATS.format('overall')},"
        f" {_FACT_STATS.format('value')} FROM event_facts GROUP BY tenant, type, {hour}"
    )


class Stats:
    """count/sum/min/max of one column over some facts."""

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

    def add_one(self, number: float) -> None:
        self.count += 1
        self.total += number
        if self.low is None or number < self.low:
            self.low = number
        if self.high is None or number > self.high:
            self.high = number

    def row(self) -> tuple[int, float, float | None, float | None]:
        """(count, sum, min, max) as the rollup stores them."""
        return self.count, self.total, self.low, self.high

    def json(self) -> dict[str, Any] | None:
        if not self.count:
            return None
        return {"count": self.count, "avg": self.total / self.count, "min": self.low, "max": self.high}


class Hours:
    """A page's facts rolled up per (tenant, type, UTC hour), to be added to the rollup."""

    def __init__(self) -> None:
        self._hours: dict[tuple[str, str, datetime], tuple[list[int], Stats, Stats]] = {}
        # the hour of the last fact: a page's facts come in time order, mostly in few hours
        self._hour = self._next = datetime.min.replace(tzinfo=UTC)

    def add(self, tenant: str, type: str, at: datetime, overall: float | None, value: float | None) -> None:
        """Count one fact of `type` recorded at `at` (a UTC instant)."""
        if not self._hour <= at < self._next:
            self._hour = at.replace(minute=0, second=0, microsecond=0)
            self._next = self._hour + timedelta(hours=1)
        key = (tenant, type, self._hour)
        found = self._hours.get(key)
        if found is None:
            found = self._hours[key] = ([0], Stats(), Stats())
        found[0][0] += 1
        if overall is not None:
            found[1].add_one(overall)
        if value is not None:
            found[2].add_one(value)

    def write(self, tx: Tx) -> None:
        postgres = tx.dialect == "postgres"
        tx.executemany(
            _upsert(postgres),
            [
                (
                    tenant,
                    type,
                    hour if postgres else hour.isoformat(timespec="microseconds"),
                    events[0],
                    *overalls.row(),
                    *values.row(),
                )
                for (tenant, type, hour), (events, overalls, values) in self._hours.items()
            ],
        )
