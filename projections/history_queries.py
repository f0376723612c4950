"""The goal history: the timeline of every agent's goals, one entry per event, with its actor.

The entries are the event facts of the agent (see `event_facts`), read in log order: the
facts keep each event's data exactly as the history shows it, so the timeline is not stored a
second time. An entry's `action` is named after its event type; the Registered fact that
opens every timeline is not an entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from application.ports import ReadStore
from domain.goals import AgentGoals
from projections.instants import instant

# The history's action for each type of fact (Registered has none).
ACTIONS = {
    AgentGoals.GoalsSet.__name__: "goals_set",
    AgentGoals.ProgressRecorded.__name__: "progress_updated",
    AgentGoals.MilestoneReached.__name__: "milestone_reached",
    AgentGoals.StatusChanged.__name__: "status_changed",
    AgentGoals.AutoUpdateConfigured.__name__: "auto_update_configured",
    AgentGoals.MetricsCollectionFailed.__name__: "metrics_collection_failed",
    AgentGoals.MetricsCollectionRecovered.__name__: "metrics_collection_recovered",
    AgentGoals.GoalStagnant.__name__: "goal_stagnant",
}
TYPES = {action: type_ for type_, action in ACTIONS.items()}
_ENTRY_TYPES = ", ".join(f"'{t}'" for t in ACTIONS)


def _data(payload: Any) -> dict[str, Any]:
    """A fact's payload: parsed already from PostgreSQL's jsonb, text from SQLite."""
    return payload if isinstance(payload, dict) else dict(json.loads(payload))


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
            where += " AND type = ?"
            params.append(TYPES[action])
        else:
            where += f" AND type IN ({_ENTRY_TYPES})"
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT position, type, at, actor, payload, version, request_id"
                f" FROM event_facts WHERE {where} ORDER BY position LIMIT ?",
                [*params, limit + 1],
            )
        items = [
            {
                "position": int(r[0]),
                "action": ACTIONS[r[1]],
                "timestamp": instant(r[2]).isoformat(),
                "actor": r[3],
                "data": _data(r[4]),
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
                "SELECT type, COUNT(*) FROM event_facts WHERE tenant = ? AND agent_id = ?"
                f" AND type IN ({_ENTRY_TYPES}) GROUP BY type",
                (tenant, agent_id),
            )
        return {ACTIONS[r[0]]: int(r[1]) for r in rows}
