"""Retention of read-side detail: the per-event rows of the read models (event facts and their
hourly rollup, finished webhook deliveries and their attempts) older than a tenant's
RETENTION_DAYS are deleted; the event log, which is the audit record, is never touched, nor
are the current-state read models (goal progress, cards).

Deletes go in batches of at most `batch` rows, one transaction each, so no lock is held for
long (in no particular order: an ORDER BY would sort every old row again for each batch); a
run deletes what is past the window and nothing else, so running it again is harmless.
A rebuild replays the whole log and brings the pruned detail back: the next run prunes it
again (see docs/security.md#retention).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from application.ports import ReadStore, Tx
from projections.instants import hour_of, stored_instant

DAY = timedelta(days=1)


@dataclass(frozen=True)
class RetentionPolicy:
    """Days of read-side detail kept: `default_days` for every tenant but those of `by_tenant`
    (0: kept for ever)."""

    default_days: int = 0
    by_tenant: Mapping[str, int] = field(default_factory=dict)

    @property
    def prunes(self) -> bool:
        return self.default_days > 0 or any(days > 0 for days in self.by_tenant.values())

    def days_of(self, tenant: str) -> int:
        return self.by_tenant.get(tenant, self.default_days)


@dataclass(frozen=True)
class Scope:
    """The tenants one cutoff applies to: exactly `tenants`, or every tenant but `tenants`."""

    tenants: tuple[str, ...]
    all_but: bool

    def sql(self) -> tuple[str, list[Any]]:
        if not self.tenants:
            return ("1 = 1", []) if self.all_but else ("1 = 0", [])
        marks = ", ".join("?" for _ in self.tenants)
        return f"tenant {'NOT IN' if self.all_but else 'IN'} ({marks})", list(self.tenants)


@dataclass
class Pruned:
    """Rows deleted by one run, by table."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


def cutoffs(policy: RetentionPolicy, now: datetime) -> list[tuple[Scope, datetime]]:
    """Each group of tenants with its cutoff: detail recorded before it goes. Cutoffs fall on
    the hour, so that the facts and their hourly rollup end at the same instant."""
    found = [
        (Scope((tenant,), all_but=False), hour_of(now - days * DAY))
        for tenant, days in sorted(policy.by_tenant.items())
        if days > 0
    ]
    if policy.default_days > 0:
        found.append(
            (Scope(tuple(sorted(policy.by_tenant)), all_but=True), hour_of(now - policy.default_days * DAY))
        )
    return found


class ReadSideRetention:
    """Prunes read-side detail past each tenant's retention (the scheduled `prune_read_side`)."""

    def __init__(
        self,
        store: ReadStore,
        policy: RetentionPolicy,
        *,
        batch: int = 5000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._policy = policy
        self._batch = batch
        self._clock = clock

    @property
    def policy(self) -> RetentionPolicy:
        return self._policy

    def prune(self) -> Pruned:
        """Delete the detail past every tenant's window, a batch per transaction."""
        pruned = Pruned()
        for scope, cutoff in cutoffs(self._policy, self._clock()):
            for table, step in (
                ("event_facts", _facts_batch),
                ("event_facts_hourly", _hours_batch),
                ("webhook_deliveries", _deliveries_batch),
            ):
                while True:
                    with self._store.transaction() as tx:
                        count = step(tx, scope, cutoff, self._batch, pruned)
                    pruned.add(table, count)
                    if count < self._batch:
                        break
        return pruned


def _facts_batch(tx: Tx, scope: Scope, cutoff: datetime, batch: int, pruned: Pruned) -> int:
    where, params = scope.sql()
    at = stored_instant(tx.dialect == "postgres", cutoff)
    found = tx.fetchall(
        f"SELECT position FROM event_facts WHERE {where} AND at < ? LIMIT ?",
        (*params, at, batch),
    )
    _delete_keys(tx, "event_facts", "position", [r[0] for r in found], extra=("at < ?", at))
    return len(found)


def _hours_batch(tx: Tx, scope: Scope, cutoff: datetime, batch: int, pruned: Pruned) -> int:
    where, params = scope.sql()
    hour = stored_instant(tx.dialect == "postgres", cutoff)
    found = tx.fetchall(
        f"SELECT tenant, type, hour FROM event_facts_hourly WHERE {where} AND hour < ? LIMIT ?",
        (*params, hour, batch),
    )
    tx.executemany(
        "DELETE FROM event_facts_hourly WHERE tenant = ? AND type = ? AND hour = ?", [tuple(r) for r in found]
    )
    return len(found)


def _deliveries_batch(tx: Tx, scope: Scope, cutoff: datetime, batch: int, pruned: Pruned) -> int:
    """Finished deliveries (sent, failed for good or cancelled) created before the cutoff, with
    their attempts; a pending one is never pruned, however old."""
    where, params = scope.sql()
    found = tx.fetchall(
        f"SELECT delivery_id FROM webhook_deliveries WHERE {where} AND status <> 'pending'"
        " AND created_at < ? LIMIT ?",
        (*params, cutoff.timestamp(), batch),
    )
    keys = [r[0] for r in found]
    before = _count(tx, "webhook_attempts", "delivery_id", keys)
    _delete_keys(tx, "webhook_attempts", "delivery_id", keys)
    pruned.add("webhook_attempts", before)
    _delete_keys(tx, "webhook_deliveries", "delivery_id", keys)
    return len(keys)


def _count(tx: Tx, table: str, column: str, keys: Sequence[Any]) -> int:
    if not keys:
        return 0
    marks = ", ".join("?" for _ in keys)
    row = tx.fetchone(f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({marks})", list(keys))
    return int(row[0]) if row else 0


def _delete_keys(
    tx: Tx, table: str, column: str, keys: Sequence[Any], extra: tuple[str, Any] | None = None
) -> None:
    """Delete the rows of `keys`, in chunks of statements SQLite accepts (at most 999 values)."""
    for start in range(0, len(keys), 900):
        chunk = list(keys[start : start + 900])
        marks = ", ".join("?" for _ in chunk)
        condition, params = f"{column} IN ({marks})", chunk
        if extra is not None:  # the partition key on PostgreSQL: only old partitions are read
            condition, params = f"{condition} AND {extra[0]}", [*chunk, extra[1]]
        tx.execute(f"DELETE FROM {table} WHERE {condition}", params)
