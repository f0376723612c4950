"""The goals dashboard's read-model panels: their SQL, run as the grafana_reader role on a
database a real server wrote, counts what the server recorded, and the role reads nothing
but what the grafana schema's functions return."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import Server
from tests.e2e.ops_tools import ROOT
from tests.e2e.support import API, login

FUNCTIONS = ROOT / "ops" / "postgres" / "20-grafana-functions.sql"
GOALS = ROOT / "ops" / "grafana" / "dashboards" / "goals.json"
GOAL = {"goals": {"purpose_statement": "Serve", "primary_objectives": ["Alpha"]}}


def as_role(url: str, role: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{role}@{rest.split('@', 1)[1]}"


def panel_sql() -> list[tuple[str, str]]:
    """(panel title, SQL) of the dashboard's read-model panels, with Grafana's time macros
    replaced the way Grafana fills them in (the last week)."""
    found = []
    for panel in json.loads(GOALS.read_text())["panels"]:
        for target in panel.get("targets", []):
            if "rawSql" in target:
                sql = target["rawSql"].replace("$__timeFrom()", "(now() - interval '7 days')")
                found.append((panel["title"], sql.replace("$__timeTo()", "(now() + interval '1 hour')")))
    return found


@pytest.fixture(scope="module")
def written() -> Iterator[tuple[str, str]]:
    """A fresh database with the grafana functions, written by a server: three goals at 30%,
    80% and none. Yields (admin URL, grafana_reader URL)."""
    admin = os.environ.get("TEST_DATABASE_URL")
    if not admin:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_DATABASE_URL is not set: run the suite with ops/test")
        pytest.skip("PostgreSQL not configured (TEST_DATABASE_URL)")
    name = f"a2a_panels_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # roles belong to the cluster: the image's init script makes it once per cluster too
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader')"
            " THEN CREATE ROLE grafana_reader LOGIN; END IF; END $$"
        )
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FUNCTIONS.read_text().encode())
        yield url, as_role(url, "grafana_reader")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def recorded(written: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    admin, reader = written
    data = tmp_path_factory.mktemp("panels")
    env = {"APP_ENV": "test", "DATA_DIR": str(data), "DATABASE_URL": admin, "ELASTICSEARCH_URL": ""}
    server = Server({**env, "REACHABILITY_CHECK_S": "0"}, data / "server.log")
    try:
        _, headers = login(server, "panels")
        with httpx.Client(base_url=f"{server.url}{API}", headers=headers, timeout=30) as api:
            for agent, progress in (("a30", 30), ("b80", 80), ("c0", None)):
                assert api.post(f"/agents/{agent}", json=GOAL).status_code == 201
                if progress is not None:
                    done = api.put(
                        f"/agents/{agent}/progress", json={"objective_progress": {"alpha": progress}}
                    )
                    assert done.status_code == 200, done.text
    finally:
        server.stop()
    return admin, reader


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql.encode()).fetchall()


def settled(url: str, sql: str, expected: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows, once the read models have caught up with the server's writes (bounded)."""
    deadline = time.monotonic() + 20
    got = rows(url, sql)
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        got = rows(url, sql)
    return got


def test_progress_distribution_counts_active_goals_by_band(recorded: tuple[str, str]) -> None:
    _, reader = recorded
    expected = [("0-24", 1), ("25-49", 1), ("50-74", 0), ("75-89", 1), ("90-99", 0), ("100", 0)]
    assert settled(reader, "SELECT band, goals FROM grafana.progress_distribution()", expected) == expected
    assert rows(reader, "SELECT status, goals FROM grafana.goals_by_status()") == [("active", 3)]


def test_milestones_per_hour_count_the_milestones_recorded(recorded: tuple[str, str]) -> None:
    admin, reader = recorded
    facts = rows(admin, "SELECT count(*) FROM event_facts WHERE type = 'MilestoneReached'")[0][0]
    assert facts >= 4  # 30% crossed 25; 80% crossed 25, 50 and 75
    sql = "SELECT sum(events) FROM grafana.events_per_hour('MilestoneReached', now() - interval '1 day', now() + interval '1 hour')"
    assert settled(reader, sql, [(facts,)]) == [(facts,)]


def test_every_read_model_panel_runs_as_the_reader(recorded: tuple[str, str]) -> None:
    _, reader = recorded
    queries = panel_sql()
    assert {title for title, _ in queries} >= {
        "Active goals by overall progress",
        "Milestones reached per hour",
    }
    answered = {title: rows(reader, sql) for title, sql in queries}
    # no goal has stalled here: that panel is empty; every other one has rows
    assert [title for title, got in answered.items() if not got] == ["Stalls recorded per hour"]


def test_the_reader_cannot_read_the_read_models_themselves(recorded: tuple[str, str]) -> None:
    _, reader = recorded
    for table in ("goal_progress", "event_facts", "event_facts_hourly"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rows(reader, f"SELECT * FROM {table} LIMIT 1")
