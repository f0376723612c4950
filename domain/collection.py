"""The rules of metrics collection and stalls, for AgentGoals (whose events they trigger).

- A poll that succeeds records progress only when some objective moved by at least
  `min_delta` points, so a steady agent writes nothing; milestones follow from the progress.
- The first failed poll after a success records `MetricsCollectionFailed`; the polls failing
  after it record nothing; the first success after them records `MetricsCollectionRecovered`.
- An active goal without progress for longer than the stagnation threshold is recorded
  `GoalStagnant` once per stall: a stall is known by the instant progress stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.limits import MAX_REASON, number_problem
from domain.meta import Meta
from domain.objectives import GoalDefinition, clamp_percent
from domain.status import Status


class CollectionRules:
    """Commands of AgentGoals about collection and stalls (a mixin of the aggregate)."""

    status: str
    objective_progress: dict[str, float]
    last_updated: datetime | None
    collection_failing_since: datetime | None
    stagnant_since: datetime | None

    if TYPE_CHECKING:
        created_on: datetime

        def _trigger(self, event_class: Any, meta: Meta, **kwargs: Any) -> None: ...

        def _definition(self) -> GoalDefinition: ...

        def record_progress(
            self,
            meta: Meta,
            *,
            objective_progress: Mapping[str, float] | None = None,
            kpi_values: Mapping[str, float] | None = None,
            overall_progress: float | None = None,
            source: str = "manual",
            observed_at: datetime | None = None,
        ) -> None: ...

    def collection_failed(self, reason: str, meta: Meta) -> None:
        """A poll failed: recorded only if the polls before it succeeded (or there were none)."""
        if self.collection_failing_since is None:
            self._trigger(type(self).MetricsCollectionFailed, meta, reason=reason[:MAX_REASON])  # type: ignore[attr-defined]

    def record_metrics(
        self, kpi_values: Mapping[str, float], observed_at: datetime, min_delta: float, meta: Meta
    ) -> None:
        """A poll succeeded with these values per objective (a KPI value for an objective
        with a KPI, else a percentage). Recovers a failing collection; records progress if an
        objective moved by at least `min_delta` points; on a goal not active, only recovers."""
        failing_since = self.collection_failing_since
        if failing_since is not None:
            self._trigger(type(self).MetricsCollectionRecovered, meta, failed_since=failing_since)  # type: ignore[attr-defined]
        if self.status != Status.ACTIVE:
            return
        objectives = {o.id: o for o in self._definition().objectives}
        kpis: dict[str, float] = {}
        percents: dict[str, float] = {}
        moved = False
        for objective_id, value in kpi_values.items():
            objective = objectives.get(objective_id)
            if objective is None or number_problem(value) is not None:
                continue  # a mapping of an objective revised away, or a value out of bounds
            if objective.kpi is not None:
                kpis[objective_id] = float(value)
                progress = objective.kpi.progress(value)
            else:
                progress = percents[objective_id] = clamp_percent(value)
            moved = moved or abs(progress - self.objective_progress.get(objective_id, 0.0)) >= min_delta
        if moved:
            self.record_progress(
                meta, objective_progress=percents, kpi_values=kpis, source="metrics", observed_at=observed_at
            )

    def check_stagnation(self, now: datetime, hours: float, meta: Meta) -> None:
        """Record the stall of an active goal without progress for more than `hours` (its
        creation counts as progress), once per stall."""
        if self.status != Status.ACTIVE:
            return
        last = self.last_updated or self.created_on
        if now - last <= timedelta(hours=hours) or self.stagnant_since == last:
            return
        elapsed = round((now - last).total_seconds() / 3600, 4)
        self._trigger(type(self).GoalStagnant, meta, since=last, hours=elapsed)  # type: ignore[attr-defined]
