"""goal_history: the timeline of every agent's goals, one row per event, with its actor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from projections.runner import LogPage
from projections.views import auto_update_json, definition_json

DDL = (
    "CREATE TABLE IF NOT EXISTS goal_history ("
    " position BIGINT PRIMARY KEY, tenant TEXT NOT NULL, agent_id TEXT NOT NULL,"
    " version INTEGER NOT NULL, action TEXT NOT NULL, timestamp TEXT NOT NULL,"
    " actor TEXT NOT NULL, request_id TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS goal_history_by_agent ON goal_history (tenant, agent_id, position)",
    # Every read of the history names its agent; an index by action served no query and cost
    # each event an index entry.
    "DROP INDEX IF EXISTS goal_history_by_action",
)


def history_entry(event: AgentGoals.Event) -> tuple[str, dict[str, Any]] | None:
    """The action name and data of an event as the history shows it. The data is for orjson,
    which writes a datetime as ISO 8601 text, exactly as `datetime.isoformat()` does."""
    match event:
        case AgentGoals.GoalsSet():
            return "goals_set", {
                "goal_version": event.goal_version,
                "goals": definition_json(event.definition),
                "target_date": event.definition.target_date,
            }
        case AgentGoals.ProgressRecorded():
            return "progress_updated", {
                "objective_progress": event.objective_progress,
                "overall_progress": event.overall_progress,
                "previous_overall_progress": event.previous_overall,
                "kpi_values": event.kpi_values,
                "source": event.source,
                "observed_at": event.observed_at,
            }
        case AgentGoals.MilestoneReached():
            return "milestone_reached", {
                "objective_id": event.objective_id,
                "threshold": event.threshold,
                "goal_version": event.goal_version,
                "progress": event.progress,
            }
        case AgentGoals.StatusChanged():
            return "status_changed", {
                "from": event.from_status,
                "to": event.to_status,
                "reason": event.reason,
            }
        case AgentGoals.AutoUpdateConfigured():
            return "auto_update_configured", auto_update_json(event.config) or {}
    return None


# The last page's entries, by event identity: goal_history and event_facts store the same
# JSON for an event, so it is encoded once. Bounded; entries keep their event alive so an id
# is never reused while it is in here.
_ENCODED: dict[int, tuple[AgentGoals.Event, tuple[str, str] | None]] = {}
_ENCODED_MAX = 20_000


def encoded_entry(event: AgentGoals.Event) -> tuple[str, str] | None:
    """(action, data as compact JSON) of `history_entry`, encoded once per event object."""
    found = _ENCODED.get(id(event))
    if found is not None and found[0] is event:
        return found[1]
    entry = history_entry(event)
    encoded = (entry[0], orjson.dumps(entry[1]).decode()) if entry is not None else None
    if len(_ENCODED) >= _ENCODED_MAX:
        _ENCODED.clear()
    _ENCODED[id(event)] = (event, encoded)
    return encoded


HISTORY_COLUMNS = (
    "position",
    "tenant",
    "agent_id",
    "version",
    "action",
    "timestamp",
    "actor",
    "request_id",
    "data",
)


class GoalHistoryProjection:
    name = "goal_history"
    tables = ("goal_history",)

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        rows = []
        for position, event in events:
            if not isinstance(event, AgentGoals.Event):
                continue
            entry = encoded_entry(event)
            if entry is None:
                continue
            action, data = entry
            rows.append(
                (
                    position,
                    event.tenant,
                    event.agent_id,
                    event.originator_version,
                    action,
                    event.timestamp.isoformat(),
                    event.actor,
                    event.request_id,
                    data,
                )
            )
        if rows:
            tx.append_rows("goal_history", HISTORY_COLUMNS, rows)


@dataclass(frozen=True)
class HistoryPage:
    items: list[dict[str, Any]]
    next_cursor: int | None


class GoalHistoryQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def history(
        self, tenant: str, agent_id: str, *, after: int, limit: int, action: str | None = None
    ) -> HistoryPage:
        """Entries after the `after` position, oldest first; `next_cursor` continues the page."""
        where, params = "tenant = ? AND agent_id = ? AND position > ?", [tenant, agent_id, after]
        if action is not None:
            where += " AND action = ?"
            params.append(action)
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT position, action, timestamp, actor, data, version, request_id"
                f" FROM goal_history WHERE {where} ORDER BY position LIMIT ?",
                [*params, limit + 1],
            )
        items = [
            {
                "position": int(r[0]),
                "action": r[1],
                "timestamp": r[2],
                "actor": r[3],
                "data": json.loads(r[4]),
                "version": int(r[5]),
                "request_id": r[6] or None,
            }
            for r in rows[:limit]
        ]
        next_cursor = items[-1]["position"] if len(rows) > limit else None
        return HistoryPage(items, next_cursor)

    def count_by_action(self, tenant: str, agent_id: str) -> dict[str, int]:
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT action, COUNT(*) FROM goal_history WHERE tenant = ? AND agent_id = ? GROUP BY action",
                (tenant, agent_id),
            )
        return {r[0]: int(r[1]) for r in rows}
