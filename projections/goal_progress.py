"""goal_progress: the current goals, progress, milestones and status of every agent."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from application.json_encoding import encode_json
from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from domain.objectives import revised_progress
from projections.projection import LogPage
from projections.views import auto_update_json, definition_json, iso, new_view

DDL = (
    "CREATE TABLE IF NOT EXISTS goal_progress ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, status TEXT NOT NULL,"
    " overall_progress DOUBLE PRECISION NOT NULL, goal_version INTEGER NOT NULL,"
    " version INTEGER NOT NULL, milestones INTEGER NOT NULL, updates INTEGER NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, status_since TEXT NOT NULL,"
    " status_durations TEXT NOT NULL, position BIGINT NOT NULL, view TEXT NOT NULL,"
    " PRIMARY KEY (tenant, agent_id))",
    "CREATE INDEX IF NOT EXISTS goal_progress_by_status ON goal_progress (tenant, status, agent_id)",
)
# Every page rewrites the rows it touched. A view (2-4 kB of JSON) would be compressed on each
# write past PostgreSQL's 2 kB default; kept inline up to a page instead, and with room left
# in each page so that an update can stay on it (a HOT update, no index write).
POSTGRES_STORAGE = "ALTER TABLE goal_progress SET (toast_tuple_target = 8160, fillfactor = 70)"
COLUMNS = (
    "tenant",
    "agent_id",
    "status",
    "overall_progress",
    "goal_version",
    "version",
    "milestones",
    "updates",
    "created_at",
    "updated_at",
    "status_since",
    "status_durations",
    "position",
    "view",
)
KEY = ("tenant", "agent_id")


@dataclass
class _Row:
    tenant: str
    view: dict[str, Any]
    updates: int
    status_since: str
    durations: dict[str, float]
    position: int = 0
    # view["goals"] as JSON: the bulk of a view, which changes only with a GoalsSet
    goals_json: orjson.Fragment | None = None

    def values(self) -> tuple[Any, ...]:
        """The row's columns. The view's instants may still be datetimes (see `_fold`):
        orjson writes them as ISO 8601 text, and the text columns get the same."""
        v = self.view
        if v["goals"] is not None and self.goals_json is None:
            # Invariant: view["goals"] changes only with a GoalsSet, which drops this (see _fold;
            # test_revised_goals_replace_the_remembered_goals_json breaks otherwise).
            self.goals_json = orjson.Fragment(encode_json(v["goals"], from_log=True))
        # from_log: every text of a view comes from the log, whose writes refuse NUL
        # (test_what_a_read_model_could_not_write_is_refused_before_it_is_stored)
        view = v if self.goals_json is None else {**v, "goals": self.goals_json}
        view_json = encode_json(view, from_log=True)
        return (
            self.tenant,
            v["agent_id"],
            v["status"],
            v["progress"]["overall_progress"],
            v["goal_version"],
            v["version"],
            len(v["progress"]["milestones_achieved"]),
            self.updates,
            _text(v["created_at"]),
            _text(v["updated_at"]),
            self.status_since,
            encode_json(self.durations, from_log=True).decode(),
            self.position,
            view_json.decode(),
        )


class GoalProgressProjection:
    """Keeps the rows it wrote in memory (up to `memory` agents, least recently used out), so
    a page reads only the agents it has not seen. The runner calls `forget()` whenever the
    table may have changed behind its back (another runner, a rebuild swapped in, a rolled
    back page); `fresh()` gives each runner its own memory."""

    name = "goal_progress"
    # µs of replay per event (ops/bench/projections.py, 1M events): how rebuilds share the work
    replay_cost = 19
    tables = ("goal_progress",)

    def __init__(self, memory: int = 50_000) -> None:
        self._memory = memory
        self._rows: OrderedDict[tuple[str, str], _Row] = OrderedDict()

    def fresh(self) -> GoalProgressProjection:
        return GoalProgressProjection(self._memory)

    def forget(self) -> None:
        self._rows.clear()

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)
        if tx.dialect == "postgres":
            tx.execute(POSTGRES_STORAGE)

    def apply(self, tx: Tx, events: LogPage) -> None:
        goal_events = [(p, e) for p, e in events if isinstance(e, AgentGoals.Event)]
        cached = self._rows
        # One query loads every row the page touches that memory does not hold, but for
        # agents the page registers: they have no row yet.
        wanted: dict[tuple[str, str], bool] = {}
        for _, e in goal_events:
            wanted.setdefault((e.tenant, e.agent_id), isinstance(e, AgentGoals.Registered))
        loaded = self._load_many(tx, {k for k, new in wanted.items() if not new and k not in cached})
        touched: dict[tuple[str, str], _Row] = {}
        for position, event in goal_events:
            key = (event.tenant, event.agent_id)
            current = touched.get(key) or cached.get(key) or loaded.get(key)
            row = self._fold(current, event)
            row.position = position
            row.view["version"] = event.originator_version
            row.view["updated_at"] = event.timestamp
            touched[key] = row
        if touched:
            tx.upsert_rows("goal_progress", COLUMNS, KEY, [row.values() for row in touched.values()])
        for key, row in touched.items():
            cached[key] = row
            cached.move_to_end(key)
        while len(cached) > self._memory:
            cached.popitem(last=False)

    @staticmethod
    def _load_many(tx: Tx, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Row]:
        by_tenant: dict[str, list[str]] = {}
        for tenant, agent_id in keys:
            by_tenant.setdefault(tenant, []).append(agent_id)
        rows: dict[tuple[str, str], _Row] = {}
        for tenant, agent_ids in by_tenant.items():
            for start in range(0, len(agent_ids), 500):
                chunk = agent_ids[start : start + 500]
                found = tx.fetchall(
                    "SELECT agent_id, view, updates, status_since, status_durations FROM goal_progress"
                    f" WHERE tenant = ? AND agent_id IN ({', '.join('?' * len(chunk))})",
                    (tenant, *chunk),
                )
                for r in found:
                    rows[(tenant, r[0])] = _Row(
                        tenant, orjson.loads(r[1]), int(r[2]), r[3], orjson.loads(r[4])
                    )
        return rows

    @staticmethod
    def _fold(row: _Row | None, event: AgentGoals.Event) -> _Row:
        """`row` with `event` applied. Instants go into the view as datetimes, formatted
        when the row is written: most events' instants are overwritten by the next event
        within the same page, and orjson formats the rest in C.

        Invariant: the view is changed in place, remembered rows included, before the page
        commits; a page that does not commit makes the runner forget() them
        (tests/integration/test_goal_progress_memory.py breaks if it does not)."""
        if isinstance(event, AgentGoals.Registered):
            at = iso(event.timestamp) or ""
            return _Row(event.tenant, new_view(event.agent_id, event.timestamp, event.actor), 0, at, {})
        assert row is not None, f"{type(event).__name__} before Registered for {event.agent_id}"
        view, progress = row.view, row.view["progress"]
        match event:
            case AgentGoals.GoalsSet(definition=definition):
                progress["objective_progress"], progress["overall_progress"] = revised_progress(
                    definition, progress["objective_progress"]
                )
                view["goals"] = definition_json(definition)
                row.goals_json = None
                view["target_date"] = definition.target_date
                view["goal_version"] = event.goal_version
            case AgentGoals.ProgressRecorded():
                progress["objective_progress"].update(event.objective_progress)
                progress["overall_progress"] = event.overall_progress
                progress["kpi_values"].update(event.kpi_values)
                progress["last_updated"] = event.observed_at
                row.updates += 1
            case AgentGoals.MilestoneReached():
                progress["milestones_achieved"].append(
                    {
                        "objective_id": event.objective_id,
                        "threshold": event.threshold,
                        "goal_version": event.goal_version,
                        "reached_at": event.timestamp,
                    }
                )
            case AgentGoals.StatusChanged():
                at = iso(event.timestamp) or ""
                spent = _seconds_between(row.status_since, event.timestamp)
                row.durations[event.from_status] = row.durations.get(event.from_status, 0.0) + spent
                row.status_since = at
                view["status"] = event.to_status
            case AgentGoals.AutoUpdateConfigured():
                view["auto_update"] = auto_update_json(event.config)
        return row


def _text(moment: str | datetime) -> str:
    return moment if isinstance(moment, str) else moment.isoformat()


def _seconds_between(since_iso: str, until: datetime) -> float:
    return max(0.0, (until - datetime.fromisoformat(since_iso)).total_seconds())


@dataclass(frozen=True)
class GoalPage:
    items: list[dict[str, Any]]
    total: int


class GoalProgressQueries:
    """Reads of the goal_progress read model."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def goal_json_and_version(self, tenant: str, agent_id: str) -> tuple[str, int] | None:
        """The stored JSON of one goal view and its aggregate version (for ETag)."""
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT view, version FROM goal_progress WHERE tenant = ? AND agent_id = ?",
                (tenant, agent_id),
            )
        return (str(row[0]), int(row[1])) if row else None

    def goal_json(self, tenant: str, agent_id: str) -> str | None:
        """The stored JSON of one goal view, served without re-encoding."""
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT view FROM goal_progress WHERE tenant = ? AND agent_id = ?", (tenant, agent_id)
            )
        return row[0] if row else None

    def list_goals(self, tenant: str, *, status: str | None, limit: int, offset: int) -> GoalPage:
        where, params = "tenant = ?", [tenant]
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        with self._store.read() as tx:
            total = tx.fetchone(f"SELECT COUNT(*) FROM goal_progress WHERE {where}", params)
            rows = tx.fetchall(
                f"SELECT view FROM goal_progress WHERE {where} ORDER BY agent_id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        return GoalPage([json.loads(r[0]) for r in rows], int(total[0]) if total else 0)
