"""Request and response bodies. Inputs are validated here, at the edge, so a 422 names
the field; outputs describe what the read models serve."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from domain import limits
from domain.auto_update import DEFAULT_INTERVAL_S, MAX_INTERVAL_S, MIN_INTERVAL_S
from domain.objectives import DEFAULT_MILESTONES, GoalDefinition, Kpi, Objective, unique_ids
from domain.templates import ObjectiveOverride, TemplateOverrides, goals_from_template
from interfaces.http.types import Instant, Magnitude, StorableText

Percent = Annotated[float, Field(ge=0, le=100)]
ObjectiveId = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Not `overall`, which overall progress uses."),
]
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_TEXT), StorableText
]
MetricText = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_METRIC), StorableText]
UnitText = Annotated[str, StringConstraints(max_length=limits.MAX_UNIT), StorableText]
TitleText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_TITLE), StorableText
]
NameText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_METRIC), StorableText
]
DescriptionText = Annotated[str, StringConstraints(max_length=limits.MAX_TEXT), StorableText]
LabelText = Annotated[str, StringConstraints(max_length=limits.MAX_METRIC), StorableText]
PurposeText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_PURPOSE), StorableText
]
VersionLabel = Annotated[str, StringConstraints(max_length=limits.MAX_LABEL), StorableText]
ReasonText = Annotated[str, StringConstraints(max_length=limits.MAX_REASON), StorableText]
LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class KpiIn(_In):
    metric: MetricText
    unit: UnitText = ""
    baseline: Magnitude = 0.0
    target: Magnitude
    direction: Literal["increase", "decrease"] = "increase"


class ObjectiveIn(_In):
    id: ObjectiveId | None = None
    title: TitleText
    weight: float = Field(1.0, gt=0, le=limits.MAX_WEIGHT)
    kpi: KpiIn | None = None
    milestones: list[Annotated[float, Field(gt=0, le=100)]] | None = Field(
        None, max_length=limits.MAX_MILESTONES
    )


class KpiNoteIn(_In):
    """A KPI of the goals as a whole, described rather than measured by an objective."""

    name: NameText
    description: DescriptionText | None = None
    metric: LabelText | None = None
    unit: UnitText | None = None
    baseline: Magnitude | None = None
    target: Magnitude | None = None
    direction: Literal["increase", "decrease"] | None = None
    labels: dict[LabelName, LabelText] | None = Field(None, max_length=limits.MAX_NOTE_FIELDS)


class GoalsBody(_In):
    purpose_statement: PurposeText
    primary_objectives: list[ShortText | ObjectiveIn] = Field(min_length=1, max_length=limits.MAX_OBJECTIVES)
    success_criteria: list[ShortText] = Field(default_factory=list, max_length=limits.MAX_ENTRIES)
    kpis: list[ShortText | KpiNoteIn] = Field(default_factory=list, max_length=limits.MAX_ENTRIES)
    version: VersionLabel | Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None


TemplateId = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="See GET /api/v1/goals/templates.")
]
Milestones = list[Annotated[float, Field(gt=0, le=100)]]


class ObjectiveOverrideIn(_In):
    """Fields of one template objective to replace; what is not given keeps the template's."""

    title: TitleText | None = None
    weight: float | None = Field(None, gt=0, le=limits.MAX_WEIGHT)
    baseline: Magnitude | None = None
    target: Magnitude | None = None
    unit: UnitText | None = None
    milestones: Milestones | None = Field(None, min_length=1, max_length=limits.MAX_MILESTONES)


class GoalsIn(_In):
    """Set or revise an agent's goals: either `goals` (an objective is a title, its id derived
    from it, or an object with id, title, weight, an optional KPI and custom milestone
    thresholds), or `template_id` with optional overrides (`purpose_statement`,
    `success_criteria`, `objectives` by template objective id, `version`): each override
    replaces the template's field of that name and nothing else (docs/templates.md)."""

    template_id: TemplateId | None = None
    goals: GoalsBody | None = Field(None, validate_default=True)
    target_date: date | None = None
    purpose_statement: PurposeText | None = Field(None, validate_default=True)
    success_criteria: list[ShortText] | None = Field(
        None, max_length=limits.MAX_ENTRIES, validate_default=True
    )
    objectives: dict[ObjectiveId, ObjectiveOverrideIn] | None = Field(
        None, max_length=limits.MAX_OBJECTIVES, validate_default=True
    )
    version: VersionLabel | Annotated[int, Field(ge=0, le=1_000_000_000)] | None = Field(
        None, validate_default=True
    )

    @field_validator("goals")
    @classmethod
    def _goals_or_template(cls, value: GoalsBody | None, info: ValidationInfo) -> GoalsBody | None:
        if value is None and info.data.get("template_id") is None:
            raise ValueError("give goals, or template_id (with overrides)")
        if value is not None and info.data.get("template_id") is not None:
            raise ValueError("give goals or template_id, not both")
        return value

    @field_validator("purpose_statement", "success_criteria", "objectives", "version")
    @classmethod
    def _override_needs_template(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and info.data.get("template_id") is None:
            raise ValueError("an override of a template: only with template_id (else inside goals)")
        return value

    def to_definition(self) -> GoalDefinition:
        target_date = self.target_date.isoformat() if self.target_date else None
        if self.template_id is not None:
            return self._from_template(self.template_id, target_date)
        assert self.goals is not None  # the validator above requires one of them
        raw = self.goals.primary_objectives
        titles = [o if isinstance(o, str) else o.title for o in raw]
        derived = unique_ids(titles, [None if isinstance(o, str) else o.id for o in raw])
        objectives = []
        for item, derived_id in zip(raw, derived, strict=True):
            if isinstance(item, str):
                objectives.append(Objective(derived_id, item))
                continue
            kpi = Kpi(**item.kpi.model_dump()) if item.kpi else None
            objectives.append(
                Objective(derived_id, item.title, float(item.weight), kpi, _thresholds(item.milestones))
            )
        label = self.goals.version
        return GoalDefinition(
            purpose_statement=self.goals.purpose_statement,
            objectives=tuple(objectives),
            success_criteria=tuple(self.goals.success_criteria),
            kpis=tuple(k if isinstance(k, str) else k.model_dump(exclude_none=True) for k in self.goals.kpis),
            label=str(label) if label is not None else None,
            target_date=target_date,
        )

    def _from_template(self, template_id: str, target_date: str | None) -> GoalDefinition:
        overrides = TemplateOverrides(
            purpose_statement=self.purpose_statement,
            success_criteria=tuple(self.success_criteria) if self.success_criteria is not None else None,
            objectives={
                key: ObjectiveOverride(
                    **{
                        **o.model_dump(exclude={"milestones"}),
                        "milestones": _thresholds(o.milestones) if o.milestones else None,
                    }
                )
                for key, o in (self.objectives or {}).items()
            },
            label=str(self.version) if self.version is not None else None,
            target_date=target_date,
        )
        return goals_from_template(template_id, overrides)


def _thresholds(given: list[float] | None) -> tuple[float, ...]:
    # Progress is kept to 2 decimals, so thresholds are too (or some could never fire).
    return tuple(sorted({round(t, 2) for t in given})) if given else DEFAULT_MILESTONES


class TemplateObjectiveOut(BaseModel):
    id: str
    title: str
    weight: float
    kpi: dict[str, Any] | None
    milestones: list[float]


class TemplateOut(BaseModel):
    id: str
    title: str
    description: str
    purpose_statement: str
    success_criteria: list[str]
    objectives: list[TemplateObjectiveOut]
    kpi_metrics: dict[str, dict[str, Any]] = Field(
        description="Objective id -> the Prometheus series an agent of this role would export for it."
    )


class TemplateListOut(BaseModel):
    items: list[TemplateOut]


class ProgressIn(_In):
    """Progress per objective (0..100) and/or KPI values; overall progress is derived."""

    objective_progress: dict[ObjectiveId, Percent] = Field(
        default_factory=dict, max_length=limits.MAX_OBJECTIVES
    )
    kpi_values: dict[ObjectiveId, Magnitude] = Field(default_factory=dict, max_length=limits.MAX_OBJECTIVES)
    overall_progress: Percent | None = None
    observed_at: Instant | None = Field(
        None, description="When it was measured (RFC 3339, with offset; at most minutes ahead of the server)."
    )


class BatchItemIn(ProgressIn):
    agent_id: Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]


class BatchIn(_In):
    updates: list[BatchItemIn] = Field(min_length=1, max_length=5000)


class StatusIn(_In):
    status: Literal["active", "paused", "completed", "cancelled"]
    reason: ReasonText = ""
    reopen: bool = Field(False, description="Required to move a completed or cancelled goal back to active.")


KpiMappingJson = Annotated[
    Any, WithJsonSchema({"anyOf": [{"type": "string", "maxLength": limits.MAX_METRIC}, {"type": "object"}]})
]


class AutoUpdateIn(_In):
    enabled: bool = True
    interval_s: int = Field(DEFAULT_INTERVAL_S, ge=MIN_INTERVAL_S, le=MAX_INTERVAL_S)
    health_url: Annotated[AnyHttpUrl, Field(max_length=limits.MAX_URL)] | None = None
    metrics_url: Annotated[AnyHttpUrl, Field(max_length=limits.MAX_URL)] | None = None
    # A mapping is checked by the domain (AutoUpdate), which names each field by its path
    # (`body.kpi_metrics.o1`, `body.kpi_metrics.o1.window_s`), not by a union's members.
    kpi_metrics: dict[ObjectiveId, KpiMappingJson] = Field(
        default_factory=dict,
        max_length=limits.MAX_OBJECTIVES,
        description=(
            "objective id -> a metric name, or {metric, labels: {name: value}, aggregation:"
            " value|rate|ratio|quantile, window_s (rate), denominator: {metric, labels} (ratio),"
            " quantile (quantile)}; see docs/collector.md"
        ),
    )


class CollectionStateOut(BaseModel):
    state: Literal["collecting", "failing", "idle"]
    failing_since: str | None = None
    failing_reason: str | None = None


class AutoUpdateOut(BaseModel):
    agent_id: str
    config: dict[str, Any] | None
    collection: CollectionStateOut


class AlertOut(BaseModel):
    agent_id: str
    since: str | None
    detail: dict[str, Any]


class AlertsOut(BaseModel):
    stagnant: list[AlertOut]
    collection_failing: list[AlertOut]
    at_risk: list[AlertOut]


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
        "goals_set",
        "progress_updated",
        "milestone_reached",
        "status_changed",
        "auto_update_configured",
        "metrics_collection_failed",
        "metrics_collection_recovered",
        "goal_stagnant",
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
