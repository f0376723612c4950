"""Writes the stack's Grafana dashboards (ops/grafana/dashboards/*.json) from the panels below.

    .venv/bin/python ops/grafana/dashboards.py

Edit the panels here, not the JSON: tests/e2e/test_ops_stack.py checks that the JSON is what
this script writes, and that every metric an expression names is one the app exports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
READ_MODELS = {"type": "grafana-postgresql-datasource", "uid": "read-models"}
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (legend, PromQL) or, for `sql` panels, (ref, SQL)
    kind: str = "timeseries"
    unit: str = "short"
    sql: bool = False
    description: str = ""
    width: int = 12
    options: dict[str, Any] = field(default_factory=dict)


def row(title: str) -> Panel:
    return Panel(title, (), kind="row", width=24)


def _target(panel: Panel, i: int, legend: str, expr: str) -> dict[str, Any]:
    ref = chr(ord("A") + i)
    if panel.sql:
        fmt = "time_series" if panel.kind == "timeseries" else "table"
        return {
            "refId": ref,
            "datasource": READ_MODELS,
            "editorMode": "code",
            "format": fmt,
            "rawQuery": True,
            "rawSql": expr,
        }
    return {
        "refId": ref,
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
    }


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    height = 1 if panel.kind == "row" else 8
    built: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
    }
    if panel.kind == "row":
        return {**built, "collapsed": False, "panels": []}
    built["datasource"] = READ_MODELS if panel.sql else PROMETHEUS
    built["description"] = panel.description
    built["fieldConfig"] = {"defaults": {"unit": panel.unit}, "overrides": []}
    built["options"] = panel.options
    built["targets"] = [_target(panel, i, legend, expr) for i, (legend, expr) in enumerate(panel.targets)]
    return built


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    laid: list[dict[str, Any]] = []
    x = y = 0
    for pid, panel in enumerate(panels, start=1):
        if x and (panel.kind == "row" or x + panel.width > 24):
            x, y = 0, y + 8  # a new line of panels
        laid.append(_panel(panel, pid, x, y))
        if panel.kind == "row":
            y += 1
        else:
            x += panel.width
    return {
        "uid": uid,
        "title": title,
        "tags": ["a2a-goals"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": laid,
    }


def registry() -> dict[str, Any]:
    requests = "a2a_registry_requests_total"
    buckets = "a2a_registry_request_duration_seconds_bucket"
    search = "a2a_registry_search_duration_seconds_bucket"
    return dashboard(
        "a2a-registry",
        "a2a-goals: registry overview",
        [
            row("Requests"),
            Panel(
                "Requests by status",
                (("{{status_code}}", f"sum by (status_code) (rate({requests}[{RATE}]))"),),
                unit="reqps",
            ),
            Panel(
                "5xx ratio (HighErrorRate fires over 5% for 5 min)",
                (
                    (
                        "5xx",
                        f'sum(rate({requests}{{status_code=~"5.."}}[{RATE}])) / sum(rate({requests}[{RATE}]))',
                    ),
                ),
                unit="percentunit",
            ),
            Panel(
                "Latency (HighLatency fires at p95 over 1 s for 5 min)",
                tuple(
                    (f"p{q}", f"histogram_quantile(0.{q}, sum by (le) (rate({buckets}[{RATE}])))")
                    for q in ("50", "95", "99")
                ),
                unit="s",
            ),
            Panel(
                "p95 by route",
                (
                    (
                        "{{method}} {{endpoint}}",
                        f"histogram_quantile(0.95, sum by (le, method, endpoint) (rate({buckets}[{RATE}])))",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Busiest routes",
                (
                    (
                        "{{method}} {{endpoint}}",
                        f"topk(10, sum by (method, endpoint) (rate({requests}[{RATE}])))",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Replicas answering scrapes",
                (("api", 'sum(up{job="a2a-goals-api"})'), ("workers", 'sum(up{job="a2a-goals-worker"})')),
                kind="stat",
            ),
            row("Agents"),
            Panel("Agents by state", (("{{status}}", "max by (status) (a2a_registry_agents_total)"),)),
            Panel(
                "Agents whose card URL did not answer",
                (("unreachable", "max(a2a_registry_unreachable_agents)"),),
            ),
            row("Search"),
            Panel(
                "Searches by kind",
                (
                    (
                        "{{query_type}}",
                        f"sum by (query_type) (rate(a2a_registry_search_queries_total[{RATE}]))",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Search p95 in its backend",
                (
                    (
                        "{{query_type}}",
                        f"histogram_quantile(0.95, sum by (le, query_type) (rate({search}[{RATE}])))",
                    ),
                ),
                unit="s",
            ),
            row("Federation and dependencies"),
            Panel(
                "Peer syncs by outcome (per hour)",
                (
                    (
                        "{{peer_id}} {{status}}",
                        "sum by (peer_id, status) (increase(a2a_registry_peer_syncs_total[1h]))",
                    ),
                ),
            ),
            Panel(
                "Peer entries refused (per hour)",
                (
                    (
                        "{{peer_id}}",
                        "sum by (peer_id) (increase(a2a_registry_peer_entries_refused_total[1h]))",
                    ),
                ),
            ),
            Panel(
                "Circuits (0 closed, 1 half-open, 2 open)",
                (("{{dependency}} {{instance}}", "max by (dependency, instance) (a2a_circuit_state)"),),
            ),
            Panel(
                "Saves per commit (group commit)",
                (
                    (
                        "p50",
                        f"histogram_quantile(0.5, sum by (le) (rate(a2a_commit_group_saves_bucket[{RATE}])))",
                    ),
                ),
            ),
        ],
    )


def goals() -> dict[str, Any]:
    lag = "a2a_projection_lag_seconds"
    per_hour = "SELECT * FROM grafana.events_per_hour('{0}', $__timeFrom(), $__timeTo())"
    return dashboard(
        "a2a-goals",
        "a2a-goals: goals",
        [
            row("Goals"),
            Panel(
                "Active goals by overall progress",
                (("A", "SELECT band, goals FROM grafana.progress_distribution()"),),
                kind="barchart",
                sql=True,
                description="From the goal_progress read model, all tenants.",
            ),
            Panel(
                "Goals by status",
                (("A", "SELECT status, goals FROM grafana.goals_by_status()"),),
                kind="piechart",
                sql=True,
            ),
            Panel("Milestones reached per hour", (("A", per_hour.format("MilestoneReached")),), sql=True),
            Panel("Progress recorded per hour", (("A", per_hour.format("ProgressRecorded")),), sql=True),
            Panel(
                "Stagnant goals (no progress for STAGNATION_HOURS)",
                (("stagnant", "max(a2a_goals_stagnant_goals)"),),
            ),
            Panel("Stalls recorded per hour", (("A", per_hour.format("GoalStagnant")),), sql=True),
            row("Metrics collection"),
            Panel(
                "Polls by outcome",
                (("{{status}}", f"sum by (status) (rate(a2a_goals_metrics_collections_total[{RATE}]))"),),
                unit="reqps",
            ),
            Panel(
                "Agents whose collection fails", (("failing", "max(a2a_goals_collection_failing_agents)"),)
            ),
            Panel(
                "Due-to-recorded lag",
                tuple(
                    (
                        f"p{q}",
                        f"histogram_quantile(0.{q}, sum by (le) (rate(a2a_goals_collection_lag_seconds_bucket[{RATE}])))",
                    )
                    for q in ("50", "99")
                ),
                unit="s",
            ),
            Panel(
                "Polls sent by the scheduler",
                (("{{actor}} {{outcome}}", f"sum by (actor, outcome) (rate(a2a_job_polls_total[{RATE}]))"),),
                unit="reqps",
            ),
            row("Read models"),
            Panel(
                "Projection lag (age of the oldest unapplied event)",
                (("{{projection}}", f"max by (projection) ({lag})"),),
                unit="s",
            ),
            Panel(
                "Projection lag in events",
                (("{{projection}}", "max by (projection) (a2a_projection_lag_events)"),),
            ),
            Panel(
                "Read-model failures (per hour)",
                (("{{projection}}", "sum by (projection) (increase(a2a_projection_failures_total[1h]))"),),
            ),
            Panel(
                "Webhook deliveries by outcome",
                (("{{outcome}}", f"sum by (outcome) (rate(a2a_goals_webhook_deliveries_total[{RATE}]))"),),
                unit="reqps",
            ),
            row("Audit anchoring"),
            Panel(
                "Log entries not covered by a confirmed anchor",
                (("backlog", "max(a2a_goals_audit_anchor_backlog)"),),
            ),
            Panel("Chain node answering (1 yes, 0 no)", (("chain", "max(a2a_goals_chain_up)"),), kind="stat"),
        ],
    )


def security() -> dict[str, Any]:
    events = "a2a_security_events_total"
    requests = "a2a_registry_requests_total"
    return dashboard(
        "a2a-security",
        "a2a-goals: security",
        [
            row("Authentication"),
            Panel(
                "Security events by kind",
                (("{{kind}}", f"sum by (kind) (rate({events}[{RATE}]))"),),
                unit="reqps",
            ),
            Panel(
                "Authentication failures (per hour)",
                (
                    (
                        "{{kind}}",
                        f'sum by (kind) (increase({events}{{kind=~"token_denied|auth_denied|client_disabled"}}[1h]))',
                    ),
                ),
            ),
            Panel(
                "Tokens issued vs refused",
                (
                    ("issued", f'sum(rate({events}{{kind="token_issued"}}[{RATE}]))'),
                    ("refused", f'sum(rate({events}{{kind="token_denied"}}[{RATE}]))'),
                ),
                unit="reqps",
            ),
            Panel(
                "401 and 403 by route",
                (
                    (
                        "{{status_code}} {{method}} {{endpoint}}",
                        f'sum by (status_code, method, endpoint) (rate({requests}{{status_code=~"401|403"}}[{RATE}]))',
                    ),
                ),
                unit="reqps",
            ),
            row("Rate limiting and denials"),
            Panel(
                "Requests refused by rate limits (429) by route",
                (
                    (
                        "{{method}} {{endpoint}}",
                        f'sum by (method, endpoint) (rate({requests}{{status_code="429"}}[{RATE}]))',
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Rate-limited and scope denials",
                (
                    ("rate limited", f'sum(rate({events}{{kind="rate_limited"}}[{RATE}]))'),
                    ("scope denied", f'sum(rate({events}{{kind="scope_denied"}}[{RATE}]))'),
                ),
                unit="reqps",
            ),
            Panel(
                "Rate limiter's store unavailable (per hour)",
                (("unavailable", f'sum(increase({events}{{kind="rate_limiter_unavailable"}}[1h]))'),),
            ),
            Panel(
                "Denials logged but not stored (per hour)",
                (("unstored", "sum(increase(a2a_security_denials_unstored_total[1h]))"),),
            ),
        ],
    )


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(build(), indent=2) + "\n"
        for name, build in (("registry", registry), ("goals", goals), ("security", security))
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
