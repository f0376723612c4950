"""The goal side of the search read model: each agent's goal status and overall progress
(projections.goal_summaries), a page at a time in memory, each touched row written once per page."""

from __future__ import annotations

from typing import Any

import orjson

from application.json_encoding import encode_json
from application.ports import Tx
from domain.goals import AgentGoals
from projections.goal_summaries import GoalSummary, Key, fold_page, starting

TABLE = "agent_search_goals"
DDL = (
    "CREATE TABLE IF NOT EXISTS agent_search_goals ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, goal_status TEXT NOT NULL,"
    " overall_progress DOUBLE PRECISION NOT NULL, objective_progress TEXT NOT NULL,"
    " position BIGINT NOT NULL, PRIMARY KEY (tenant, agent_id))",
    "CREATE INDEX IF NOT EXISTS agent_search_goals_status ON agent_search_goals (goal_status, overall_progress)",
)
COLUMNS = ("tenant", "agent_id", "goal_status", "overall_progress", "objective_progress", "position")
CHUNK = 500


def _values(key: Key, summary: GoalSummary) -> tuple[Any, ...]:
    progress = encode_json(summary.objective_progress, from_log=True).decode()
    return (*key, summary.goal_status, summary.overall_progress, progress, summary.position)


def apply_goal_events(tx: Tx, events: list[tuple[int, AgentGoals.Event]]) -> None:
    """Fold a page's goal events into agent_search_goals: one read of the touched rows, one
    upsert of them."""
    keys = {(e.tenant, e.agent_id) for _, e in events}
    changed = fold_page(events, load_summaries(tx, keys - starting(events)))
    if changed:
        tx.upsert_rows(TABLE, COLUMNS, ("tenant", "agent_id"), [_values(k, s) for k, s in changed.items()])


def load_summaries(tx: Tx, keys: set[Key]) -> dict[Key, GoalSummary]:
    by_tenant: dict[str, list[str]] = {}
    for tenant, agent_id in keys:
        by_tenant.setdefault(tenant, []).append(agent_id)
    found: dict[Key, GoalSummary] = {}
    for tenant, agent_ids in by_tenant.items():
        for start in range(0, len(agent_ids), CHUNK):
            chunk = agent_ids[start : start + CHUNK]
            rows = tx.fetchall(
                "SELECT agent_id, goal_status, overall_progress, objective_progress, position"
                f" FROM agent_search_goals WHERE tenant = ? AND agent_id IN ({', '.join('?' * len(chunk))})",
                (tenant, *chunk),
            )
            for agent_id, status, overall, progress, position in rows:
                found[(tenant, agent_id)] = GoalSummary(
                    status, float(overall), orjson.loads(progress), position=int(position)
                )
    return found
