"""Added latency of token verification per request, against a cached GET.

    .venv/bin/python ops/bench/auth.py [--requests N]

Starts the real server on the embedded store (temporary DATA_DIR), sets one goal, then times
sequential keep-alive GETs of it:
  * with one token reused (the verified-token cache answers: the usual case for a client),
  * with a fresh token on every request (every request pays a full ES256 verification),
and, in-process, the cost of the cached and the full verification alone. The target is that
verification adds < 5% to a cached GET.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import build_system  # noqa: E402

TENANT = "bench"
AGENT = "agent0"
GOALS = {"goals": {"purpose_statement": "Answer fast", "primary_objectives": ["Latency", "Accuracy"]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/goals/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def timed_gets(client: httpx.Client, url: str, tokens: list[str]) -> list[float]:
    latencies = []
    for token in tokens:
        started = time.perf_counter()
        answer = client.get(url, headers={"Authorization": f"Bearer {token}"})
        latencies.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise SystemExit(f"GET answered {answer.status_code}: {answer.text}")
    return latencies


def per_call_us(fn: object, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="a2a-bench-auth-")
    # Limits far above the request count: this measures verification, not the limiter.
    env = {
        "APP_ENV": "test",
        "DATA_DIR": data_dir,
        "RATE_LIMIT_READS": "1000000/minute",
        "RATE_LIMIT_WRITES": "1000000/minute",
    }
    system = build_system(Settings(**env, RUN_PROJECTIONS_IN_PROCESS="false"))  # type: ignore[arg-type]
    issued = system.clients.create(TENANT, "bench", ["goals:read", "goals:write"], actor="bench")
    tokens = [
        system.issuer.issue(issued.client_id, TENANT, ["goals:read", "goals:write"])[0]
        for _ in range(args.requests)
    ]
    port = free_port()
    proc = start_server(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            auth = {"Authorization": f"Bearer {tokens[0]}"}
            created = client.post(f"/api/v1/goals/agents/{AGENT}", json=GOALS, headers=auth).json()
            url = f"/api/v1/goals/agents/{AGENT}"
            client.get(url, params={"min_position": created["position"]}, headers=auth)
            timed_gets(client, url, tokens[:200])  # warm-up
            reused = timed_gets(client, url, [tokens[0]] * args.requests)
            fresh = timed_gets(client, url, tokens)
    finally:
        proc.terminate()
        proc.wait(10)
    cached_us = per_call_us(lambda: system.auth.claims(tokens[0], "127.0.0.1"), 20_000)
    full_us = per_call_us(lambda: system.auth.verifier.verify(tokens[0]), 2_000)
    system.close()

    get_p50 = statistics.median(reused) * 1e6
    fresh_p50 = statistics.median(fresh) * 1e6
    table = Table(title=f"token verification, {args.requests} sequential GETs per column")
    for column in ("figure", "value", "share of a cached GET"):
        table.add_column(column)
    table.add_row("cached GET p50 (token reused)", f"{get_p50:.0f} µs", "100%")
    table.add_row("GET p50 with a fresh token each time", f"{fresh_p50:.0f} µs", f"{fresh_p50 / get_p50:.0%}")
    table.add_row(
        "verification, cached token (in-process)", f"{cached_us:.1f} µs", f"{cached_us / get_p50:.2%}"
    )
    table.add_row("verification, full ES256 (in-process)", f"{full_us:.0f} µs", f"{full_us / get_p50:.1%}")
    Console().print(table)
    print(
        f"auth: get_p50={get_p50:.0f}us cached_verify={cached_us:.1f}us ({cached_us / get_p50:.2%}) "
        f"full_verify={full_us:.0f}us ({full_us / get_p50:.1%}) target: cached < 5% of a cached GET"
    )


if __name__ == "__main__":
    main()
