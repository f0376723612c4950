"""One poll at a time, in process, on the store under test, against a real loopback agent:
how each outcome is recorded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from domain.auto_update import AutoUpdate
from domain.goals import AgentGoals
from domain.meta import Meta
from domain.objectives import GoalDefinition, Kpi, Objective
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system

META = Meta("test")


class Agent:
    def __init__(self) -> None:
        self.text = ""
        self.content_type = "text/plain"
        self.delay_s = 0.0
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                time.sleep(agent.delay_s)
                body = agent.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", agent.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def agent() -> Iterator[Agent]:
    played = Agent()
    yield played
    played.httpd.shutdown()
    played.httpd.server_close()


@pytest.fixture
def collecting(make_settings: Callable[..., Settings]) -> Iterator[System]:
    built = build_system(
        make_settings(
            RUN_PROJECTIONS_IN_PROCESS="false",
            OUTBOUND_ALLOW_NETS="127.0.0.0/8",
            OUTBOUND_TIMEOUT_S="1",
            COLLECT_RETRIES="0",
        )
    )
    yield built
    built.close()


def _configure(system: System, tenant: str, url: str, mapping: object) -> None:
    definition = GoalDefinition("p", (Objective("speed", "Speed", kpi=Kpi("jobs", target=10.0)),))
    system.goals.set_goals(tenant, "a", definition, META)
    system.collection.configure(tenant, "a", AutoUpdate(True, 5, None, url, {"speed": mapping}), META)  # type: ignore[dict-item]


def _events(system: System, tenant: str) -> list[str]:
    goals = system.goals.goals_at(tenant, "a")
    return [type(e).__name__ for e in system.goals.events.get(goals.id)]


def test_a_rate_needs_two_readings_then_moves_progress(collecting: System, tenant: str, agent: Agent) -> None:
    _configure(collecting, tenant, agent.url, {"metric": "jobs_total", "aggregation": "rate", "window_s": 60})
    agent.text = "jobs_total 100\n"
    assert collecting.collection.collect(tenant, "a") == "ok"
    assert "ProgressRecorded" not in _events(collecting, tenant)
    time.sleep(1.0)
    agent.text = "jobs_total 105\n"
    assert collecting.collection.collect(tenant, "a") == "ok"
    goals = collecting.goals.goals_at(tenant, "a")
    # about 5 a second over about a second: about 50% of 10 a second
    assert 30.0 < goals.objective_progress["speed"] < 60.0
    assert goals.kpi_values["speed"] == pytest.approx(goals.objective_progress["speed"] / 10, abs=0.01)


def test_a_missing_metric_and_a_timeout_are_one_failure_then_a_recovery(
    collecting: System, tenant: str, agent: Agent
) -> None:
    _configure(collecting, tenant, agent.url, "jobs_total")
    agent.text = "other_total 1\n"
    assert collecting.collection.collect(tenant, "a") == "missing_metric"
    agent.delay_s = 1.5
    assert collecting.collection.collect(tenant, "a") == "timeout"
    agent.delay_s, agent.text = 0.0, "jobs_total 5\n"
    assert collecting.collection.collect(tenant, "a") == "ok"
    events = _events(collecting, tenant)
    assert events.count("MetricsCollectionFailed") == 1 and events.count("MetricsCollectionRecovered") == 1
    failed = [
        e
        for e in collecting.goals.events.get(collecting.goals.goals_at(tenant, "a").id)
        if isinstance(e, AgentGoals.MetricsCollectionFailed)
    ]
    assert "no sample of jobs_total" in failed[0].reason
    assert collecting.goals.goals_at(tenant, "a").objective_progress["speed"] == 50.0


def test_a_paused_goal_is_not_polled(collecting: System, tenant: str, agent: Agent) -> None:
    _configure(collecting, tenant, agent.url, "jobs_total")
    collecting.goals.change_status(tenant, "a", "paused", "maintenance", META)
    agent.text = "jobs_total 5\n"
    assert collecting.collection.collect(tenant, "a") == "skipped"


def _failures(system: System, tenant: str) -> list[AgentGoals.MetricsCollectionFailed]:
    goals = system.goals.goals_at(tenant, "a")
    return [e for e in system.goals.events.get(goals.id) if isinstance(e, AgentGoals.MetricsCollectionFailed)]


def test_hostile_output_is_one_unparsable_failure_never_a_crash(
    collecting: System, tenant: str, agent: Agent
) -> None:
    _configure(collecting, tenant, agent.url, "jobs_total")
    agent.text = "jobs_total 1\ng\x00 1\n"  # NUL in a metric name: the parser's message echoes it
    assert collecting.collection.collect(tenant, "a") == "unparsable"
    assert collecting.collection.collect(tenant, "a") == "unparsable"
    failures = _failures(collecting, tenant)
    assert len(failures) == 1
    assert failures[0].reason.endswith("not the Prometheus text format (line 2)")
    assert "\x00" not in failures[0].reason
    assert collecting.goals.goals_at(tenant, "a").collection_failing_since is not None


def test_a_bucket_bound_that_is_not_a_number_is_unparsable(
    collecting: System, tenant: str, agent: Agent
) -> None:
    _configure(collecting, tenant, agent.url, {"metric": "h", "aggregation": "quantile", "quantile": 0.5})
    agent.text = 'h_bucket{le="abc"} 1\nh_bucket{le="+Inf"} 2\n'
    assert collecting.collection.collect(tenant, "a") == "unparsable"
    assert "bound (le) that is not a number" in _failures(collecting, tenant)[0].reason


def test_a_deeply_nested_json_body_is_a_missing_metric_not_a_crash(
    collecting: System, tenant: str, agent: Agent
) -> None:
    _configure(collecting, tenant, agent.url, "jobs_total")
    agent.content_type = "application/json"
    agent.text = "[" * 1000 + "1" + "]" * 1000
    assert collecting.collection.collect(tenant, "a") == "missing_metric"
    assert len(_failures(collecting, tenant)) == 1


def test_a_failure_is_an_alert_only_while_the_agent_is_polled(
    collecting: System, tenant: str, agent: Agent
) -> None:
    targets = collecting.collection_targets
    _configure(collecting, tenant, agent.url, "jobs_total")
    agent.text = "other_total 1\n"
    assert collecting.collection.collect(tenant, "a") == "missing_metric"
    collecting.runner.catch_up()
    assert [f["agent_id"] for f in targets.failing(tenant)] == ["a"]
    assert (targets.state(tenant, "a") or {})["state"] == "failing"
    counted = targets.failing_count()

    collecting.goals.change_status(tenant, "a", "paused", "maintenance", META)
    collecting.runner.catch_up()
    assert targets.failing(tenant) == []
    assert (targets.state(tenant, "a") or {})["state"] == "idle"
    if not collecting.settings.is_postgres:  # the shared database counts other tests' agents too
        assert counted == 1 and targets.failing_count() == 0

    # resumed: the aggregate still holds the failure, so it is an alert again until a poll succeeds
    collecting.goals.change_status(tenant, "a", "active", "back", META)
    collecting.runner.catch_up()
    assert [f["agent_id"] for f in targets.failing(tenant)] == ["a"]
    config = AutoUpdate(False, 5, None, agent.url, {"speed": "jobs_total"})  # type: ignore[dict-item]
    collecting.collection.configure(tenant, "a", config, META)
    collecting.runner.catch_up()
    assert targets.failing(tenant) == []
    collecting.collection.configure(tenant, "a", AutoUpdate(True, 5, None, agent.url, {"speed": "jobs_total"}), META)  # type: ignore[dict-item]
    agent.text = "jobs_total 5\n"
    assert collecting.collection.collect(tenant, "a") == "ok"
    collecting.runner.catch_up()
    assert targets.failing(tenant) == [] and (targets.state(tenant, "a") or {})["state"] == "collecting"


def test_a_mapping_of_a_removed_objective_does_not_block_the_others(
    collecting: System, tenant: str, agent: Agent
) -> None:
    old = Objective("old", "Old", kpi=Kpi("x", target=10.0))
    speed = Objective("speed", "Speed", kpi=Kpi("jobs", target=10.0))
    collecting.goals.set_goals(tenant, "a", GoalDefinition("p", (speed, old)), META)
    mappings = {"speed": "jobs_total", "old": "gone_total"}
    collecting.collection.configure(tenant, "a", AutoUpdate(True, 5, None, agent.url, mappings), META)  # type: ignore[arg-type]
    collecting.goals.set_goals(tenant, "a", GoalDefinition("p", (speed,)), META)  # "old" revised away
    agent.text = "jobs_total 5\n"  # no gone_total any more
    assert collecting.collection.collect(tenant, "a") == "ok"
    assert collecting.goals.goals_at(tenant, "a").objective_progress["speed"] == 50.0
