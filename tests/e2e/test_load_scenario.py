"""The load test (ops/bench/load.py) run briefly, so that it keeps working as the API changes:
it seeds agents through the API, serves them with two worker processes and a separate
projector on PostgreSQL and Redis, and every kind of request it sends must be answered
without error. Its figures are not checked here (ops/bench prints them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Not imported from ops/bench/load_users.py: locust patches the standard library when imported.
REQUEST_TYPES = {
    "goal",
    "history",
    "analytics (agent)",
    "analytics (system)",
    "progress update",
    "search",
    "card",
    "card If-None-Match",
    "well-known card",
}


def _service(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{name} is not set: run the suite with ops/test")
        pytest.skip(f"{name} is not set; ops/test provides it")
    return url


def test_every_request_type_of_the_mixed_load_is_answered_without_error(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    cmd = [
        sys.executable,
        "ops/bench/load.py",
        "--seconds=5",
        "--users=4",
        "--agents=60",
        "--tenants=3",
        "--workers=2",
        f"--database-url={_service('TEST_DATABASE_URL')}",
        f"--redis-url={_service('TEST_REDIS_URL')}",
        f"--json={out}",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    by_type = json.loads(out.read_text())["by_type"]
    assert set(by_type) == REQUEST_TYPES
    unexercised = [name for name, row in by_type.items() if row["requests"] == 0]
    assert not unexercised, f"never sent: {unexercised}"
    failed = {name: row["samples"] for name, row in by_type.items() if row["failures"]}
    assert not failed, failed
    # The conditional card reads meet unchanged cards: some are answered 304 Not Modified.
    assert by_type["card If-None-Match"]["statuses"].get("304", 0) > 0
    assert "error rate 0.00%" in done.stdout
