"""The stack's monitoring: Prometheus' config and alert rules pass promtool (their unit tests
included), every alert has a case that fires and one that does not, and every metric and label
the alerts and the Grafana dashboards name is one the app exports."""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server
from tests.e2e.ops_tools import ROOT, run, tool
from tests.e2e.promql import uses
from tests.e2e.support import API, login

PROMETHEUS = ROOT / "ops" / "prometheus"
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"
APP_PACKAGES = ("domain", "application", "projections", "infrastructure", "interfaces")
# Names the app does not declare itself: Prometheus' own `up`, and the anchoring gauges the
# audit anchoring work adds (exactly these names).
OUTSIDE: dict[str, frozenset[str]] = {
    "up": frozenset(),
}
TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every scraped series

Exported = dict[str, frozenset[str]]  # series name -> its label names


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[tuple[str, str, dict[str, Any]]]:
    """(dashboard file, panel title, target) of every query of every dashboard."""
    return [
        (path.name, panel["title"], target)
        for path in sorted(DASHBOARDS.glob("*.json"))
        for panel in json.loads(path.read_text())["panels"]
        for target in panel.get("targets", [])
    ]


def declared_metrics() -> Exported:
    """Every series name the app's modules declare, with its label names (importing them all)."""
    for package in APP_PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            importlib.import_module(info.name)
    declared: Exported = {}
    # prometheus_client keeps which collector makes which names; its metrics know their labels.
    for collector, names in REGISTRY._collector_to_names.items():
        labels = getattr(collector, "_labelnames", None)
        kind = getattr(collector, "_type", None)
        if labels is None:
            continue
        for name in names:
            if kind != "gauge" and name == getattr(collector, "_name", None):
                continue  # a counter's or histogram's bare name is no series
            declared[name] = frozenset(labels) | ({"le"} if name.endswith("_bucket") else set())
    return declared


def scraped_metrics(server: Server) -> Exported:
    text = httpx.get(f"{server.url}/metrics/", timeout=10).text
    scraped: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scraped.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in scraped.items()}


def unknown_names(expr: str, exported: Exported) -> list[str]:
    """What an expression names that no exported series has: metrics, then labels."""
    used = uses(expr)
    known = {**exported, **OUTSIDE}
    problems = [f"metric {m}" for m in sorted(used.metrics) if m not in known]
    labels_of_used = set(TARGET_LABELS).union(*(known.get(m, frozenset()) for m in used.metrics))
    for metric, labels in used.selector_labels.items():
        if metric in known and metric not in OUTSIDE:
            problems += [
                f"label {label} of {metric}" for label in sorted(labels - known[metric] - TARGET_LABELS)
            ]
    problems += [f"label {label} in a grouping" for label in sorted(used.grouping_labels - labels_of_used)]
    return problems


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """What the app exports: its declared series, and a running server's /metrics after
    commands, reads, searches, token grants and refusals."""
    data = tmp_path_factory.mktemp("metrics-server")
    server = Server(
        {
            "APP_ENV": "test",
            "DATA_DIR": str(data / "data"),
            "ELASTICSEARCH_URL": "",
            "REACHABILITY_CHECK_S": "0",
        },
        data / "server.log",
    )
    try:
        _, headers = login(server, "metrics-tenant")
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            goals = {"goals": {"purpose_statement": "Serve", "primary_objectives": ["Alpha"]}}
            assert client.post(f"{API}/agents/a1", json=goals).status_code == 201
            written = client.put(f"{API}/agents/a1/progress", json={"objective_progress": {"alpha": 30}})
            assert written.status_code == 200
            # Read models are applied after the write answers: read it once they have it.
            assert client.get(f"{API}/agents/a1", params={"min_position": written.json()["position"]}).status_code == 200
            assert client.get(f"{API}/agents/missing").status_code == 404
            assert client.get("/api/v1/agents", params={"q": "weather"}).status_code == 200
        assert httpx.get(f"{server.url}{API}/agents/a1", timeout=10).status_code == 401
        yield {**declared_metrics(), **scraped_metrics(server)}
    finally:
        server.stop()


def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = tool("promtool")
    for args in (
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ):
        done = run([promtool, *args], cwd=PROMETHEUS)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_promtool_finds_an_alert_whose_expectation_is_wrong(tmp_path: Path) -> None:
    """The unit tests can fail: expecting HighErrorRate where errors are 2% is reported."""
    promtool = tool("promtool")
    (tmp_path / "alerts.yml").write_text((PROMETHEUS / "alerts.yml").read_text())
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    quiet = next(
        t
        for t in tests["tests"]
        if t["alert_rule_test"][0] == {"eval_time": "15m", "alertname": "HighErrorRate", "exp_alerts": []}
    )
    quiet["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump({**tests, "tests": [quiet]}))
    done = run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path)
    assert done.returncode != 0
    assert "HighErrorRate" in done.stdout + done.stderr


def test_every_alert_has_a_firing_case_and_a_quiet_one() -> None:
    alerts = {rule["alert"] for rule in alert_rules()}
    cases = [
        case
        for test in yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts - firing == set(), "alerts without a test that fires them"
    assert alerts - quiet == set(), "alerts without a test where they must not fire"
    required = {
        "HighErrorRate",
        "HighLatency",
        "GoalStagnation",
        "MetricsCollectionFailingAgents",
        "MetricsCollectionErrors",
        "ProjectionLag",
        "ProjectionFailed",
        "AnchoringBacklog",
        "ApiDown",
        "StorageUnavailable",
        "WebhookDeliveriesFailing",
    }
    assert required <= alerts


def test_the_seed_alerts_keep_their_thresholds() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert rules["HighErrorRate"]["for"] == rules["HighLatency"]["for"] == "5m"
    assert (
        'status_code=~"5.."' in rules["HighErrorRate"]["expr"] and "> 0.05" in rules["HighErrorRate"]["expr"]
    )
    assert "histogram_quantile(0.95" in rules["HighLatency"]["expr"] and "> 1" in rules["HighLatency"]["expr"]
    assert rules["ApiDown"]["expr"].strip() == 'up{job="a2a-goals-api"} == 0'


def test_alerts_name_only_what_the_app_exports(exported: Exported) -> None:
    problems = {rule["alert"]: unknown_names(rule["expr"], exported) for rule in alert_rules()}
    assert {alert: p for alert, p in problems.items() if p} == {}


def test_dashboards_name_only_what_the_app_exports(exported: Exported) -> None:
    prometheus = [(f, title, t["expr"]) for f, title, t in dashboard_queries() if "expr" in t]
    assert len(prometheus) > 30
    problems = {(f, title, expr): unknown_names(expr, exported) for f, title, expr in prometheus}
    assert {k: p for k, p in problems.items() if p} == {}


def test_a_misspelt_metric_or_label_is_caught(exported: Exported) -> None:
    assert unknown_names("sum(rate(a2a_registry_request_total[5m]))", exported) == [
        "metric a2a_registry_request_total"
    ]
    assert unknown_names('sum(rate(a2a_registry_requests_total{status="500"}[5m]))', exported) == [
        "label status of a2a_registry_requests_total"
    ]
    assert unknown_names("sum by (tenant) (a2a_goals_stagnant_goals)", exported) == [
        "label tenant in a grouping"
    ]
    assert (
        unknown_names(
            'histogram_quantile(0.95, sum by (le, endpoint) (rate(a2a_registry_request_duration_seconds_bucket{method="GET"}[5m])))',
            exported,
        )
        == []
    )


def test_the_scraped_server_exports_the_request_metrics_by_route(exported: Exported) -> None:
    assert exported["a2a_registry_requests_total"] == {"method", "endpoint", "status_code"}
    assert "le" in exported["a2a_registry_request_duration_seconds_bucket"]


def test_dashboards_are_what_their_script_writes() -> None:
    script = _load_script()
    rendered: Callable[[], dict[str, str]] = script.render
    assert rendered() == {path.name: path.read_text() for path in sorted(DASHBOARDS.glob("*.json"))}
    titles = {json.loads(text)["title"] for text in rendered().values()}
    assert titles == {"a2a-goals: registry overview", "a2a-goals: goals", "a2a-goals: security"}


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "grafana_dashboards", ROOT / "ops" / "grafana" / "dashboards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
