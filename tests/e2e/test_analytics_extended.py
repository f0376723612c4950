"""The extended analytics over real HTTP: the new figures are served, the stagnation threshold
comes from STAGNATION_HOURS, and `window_days` / `bucket` are validated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Server
from tests.e2e.support import API, ok


@pytest.fixture
def api(start_server: Callable[..., Server], tenant: str) -> Iterator[httpx.Client]:
    server = start_server(STAGNATION_HOURS="1")
    with httpx.Client(
        base_url=f"{server.url}{API}", headers=server.auth_headers(tenant), timeout=30
    ) as client:
        yield client


def create(api: httpx.Client, agent_id: str, target_date: str | None = None) -> None:
    goals = {"purpose_statement": "Route tickets", "primary_objectives": ["Alpha"]}
    ok(api.post(f"/agents/{agent_id}", json={"goals": goals, "target_date": target_date}), 201)


def progress(api: httpx.Client, agent_id: str, value: float, observed_at: datetime) -> int:
    body = {"objective_progress": {"alpha": value}, "observed_at": observed_at.isoformat()}
    position: int = ok(api.put(f"/agents/{agent_id}/progress", json=body))["position"]
    return position


def fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["field"] for e in response.json()["errors"]}


def test_new_figures_are_served_and_parameters_validated(api: httpx.Client) -> None:
    now = datetime.now(UTC)
    last = now - timedelta(minutes=1)
    target = (now + timedelta(days=3)).date().isoformat()
    create(api, "e1", target)
    for days, value in ((2, 10), (1, 20), (0, 30)):  # 10 points a day
        progress(api, "e1", value, last - timedelta(days=days))
    create(api, "e2")
    progress(api, "e2", 50, now - timedelta(hours=2))
    create(api, "e3")
    position = ok(api.put("/agents/e3/status", json={"status": "paused", "reason": "hold"}))["position"]

    overview = ok(api.get("/analytics", params={"min_position": position}))
    assert overview["agents_with_goals"] == 3  # the existing figures are still served
    assert [b["agents"] for b in overview["progress_distribution"]] == [1, 0, 0, 1, 0, 1, 0, 0, 0, 0]
    # e1: alpha@25 + overall@25; e2: alpha@25, 50 + overall@25, 50
    assert sum(d["count"] for d in overview["milestones_per_day"]) == 6
    assert sum(w["count"] for w in overview["milestones_per_week"]) == 6
    assert overview["status_transitions"] == [{"from": "active", "to": "paused", "count": 1}]
    # STAGNATION_HOURS=1: e2's last progress is 2 hours old, e1's a minute
    [stagnant] = overview["stagnant"]
    assert (stagnant["agent_id"], stagnant["overall_progress"]) == ("e2", 50.0)
    assert stagnant["hours_since"] == pytest.approx(2.0, abs=0.1)
    # e1: 70 points to go at 10 a day: 7 days from its last point, after its target in 3 days
    completion = (last + timedelta(days=7)).date().isoformat()
    assert overview["at_risk"] == [
        {"agent_id": "e1", "target_date": target, "forecast_completion": completion, "overall_progress": 30.0}
    ]

    agent = ok(api.get("/analytics/e1", params={"bucket": "hour"}))
    assert agent["velocity"] == 10.0
    assert agent["forecast"] == {"completion": completion, "low": completion, "high": completion}
    assert agent["at_risk"] is True
    hours = [
        (last - timedelta(days=d)).replace(minute=0, second=0, microsecond=0).isoformat() for d in (2, 1, 0)
    ]
    assert agent["progress_series"] == [
        {"bucket": hour, "overall_progress": value}
        for hour, value in zip(hours, (10.0, 20.0, 30.0), strict=True)
    ]
    # a one-day window holds only the last point: no velocity, and no forecast
    narrow = ok(api.get("/analytics/e1", params={"window_days": 1}))
    assert (narrow["velocity"], narrow["forecast"]) == (None, None)
    assert narrow["progress_series"] == [{"bucket": last.date().isoformat(), "overall_progress": 30.0}]
    assert ok(api.get("/analytics/e1", params={"window_days": 365}))["velocity"] == 10.0

    for bad in (0, 366, "soon"):
        assert fields(api.get("/analytics/e1", params={"window_days": bad})) == {"query.window_days"}
    assert fields(api.get("/analytics/e1", params={"bucket": "week"})) == {"query.bucket"}


def test_an_agent_named_events_reads_its_analytics_under_its_own_path(api: httpx.Client) -> None:
    last = datetime.now(UTC) - timedelta(minutes=1)
    create(api, "events")
    progress(api, "events", 20, last - timedelta(days=1))
    position = progress(api, "events", 40, last)
    own = ok(api.get("/agents/events/analytics", params={"min_position": position}))
    assert (own["agent_id"], own["velocity"]) == ("events", 20.0)
    # /analytics/events stays the event-stream query; the other agents' path answers the same
    assert "buckets" in ok(api.get("/analytics/events"))
    create(api, "other")
    progress(api, "other", 20, last - timedelta(days=1))
    position = progress(api, "other", 40, last)
    both = [
        ok(api.get(path, params={"min_position": position}))
        for path in ("/analytics/other", "/agents/other/analytics")
    ]
    for answer in both:  # the time spent in the current status grows between the two calls
        answer.pop("time_in_status_s")
    assert both[0] == both[1] and both[0]["velocity"] == 20.0
    missing = api.get("/agents/nobody/analytics")
    assert missing.status_code == 404, missing.text
