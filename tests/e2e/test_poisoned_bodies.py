"""No body one tenant sends may stop the read side for another.

Each body below was once stored (201) and then failed a read model, or failed at the edge
with a 500; every one must be refused with a 422 that names the field, and afterwards another
tenant's write must be projected and every read model live."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.support import API, login, ok, problem

OPERATOR = "default"  # the operator tenant of a server with the test defaults


def _goals(**goals: Any) -> dict[str, Any]:
    return {"goals": {"purpose_statement": "p", "primary_objectives": ["A"], **goals}}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"name": "deep"}
    for _ in range(depth):
        value = {"name": "deep", "inner": value}
    return value


def _kpi_objective(**kpi: Any) -> dict[str, Any]:
    return _goals(primary_objectives=[{"title": "Latency", "kpi": {"metric": "m", **kpi}}])


# (body, a field the 422 must name)
POISONED: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("kpis nested 300 deep", _goals(kpis=[_nested(300)]), "body"),
    ("kpis nested 20 deep", _goals(kpis=[_nested(20)]), "body.goals.kpis.0"),
    ("integer beyond 64 bits in kpis", _goals(kpis=[{"name": "n", "target": 2**70}]), "body.goals.kpis.0"),
    ("integer beyond 64 bits as a target", _kpi_objective(target=2**70), "body.goals.primary_objectives.0"),
    (
        "lone surrogate",
        b'{"goals": {"purpose_statement": "p\\ud800", "primary_objectives": ["A"]}}',
        "body",
    ),
    ("200 kB string in kpis", _goals(kpis=[{"name": "x" * 200_000}]), "body.goals.kpis.0"),
    ("200 kB success criterion", _goals(success_criteria=["x" * 200_000]), "body.goals.success_criteria.0"),
    ("unbounded list in kpis", _goals(kpis=[{"name": "x", "values": list(range(100_000))}]), "body.goals.kpis.0"),
    ("object as a success criterion", _goals(success_criteria=[{"a": [1, 2]}]), "body.goals.success_criteria.0"),
    ("KPI bounds of 1e308", _kpi_objective(baseline=-1e308, target=1e308), "body.goals.primary_objectives.0"),
    ("NUL in a title", _goals(primary_objectives=["A\u0000B"]), "body.goals.primary_objectives.0"),
]


def _post(server: Server, headers: dict[str, str], agent_id: str, body: bytes | dict[str, Any]) -> httpx.Response:
    url = f"{server.url}{API}/agents/{agent_id}"
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers={**headers, "content-type": "application/json"}, timeout=30)
    return httpx.post(url, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("store_kind", ["postgres"], indirect=True)
def test_poisoned_bodies_are_refused_and_other_tenants_stay_live(server: Server, tenant: str) -> None:
    _, attacker = login(server, tenant)
    for i, (what, body, field) in enumerate(POISONED):
        answer = _post(server, attacker, f"poison{i}", body)
        found = problem(answer, 422)
        named = {e["field"] for e in found["errors"]}
        assert any(f.startswith(field) for f in named), (what, named)
    _, victim = login(server, f"{tenant}v")
    created = ok(_post(server, victim, "bystander", _goals()), 201)
    read = httpx.get(
        f"{server.url}{API}/agents/bystander",
        params={"min_position": created["position"]},
        headers=victim,
        timeout=30,
    )
    assert ok(read)["agent_id"] == "bystander"
    _, operator = login(server, OPERATOR)
    states = ok(httpx.get(f"{server.url}/api/v1/admin/projections", headers=operator, timeout=30))
    for entry in states["projections"]:
        assert entry["state"] == "live", entry
        assert entry["lag_events"] == 0, entry
