"""/metrics as Prometheus scrapes it: the write side, the card cache and the database pools
counted; and with `serve --workers 2` every worker's requests, whichever process answers
the scrape (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server
from tests.e2e.support import API, login, ok
from tests.integration.support import wait_until

LIVE = '"/health/live"'
BURST = 200


def samples(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{server.url}/metrics/", timeout=30).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(server: Server, name: str, **labels: str) -> float:
    return samples(server).get((name, frozenset(labels.items())), 0.0)


def test_writes_card_cache_and_pools_are_counted(
    start_server: Callable[..., Server], pg_url: str, tenant: str
) -> None:
    server = start_server(DATABASE_URL=pg_url)
    _, headers = login(server, tenant)
    before = value(server, "a2a_goals_events_appended_total", type="AgentGoals.ProgressRecorded")
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        goals = {"goals": {"purpose_statement": "counted", "primary_objectives": ["A"]}}
        ok(api.post(f"{API}/agents/counted", json=goals), 201)
        ok(api.put(f"{API}/agents/counted/progress", json={"objective_progress": {"a": 30}}))
        card = json.loads((Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())
        created = ok(api.post("/api/v1/agents", json={"agent_id": "cached", "card": card}), 201)
        for _ in range(3):
            ok(api.get("/api/v1/agents/cached/card", params={"min_position": created["position"]}))
    found = samples(server)
    assert value(server, "a2a_goals_events_appended_total", type="AgentGoals.ProgressRecorded") == before + 1
    assert found[("a2a_goals_command_duration_seconds_count", frozenset({("aggregate", "AgentGoals")}))] >= 2
    assert found[("a2a_goals_command_duration_seconds_count", frozenset({("aggregate", "RegisteredAgent")}))] >= 1
    hits = found[("a2a_registry_card_cache_requests_total", frozenset({("result", "hit")}))]
    misses = found[("a2a_registry_card_cache_requests_total", frozenset({("result", "miss")}))]
    assert misses >= 1 and hits >= 2  # the first read built the card; the others were served from the cache
    for pool in ("event_store", "read_store"):
        assert found[("a2a_db_pool_connections", frozenset({("pool", pool), ("state", "max")}))] >= 1
        assert ("a2a_db_pool_connections", frozenset({("pool", pool), ("state", "in_use")})) in found
    # Each read model's position and lag, by name.
    positions = {dict(labels)["projection"] for name, labels in found if name == "a2a_projection_position"}
    assert {"goal_progress", "agent_cards"} <= positions


def _counts_by_process(directory: Path) -> dict[str, float]:
    """What each server process has counted of /health/live requests, from its own file."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        for key, count, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if "a2a_registry_requests_total" in key and LIVE in key:
                counts[path.stem] = counts.get(path.stem, 0.0) + count
    return counts


def test_two_worker_processes_are_both_counted(start_server: Callable[..., Server], tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()  # as prometheus-client asks: it exists before the processes start
    server = start_server("--workers", "2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    sent = 0

    def burst() -> None:
        nonlocal sent
        with ThreadPoolExecutor(8) as pool:
            # A new connection each time: either process may accept it.
            answers = list(pool.map(lambda _: httpx.get(f"{server.url}/health/live", timeout=30), range(BURST)))
        assert all(a.status_code == 200 for a in answers)
        sent += BURST

    def both_counted() -> bool:
        burst()
        return len([c for c in _counts_by_process(directory).values() if c]) == 2

    wait_until(both_counted, 120, "requests answered by both processes", 0.1)
    # Whichever process answers a scrape, it counts every request of both.
    for _ in range(10):
        assert value(server, "a2a_registry_requests_total", method="GET", endpoint="/health/live", status_code="200") == sent
