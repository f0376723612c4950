"""Reachability checks in one process: N agents registered on the embedded default (SQLite),
their cards answered by one local HTTP server, checked by `ReachabilityService.check` from a
pool of threads (what `check_agent_reachability` jobs run), in three rounds:

  first    every agent goes from unchecked to reachable: one event each
  steady   nothing changes: no event at all (what every round costs while agents stay up)
  down     the server is stopped: every agent becomes unreachable, one event each

Each round prints checks/s and the events it wrote (log positions before and after).

    .venv/bin/python ops/bench/reachability.py [--agents 1000] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Run as a script, this directory comes first on sys.path, and sibling benches (projections.py,
# search.py, ...) would shadow the product's packages of the same name: import from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from application.registry import CardSource  # noqa: E402
from domain.meta import Meta  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import System, build_system  # noqa: E402

SAMPLE = ROOT / "tests" / "fixtures" / "a2a" / "sample-card-v1.0.json"
TENANT = "bench"


def serve_cards(card: dict[str, Any]) -> ThreadingHTTPServer:
    body = json.dumps(card).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def round_of_checks(system: System, agents: list[str], threads: int, label: str) -> None:
    before = system.goals.log_position()
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(lambda a: system.reachability.check(TENANT, a), agents))
    elapsed = time.perf_counter() - started
    events = system.goals.log_position() - before
    up = sum(1 for o in outcomes if o)
    print(
        f"{label:<7} {len(agents) / elapsed:8.0f} checks/s  {elapsed:6.2f} s  "
        f"reachable {up:>5}/{len(agents)}  events written {events}"
    )


def wait_for_read_model(system: System, count: int) -> None:
    deadline = time.monotonic() + 120
    while len(system.reachability_reads.due()) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the agent_cards read model did not catch up")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    sample: dict[str, Any] = json.loads(SAMPLE.read_text())
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(  # type: ignore[call-arg]
            APP_ENV="test", DATA_DIR=data, OUTBOUND_ALLOW_NETS="127.0.0.0/8", REACHABILITY_CHECK_S=0
        )
        system = build_system(settings)
        httpd = serve_cards(sample)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/a2a/v1"
        card = {**sample, "supportedInterfaces": [{**sample["supportedInterfaces"][0], "url": url}]}
        try:
            system.start_projections()
            agents = [f"agent-{n:05d}" for n in range(args.agents)]
            for agent in agents:
                system.registry.register(TENANT, agent, CardSource(card=card), "private", Meta(actor="bench"))
            wait_for_read_model(system, len(agents))
            print(f"{args.agents} agents, {args.threads} threads, SQLite, one card server on loopback")
            round_of_checks(system, agents, args.threads, "first")
            round_of_checks(system, agents, args.threads, "steady")
            httpd.shutdown()
            httpd.server_close()
            round_of_checks(system, agents, args.threads, "down")
        finally:
            system.close()


if __name__ == "__main__":
    main()
