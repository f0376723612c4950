"""Goal templates over real HTTP: list and read them, set an agent's goals from one (with
overrides) and read the goals back; an unknown template is a 422 naming `template_id`."""

from __future__ import annotations

import httpx

from tests.conftest import Server
from tests.e2e.support import ok, problem


def test_templates_are_listed_and_read_one_by_one(api: httpx.Client) -> None:
    listed = ok(api.get("/templates"))["items"]
    ids = [t["id"] for t in listed]
    assert {"data_product", "validation", "orchestration", "integration", "monitoring"} <= set(ids)
    one = ok(api.get("/templates/security_scanning"))
    assert one == next(t for t in listed if t["id"] == "security_scanning")
    assert one["purpose_statement"] and one["description"]
    for objective in one["objectives"]:
        assert objective["kpi"]["direction"] in ("increase", "decrease")
        assert objective["milestones"]
        mapping = one["kpi_metrics"][objective["id"]]
        assert mapping["metric"] and mapping["aggregation"] in ("value", "rate", "ratio", "quantile")
    problem(api.get("/templates/no_such_role"), 404)


def test_goals_set_from_a_template_read_back_with_its_objectives(api: httpx.Client) -> None:
    template = ok(api.get("/templates/data_product"))
    body = {
        "template_id": "data_product",
        "purpose_statement": "Publish the orders table for billing agents",
        "target_date": "2027-06-30",
        "objectives": {"freshness": {"target": 120, "weight": 5}},
    }
    answer = ok(api.post("/agents/orders-data", json=body), 201)
    goals = ok(api.get("/agents/orders-data", params={"min_position": answer["position"]}))
    assert goals["goals"]["purpose_statement"] == "Publish the orders table for billing agents"
    assert goals["target_date"] == "2027-06-30"
    objectives = goals["goals"]["primary_objectives"]
    assert [o["id"] for o in objectives] == [o["id"] for o in template["objectives"]]
    assert objectives[0]["kpi"]["target"] == 120 and objectives[0]["weight"] == 5
    assert objectives[1]["kpi"] == {
        k: v for k, v in template["objectives"][1]["kpi"].items() if k in objectives[1]["kpi"]
    }
    # The template's KPIs drive progress like hand-written ones: freshness 3600 s -> 120 s.
    moved = ok(api.put("/agents/orders-data/progress", json={"kpi_values": {"freshness": 1860}}))
    after = ok(api.get("/agents/orders-data", params={"min_position": moved["position"]}))
    assert after["progress"]["objective_progress"]["freshness"] == 50.0


def test_an_unknown_template_or_objective_is_a_422_naming_the_field(api: httpx.Client) -> None:
    unknown = problem(api.post("/agents/a1", json={"template_id": "no_such_role"}), 422)
    assert [e["field"] for e in unknown["errors"]] == ["body.template_id"]
    wrong = problem(
        api.post("/agents/a1", json={"template_id": "monitoring", "objectives": {"nope": {"weight": 2}}}), 422
    )
    assert [e["field"] for e in wrong["errors"]] == ["body.objectives.nope"]
    breaks = problem(
        api.post(
            "/agents/a1", json={"template_id": "monitoring", "objectives": {"coverage": {"target": 0.1}}}
        ),
        422,
    )
    assert [e["field"] for e in breaks["errors"]] == ["body.objectives.coverage.target"]
    problem(api.get("/agents/a1"), 404)  # nothing was written


def test_the_openapi_document_lists_the_template_endpoints(server: Server) -> None:
    paths = ok(httpx.get(f"{server.url}/openapi.json", timeout=30))["paths"]
    assert "get" in paths["/api/v1/goals/templates"]
    assert "get" in paths["/api/v1/goals/templates/{template_id}"]
