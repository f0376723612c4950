"""GET /api/v1/goals/analytics/events over real HTTP, on SQLite and on PostgreSQL: buckets of
the tenant's goal events after some commands, the 422s of bad parameters, the scope, and
tenant isolation.

The events are recorded "now", so a test cannot know whether an hour or a day turns between
two commands: the assertions merge the buckets a query returns (counts add up; min, max and
a count-weighted mean combine) and compare the merge with the figures worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.support import API, ok, problem

EVENTS = "/analytics/events"
GOALS: dict[str, Any] = {
    "goals": {
        "purpose_statement": "Answer every question",
        "primary_objectives": [{"id": "o1", "title": "Answers"}],
    }
}


def invalid_fields(response: httpx.Response) -> list[str]:
    body = problem(response, 422)
    assert body["type"] == "/problems/validation"
    return [e["field"] for e in body["errors"]]


def history(api: httpx.Client, agent_id: str, *progress: float, pause: bool = False) -> int:
    """Goals for `agent_id`, then each progress of o1 in turn, then a pause; the last position."""
    position: int = ok(api.post(f"/agents/{agent_id}", json=GOALS), 201)["position"]
    for pct in progress:
        position = ok(api.put(f"/agents/{agent_id}/progress", json={"objective_progress": {"o1": pct}}))[
            "position"
        ]
    if pause:
        position = ok(api.put(f"/agents/{agent_id}/status", json={"status": "paused", "reason": "wait"}))[
            "position"
        ]
    return position


def merge(buckets: list[dict[str, Any]]) -> dict[str, Any]:
    """The buckets as one: counts add up, min/max combine, means weigh by their counts."""

    def stats(key: str) -> dict[str, Any] | None:
        parts = [b[key] for b in buckets if b[key] is not None]
        if not parts:
            return None
        count = sum(p["count"] for p in parts)
        return {
            "count": count,
            "avg": round(sum(p["avg"] * p["count"] for p in parts) / count, 9),
            "min": min(p["min"] for p in parts),
            "max": max(p["max"] for p in parts),
        }

    merged: dict[str, Any] = {
        "count": sum(b["count"] for b in buckets),
        "overall": stats("overall"),
        "value": stats("value"),
    }
    if buckets and "count_by_type" in buckets[0]:
        by_type: dict[str, int] = {}
        for b in buckets:
            for name, n in b["count_by_type"].items():
                by_type[name] = by_type.get(name, 0) + n
        merged["count_by_type"] = by_type
    return merged


def stats(count: int, avg: float, low: float, high: float) -> dict[str, Any]:
    return {"count": count, "avg": avg, "min": low, "max": high}


def test_buckets_of_the_tenants_events(api: httpx.Client) -> None:
    started = datetime.now(UTC)
    # a1: Registered, GoalsSet, ProgressRecorded 20, ProgressRecorded 60 with o1@25, o1@50,
    # overall@25, overall@50, StatusChanged.  a2: Registered, GoalsSet, ProgressRecorded 90
    # with o1@25, @50, @75, @90 and overall@25, @50, @75, @90.
    history(api, "a1", 20, 60, pause=True)
    position = history(api, "a2", 90)

    body = ok(api.get(EVENTS, params={"bucket": "day", "min_position": position}))
    assert (body["bucket"], body["type"], body["agent"], body["from"], body["to"]) == (
        "day",
        None,
        None,
        None,
        None,
    )
    days = body["buckets"]
    assert 1 <= len(days) <= 2  # two only if midnight UTC passed during the test
    for day in days:
        assert day["bucket"].endswith("T00:00:00+00:00")
        assert started.date().isoformat() <= day["bucket"][:10] <= datetime.now(UTC).date().isoformat()
    assert merge(days) == {
        "count": 20,  # a1: 2 + 1 + 1 + 4 + 1, a2: 2 + 1 + 8
        "overall": stats(3, pytest.approx((20 + 60 + 90) / 3), 20, 90),
        # a1: 25, 50, 25, 50; a2: 25, 50, 75, 90, 25, 50, 75, 90
        "value": stats(12, pytest.approx((150 + 480) / 12), 25, 90),
        "count_by_type": {
            "Registered": 2,
            "GoalsSet": 2,
            "ProgressRecorded": 3,
            "MilestoneReached": 12,
            "StatusChanged": 1,
        },
    }

    hours = ok(api.get(EVENTS, params={"bucket": "hour"}))["buckets"]
    assert all(h["bucket"].endswith(":00:00+00:00") for h in hours)
    assert merge(hours) == merge(days)
    weeks = ok(api.get(EVENTS, params={"bucket": "week"}))["buckets"]
    for week in weeks:
        assert datetime.fromisoformat(week["bucket"]).weekday() == 0  # Monday 00:00 UTC
    assert merge(weeks) == merge(days)
    assert ok(api.get(EVENTS))["bucket"] == "hour"  # the default


def test_filters_by_type_agent_and_time(api: httpx.Client) -> None:
    history(api, "a1", 20, 60, pause=True)
    position = history(api, "a2", 90)

    progress = ok(
        api.get(EVENTS, params={"type": "ProgressRecorded", "bucket": "week", "min_position": position})
    )
    assert progress["type"] == "ProgressRecorded"
    assert all("count_by_type" not in b for b in progress["buckets"])
    assert merge(progress["buckets"]) == {
        "count": 3,
        "overall": stats(3, pytest.approx(170 / 3), 20, 90),
        "value": None,
    }

    a1_milestones = ok(api.get(EVENTS, params={"type": "MilestoneReached", "agent": "a1", "bucket": "day"}))
    assert merge(a1_milestones["buckets"]) == {"count": 4, "overall": None, "value": stats(4, 37.5, 25, 50)}

    a2 = ok(api.get(EVENTS, params={"agent": "a2", "bucket": "day"}))["buckets"]
    assert merge(a2)["count_by_type"] == {
        "Registered": 1,
        "GoalsSet": 1,
        "ProgressRecorded": 1,
        "MilestoneReached": 8,
    }

    # from is inclusive and to exclusive; any offset is the same instant.
    now = datetime.now(UTC)
    ahead = (now + timedelta(hours=1)).astimezone(timezone(timedelta(hours=5, minutes=30)))
    future = ok(api.get(EVENTS, params={"from": ahead.isoformat(), "bucket": "day"}))
    assert future["buckets"] == []
    assert future["from"] == ahead.isoformat()
    past = (now - timedelta(days=2)).isoformat()
    window = ok(api.get(EVENTS, params={"from": past, "to": ahead.isoformat(), "bucket": "day"}))["buckets"]
    assert merge(window)["count"] == 20
    assert ok(api.get(EVENTS, params={"from": past, "to": past}))["buckets"] == []
    assert ok(api.get(EVENTS, params={"agent": "nobody"}))["buckets"] == []


def test_bad_parameters_are_422_naming_the_field(api: httpx.Client) -> None:
    assert invalid_fields(api.get(EVENTS, params={"bucket": "month"})) == ["query.bucket"]
    assert invalid_fields(api.get(EVENTS, params={"from": "2026-01-01T00:00:00"})) == ["query.from"]
    assert invalid_fields(api.get(EVENTS, params={"to": "2026-01-01T00:00:00"})) == ["query.to"]
    assert invalid_fields(api.get(EVENTS, params={"from": "yesterday"})) == ["query.from"]
    later, earlier = "2026-02-01T00:00:00Z", "2026-01-01T00:00:00+00:00"
    assert invalid_fields(api.get(EVENTS, params={"from": later, "to": earlier})) == ["query.from"]
    for unknown in ("Created", "Event", "progressrecorded", "Recorded"):
        assert invalid_fields(api.get(EVENTS, params={"type": unknown})) == ["query.type"]
    assert invalid_fields(api.get(EVENTS, params={"agent": "bad agent"})) == ["query.agent"]
    assert invalid_fields(api.get(EVENTS, params={"min_position": -1})) == ["query.min_position"]


def test_needs_analytics_read(server: Server, tenant: str, api: httpx.Client) -> None:
    history(api, "a1", 40)
    url = f"{server.url}{API}{EVENTS}"
    denied = problem(
        httpx.get(url, headers=server.auth_headers(tenant, scopes=["goals:read"]), timeout=30), 403
    )
    assert denied["type"] == "/problems/insufficient-scope"
    problem(httpx.get(url, timeout=30), 401)
    allowed = httpx.get(url, headers=server.auth_headers(tenant, scopes=["analytics:read"]), timeout=30)
    assert ok(allowed)["bucket"] == "hour"
    # The per-agent analytics route still answers next to the new one.
    assert ok(api.get("/analytics/a1"))["agent_id"] == "a1"


def test_a_tenant_sees_only_its_own_events(server: Server, tenant: str, api: httpx.Client) -> None:
    mine = history(api, "shared-name", 20, pause=True)
    other_tenant = f"{tenant}-other"
    with httpx.Client(
        base_url=f"{server.url}{API}", headers=server.auth_headers(other_tenant), timeout=30
    ) as other:
        theirs = history(other, "shared-name", 60)
        assert merge(ok(other.get(EVENTS, params={"min_position": max(mine, theirs)}))["buckets"]) == {
            "count": 7,  # Registered, GoalsSet, ProgressRecorded 60, 4 milestones
            "overall": stats(1, 60, 60, 60),
            "value": stats(4, 37.5, 25, 50),
            "count_by_type": {"Registered": 1, "GoalsSet": 1, "ProgressRecorded": 1, "MilestoneReached": 4},
        }
    assert merge(ok(api.get(EVENTS, params={"min_position": max(mine, theirs)}))["buckets"]) == {
        "count": 4,  # Registered, GoalsSet, ProgressRecorded 20 (no milestone), StatusChanged
        "overall": stats(1, 20, 20, 20),
        "value": None,
        "count_by_type": {"Registered": 1, "GoalsSet": 1, "ProgressRecorded": 1, "StatusChanged": 1},
    }
