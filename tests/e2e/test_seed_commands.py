"""The seed commands over real HTTP, on SQLite and on PostgreSQL: set and revise goals,
record progress, move through the status machine, configure auto-update and batch progress."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Server
from tests.e2e.support import log_position, ok

API = "/api/v1/goals"
GOALS: dict[str, Any] = {
    "goals": {
        "purpose_statement": "Reconcile invoices nightly",
        "primary_objectives": [
            "Alpha",
            {
                "id": "lat",
                "title": "Latency",
                "weight": 3,
                "kpi": {
                    "metric": "run_seconds",
                    "unit": "s",
                    "baseline": 100,
                    "target": 0,
                    "direction": "decrease",
                },
            },
        ],
        "success_criteria": ["Nothing left unmatched"],
        "version": "1.0",
    },
    "target_date": "2027-03-31",
}


def create(api: httpx.Client, agent_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return ok(api.post(f"/agents/{agent_id}", json=body or GOALS), 201)


def view(api: httpx.Client, agent_id: str, position: int) -> dict[str, Any]:
    return ok(api.get(f"/agents/{agent_id}", params={"min_position": position}))


def progress(api: httpx.Client, agent_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return ok(api.put(f"/agents/{agent_id}/progress", json=payload))


def set_status(api: httpx.Client, agent_id: str, status: str, **extra: object) -> httpx.Response:
    return api.put(f"/agents/{agent_id}/status", json={"status": status, "reason": "test", **extra})


def test_set_goals_creates_then_a_revision_increments_the_goal_version(api: httpx.Client, actor: str) -> None:
    first = api.post("/agents/a1", json=GOALS)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"{API}/agents/a1"
    answer = first.json()
    assert answer["agent_id"] == "a1"
    assert answer["created"] is True
    assert answer["position"] > 0
    assert first.headers["etag"] == f'"{answer["version"]}"'

    created = view(api, "a1", answer["position"])
    for key in ("goals", "progress", "status", "version", "created_at", "created_by"):
        assert key in created
    assert created["status"] == "active"
    assert created["version"] == answer["version"]
    assert created["created_by"] == actor
    assert created["goal_version"] == 1
    assert created["target_date"] == "2027-03-31"
    assert created["goals"]["purpose_statement"] == "Reconcile invoices nightly"
    assert [o["id"] for o in created["goals"]["primary_objectives"]] == ["alpha", "lat"]
    assert created["progress"]["overall_progress"] == 0.0

    revised_body = {
        "goals": {"purpose_statement": "Reconcile invoices hourly", "primary_objectives": ["Alpha"]}
    }
    second = api.post("/agents/a1", json=revised_body)
    revision = ok(second)
    assert revision["created"] is False
    assert revision["version"] > answer["version"]
    assert revision["position"] > answer["position"]
    assert second.headers["etag"] == f'"{revision["version"]}"'

    revised = view(api, "a1", revision["position"])
    assert revised["goal_version"] == 2
    assert revised["goals"]["purpose_statement"] == "Reconcile invoices hourly"
    assert revised["created_at"] == created["created_at"]
    assert revised["version"] == revision["version"]


def test_progress_from_percentages_and_kpi_values_derives_the_weighted_overall(api: httpx.Client) -> None:
    create(api, "a1")
    answer = api.put(
        "/agents/a1/progress", json={"objective_progress": {"alpha": 40}, "kpi_values": {"lat": 50}}
    )
    written = ok(answer)
    assert answer.headers["etag"] == f'"{written["version"]}"'

    current = view(api, "a1", written["position"])
    got = current["progress"]
    # alpha 40 (weight 1); lat: 50 on a 100 -> 0 decreasing KPI is 50% (weight 3) -> 190 / 4
    assert got["overall_progress"] == 47.5
    assert got["objective_progress"] == {"alpha": 40.0, "lat": 50.0}
    assert got["kpi_values"] == {"lat": 50.0}
    assert got["last_updated"] is not None
    reached = {(m["objective_id"], m["threshold"]) for m in got["milestones_achieved"]}
    assert reached == {("alpha", 25.0), ("lat", 25.0), ("lat", 50.0), ("overall", 25.0)}
    assert current["version"] == written["version"]

    # an overall_progress that agrees with the derived one is accepted
    agreed = progress(api, "a1", {"objective_progress": {"alpha": 80}, "overall_progress": 57.5})
    assert view(api, "a1", agreed["position"])["progress"]["overall_progress"] == 57.5


def test_status_machine_and_listing_by_status(api: httpx.Client) -> None:
    for agent_id in ("s1", "s2", "s3"):
        create(api, agent_id)
    ok(set_status(api, "s2", "paused"))
    refused = api.put("/agents/s2/progress", json={"objective_progress": {"alpha": 10}})
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "/problems/goal-not-active"
    last = ok(set_status(api, "s3", "completed"))

    listed = ok(api.get("/", params={"min_position": last["position"]}))
    assert listed["total"] == 3
    assert [g["agent_id"] for g in listed["items"]] == ["s1", "s2", "s3"]
    by_status = {g["agent_id"]: g["status"] for g in listed["items"]}
    assert by_status == {"s1": "active", "s2": "paused", "s3": "completed"}
    paused = ok(api.get("/", params={"status": "paused"}))
    assert (paused["total"], [g["agent_id"] for g in paused["items"]]) == (1, ["s2"])
    page = ok(api.get("/", params={"limit": 2, "offset": 2}))
    assert (page["total"], [g["agent_id"] for g in page["items"]]) == (3, ["s3"])

    without_reopen = set_status(api, "s3", "active")
    assert without_reopen.status_code == 409
    assert without_reopen.headers["content-type"].startswith("application/problem+json")
    assert without_reopen.json()["type"] == "/problems/transition-refused"
    reopened = ok(set_status(api, "s3", "active", reopen=True))
    assert view(api, "s3", reopened["position"])["status"] == "active"
    active = ok(api.get("/", params={"status": "active", "min_position": reopened["position"]}))
    assert [g["agent_id"] for g in active["items"]] == ["s1", "s3"]


def test_auto_update_config_is_in_the_view_and_the_history(api: httpx.Client, actor: str) -> None:
    create(api, "a1")
    # A public address (the guard checks it without a name to resolve), never polled: disabled.
    config = {
        "enabled": False,
        "interval_s": 30,
        "health_url": "http://93.184.215.14:8080/health",
        "metrics_url": "http://93.184.215.14:8080/metrics",
        "kpi_metrics": {"lat": "run_seconds_p50"},
    }
    written = ok(api.post("/agents/a1/auto-update", json=config))
    assert view(api, "a1", written["position"])["auto_update"] == config

    history = ok(api.get("/agents/a1/history", params={"action": "auto_update_configured"}))
    assert [e["action"] for e in history["items"]] == ["auto_update_configured"]
    assert history["items"][0]["data"] == config
    assert history["items"][0]["actor"] == actor


def test_batch_progress_updates_every_agent_and_one_bad_item_writes_nothing(
    api: httpx.Client, server: Server
) -> None:
    create(api, "b1")
    create(api, "b2")
    good = {
        "updates": [
            {"agent_id": "b1", "objective_progress": {"alpha": 10}},
            {"agent_id": "b2", "kpi_values": {"lat": 90}},
        ]
    }
    batch = ok(api.post("/progress:batch", json=good))
    assert [i["agent_id"] for i in batch["items"]] == ["b1", "b2"]
    b1 = view(api, "b1", batch["position"])
    b2 = view(api, "b2", batch["position"])
    assert b1["progress"]["objective_progress"] == {"alpha": 10.0}
    assert b2["progress"]["objective_progress"] == {"lat": 10.0}
    assert [i["version"] for i in batch["items"]] == [b1["version"], b2["version"]]

    log_before = log_position(server)
    bad = {
        "updates": [
            {"agent_id": "b1", "objective_progress": {"alpha": 12}},
            {"agent_id": "b2", "objective_progress": {"zzz": 5}},
            {"agent_id": "ghost", "objective_progress": {"alpha": 5}},
        ]
    }
    refused = api.post("/progress:batch", json=bad)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in refused.json()["errors"]}
    assert fields == {"body.updates.1.objective_progress.zzz", "body.updates.2.agent_id"}
    assert log_position(server) == log_before
    assert view(api, "b1", log_before) == b1
    assert view(api, "b2", log_before) == b2

    # the refused batch left no trace in the write side either: b1 moves on from its stored version
    after = progress(api, "b1", {"objective_progress": {"alpha": 12}})
    assert after["version"] == b1["version"] + 1
    assert view(api, "b1", after["position"])["progress"]["objective_progress"] == {"alpha": 12.0}
