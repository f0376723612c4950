"""A mixed load for a bounded time against the API served as in production: reads, writes,
searches and card fetches from many tenants at once, with throughput, p50/p99 and the error
rate of each request type.

Run from the repo root:

    .venv/bin/python ops/bench/load.py [--seconds 60] [--users 20] [--workers 2] [--agents 1000]
        [--database-url URL] [--redis-url URL] [--json FILE]

It creates a database `a2a_bench_<random>` on the server named by --database-url (default:
$BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres) and drops it at the end,
also when a run fails. The server is `a2a-goals serve --workers N` (APP_ENV=test, rate limits
raised so that they never throttle) with its projections in a separate `a2a-goals project`
process, the card cache and the rate limiter on Redis (--redis-url, default db 13), as the
compose stack runs them.

Seeding, through the API: --agents agents over --tenants tenants (a client and a token each),
cards from the A2A sample card (registry_fleet.py), 30% public; 60% set goals and record
progress, a tenth of those pause. Then the read models are awaited and the database ANALYZEd,
and every card is read once for its ETag.

The load (load_users.py, locust in a process of its own): --users users, each one tenant's
client sending with no pause a weighted mix of: a goal, its history, an agent's and the
tenant's analytics (reads of active goals), progress updates to active goals (writes),
registry searches (words, prefixes, typos, skill ids, goal filters), cards with a token, cards
with If-None-Match (304 while unchanged), public well-known cards. Any answer other than a
2xx (or a 304 to If-None-Match) counts as an error, and the exit status is 1 if there was one.

The machine's load averages (os.getloadavg) before and after the window are printed with the
figures: on a shared machine they say how much else was running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
# Run as a script, this directory comes first on sys.path, and sibling benches would shadow
# the product's packages of the same name: import from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from domain.ids import registered_agent_id  # noqa: E402
from ops.bench.commands import ServerProcs, console  # noqa: E402
from ops.bench.registry import load, tokens, wait_read_models  # noqa: E402
from ops.bench.registry_fleet import SEARCH_KINDS, Fleet, make_fleet, search_params, search_path  # noqa: E402
from ops.bench.scratch import create_database, drop_database  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SEARCHES_PER_TENANT = 200


def server_env(redis_url: str, workers: int) -> dict[str, str]:
    return {
        "SERVE_WORKERS": str(workers),  # as `serve` sets it: no in-process card cache with several
        "MAX_AGENTS_PER_CLIENT": "0",
        "TOKEN_TTL_S": "86400",  # one token per tenant for the whole run
        "RATE_LIMIT_BAD_TOKENS": "100000000/minute",
        "REDIS_URL": redis_url,
    }


def active_goals(base: str, token: str) -> list[dict[str, Any]]:
    """The tenant's active goals: agent id and objective ids."""
    found: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        while True:
            page = http.get("/api/v1/goals/", params={"status": "active", "limit": 500, "offset": len(found)})
            page.raise_for_status()
            items = page.json()["items"]
            found += [
                {"agent_id": g["agent_id"], "objectives": [o["id"] for o in g["goals"]["primary_objectives"]]}
                for g in items
            ]
            if not items or len(found) >= page.json()["total"]:
                return found


def etags(base: str, token: str, agent_ids: Sequence[str]) -> dict[str, str]:
    """Each card's ETag, from a first read."""
    out = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        for agent_id in agent_ids:
            answer = http.get(f"/api/v1/agents/{agent_id}/card")
            answer.raise_for_status()
            out[agent_id] = answer.headers["etag"]
    return out


def spec(server: ServerProcs, fleet: Fleet, auth: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """What the users need: per tenant a token, its active goals, ETags and searches."""
    rng = random.Random(args.seed)
    tenants = []
    for tenant in fleet.tenants:
        token = auth[tenant].split("Bearer ", 1)[1].strip()
        visible = fleet.visible(tenant)
        searches = [
            search_path(search_params(rng.choice(SEARCH_KINDS), rng.choice(visible), rng))
            for _ in range(SEARCHES_PER_TENANT)
        ]
        tenants.append(
            {
                "token": token,
                "goals": active_goals(server.base, token),
                "etags": etags(server.base, token, [a.agent_id for a in fleet.by_tenant[tenant]]),
                "searches": searches,
            }
        )
    public = [
        f"/.well-known/agents/{registered_agent_id(a.tenant, a.agent_id).hex}/agent-card.json"
        for a in fleet.public
    ]
    return {
        "base": server.base,
        "seconds": args.seconds,
        "users": args.users,
        "tenants": tenants,
        "public": public,
    }


def drive_users(users_spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """load_users.py in its own process; what it measured."""
    spec_file, out_file = workdir / "spec.json", workdir / "out.json"
    spec_file.write_text(json.dumps(users_spec))
    log = workdir / "users.log"
    with log.open("w") as logf:
        done = subprocess.run(
            [sys.executable, "-m", "ops.bench.load_users", str(spec_file), str(out_file)],
            cwd=ROOT,
            stdout=logf,
            stderr=subprocess.STDOUT,
            timeout=users_spec["seconds"] + 120,
            check=False,
        )
    if done.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"load users failed ({done.returncode}):\n{log.read_text()[-4000:]}")
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


def bench(url: str, fleet: Fleet, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    procs = argparse.Namespace(workers=args.workers, projector="separate")
    env = server_env(args.redis_url, args.workers)
    server = ServerProcs(url, procs, workdir, extra_env=env, start_timeout=300)  # `a2a-goals serve`, as deployed
    try:
        auth = tokens(server, fleet.tenants)
        requests, took = load(server, fleet, auth, args.concurrency)
        console.print(f"seeded {len(fleet.agents)} agents in {requests} requests, {took:.1f}s")
        wait_read_models(server, auth[fleet.tenants[0]])
        users_spec = spec(server, fleet, auth, args)
        load_before = os.getloadavg()
        result = drive_users(users_spec, workdir)
        result["load_before"], result["load_after"] = load_before, os.getloadavg()
        result["server"] = server.command
        return result
    except BaseException:
        console.print(f"[red]server log (tail):[/]\n{server.log.read_text()[-4000:]}")
        raise
    finally:
        server.stop()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    by_type = result["by_type"]
    seconds = result["seconds"]
    table = Table(title=f"mixed load, {args.users} users, {seconds:.0f}s, serve --workers {args.workers}")
    for col in ("request", "requests", "req/s", "p50 ms", "p99 ms", "errors", "error %", "statuses"):
        table.add_column(col, justify="left" if col in ("request", "statuses") else "right")
    for name, row in by_type.items():
        rate = row["failures"] / row["requests"] * 100 if row["requests"] else 0.0
        statuses = " ".join(f"{k}:{v}" for k, v in row["statuses"].items())
        table.add_row(
            name,
            f"{row['requests']:,}",
            f"{row['per_s']:,.1f}",
            _ms(row["p50_ms"]),
            _ms(row["p99_ms"]),
            str(row["failures"]),
            f"{rate:.2f}",
            statuses,
        )
    total = sum(r["requests"] for r in by_type.values())
    failed = sum(r["failures"] for r in by_type.values())
    share = failed / total * 100 if total else 0.0
    table.add_row("total", f"{total:,}", f"{total / seconds:,.1f}", "", "", str(failed), f"{share:.2f}", "")
    console.print(table)
    for name, row in by_type.items():
        for sample in row["samples"]:
            console.print(f"[red]{name} error:[/] {sample}")
    before, after = (" ".join(f"{x:.2f}" for x in result[k]) for k in ("load_before", "load_after"))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    console.print(
        f"conditions: {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit or '?'}, {os.cpu_count()} cores, server "
        f"`{result['server']}` + `project`, users={args.users} agents={args.agents} tenants={args.tenants}; "
        f"load average (1/5/15 min) before {before}, after {after}"
    )
    print(f"total: {total / seconds:.0f} req/s, {total} requests, error rate {share:.2f}%")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load window")
    parser.add_argument("--users", type=int, default=20, help="simulated clients, each with no think time")
    parser.add_argument("--workers", type=int, default=2, help="`serve --workers`")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8, help="connections for the seeding")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    fleet = make_fleet(args.agents, args.tenants, uuid.uuid4().hex[:6], args.seed, 0.6, 0.3)
    name, url = create_database(args.database_url, "a2a_bench_")
    console.print(f"database {name}; agents={args.agents} tenants={args.tenants} public={len(fleet.public)}")
    try:
        with tempfile.TemporaryDirectory(prefix="a2a-load-") as tmp:
            result = bench(url, fleet, args, Path(tmp))
    finally:
        drop_database(args.database_url, name)
    report(result, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 1 if any(r["failures"] for r in result["by_type"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
