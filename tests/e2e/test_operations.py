"""Operating the read side as an operator would: the projections CLI (status, rebuild, skip)
and the admin endpoints, which exist only for admins of the operator tenant."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from application.ports import ReadStore
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from tests.conftest import Server
from tests.e2e.support import READ_MODELS, problem
from tests.e2e.test_cli import cli

OPS = "/api/v1/admin/projections"


def test_cli_status_and_rebuild_report_positions_and_a_rate(tmp_path: Path) -> None:
    data_dir = tmp_path / "ops-data"
    assert cli(data_dir, "demo", "--agents", "4", "--weeks", "1").returncode == 0

    status = cli(data_dir, "projections", "status")
    assert status.returncode == 0, status.stderr
    for name in ("goal_progress", "oauth_clients", "event_facts", "agent_cards", "agent_search", "peers"):
        assert name in status.stdout
    assert "live" in status.stdout

    rebuilt = cli(data_dir, "projections", "rebuild", "--all")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "events/s" in rebuilt.stderr
    one = cli(data_dir, "projections", "rebuild", "event_facts")
    assert one.returncode == 0 and "rebuilt event_facts" in one.stderr
    unknown = cli(data_dir, "projections", "rebuild", "nope")
    assert unknown.returncode != 0
    # nothing failed, so there is nothing to skip
    refused = cli(data_dir, "projections", "skip", "event_facts", "--position", "3", "--reason", "test")
    assert refused.returncode == 1
    assert "has no failure at position 3 to skip (it is live, at position" in refused.stderr
    assert "Traceback" not in refused.stderr


def _wait_for_rebuild(api: httpx.Client, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = {j["name"]: j for j in api.get(OPS).json()["rebuilds"]}
        if jobs.get(name, {}).get("state") in {"done", "failed"}:
            return jobs[name]
        time.sleep(0.1)
    raise AssertionError("the rebuild did not finish")


def test_operator_endpoints_show_status_and_rebuild_in_the_background(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(OPERATOR_TENANT="ops")
    with httpx.Client(base_url=server.url, headers=server.auth_headers("ops"), timeout=30) as api:
        created = api.post(
            "/api/v1/goals/agents/a1",
            json={"goals": {"purpose_statement": "p", "primary_objectives": ["A"]}},
        ).json()
        status = api.get(OPS)
        assert status.status_code == 200, status.text
        names = {p["name"] for p in status.json()["projections"]}
        assert names == READ_MODELS
        for entry in status.json()["projections"]:
            assert set(entry) >= {"position", "lag_events", "lag_s", "state", "error"}

        started = api.post(f"{OPS}/all/rebuild")
        assert started.status_code == 202, started.text
        job = _wait_for_rebuild(api, "all")
        assert job["state"] == "done", job
        assert job["events"] >= created["position"]
        after = api.get("/api/v1/goals/agents/a1", params={"min_position": created["position"]})
        assert after.status_code == 200 and after.json()["agent_id"] == "a1"

        assert api.post(f"{OPS}/nope/rebuild").status_code == 404
        skip = api.post(f"{OPS}/event_facts/skip", json={"position": 1, "reason": "nothing failed"})
        assert skip.status_code == 409
        assert "(it is live, at position" in skip.text
        assert api.post(f"{OPS}/event_facts/skip", json={"position": 1}).status_code == 422


def test_admins_of_other_tenants_do_not_see_the_operator_endpoints(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(OPERATOR_TENANT="ops")
    elsewhere = server.auth_headers("acme")
    assert httpx.get(f"{server.url}{OPS}", headers=elsewhere, timeout=30).status_code == 404
    assert httpx.post(f"{server.url}{OPS}/all/rebuild", headers=elsewhere, timeout=30).status_code == 404
    reader = server.auth_headers("ops", scopes=["goals:read"])
    assert httpx.get(f"{server.url}{OPS}", headers=reader, timeout=30).status_code == 403


def test_a_rebuild_asked_for_while_another_runs_is_refused_at_once(
    store_kind: str, start_server: Callable[..., Server], request: pytest.FixtureRequest
) -> None:
    env = {"OPERATOR_TENANT": "ops"}
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    server = start_server(**env)
    # another rebuild, as the CLI's or another replica's would be: it holds the store's claim
    other: ReadStore = (
        PostgresReadStore(env["DATABASE_URL"], pool_size=1)
        if store_kind == "postgres"
        else SQLiteReadStore(Path(server.env["DATA_DIR"]) / "read_models.sqlite")
    )
    with httpx.Client(base_url=server.url, headers=server.auth_headers("ops"), timeout=30) as api:
        try:
            with other.claim_shadow():
                refused = api.post(f"{OPS}/event_facts/rebuild")
                assert problem(refused, 409)["detail"].startswith("a rebuild of")
                assert api.get(OPS).json()["rebuilds"] == [], "no job was started"
        finally:
            other.close()
        started = api.post(f"{OPS}/event_facts/rebuild")
        assert started.status_code == 202, started.text
        assert _wait_for_rebuild(api, "event_facts")["state"] == "done"
