"""The goal side of the search read model: each agent's goal status and overall progress,
folded from its AgentGoals events exactly as agent_cards folds them (revisions through
`domain.objectives.revised_progress`), a page at a time in memory, each touched row written
once per page.

Kept for every agent with goals, registered or not, so that a later registration (or a
registration again after a deregistration) finds its goal fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from application.json_encoding import encode_json
from application.ports import Tx
from domain.goals import AgentGoals
from domain.objectives import revised_progress

TABLE = "agent_search_goals"
DDL = (
    "CREATE TABLE IF NOT EXISTS agent_search_goals ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, goal_status TEXT NOT NULL,"
    " overall_progress DOUBLE PRECISION NOT NULL, objective_progress TEXT NOT NULL,"
    " position BIGINT NOT NULL, PRIMARY KEY (tenant, agent_id))",
    "CREATE INDEX IF NOT EXISTS agent_search_goals_status ON agent_search_goals (goal_status, overall_progress)",
)
COLUMNS = ("tenant", "agent_id", "goal_status", "overall_progress", "objective_progress", "position")
Key = tuple[str, str]
CHUNK = 500


@dataclass
class GoalSummary:
    goal_status: str = "active"
    overall_progress: float = 0.0
    objective_progress: dict[str, float] = field(default_factory=dict)
    position: int = 0

    def values(self, key: Key) -> tuple[Any, ...]:
        progress = encode_json(self.objective_progress, from_log=True).decode()
        return (*key, self.goal_status, self.overall_progress, progress, self.position)


def fold_goal(summary: GoalSummary, event: AgentGoals.Event) -> None:
    """What one goal event changes of the summary (the others change nothing of it)."""
    match event:
        case AgentGoals.GoalsSet(definition=definition):
            summary.objective_progress, summary.overall_progress = revised_progress(
                definition, summary.objective_progress
            )
        case AgentGoals.ProgressRecorded():
            summary.objective_progress.update(event.objective_progress)
            summary.overall_progress = event.overall_progress
        case AgentGoals.StatusChanged():
            summary.goal_status = event.to_status


def fold_page(
    events: list[tuple[int, AgentGoals.Event]], known: dict[Key, GoalSummary]
) -> dict[Key, GoalSummary]:
    """Fold a page's goal events into the summaries `known` of their agents (changed in
    place); the summaries the page changed. An agent without a summary whose goals did not
    start in this page had its goals recorded before this read model existed: a rebuild
    fills it in."""
    changed: dict[Key, GoalSummary] = {}
    for position, event in events:
        key = (event.tenant, event.agent_id)
        summary = known.get(key)
        if summary is None:
            if not isinstance(event, AgentGoals.Registered):
                continue
            summary = known[key] = GoalSummary()
        fold_goal(summary, event)
        summary.position = position
        changed[key] = summary
    return changed


def apply_goal_events(tx: Tx, events: list[tuple[int, AgentGoals.Event]]) -> None:
    """Fold a page's goal events into agent_search_goals: one read of the touched rows, one
    upsert of them."""
    keys = {(e.tenant, e.agent_id) for _, e in events}
    starting = {(e.tenant, e.agent_id) for _, e in events if isinstance(e, AgentGoals.Registered)}
    changed = fold_page(events, load_summaries(tx, keys - starting))
    if changed:
        tx.upsert_rows(TABLE, COLUMNS, ("tenant", "agent_id"), [s.values(k) for k, s in changed.items()])


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
                    status, float(overall), orjson.loads(progress), int(position)
                )
    return found
