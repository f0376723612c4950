"""Schemathesis against a running server, every operation and every check: no 5xx, and no
answer that contradicts the OpenAPI document (status, content type, headers, body schema).
A bounded number of examples with a fixed seed, so that a run is repeatable."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Server
from tests.e2e.support import API, ok

CONFIG = Path(__file__).parent / "fuzz" / "schemathesis.toml"
EXAMPLES = 25
SEED = 20261204
AGENTS = ("fuzz-agent-1", "fuzz-agent-2")


@pytest.mark.postgres
def test_the_api_answers_every_generated_request_as_its_schema_says(
    start_server: Callable[..., Server], pg_url: str, tmp_path: Path
) -> None:
    # Limits high enough that the run exercises the API rather than the rate limiter.
    limit = "100000/minute"
    server = start_server(DATABASE_URL=pg_url, RATE_LIMIT_READS=limit, RATE_LIMIT_WRITES=limit)
    # The operator tenant's token: every route, admin ones included, is reachable.
    headers = server.auth_headers("default")
    card = json.loads((ROOT / "tests" / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())
    for agent in AGENTS:
        goals = {"goals": {"purpose_statement": "Fuzzed", "primary_objectives": ["Alpha", "Beta"]}}
        ok(httpx.post(f"{server.url}{API}/agents/{agent}", json=goals, headers=headers, timeout=30), 201)
        # ... and a record in the registry, so that its routes reach the rules too.
        registration = {"agent_id": agent, "card": card, "visibility": "public"}
        ok(httpx.post(f"{server.url}/api/v1/agents", json=registration, headers=headers, timeout=30), 201)
    document = ok(httpx.get(f"{server.url}/openapi.json", timeout=30))
    operations = sum(1 for methods in document["paths"].values() for method in methods if method != "parameters")
    report = tmp_path / "schemathesis.log"
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file", str(CONFIG),
        "run", f"{server.url}/openapi.json",
        "--checks", "all",
        "--header", f"Authorization: {headers['Authorization']}",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--generation-database", "none",  # the same run every time: nothing remembered between runs
        "--workers", "2",
        "--request-timeout", "30",
        "--no-color",
    ]
    with report.open("w") as out:
        finished = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False)
    output = report.read_text()
    assert finished.returncode == 0, output[-20_000:]
    assert f"Tested: {operations}" in output, output[-5_000:]  # every operation of the document
    server_log = server.log_text()
    assert "Traceback" not in server_log, server_log[-10_000:]
