"""Goal templates: ready-made goals for common agent roles, and the rule that merges a
client's overrides into one.

The catalogue is data (`goal_templates.json` beside this module), read once when this module
is imported and checked with the same rules as hand-written goals (`GoalDefinition.problems`)
plus the shape of each suggested metric mapping: a broken template stops the import, so a unit
test (and the server's start) fails rather than a client's request.

Merge rule (`goals_from_template`): the template gives every field; an override replaces the
field it names, and nothing else. `objectives` overrides are keyed by the template's objective
ids; each replaces only the fields it gives (title, weight, milestones, and the KPI's baseline,
target and unit). Objectives are neither added nor removed: goals of another shape are written
by hand. The merged goals are checked like any others, and what is wrong is named by the path
the client wrote (`objectives.<id>.target`), not by the template's layout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, TypeVar

from domain.auto_update import parse_mapping
from domain.errors import InvalidCommand
from domain.objectives import DEFAULT_MILESTONES, GoalDefinition, Kpi, Objective

PROMETHEUS_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
TEMPLATE_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
T = TypeVar("T")


@dataclass(frozen=True)
class GoalTemplate:
    """Goals for one agent role, and the Prometheus series an agent of that role would export
    for each objective (`kpi_metrics`: objective id -> mapping, the auto-update shape)."""

    id: str
    title: str
    description: str
    definition: GoalDefinition
    kpi_metrics: Mapping[str, Mapping[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "purpose_statement": self.definition.purpose_statement,
            "success_criteria": list(self.definition.success_criteria),
            "objectives": [_objective_json(o) for o in self.definition.objectives],
            "kpi_metrics": {k: dict(v) for k, v in self.kpi_metrics.items()},
        }


@dataclass(frozen=True)
class ObjectiveOverride:
    """Fields of one template objective a client replaces; None keeps the template's."""

    title: str | None = None
    weight: float | None = None
    baseline: float | None = None
    target: float | None = None
    unit: str | None = None
    milestones: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TemplateOverrides:
    purpose_statement: str | None = None
    success_criteria: tuple[str, ...] | None = None
    objectives: Mapping[str, ObjectiveOverride] = field(default_factory=dict)
    label: str | None = None
    target_date: str | None = None


class UnknownTemplate(InvalidCommand):
    def __init__(self, template_id: str) -> None:
        known = ", ".join(sorted(CATALOGUE))
        super().__init__({"template_id": f"unknown template {template_id!r}; known: {known}"})
        self.template_id = template_id


def goals_from_template(template_id: str, overrides: TemplateOverrides) -> GoalDefinition:
    """The template's goals with the overrides merged in (see the module's merge rule)."""
    template = CATALOGUE.get(template_id)
    if template is None:
        raise UnknownTemplate(template_id)
    base = template.definition
    by_id = {o.id: o for o in base.objectives}
    unknown = {
        f"objectives.{key}": f"not an objective of template {template_id!r} (it has {', '.join(by_id)})"
        for key in overrides.objectives
        if key not in by_id
    }
    if unknown:
        raise InvalidCommand(unknown)
    merged = replace(
        base,
        purpose_statement=_given(overrides.purpose_statement, base.purpose_statement),
        success_criteria=_given(overrides.success_criteria, base.success_criteria),
        objectives=tuple(_merged(o, overrides.objectives.get(o.id)) for o in base.objectives),
        label=overrides.label,
        target_date=overrides.target_date,
    )
    if problems := merged.problems():
        raise InvalidCommand({_override_path(k, merged): v for k, v in problems.items()})
    return merged


def _given(value: T | None, default: T) -> T:
    return default if value is None else value


def _merged(objective: Objective, override: ObjectiveOverride | None) -> Objective:
    if override is None:
        return objective
    kpi = objective.kpi
    if kpi is not None:
        kpi = replace(
            kpi,
            baseline=_given(override.baseline, kpi.baseline),
            target=_given(override.target, kpi.target),
            unit=_given(override.unit, kpi.unit),
        )
    return replace(
        objective,
        title=_given(override.title, objective.title),
        weight=_given(override.weight, objective.weight),
        kpi=kpi,
        milestones=_given(override.milestones, objective.milestones),
    )


def _override_path(path: str, merged: GoalDefinition) -> str:
    """`goals.primary_objectives.2.kpi.target` -> `objectives.<id>.target`: the client's path."""
    parts = path.split(".")
    if parts[:2] == ["goals", "primary_objectives"] and len(parts) > 2 and parts[2].isdigit():
        objective_id = merged.objectives[int(parts[2])].id
        return ".".join(["objectives", objective_id, *[p for p in parts[3:] if p != "kpi"]])
    return path.removeprefix("goals.")


def _objective_json(objective: Objective) -> dict[str, Any]:
    kpi = objective.kpi
    return {
        "id": objective.id,
        "title": objective.title,
        "weight": objective.weight,
        "kpi": None
        if kpi is None
        else {
            "metric": kpi.metric,
            "unit": kpi.unit,
            "baseline": kpi.baseline,
            "target": kpi.target,
            "direction": kpi.direction,
        },
        "milestones": list(objective.milestones),
    }


# -- the catalogue: parsed and checked once, at import ---------------------------------------


class BrokenTemplate(Exception):
    """A template in the catalogue breaks a rule; names the template and each field."""


def parse_template(raw: Mapping[str, Any]) -> GoalTemplate:
    """One catalogue entry as a template, or BrokenTemplate naming what is wrong."""
    template_id = str(raw.get("id", ""))
    try:
        objectives = tuple(_parse_objective(o) for o in raw["objectives"])
        definition = GoalDefinition(
            purpose_statement=raw["purpose_statement"],
            objectives=objectives,
            success_criteria=tuple(raw.get("success_criteria", ())),
        )
        template = GoalTemplate(
            template_id, raw["title"], raw["description"], definition, dict(raw.get("kpi_metrics", {}))
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BrokenTemplate(f"template {template_id!r}: {exc!r}") from exc
    problems = template_problems(template)
    if problems:
        raise BrokenTemplate(f"template {template_id!r}: {problems}")
    return template


def _parse_objective(raw: Mapping[str, Any]) -> Objective:
    kpi = None
    if raw.get("kpi"):
        numbers = {k: float(raw["kpi"][k]) for k in ("baseline", "target") if k in raw["kpi"]}
        kpi = Kpi(**{**raw["kpi"], **numbers})
    milestones = tuple(float(t) for t in raw.get("milestones", DEFAULT_MILESTONES))
    return Objective(raw["id"], raw["title"], float(raw.get("weight", 1.0)), kpi, milestones)


def template_problems(template: GoalTemplate) -> dict[str, str]:
    """The goal rules, plus: an id, a title, a description, and a well-formed metric mapping
    for every objective (and none for an objective the template lacks)."""
    errors = dict(template.definition.problems())
    if not TEMPLATE_ID.fullmatch(template.id):
        errors["id"] = f"must match {TEMPLATE_ID.pattern}"
    for name in ("title", "description"):
        if not str(getattr(template, name)).strip():
            errors[name] = "must not be empty"
    ids = set(template.definition.objective_ids())
    for objective_id in ids - set(template.kpi_metrics):
        errors[f"kpi_metrics.{objective_id}"] = "every objective suggests a metric mapping"
    for objective_id, mapping in template.kpi_metrics.items():
        if objective_id not in ids:
            errors[f"kpi_metrics.{objective_id}"] = "not an objective of this template"
        for where, problem in mapping_problems(mapping).items():
            errors[f"kpi_metrics.{objective_id}" + (f".{where}" if where else "")] = problem
    return errors


def mapping_problems(mapping: object) -> dict[str, str]:
    """What is wrong with a suggested metric mapping: what auto-update would refuse
    (domain.auto_update.parse_mapping, so a suggestion can be configured as is), and series
    that are not Prometheus names (auto-update also takes a health document's dotted paths)."""
    parsed, errors = parse_mapping(mapping)
    if parsed is not None:
        if not PROMETHEUS_NAME.fullmatch(parsed.series.metric):
            errors["metric"] = "must be a Prometheus metric name"
        if parsed.denominator is not None and not PROMETHEUS_NAME.fullmatch(parsed.denominator.metric):
            errors["denominator"] = "must be a Prometheus metric name"
    return errors


def load_catalogue(text: str) -> dict[str, GoalTemplate]:
    """Templates by id from the catalogue's JSON text; BrokenTemplate if any breaks a rule."""
    templates = [parse_template(raw) for raw in json.loads(text)["templates"]]
    catalogue = {t.id: t for t in templates}
    if len(catalogue) != len(templates):
        raise BrokenTemplate("two templates share an id")
    return catalogue


CATALOGUE: dict[str, GoalTemplate] = load_catalogue(
    resources.files("domain").joinpath("goal_templates.json").read_text(encoding="utf-8")
)
