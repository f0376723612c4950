"""The metrics collector under load: N simulated agents, one worker process.

    .venv/bin/python ops/bench/collector.py [--agents 1000] [--interval 5] [--seconds 30]
        [--redis-url redis://127.0.0.1:6379/0] [--database-url postgresql://...] [--threads 8]

With --database-url, the run creates a database `a2a_bench_collector_<random>` on that server
and drops it at the end; without it, the store is SQLite in a temporary directory.

One process serves every agent's metrics (`/agents/N/metrics`, Prometheus text whose counter
grows with time, so every poll moves progress and writes an event: the costly case). Goals
and auto-update configurations (interval `--interval`) are written first, in this process.
Then `a2a-goals scheduler` sends the due polls and one `a2a-goals worker` runs them, on Redis.
After `--warmup` seconds, a window of `--seconds` is measured from the worker's own metrics:

- polls/s: polls finished in the window (a2a_goals_metrics_collections_total), and how many
  of them failed;
- lag: from a poll falling due to its outcome being recorded in the log
  (a2a_goals_collection_lag_seconds), p50 and p99 estimated within the histogram's buckets;
- events/s: what the log grew by in the window.

Targets: >= 200 polls/s from one worker process; p99 lag <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from domain.auto_update import AutoUpdate, KpiMapping, Series  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Kpi, Objective  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import build_system  # noqa: E402
from ops.bench.scratch import create_database, drop_database  # noqa: E402

TENANT = "bench"
# Each agent's counter grows 200 a second; its KPI's target is 100,000: a poll every 5 s moves
# progress by a point, above AUTO_UPDATE_MIN_DELTA, so every poll writes.
GROWTH_PER_S = 200.0
TARGET = 100_000.0


def serve_agents(port: int) -> None:
    """The simulated agents, in this process (run with --serve-agents PORT)."""
    started = time.time()

    class Agents(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the collector's pool expects
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall between

        def do_GET(self) -> None:
            n = self.path.split("/")[2] if self.path.startswith("/agents/") else "0"
            value = 1000 + int(n) + (time.time() - started) * GROWTH_PER_S
            body = f"# TYPE tasks_completed counter\ntasks_completed_total {value:.3f}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Agents).serve_forever()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def setup(env: dict[str, str], agents: int, interval: int, agents_url: str) -> None:
    """Goals and auto-update configurations of every agent, and the read models caught up."""
    system = build_system(Settings(**env))  # type: ignore[arg-type]
    try:
        definition = GoalDefinition(
            "Work the queue",
            (Objective("throughput", "Throughput", kpi=Kpi("tasks_completed_total", target=TARGET)),),
        )
        meta = Meta("bench")
        for n in range(agents):
            agent_id = f"agent{n}"
            system.goals.set_goals(TENANT, agent_id, definition, meta)
            config = AutoUpdate(
                True,
                interval,
                None,
                f"{agents_url}/agents/{n}/metrics",
                {"throughput": KpiMapping(Series("tasks_completed_total"))},
            )
            system.collection.configure(TENANT, agent_id, config, meta)
        system.runner.catch_up()
    finally:
        system.close()


def scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return ""


def counted(text: str) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^a2a_goals_metrics_collections_total{status="(\w+)"} (\S+)$', text, re.M)
    }


def buckets(text: str) -> list[tuple[float, float]]:
    found = re.findall(r'^a2a_goals_collection_lag_seconds_bucket{le="([^"]+)"} (\S+)$', text, re.M)
    return sorted((float(le), float(n)) for le, n in found)


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of the observations made between two readings of the histogram."""
    counts = [(le, n - dict(before).get(le, 0.0)) for le, n in after]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank, lower, lower_count = q * total, 0.0, 0.0
    for le, n in counts:
        if n >= rank:
            if le == float("inf"):
                return float("inf")
            return lower + (le - lower) * (rank - lower_count) / max(n - lower_count, 1e-9)
        lower, lower_count = le, n
    return lower


def log_position(env: dict[str, str]) -> int:
    system = build_system(Settings(**{**env, "RUN_PROJECTIONS_IN_PROCESS": "false"}))  # type: ignore[arg-type]
    try:
        return system.goals.log_position()
    finally:
        system.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--serve-agents", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_agents:
        serve_agents(args.serve_agents)
        return 0

    data = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = {
        "APP_ENV": "test",
        "DATA_DIR": str(data),
        "ELASTICSEARCH_URL": "",
        "BROKER_URL": args.redis_url,
        "QUEUE_PREFIX": prefix,
        "OUTBOUND_ALLOW_NETS": "127.0.0.0/8",
        "PROJECTION_WATCH_S": "0",
        "STAGNATION_CHECK_S": "0",
        "PEER_SYNC_S": "0",
    }
    scratch = None
    if args.database_url:  # a database of the run's own, dropped at the end
        scratch = create_database(args.database_url, "a2a_bench_collector_")
        env["DATABASE_URL"] = scratch[1]
    procs: list[subprocess.Popen[bytes]] = []
    agents_port, metrics_port = free_port(), free_port()
    try:
        procs.append(subprocess.Popen([sys.executable, __file__, "--serve-agents", str(agents_port)]))
        started = time.monotonic()
        setup(env, args.agents, args.interval, f"http://127.0.0.1:{agents_port}")
        print(f"setup: {args.agents} agents configured in {time.monotonic() - started:.1f} s", flush=True)
        run_env = {**os.environ, **env}
        cli = [sys.executable, "-m", "interfaces.cli.main"]
        logs = (data / "worker.log").open("wb"), (data / "scheduler.log").open("wb")
        procs.append(
            subprocess.Popen(
                [*cli, "worker", "--threads", str(args.threads), "--metrics-port", str(metrics_port)],
                cwd=ROOT,
                env=run_env,
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            )
        )
        procs.append(
            subprocess.Popen(
                [*cli, "scheduler"], cwd=ROOT, env=run_env, stdout=logs[1], stderr=subprocess.STDOUT
            )
        )
        time.sleep(args.warmup)
        text0, position0, t0 = scrape(metrics_port), log_position(env), time.monotonic()
        time.sleep(args.seconds)
        text1, position1, t1 = scrape(metrics_port), log_position(env), time.monotonic()
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        shutil.rmtree(data, ignore_errors=True)
        if scratch is not None:
            drop_database(args.database_url, scratch[0])
    window = t1 - t0
    before, after = counted(text0), counted(text1)
    polls = {status: after.get(status, 0.0) - before.get(status, 0.0) for status in after}
    done = sum(polls.values())
    failed = done - polls.get("ok", 0.0)
    lag0, lag1 = buckets(text0), buckets(text1)
    offered = args.agents / args.interval
    print(
        f"store: {'postgresql' if args.database_url else 'sqlite'}; broker: redis; worker threads: {args.threads}"
    )
    print(
        f"offered: {offered:.0f} polls/s ({args.agents} agents every {args.interval} s); window {window:.1f} s"
    )
    print(f"polls/s sustained: {done / window:.1f} (failed: {failed:.0f})")
    print(f"events/s written: {(position1 - position0) / window:.1f}")
    print(
        f"lag due -> recorded: p50 {quantile(lag0, lag1, 0.5):.3f} s, p99 {quantile(lag0, lag1, 0.99):.3f} s"
    )
    ok = done / window >= min(200.0, offered * 0.95) and quantile(lag0, lag1, 0.99) <= 2.0
    print("targets (>= 200 polls/s, p99 lag <= 2 s):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
