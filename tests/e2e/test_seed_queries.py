"""The seed queries over real HTTP, on SQLite and on PostgreSQL: health, analytics, the
cursor-paged history and the audit replay (?version= and ?as_of=)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.e2e.support import READ_MODELS, ok

API = "/api/v1/goals"
GOALS: dict[str, Any] = {
    "goals": {
        "purpose_statement": "Route every ticket in minutes",
        "primary_objectives": [
            "Alpha",
            {
                "id": "acc",
                "title": "Accuracy",
                "kpi": {"metric": "routing_accuracy", "baseline": 80, "target": 100},
            },
        ],
    }
}


def create(api: httpx.Client, agent_id: str) -> dict[str, Any]:
    return ok(api.post(f"/agents/{agent_id}", json=GOALS), 201)


def progress(api: httpx.Client, agent_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    return ok(api.put(f"/agents/{agent_id}/progress", json=payload))


def view(api: httpx.Client, agent_id: str, **params: str | int) -> dict[str, Any]:
    return ok(api.get(f"/agents/{agent_id}", params=params))


def test_health_lists_the_projections_and_the_store_but_no_volumes(
    api: httpx.Client, store_kind: str
) -> None:
    written = create(api, "h1")
    view(api, "h1", min_position=written["position"])  # projected
    response = api.get("/health")
    health = ok(response)
    assert (health["status"], health["runner"], health["database"]) == ("ok", "in-process", "up")
    assert health["store"] == {"sqlite": "sqlite", "postgres": "postgresql"}[store_kind]
    assert "log_position" not in health  # public: the log's position tells how many events there are
    projections = {p["name"]: p for p in health["projections"]}
    assert set(projections) == READ_MODELS
    for projection in projections.values():
        # public: states and lags in seconds; no position, no count of events, no error text
        assert set(projection) == {"name", "state", "lag_s", "advancing"}
        assert projection["state"] == "live"
        assert projection["lag_s"] >= 0
        assert projection["advancing"] is True


def test_analytics_for_the_tenant_and_for_one_agent(api: httpx.Client) -> None:
    create(api, "x1")
    create(api, "x2")
    progress(api, "x1", {"objective_progress": {"alpha": 60}, "kpi_values": {"acc": 90}})
    paused = ok(api.put("/agents/x2/status", json={"status": "paused", "reason": "waiting"}))

    overview = ok(api.get("/analytics", params={"min_position": paused["position"]}))
    assert overview["agents_with_goals"] == 2
    assert overview["by_status"] == {"active": 1, "paused": 1, "completed": 0, "cancelled": 0}
    assert overview["mean_progress"] == 27.5  # (55 + 0) / 2
    assert overview["median_progress"] == 27.5
    assert overview["progress_updates"] == 1
    # alpha 25, 50; acc 25, 50; overall 25, 50
    assert overview["milestones_achieved"] == 6

    agent = ok(api.get("/analytics/x1"))
    assert agent["agent_id"] == "x1"
    assert agent["status"] == "active"
    assert agent["overall_progress"] == 55.0
    assert agent["updates"] == 1
    assert agent["milestones_achieved"] == 6
    objectives = {o["id"]: (o["progress"], o["milestones_achieved"]) for o in agent["objectives"]}
    assert objectives == {"alpha": (60.0, [25.0, 50.0]), "acc": (50.0, [25.0, 50.0])}
    assert set(agent["time_in_status_s"]) == {"active"}
    assert ok(api.get("/analytics/x2"))["status"] == "paused"

    missing = api.get("/analytics/nobody")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_history_cursor_paging_walks_every_entry_once(api: httpx.Client, actor: str) -> None:
    create(api, "h1")
    for pct in (10, 30, 55, 80):
        progress(api, "h1", {"objective_progress": {"alpha": pct}})
    last = ok(api.put("/agents/h1/status", json={"status": "paused", "reason": "holiday"}))

    everything = ok(api.get("/agents/h1/history", params={"limit": 500, "min_position": last["position"]}))
    assert everything["agent_id"] == "h1"
    assert everything["next_cursor"] is None
    entries = everything["items"]
    positions = [e["position"] for e in entries]
    assert positions == sorted(set(positions))
    assert {e["action"] for e in entries} == {
        "goals_set",
        "progress_updated",
        "milestone_reached",
        "status_changed",
    }
    assert entries[0]["action"] == "goals_set"
    assert entries[-1]["action"] == "status_changed"
    assert entries[-1]["data"] == {"from": "active", "to": "paused", "reason": "holiday"}
    for entry in entries:
        assert entry["actor"] == actor
        assert entry["request_id"]
        assert datetime.fromisoformat(entry["timestamp"]).tzinfo is not None

    walked: list[dict[str, Any]] = []
    cursor: int | None = 0
    pages = 0
    while cursor is not None:
        page = ok(api.get("/agents/h1/history", params={"limit": 2, "cursor": cursor}))
        assert 1 <= len(page["items"]) <= 2
        walked.extend(page["items"])
        cursor = page["next_cursor"]
        pages += 1
        assert pages <= len(entries), "the cursor does not advance"
    assert walked == entries

    milestones = ok(api.get("/agents/h1/history", params={"action": "milestone_reached"}))
    assert {e["action"] for e in milestones["items"]} == {"milestone_reached"}
    assert len(milestones["items"]) == sum(e["action"] == "milestone_reached" for e in entries)


def test_replay_by_version_and_by_instant_returns_the_earlier_state(api: httpx.Client) -> None:
    created = create(api, "r1")
    written = progress(api, "r1", {"objective_progress": {"alpha": 40}})
    current = view(api, "r1", min_position=written["position"])
    assert current["progress"]["overall_progress"] == 20.0

    by_version = view(api, "r1", version=created["version"])
    assert by_version["replayed"] is True
    assert by_version["version"] == created["version"]
    assert by_version["progress"]["overall_progress"] == 0.0
    assert by_version["progress"]["objective_progress"] == {}
    assert by_version["goals"] == current["goals"]
    assert by_version["created_at"] == current["created_at"]

    history = ok(api.get("/agents/r1/history"))["items"]
    goals_set = datetime.fromisoformat(history[0]["timestamp"])
    progressed = datetime.fromisoformat(history[1]["timestamp"])
    assert (history[0]["action"], history[1]["action"]) == ("goals_set", "progress_updated")
    between = goals_set + (progressed - goals_set) / 2
    by_instant = view(api, "r1", as_of=between.isoformat())
    assert by_instant == by_version

    assert view(api, "r1", as_of=between.isoformat().replace("+00:00", "Z")) == by_version
    # the replay of the latest version is exactly the projected view
    latest = view(api, "r1", version=current["version"])
    assert {k: v for k, v in latest.items() if k != "replayed"} == current

    before = api.get("/agents/r1", params={"as_of": "2000-01-01T00:00:00+00:00"})
    assert before.status_code == 404
    beyond = api.get("/agents/r1", params={"version": current["version"] + 5})
    assert beyond.status_code == 404
    both = api.get("/agents/r1", params={"version": 2, "as_of": between.isoformat()})
    assert both.status_code == 422
