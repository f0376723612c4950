"""An agent's goals in brief, folded from its AgentGoals events: what the registry's read models
(agent_cards' goals extension, the search's goal filters) say of them. Revisions go through
`domain.objectives.revised_progress`, as the goals' own read model does.

Kept for every agent with goals, registered or not, so that a later registration (or a
registration again after a deregistration) finds its goal fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.goals import AgentGoals
from domain.objectives import revised_progress
from projections.views import iso

Key = tuple[str, str]


@dataclass
class GoalSummary:
    goal_status: str = "active"
    overall_progress: float = 0.0
    objective_progress: dict[str, float] = field(default_factory=dict)
    objectives_count: int = 0
    milestones_achieved: int = 0
    last_updated: str | None = None
    position: int = 0


def fold_goal(summary: GoalSummary, event: AgentGoals.Event) -> None:
    """What one goal event changes of the summary (the others change nothing of it)."""
    match event:
        case AgentGoals.GoalsSet(definition=definition):
            summary.objective_progress, summary.overall_progress = revised_progress(
                definition, summary.objective_progress
            )
            summary.objectives_count = len(definition.objectives)
        case AgentGoals.ProgressRecorded():
            summary.objective_progress.update(event.objective_progress)
            summary.overall_progress = event.overall_progress
            summary.last_updated = iso(event.observed_at)
        case AgentGoals.MilestoneReached():
            summary.milestones_achieved += 1
        case AgentGoals.StatusChanged():
            summary.goal_status = event.to_status


def fold_page(
    events: list[tuple[int, AgentGoals.Event]], known: dict[Key, GoalSummary]
) -> dict[Key, GoalSummary]:
    """Fold a page's goal events into the summaries `known` of their agents (changed in
    place); the summaries the page changed. An agent without a summary whose goals did not
    start in this page had its goals recorded before the read model existed: a rebuild
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


def starting(events: list[tuple[int, AgentGoals.Event]]) -> set[Key]:
    """The agents whose goals this page registers: they have no row to load yet."""
    return {(e.tenant, e.agent_id) for _, e in events if isinstance(e, AgentGoals.Registered)}
