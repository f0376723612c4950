"""Goal templates: every one passes the goal rules, overrides merge by the documented rule,
and a broken template is refused when the catalogue loads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from domain.errors import InvalidCommand
from domain.templates import (
    CATALOGUE,
    BrokenTemplate,
    ObjectiveOverride,
    TemplateOverrides,
    goals_from_template,
    load_catalogue,
    template_problems,
)
from interfaces.http.schemas import GoalsIn

ROLES = {"data_product", "validation", "orchestration", "integration", "monitoring"}


def test_the_catalogue_has_the_common_roles_and_more() -> None:
    assert set(CATALOGUE) >= ROLES
    assert {"customer_support", "security_scanning"} <= set(CATALOGUE)


@pytest.mark.parametrize("template_id", sorted(CATALOGUE))
def test_every_template_passes_the_goal_rules_and_maps_each_objective(template_id: str) -> None:
    template = CATALOGUE[template_id]
    assert template.definition.problems() == {}
    assert template_problems(template) == {}
    assert set(template.kpi_metrics) == set(template.definition.objective_ids())
    assert all(o.kpi is not None for o in template.definition.objectives)
    # Set unchanged, a template gives exactly its goals.
    assert goals_from_template(template_id, TemplateOverrides()) == template.definition


def test_overrides_replace_only_the_fields_they_name() -> None:
    base = CATALOGUE["data_product"].definition
    merged = goals_from_template(
        "data_product",
        TemplateOverrides(
            purpose_statement="Publish the orders table",
            objectives={"freshness": ObjectiveOverride(target=120.0, weight=5.0)},
            label="2.0",
            target_date="2027-06-30",
        ),
    )
    assert merged.purpose_statement == "Publish the orders table"
    assert merged.success_criteria == base.success_criteria
    assert merged.label == "2.0" and merged.target_date == "2027-06-30"
    freshness = merged.objectives[0]
    assert freshness.id == "freshness" and freshness.weight == 5.0
    assert freshness.kpi is not None and base.objectives[0].kpi is not None
    assert freshness.kpi.target == 120.0
    assert freshness.kpi.baseline == base.objectives[0].kpi.baseline
    assert freshness.title == base.objectives[0].title
    assert merged.objectives[1:] == base.objectives[1:]


def test_an_unknown_template_is_named() -> None:
    with pytest.raises(InvalidCommand) as refused:
        goals_from_template("no_such_role", TemplateOverrides())
    assert set(refused.value.errors) == {"template_id"}


def test_an_override_of_an_objective_the_template_lacks_is_named() -> None:
    with pytest.raises(InvalidCommand) as refused:
        goals_from_template("monitoring", TemplateOverrides(objectives={"nope": ObjectiveOverride(weight=2)}))
    assert set(refused.value.errors) == {"objectives.nope"}


def test_an_override_that_breaks_a_rule_is_named_by_the_clients_path() -> None:
    # freshness decreases from 3600 s: a target above the baseline is refused.
    with pytest.raises(InvalidCommand) as refused:
        goals_from_template(
            "data_product", TemplateOverrides(objectives={"freshness": ObjectiveOverride(target=7200.0)})
        )
    assert set(refused.value.errors) == {"objectives.freshness.target"}


def test_the_request_body_takes_a_template_with_overrides() -> None:
    body = GoalsIn.model_validate(
        {
            "template_id": "validation",
            "target_date": "2027-01-31",
            "objectives": {"throughput": {"target": 250, "milestones": [50, 100]}},
        }
    )
    definition = body.to_definition()
    throughput = {o.id: o for o in definition.objectives}["throughput"]
    assert throughput.kpi is not None and throughput.kpi.target == 250
    assert throughput.milestones == (50.0, 100.0)
    assert definition.target_date == "2027-01-31"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "goals"),
        (
            {"template_id": "validation", "goals": {"purpose_statement": "x", "primary_objectives": ["a"]}},
            "goals",
        ),
        (
            {"goals": {"purpose_statement": "x", "primary_objectives": ["a"]}, "purpose_statement": "y"},
            "purpose_statement",
        ),
        ({"template_id": "Bad Id"}, "template_id"),
        (
            {"template_id": "validation", "objectives": {"throughput": {"weight": 0}}},
            "objectives.throughput.weight",
        ),
    ],
)
def test_bad_template_bodies_are_located(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        GoalsIn.model_validate(body)
    assert field in {".".join(str(p) for p in e["loc"]) for e in refused.value.errors()}


def _catalogue_with(change: dict[str, Any]) -> str:
    raw = json.loads(json.dumps({"templates": [CATALOGUE["monitoring"].as_json()]}))
    raw["templates"][0].update(change)
    return json.dumps(raw)


def test_a_broken_template_fails_the_load() -> None:
    assert set(load_catalogue(_catalogue_with({}))) == {"monitoring"}
    good = CATALOGUE["monitoring"].as_json()
    broken_kpi = [dict(good["objectives"][0], kpi={**good["objectives"][0]["kpi"], "target": 0.1})]
    for change in (
        {"purpose_statement": ""},
        {"objectives": broken_kpi + good["objectives"][1:]},
        {"kpi_metrics": {**good["kpi_metrics"], "coverage": {"metric": "bad name", "aggregation": "rate"}}},
        {"kpi_metrics": {**good["kpi_metrics"], "coverage": {"metric": "up", "aggregation": "ratio"}}},
        {"kpi_metrics": {"coverage": good["kpi_metrics"]["coverage"]}},
    ):
        with pytest.raises(BrokenTemplate):
            load_catalogue(_catalogue_with(change))
