"""The JSON shapes of a goal, shared by the goal_progress read model and the audit replay,
so that a replayed goal and a projected goal look exactly alike."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from domain.goals import AgentGoals, AutoUpdate
from domain.objectives import GoalDefinition


def definition_json(definition: GoalDefinition) -> dict[str, Any]:
    return {
        "purpose_statement": definition.purpose_statement,
        "primary_objectives": [
            {
                "id": o.id,
                "title": o.title,
                "weight": o.weight,
                "kpi": asdict(o.kpi) if o.kpi else None,
                "milestones": list(o.milestones),
            }
            for o in definition.objectives
        ],
        "success_criteria": list(definition.success_criteria),
        "kpis": list(definition.kpis),
        "version": definition.label,
    }


def auto_update_json(config: AutoUpdate | None) -> dict[str, Any] | None:
    return config.as_json() if config else None


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 text of an instant (what orjson writes for a datetime, too)."""
    return moment.isoformat() if moment else None


def new_view(agent_id: str, created_at: datetime, created_by: str) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "status": "active",
        "goals": None,
        "target_date": None,
        "goal_version": 0,
        "progress": {
            "overall_progress": 0.0,
            "objective_progress": {},
            "kpi_values": {},
            "milestones_achieved": [],
            "last_updated": None,
        },
        "auto_update": None,
        "version": 1,
        "created_at": iso(created_at),
        "created_by": created_by,
        "updated_at": iso(created_at),
    }


def view_from_aggregate(goals: AgentGoals) -> dict[str, Any]:
    """The goal view of a replayed aggregate (the `as_of` / `version` audit replay)."""
    view = new_view(goals.agent_id, goals.created_on, goals.created_by)
    definition = goals.definition
    view.update(
        status=goals.status,
        goals=definition_json(definition) if definition else None,
        target_date=definition.target_date if definition else None,
        goal_version=goals.goal_version,
        auto_update=auto_update_json(goals.auto_update),
        version=goals.version,
        updated_at=iso(goals.modified_on),
    )
    view["progress"] = {
        "overall_progress": goals.overall_progress,
        "objective_progress": dict(goals.objective_progress),
        "kpi_values": dict(goals.kpi_values),
        "milestones_achieved": list(goals.milestones.values()),
        "last_updated": iso(goals.last_updated),
    }
    return view
