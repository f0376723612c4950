"""Objectives, KPIs and the progress arithmetic. Pure functions, no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Direction = Literal["increase", "decrease"]
DEFAULT_MILESTONES: tuple[float, ...] = (25.0, 50.0, 75.0, 90.0, 100.0)
OVERALL = "overall"


@dataclass(frozen=True)
class Kpi:
    """A measured quantity that moves an objective from `baseline` to `target`."""

    metric: str
    target: float
    baseline: float = 0.0
    unit: str = ""
    direction: Direction = "increase"

    def progress(self, value: float) -> float:
        """Linear progress of `value` from baseline (0) to target (100), clamped."""
        span = self.target - self.baseline
        if span == 0:
            return 100.0 if value == self.target else 0.0
        return clamp_percent((value - self.baseline) / span * 100.0)

    def problems(self) -> dict[str, str]:
        if not all(math.isfinite(v) for v in (self.baseline, self.target)):
            return {"target": "baseline and target must be finite numbers"}
        if self.direction == "increase" and self.target <= self.baseline:
            return {"target": f"must be above baseline {self.baseline} for direction increase"}
        if self.direction == "decrease" and self.target >= self.baseline:
            return {"target": f"must be below baseline {self.baseline} for direction decrease"}
        return {}


@dataclass(frozen=True)
class Objective:
    id: str
    title: str
    weight: float = 1.0
    kpi: Kpi | None = None
    milestones: tuple[float, ...] = DEFAULT_MILESTONES


@dataclass(frozen=True)
class GoalDefinition:
    """What an agent is for: the content of one goals version."""

    purpose_statement: str
    objectives: tuple[Objective, ...]
    success_criteria: tuple[str, ...] = ()
    kpis: tuple[object, ...] = ()
    label: str | None = None
    target_date: str | None = None

    def objective_ids(self) -> list[str]:
        return [o.id for o in self.objectives]

    def problems(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not self.purpose_statement.strip():
            errors["goals.purpose_statement"] = "must not be empty"
        if not self.objectives:
            errors["goals.primary_objectives"] = "at least one objective is required"
        seen: set[str] = set()
        for i, objective in enumerate(self.objectives):
            path = f"goals.primary_objectives.{i}"
            if objective.id in seen:
                errors[f"{path}.id"] = f"duplicate objective id {objective.id!r}"
            seen.add(objective.id)
            if not (objective.weight > 0 and math.isfinite(objective.weight)):
                errors[f"{path}.weight"] = "must be a positive number"
            if objective.kpi is not None:
                errors.update({f"{path}.kpi.{k}": v for k, v in objective.kpi.problems().items()})
            if any(not 0 < t <= 100 for t in objective.milestones):
                errors[f"{path}.milestones"] = "thresholds must be in (0, 100]"
        return errors


def clamp_percent(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return round(min(100.0, max(0.0, float(value))), 2)


def slug(text: str) -> str:
    """An objective id derived from its title: lower-case words joined by underscores."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "_".join(words)[:64] or "objective"


def unique_ids(titles: Iterable[str | None], given: Iterable[str | None] = ()) -> list[str]:
    """Ids for objectives: a given id is kept; a missing one is derived from the title,
    suffixed `_2`, `_3`... so it collides neither with a given id nor with another."""
    titles = list(titles)
    given_ids = list(given) or [None] * len(titles)
    taken = {g for g in given_ids if g}
    ids: list[str] = []
    for title, given_id in zip(titles, given_ids, strict=True):
        if given_id:
            ids.append(given_id)
            continue
        base = candidate = slug(title or "")
        n = 2
        while candidate in taken:
            suffix = f"_{n}"
            candidate = base[: 64 - len(suffix)] + suffix
            n += 1
        taken.add(candidate)
        ids.append(candidate)
    return ids


def weighted_overall(objectives: Iterable[Objective], objective_progress: Mapping[str, float]) -> float:
    """Weighted mean of objective progress; an objective with no report counts as 0."""
    total_weight = 0.0
    weighted = 0.0
    for objective in objectives:
        total_weight += objective.weight
        weighted += objective.weight * objective_progress.get(objective.id, 0.0)
    if total_weight == 0:
        return 0.0
    return clamp_percent(weighted / total_weight)


def crossed(thresholds: Iterable[float], previous: float, current: float) -> list[float]:
    """Thresholds t with previous < t <= current, in ascending order."""
    return sorted(t for t in thresholds if previous < t <= current)
