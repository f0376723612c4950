"""Webhook deliveries end to end, in one process: events recorded -> outbox rows written by the
projection -> delivery jobs on the in-process worker -> a loopback receiver (204).

Run from the repo root:

    .venv/bin/python ops/bench/webhooks.py [--agents 500] [--threads 4] [--database-url URL]

--agents agents each set goals and record progress 60 (2 milestones of its objective and 2
overall): 5 deliveries per agent to one subscription (goals_set, milestone_reached), one lane
per agent. Without --database-url the embedded default (SQLite in a temporary directory).
It prints deliveries/s from the first write to the last delivery, and the p50/p99 lag from an
event's time to its accepted delivery; with --backlog, every event is written (and its rows in
the outbox) before the jobs start, and the rate is the backlog's drain. The receiver answers at once: this is the system's own
cost (projection, jobs, signing, the outbound guard, the attempt rows), not a network's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import psycopg

# Run as a script, this directory comes first on sys.path, and its projections.py would shadow
# the `projections` package: it is taken off, and the repository put first.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]
sys.path.insert(0, str(HERE.parent.parent))

from application.goals import ProgressUpdate  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Objective  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import build_system  # noqa: E402
from interfaces.workers.worker import InProcessJobs  # noqa: E402
from projections.freshness import wait_for_position  # noqa: E402

accepted: list[tuple[float, bytes]] = []
lock = threading.Lock()


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with lock:
            accepted.append((time.time(), body))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--backlog", action="store_true", help="write every event first, then start the jobs: the drain rate"
    )
    args = parser.parse_args()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    database, admin_url = "", args.database_url
    env: dict[str, Any] = {
        "APP_ENV": "test",
        "DATA_DIR": tempfile.mkdtemp(prefix="bench-webhooks-"),
        "OUTBOUND_ALLOW_NETS": "127.0.0.0/8",
        "WORKER_THREADS": str(args.threads),
        "WEBHOOK_DISPATCH_S": "1",
        "ELASTICSEARCH_URL": "",
    }
    if admin_url:
        database = f"a2a_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env["DATABASE_URL"] = f"{admin_url.rpartition('/')[0]}/{database}"
    system = build_system(Settings(**env))
    jobs = InProcessJobs(system)
    try:
        system.start_projections()
        if not args.backlog:
            jobs.start()
        meta = Meta(actor="bench")
        url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        system.webhooks.subscriptions.subscribe("bench", url, ["goals_set", "milestone_reached"], meta)
        expected = args.agents * 5
        started = time.time()
        definition = GoalDefinition(purpose_statement="bench", objectives=(Objective("a", "A"),))
        for i in range(args.agents):
            system.goals.set_goals("bench", f"agent-{i}", definition, meta)
            system.goals.record_progress("bench", ProgressUpdate(f"agent-{i}", objective_progress={"a": 60}), meta)
        written = time.time()
        if args.backlog:
            wait_for_position(system.store, ["webhook_outbox"], system.goals.log_position(), 600)
            started = time.time()
            jobs.start()
        while len(accepted) < expected:
            if time.time() - started > 600:
                raise SystemExit(f"only {len(accepted)} of {expected} deliveries in 600 s")
            time.sleep(0.05)
        done = time.time()
        with system.store.read() as tx:  # where the lag is: the outbox row, then the job
            rows = tx.fetchall(
                "SELECT d.created_at, a.at FROM webhook_deliveries d JOIN webhook_attempts a"
                " ON a.delivery_id = d.delivery_id AND a.attempt = 1"
            )
    finally:
        jobs.stop()
        system.close()
        httpd.shutdown()
        if database:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    lags = sorted(at - datetime.fromisoformat(orjson.loads(body)["timestamp"]).timestamp() for at, body in accepted)
    store = "PostgreSQL" if database else "SQLite"
    print(f"store {store}, {args.agents} agents, {args.threads} worker threads, {expected} deliveries")
    since = "the jobs started" if args.backlog else "the first write"
    print(f"events written in {written - started:.2f} s" if not args.backlog else "backlog written first")
    print(f"all delivered {done - started:.2f} s after {since}: {expected / (done - started):,.0f} deliveries/s")
    queued = sorted(at - created for created, at in rows)
    print(
        f"outbox row -> first attempt: p50 {statistics.median(queued) * 1000:.0f} ms,"
        f" p99 {queued[int(len(queued) * 0.99) - 1] * 1000:.0f} ms"
    )
    if not args.backlog:
        print(
            f"lag event -> delivered: p50 {statistics.median(lags) * 1000:.0f} ms,"
            f" p99 {lags[int(len(lags) * 0.99) - 1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
