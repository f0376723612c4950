"""The AgentGoals aggregate: one per agent per tenant."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate

from domain.auto_update import AutoUpdate, auto_update_problems
from domain.collection import CollectionRules
from domain.errors import GoalNotActive, InvalidCommand, TransitionRefused
from domain.ids import goals_id
from domain.legacy import storable_definition
from domain.limits import MAX_REASON, OVERALL, number_problem, text_problem
from domain.meta import Meta, meta_fields
from domain.objectives import (
    DEFAULT_MILESTONES,
    GoalDefinition,
    clamp_percent,
    crossed,
    revised_progress,
    weighted_overall,
)
from domain.status import Status, can_transition

SOURCES = frozenset({"manual", "metrics", "bulk"})
# How far ahead of our clock an observation may say it was made: a clock a little fast is
# forgiven, an instant in the future is not (it would pin "last updated" and hide a stall).
MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_OBSERVATION = datetime(1970, 1, 1, tzinfo=UTC)
__all__ = ["AgentGoals", "AutoUpdate", "milestone_key"]


class AgentGoals(CollectionRules, Aggregate):
    """Goals, progress, milestones and status of one agent, changed only by its events."""

    class Event(Aggregate.Event):
        tenant: str
        agent_id: str
        actor: str
        request_id: str
        idempotency_key: str | None

    class Registered(Event, Aggregate.Created):
        pass

    class GoalsSet(Event):
        """v2: the definition is within the bounds of `domain.limits`; v1 events (stored
        before those bounds) are read through `storable_definition`."""

        class_version = 2
        definition: GoalDefinition
        goal_version: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["definition"] = storable_definition(state["definition"])

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.definition = self.definition
            aggregate.goal_version = self.goal_version
            aggregate.objective_progress, aggregate.overall_progress = revised_progress(
                self.definition, aggregate.objective_progress
            )

    class ProgressRecorded(Event):
        """v2 added `previous_overall` (overall progress before this update), so timelines
        can show each change as from -> to without replaying the aggregate."""

        class_version = 2
        objective_progress: dict[str, float]
        overall_progress: float
        kpi_values: dict[str, float]
        source: str
        observed_at: datetime
        previous_overall: float | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # v1 did not record it; unknown is honest, a guess would not be.
            state["previous_overall"] = None

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.objective_progress = {
                **aggregate.objective_progress,
                **self.objective_progress,
            }
            aggregate.overall_progress = self.overall_progress
            aggregate.kpi_values = {**aggregate.kpi_values, **self.kpi_values}
            aggregate.last_updated = self.observed_at
            aggregate.update_count += 1

    class MilestoneReached(Event):
        objective_id: str
        threshold: float
        goal_version: int
        progress: float

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.milestones[milestone_key(self.goal_version, self.objective_id, self.threshold)] = {
                "objective_id": self.objective_id,
                "threshold": self.threshold,
                "goal_version": self.goal_version,
                "reached_at": self.timestamp.isoformat(),
            }

    class StatusChanged(Event):
        from_status: str
        to_status: str
        reason: str

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.status = self.to_status

    class AutoUpdateConfigured(Event):
        config: AutoUpdate

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.auto_update = self.config

    class MetricsCollectionFailed(Event):
        """Polling the agent's endpoints failed, after polls that had succeeded (or none)."""

        reason: str

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.collection_failing_since = self.timestamp
            aggregate.collection_failure = self.reason

    class MetricsCollectionRecovered(Event):
        """Polling succeeded again after failures since `failed_since`."""

        failed_since: datetime

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.collection_failing_since = None
            aggregate.collection_failure = None

    class GoalStagnant(Event):
        """An active goal has had no progress since `since`, for more than `hours`."""

        since: datetime
        hours: float

        def apply(self, aggregate: AgentGoals) -> None:
            aggregate.stagnant_since = self.since

    def __init__(
        self,
        tenant: str,
        agent_id: str,
        actor: str,
        request_id: str,
        idempotency_key: str | None,
    ) -> None:
        self.tenant = tenant
        self.agent_id = agent_id
        self.created_by = actor
        self.status: str = Status.ACTIVE.value
        self.definition: GoalDefinition | None = None
        self.goal_version = 0
        self.objective_progress: dict[str, float] = {}
        self.overall_progress = 0.0
        self.kpi_values: dict[str, float] = {}
        self.milestones: dict[str, dict[str, Any]] = {}
        self.last_updated: datetime | None = None
        self.update_count = 0
        self.auto_update: AutoUpdate | None = None
        self.collection_failing_since: datetime | None = None
        self.collection_failure: str | None = None
        self.stagnant_since: datetime | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> AgentGoals:
        """The copy the aggregate cache hands to a command: its containers are copied, and
        everything in them is immutable (numbers, text, instants, frozen definitions) or a
        milestone record, copied too. Much cheaper than a generic deep copy, on every load.
        Invariants: no other attribute is mutable, and nothing changes a definition's free-form
        kpis (dicts inside the frozen definition, shared by the copies); a new mutable
        attribute must be copied here (test_the_copy_shares_no_mutable_container_with_the_original
        breaks otherwise)."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._pending_events = list(self._pending_events)
        twin.objective_progress = dict(self.objective_progress)
        twin.kpi_values = dict(self.kpi_values)
        twin.milestones = {key: dict(record) for key, record in self.milestones.items()}
        return twin

    # --- commands -------------------------------------------------------------------------

    @classmethod
    def start(cls, tenant: str, agent_id: str, definition: GoalDefinition, meta: Meta) -> AgentGoals:
        """A new agent's first goals."""
        _check(definition)
        goals = cls._create(
            cls.Registered,
            id=goals_id(tenant, agent_id),
            tenant=tenant,
            agent_id=agent_id,
            **meta_fields(meta),
        )
        goals.set_goals(definition, meta)
        return goals

    def set_goals(self, definition: GoalDefinition, meta: Meta) -> None:
        """Set or revise the goals; a revision increments the goal version. A revision that
        moves overall progress past a threshold (new weights, objectives removed) reaches
        that milestone of the new version in the same save."""
        _check(definition)
        before_overall = self.overall_progress
        self._trigger(self.GoalsSet, meta, definition=definition, goal_version=self.goal_version + 1)
        self._reach(meta, OVERALL, DEFAULT_MILESTONES, before_overall, self.overall_progress)

    def record_progress(
        self,
        meta: Meta,
        *,
        objective_progress: Mapping[str, float] | None = None,
        kpi_values: Mapping[str, float] | None = None,
        overall_progress: float | None = None,
        source: str = "manual",
        observed_at: datetime | None = None,
    ) -> None:
        """Record progress; crossing a milestone threshold records it in the same save."""
        if self.status != Status.ACTIVE:
            raise GoalNotActive(self.agent_id, self.status)
        definition = self._definition()
        updates = self._resolve_progress(definition, objective_progress or {}, kpi_values or {})
        merged = {**self.objective_progress, **updates}
        derived = weighted_overall(definition.objectives, merged)
        if overall_progress is not None and not abs(overall_progress - derived) <= 0.005:
            raise InvalidCommand({"overall_progress": f"disagrees with the derived overall progress {derived}"})
        if source not in SOURCES:
            raise InvalidCommand({"source": f"must be one of {sorted(SOURCES)}"})
        if observed_at is not None:
            _check_observed_at(observed_at, self._now())
        before = dict(self.objective_progress)
        before_overall = self.overall_progress
        self._trigger(
            self.ProgressRecorded,
            meta,
            objective_progress=updates,
            overall_progress=derived,
            kpi_values={k: float(v) for k, v in (kpi_values or {}).items()},
            source=source,
            observed_at=observed_at.astimezone(UTC) if observed_at else self._now(),
            previous_overall=before_overall,
        )
        for objective in definition.objectives:
            if objective.id in updates:
                self._reach(
                    meta,
                    objective.id,
                    objective.milestones,
                    before.get(objective.id, 0.0),
                    updates[objective.id],
                )
        self._reach(meta, OVERALL, DEFAULT_MILESTONES, before_overall, derived)

    def change_status(self, to_status: str, reason: str, meta: Meta, *, reopen: bool = False) -> None:
        """Move through the status machine; anything outside it is refused."""
        try:
            target = Status(to_status)
        except ValueError:
            raise InvalidCommand({"status": f"must be one of {[s.value for s in Status]}"}) from None
        if problem := text_problem(reason, MAX_REASON):
            raise InvalidCommand({"reason": problem})
        if not can_transition(Status(self.status), target, reopen=reopen):
            raise TransitionRefused(self.agent_id, self.status, target.value)
        self._trigger(
            self.StatusChanged, meta, from_status=self.status, to_status=target.value, reason=reason
        )

    def configure_auto_update(self, config: AutoUpdate, meta: Meta) -> None:
        """How the agent's health and metrics endpoints are polled for KPI values."""
        errors = auto_update_problems(config, frozenset(self._definition().objective_ids()))
        if errors:
            raise InvalidCommand(errors)
        self._trigger(self.AutoUpdateConfigured, meta, config=config)

    # --- rules ---------------------------------------------------------------------------

    def milestone_reached(self, goal_version: int, objective_id: str, threshold: float) -> bool:
        return milestone_key(goal_version, objective_id, threshold) in self.milestones

    def _definition(self) -> GoalDefinition:
        assert self.definition is not None, "an AgentGoals always has goals after start()"
        return self.definition

    def _resolve_progress(
        self,
        definition: GoalDefinition,
        objective_progress: Mapping[str, float],
        kpi_values: Mapping[str, float],
    ) -> dict[str, float]:
        objectives = {o.id: o for o in definition.objectives}
        errors: dict[str, str] = {}
        updates: dict[str, float] = {}
        for objective_id, pct in objective_progress.items():
            if objective_id not in objectives:
                errors[f"objective_progress.{objective_id}"] = "unknown objective id"
            elif not 0 <= pct <= 100:
                errors[f"objective_progress.{objective_id}"] = "must be between 0 and 100"
            else:
                updates[objective_id] = clamp_percent(pct)
        for objective_id, value in kpi_values.items():
            kpi = objectives[objective_id].kpi if objective_id in objectives else None
            if kpi is None:
                errors[f"kpi_values.{objective_id}"] = "no objective with a KPI has this id"
            elif problem := number_problem(value):
                errors[f"kpi_values.{objective_id}"] = problem
            else:
                updates[objective_id] = kpi.progress(value)
        if not objective_progress and not kpi_values:
            errors["objective_progress"] = "send objective_progress and/or kpi_values"
        if errors:
            raise InvalidCommand(errors)
        return updates

    def _reach(
        self, meta: Meta, objective_id: str, thresholds: tuple[float, ...], previous: float, current: float
    ) -> None:
        for threshold in crossed(thresholds, previous, current):
            if not self.milestone_reached(self.goal_version, objective_id, threshold):
                self._trigger(
                    self.MilestoneReached,
                    meta,
                    objective_id=objective_id,
                    threshold=threshold,
                    goal_version=self.goal_version,
                    progress=current,
                )

    def _trigger(self, event_class: type[AgentGoals.Event], meta: Meta, **kwargs: Any) -> None:
        self.trigger_event(event_class, tenant=self.tenant, agent_id=self.agent_id, **meta_fields(meta), **kwargs)

    @staticmethod
    def _now() -> datetime:
        return AgentGoals.Event.create_timestamp()


def milestone_key(goal_version: int, objective_id: str, threshold: float) -> str:
    return f"{goal_version}:{objective_id}:{threshold:g}"


def _check_observed_at(observed_at: datetime, now: datetime) -> None:
    if observed_at.utcoffset() is None:
        raise InvalidCommand({"observed_at": "must carry a time zone offset (RFC 3339)"})
    if observed_at > now + MAX_CLOCK_SKEW:
        raise InvalidCommand({"observed_at": f"is in the future (after {now.isoformat()} and its leeway)"})
    if observed_at < EARLIEST_OBSERVATION:
        raise InvalidCommand({"observed_at": "must not be before 1970"})


def _check(definition: GoalDefinition) -> None:
    problems = definition.problems()
    if problems:
        raise InvalidCommand(problems)
