"""Objectives, KPIs and the progress arithmetic. Pure functions, no I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

from domain.limits import (
    MAX_ENTRIES,
    MAX_LABEL,
    MAX_METRIC,
    MAX_MILESTONES,
    MAX_OBJECTIVES,
    MAX_PURPOSE,
    MAX_TEXT,
    MAX_TITLE,
    MAX_UNIT,
    MAX_WEIGHT,
    RESERVED_OBJECTIVE_IDS,
    note_problems,
    number_problem,
    objective_id_problem,
    text_problem,
)

Direction = Literal["increase", "decrease"]
DEFAULT_MILESTONES: tuple[float, ...] = (25.0, 50.0, 75.0, 90.0, 100.0)


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
        errors = {
            name: problem
            for name, problem in (
                ("metric", text_problem(self.metric, MAX_METRIC, required=True)),
                ("unit", text_problem(self.unit, MAX_UNIT)),
                ("baseline", number_problem(self.baseline)),
                ("target", number_problem(self.target)),
                ("direction", None if self.direction in ("increase", "decrease") else "must be increase or decrease"),
            )
            if problem is not None
        }
        if errors:
            return errors
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
        """What is wrong with these goals, by field path; empty when they may be set."""
        errors: dict[str, str] = {}
        if problem := text_problem(self.purpose_statement, MAX_PURPOSE, required=True):
            errors["goals.purpose_statement"] = problem
        if not self.objectives:
            errors["goals.primary_objectives"] = "at least one objective is required"
        elif len(self.objectives) > MAX_OBJECTIVES:
            errors["goals.primary_objectives"] = f"at most {MAX_OBJECTIVES} objectives"
        seen: set[str] = set()
        for i, objective in enumerate(self.objectives[:MAX_OBJECTIVES]):
            errors.update(_objective_problems(objective, f"goals.primary_objectives.{i}", seen))
        errors.update(_entries_problems("goals.success_criteria", self.success_criteria))
        errors.update(_entries_problems("goals.kpis", self.kpis))
        if self.label is not None and (problem := text_problem(self.label, MAX_LABEL)):
            errors["goals.version"] = problem
        if self.target_date is not None and not _is_date(self.target_date):
            errors["target_date"] = "must be a date, YYYY-MM-DD"
        return errors


def _objective_problems(objective: Objective, path: str, seen: set[str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if problem := objective_id_problem(objective.id):
        errors[f"{path}.id"] = problem
    elif objective.id in seen:
        errors[f"{path}.id"] = f"duplicate objective id {objective.id!r}"
    seen.add(objective.id)
    if problem := text_problem(objective.title, MAX_TITLE, required=True):
        errors[f"{path}.title"] = problem
    if number_problem(objective.weight, magnitude=MAX_WEIGHT) or not objective.weight > 0:
        errors[f"{path}.weight"] = f"must be a number above 0, at most {MAX_WEIGHT:g}"
    if objective.kpi is not None:
        errors.update({f"{path}.kpi.{k}": v for k, v in objective.kpi.problems().items()})
    if len(objective.milestones) > MAX_MILESTONES:
        errors[f"{path}.milestones"] = f"at most {MAX_MILESTONES} thresholds"
    elif any(number_problem(t) or not 0 < t <= 100 for t in objective.milestones):
        errors[f"{path}.milestones"] = "thresholds must be in (0, 100]"
    return errors


def _entries_problems(path: str, entries: tuple[object, ...]) -> dict[str, str]:
    """Success criteria (texts) and free-form KPIs (texts or flat objects)."""
    if len(entries) > MAX_ENTRIES:
        return {path: f"at most {MAX_ENTRIES} entries"}
    errors: dict[str, str] = {}
    for i, entry in enumerate(entries):
        if path.endswith("success_criteria"):
            found = {"": problem} if (problem := text_problem(entry, MAX_TEXT, required=True)) else {}
        else:
            found = note_problems(entry)
        errors.update({f"{path}.{i}" + (f".{k}" if k else ""): v for k, v in found.items()})
    return errors


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return len(text) == 10


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
    suffixed `_2`, `_3`... so it collides neither with a given id, nor with another, nor
    with a reserved id (an objective titled "Overall" is `overall_2`)."""
    titles = list(titles)
    given_ids = list(given) or [None] * len(titles)
    taken = {g for g in given_ids if g} | RESERVED_OBJECTIVE_IDS
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


def revised_progress(
    definition: GoalDefinition, objective_progress: Mapping[str, float]
) -> tuple[dict[str, float], float]:
    """Progress under revised goals: what is kept of each objective's progress (the objectives
    that remain) and the overall progress that follows (the aggregate and the goal_progress
    read model both take it from here)."""
    kept = set(definition.objective_ids())
    progress = {k: v for k, v in objective_progress.items() if k in kept}
    return progress, weighted_overall(definition.objectives, progress)


def crossed(thresholds: Iterable[float], previous: float, current: float) -> list[float]:
    """Thresholds t with previous < t <= current, in ascending order."""
    return sorted(t for t in thresholds if previous < t <= current)
