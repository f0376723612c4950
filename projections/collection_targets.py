"""collection_targets: whom the collector polls, how often, and how their collection goes.

One row per agent whose goal has an auto-update configuration or has changed status:
whether polling is enabled, its interval, whether the goal is active (only active goals are
polled), and the alerts of the collector (failing since when and why, stagnant since when).
`position` moves only when what the scheduler needs changes (configuration, status), so the
scheduler reads only the rows changed since it last looked (`changed_since`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from domain.status import Status
from projections.instants import instant
from projections.projection import LogPage
from projections.views import iso

DDL = (
    "CREATE TABLE IF NOT EXISTS collection_targets ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, enabled INTEGER NOT NULL, interval_s INTEGER NOT NULL,"
    " active INTEGER NOT NULL, failing_since TEXT, failing_reason TEXT, stagnant_since TEXT,"
    " position BIGINT NOT NULL, PRIMARY KEY (tenant, agent_id))",
    "CREATE INDEX IF NOT EXISTS collection_targets_by_position ON collection_targets (position)",
)
UPSERT_CONFIG = (
    "INSERT INTO collection_targets (tenant, agent_id, enabled, interval_s, active, position)"
    " VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (tenant, agent_id) DO UPDATE SET"
    " enabled = excluded.enabled, interval_s = excluded.interval_s, position = excluded.position"
)
# A failure is shown only while the agent is polled: a goal paused, completed or cancelled, or
# whose polling was disabled, keeps its columns (the aggregate still holds the failure, and a
# successful poll after polling resumes records the recovery) but is not an alert meanwhile.
POLLED_FAILING = "failing_since IS NOT NULL AND enabled = 1 AND active = 1"
UPSERT_STATUS = (
    "INSERT INTO collection_targets (tenant, agent_id, enabled, interval_s, active, position)"
    " VALUES (?, ?, 0, 0, ?, ?) ON CONFLICT (tenant, agent_id) DO UPDATE SET"
    " active = excluded.active, position = excluded.position"
)


@dataclass(frozen=True)
class Target:
    """An agent as the scheduler sees it: polled every `interval_s` while `polled`."""

    tenant: str
    agent_id: str
    enabled: bool
    interval_s: int
    active: bool
    position: int

    @property
    def polled(self) -> bool:
        return self.enabled and self.active and self.interval_s > 0


class CollectionTargetsProjection:
    name = "collection_targets"
    replay_cost = 1
    tables = ("collection_targets",)

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        for position, event in events:
            if not isinstance(event, AgentGoals.Event):
                continue
            key = (event.tenant, event.agent_id)
            match event:
                case AgentGoals.AutoUpdateConfigured():
                    config = event.config
                    tx.execute(UPSERT_CONFIG, (*key, int(config.enabled), config.interval_s, position))
                case AgentGoals.StatusChanged():
                    tx.execute(UPSERT_STATUS, (*key, int(event.to_status == Status.ACTIVE.value), position))
                case AgentGoals.MetricsCollectionFailed():
                    tx.execute(
                        "UPDATE collection_targets SET failing_since = ?, failing_reason = ?"
                        " WHERE tenant = ? AND agent_id = ?",
                        (iso(event.timestamp), event.reason, *key),
                    )
                case AgentGoals.MetricsCollectionRecovered():
                    tx.execute(
                        "UPDATE collection_targets SET failing_since = NULL, failing_reason = NULL"
                        " WHERE tenant = ? AND agent_id = ?",
                        key,
                    )
                case AgentGoals.GoalStagnant():
                    tx.execute(
                        "INSERT INTO collection_targets (tenant, agent_id, enabled, interval_s, active,"
                        " stagnant_since, position) VALUES (?, ?, 0, 0, 1, ?, ?) ON CONFLICT (tenant, agent_id)"
                        " DO UPDATE SET stagnant_since = excluded.stagnant_since",
                        (*key, iso(event.since), position),
                    )


class CollectionTargetQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def changed_since(self, position: int, limit: int = 10_000) -> list[Target]:
        """The rows changed after `position`, in the order they changed."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT tenant, agent_id, enabled, interval_s, active, position FROM collection_targets"
                " WHERE position > ? ORDER BY position LIMIT ?",
                (position, limit),
            )
        return [Target(r[0], r[1], bool(r[2]), int(r[3]), bool(r[4]), int(r[5])) for r in rows]

    def state(self, tenant: str, agent_id: str) -> dict[str, Any] | None:
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT enabled, active, failing_since, failing_reason FROM collection_targets"
                " WHERE tenant = ? AND agent_id = ?",
                (tenant, agent_id),
            )
        if row is None:
            return None
        polled = bool(row[0] and row[1])
        if not polled:
            return {"state": "idle", "failing_since": None, "failing_reason": None}
        state = "failing" if row[2] else "collecting"
        return {"state": state, "failing_since": row[2], "failing_reason": row[3]}

    def failing(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's polled agents whose collection is failing, longest first."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT agent_id, failing_since, failing_reason FROM collection_targets"
                f" WHERE tenant = ? AND {POLLED_FAILING} ORDER BY failing_since, agent_id",
                (tenant,),
            )
        return [{"agent_id": r[0], "since": r[1], "reason": r[2]} for r in rows]

    def failing_count(self) -> int:
        with self._store.read() as tx:
            row = tx.fetchone(f"SELECT COUNT(*) FROM collection_targets WHERE {POLLED_FAILING}")
        return int(row[0]) if row else 0

    def stagnant_marks(self, tenant: str) -> dict[str, str]:
        """agent_id -> the instant its last recorded stall began."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT agent_id, stagnant_since FROM collection_targets"
                " WHERE tenant = ? AND stagnant_since IS NOT NULL",
                (tenant,),
            )
        return {r[0]: r[1] for r in rows}

    def last_progress(self, tenant: str, agent_ids: list[str]) -> dict[str, str]:
        """agent_id -> when its last progress was observed, of those with progress."""
        if not agent_ids:
            return {}
        marks = ", ".join("?" for _ in agent_ids)
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT agent_id, MAX(observed_at) FROM event_facts WHERE tenant = ?"
                f" AND type = 'ProgressRecorded' AND agent_id IN ({marks}) GROUP BY agent_id",
                (tenant, *agent_ids),
            )
        return {str(r[0]): instant(r[1]).isoformat() for r in rows if r[1] is not None}

    def tenants_with_active_goals(self) -> list[str]:
        with self._store.read() as tx:
            rows = tx.fetchall("SELECT DISTINCT tenant FROM goal_progress WHERE status = 'active'")
        return sorted(str(r[0]) for r in rows)
