"""Request and response bodies. Inputs are validated here, at the edge, so a 422 names
the field; outputs describe what the read models serve."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from domain.objectives import DEFAULT_MILESTONES, GoalDefinition, Kpi, Objective, unique_ids

Percent = Annotated[float, Field(ge=0, le=100)]
ObjectiveId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class KpiIn(_In):
    metric: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    unit: Annotated[str, StringConstraints(max_length=32)] = ""
    baseline: float = 0.0
    target: float
    direction: Literal["increase", "decrease"] = "increase"


class ObjectiveIn(_In):
    id: ObjectiveId | None = None
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    weight: float = Field(1.0, gt=0, le=1000)
    kpi: KpiIn | None = None
    milestones: list[Annotated[float, Field(gt=0, le=100)]] | None = Field(None, max_length=20)


class GoalsBody(_In):
    purpose_statement: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    primary_objectives: list[ShortText | ObjectiveIn] = Field(min_length=1, max_length=50)
    success_criteria: list[ShortText] = Field(default_factory=list, max_length=50)
    kpis: list[ShortText | dict[str, Any]] = Field(default_factory=list, max_length=50)
    version: Annotated[str, StringConstraints(max_length=32)] | int | None = None


class GoalsIn(_In):
    """Set or revise an agent's goals. An objective is a title (its id is derived from it)
    or an object with id, title, weight, an optional KPI and custom milestone thresholds."""

    goals: GoalsBody
    target_date: date | None = None

    def to_definition(self) -> GoalDefinition:
        raw = self.goals.primary_objectives
        titles = [o if isinstance(o, str) else o.title for o in raw]
        derived = unique_ids(titles, [None if isinstance(o, str) else o.id for o in raw])
        objectives = []
        for item, derived_id in zip(raw, derived, strict=True):
            if isinstance(item, str):
                objectives.append(Objective(derived_id, item))
                continue
            kpi = Kpi(**item.kpi.model_dump()) if item.kpi else None
            # Progress is kept to 2 decimals, so thresholds are too (or some could never fire).
            milestones = (
                tuple(sorted({round(t, 2) for t in item.milestones}))
                if item.milestones
                else DEFAULT_MILESTONES
            )
            objectives.append(Objective(derived_id, item.title, float(item.weight), kpi, milestones))
        label = self.goals.version
        return GoalDefinition(
            purpose_statement=self.goals.purpose_statement,
            objectives=tuple(objectives),
            success_criteria=tuple(self.goals.success_criteria),
            kpis=tuple(self.goals.kpis),
            label=str(label) if label is not None else None,
            target_date=self.target_date.isoformat() if self.target_date else None,
        )


class ProgressIn(_In):
    """Progress per objective (0..100) and/or KPI values; overall progress is derived."""

    objective_progress: dict[ObjectiveId, Percent] = Field(default_factory=dict, max_length=50)
    kpi_values: dict[ObjectiveId, float] = Field(default_factory=dict, max_length=50)
    overall_progress: Percent | None = None
    observed_at: AwareDatetime | None = Field(
        None, description="When it was measured (RFC 3339, with offset)."
    )


class BatchItemIn(ProgressIn):
    agent_id: Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]


class BatchIn(_In):
    updates: list[BatchItemIn] = Field(min_length=1, max_length=5000)


class StatusIn(_In):
    status: Literal["active", "paused", "completed", "cancelled"]
    reason: Annotated[str, StringConstraints(max_length=1000)] = ""
    reopen: bool = Field(False, description="Required to move a completed or cancelled goal back to active.")


class AutoUpdateIn(_In):
    enabled: bool = True
    interval_s: int = Field(60, ge=5, le=86_400)
    health_url: AnyHttpUrl | None = None
    metrics_url: AnyHttpUrl | None = None
    kpi_metrics: dict[ObjectiveId, Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=dict, max_length=50, description="objective id -> Prometheus metric name"
    )


class CommandOut(BaseModel):
    agent_id: str
    version: int = Field(description="The aggregate version after the command.")
    position: int = Field(description="Log position of the write; pass as ?min_position= to read it.")
    created: bool = False
    replayed: bool = Field(False, description="True when an Idempotency-Key repeated an earlier request.")


class BatchItemOut(BaseModel):
    agent_id: str
    version: int
    position: int | None


class BatchOut(BaseModel):
    items: list[BatchItemOut]
    position: int
    replayed: bool = False


class ProgressOut(BaseModel):
    overall_progress: float
    objective_progress: dict[str, float]
    kpi_values: dict[str, float]
    milestones_achieved: list[dict[str, Any]]
    last_updated: str | None


class GoalOut(BaseModel):
    agent_id: str
    status: str
    goals: dict[str, Any] | None
    target_date: str | None
    goal_version: int
    progress: ProgressOut
    auto_update: dict[str, Any] | None
    version: int
    created_at: str
    created_by: str
    updated_at: str


class GoalListOut(BaseModel):
    items: list[GoalOut]
    total: int
    limit: int
    offset: int


class HistoryEntryOut(BaseModel):
    position: int
    action: Literal[
        "goals_set", "progress_updated", "milestone_reached", "status_changed", "auto_update_configured"
    ]
    timestamp: str
    actor: str
    data: dict[str, Any]
    version: int
    request_id: str | None


class HistoryOut(BaseModel):
    agent_id: str
    items: list[HistoryEntryOut]
    next_cursor: int | None
