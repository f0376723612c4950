"""Registry reads at 10k agents on PostgreSQL: card GETs against a bare FastAPI route served
the same way, card GETs at a fixed rate, and searches.

Run from the repo root:

    .venv/bin/python ops/bench/registry.py [--agents 10000] [--cache redis|inprocess]
        [--seconds 5] [--rounds 3] [--concurrency 8] [--database-url URL]

It creates a database `a2a_bench_<random>` on the server named by --database-url (default:
$BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres), starts the real server
(`python -m interfaces.cli.main serve`, APP_ENV=test, rate limits raised so that they never
throttle, card cache and rate limits on --redis-url with --cache redis, as deployed), and drops
the database at the end, also when a run fails.

Load, through the API, over --concurrency connections: --agents agents spread over --tenants
tenants (a bearer token each), their cards made from the A2A sample card (registry_fleet.py),
--public-share of them public; --goal-share of them set goals and record progress, a tenth of
those pause. Then the read models are awaited (`?min_position=`) and the database ANALYZEd.

Card reads, each measured in --rounds windows of --seconds (after --warmup) on the real server,
alternated with the same windows on a bare FastAPI route (bare_app.py: the same bytes, the same
uvicorn settings), so that the machine's noise falls on both; connection i reads random agents
of tenant i:
  (a) GET /api/v1/agents/{agent_id}/card with a token: 200s;
  (b) the same with the agent's If-None-Match (ETags fetched once per agent first): 304s;
  (c) GET /.well-known/agents/{public_id}/agent-card.json, no token, public agents: 200s.
Each kind's cards are read once just before its windows (the card cache keeps an answer 60 s
and reads a hot one again in its last 10 s, so each kind meets it as warm). Each window prints a
line as it ends, with the card GETs the server did not answer from memory. Each ratio real/bare has the target >= 0.7.
CPU µs/req is the serving process's CPU time per answered request.
Then (a) and the bare route at a fixed --rate (200 req/s; latency counted from when a request
was due, so a stall shows): p99 target <= 10 ms.

Searches, --queries of each kind after 20 unmeasured, one at a time on one connection, each by
a random tenant from words of an agent it can see: text (1-2 whole words), prefix ("rout"),
typo (a letter left out or two swapped), skill (an exact skill id), goal
(goal_status=active&min_progress=50), combined (a word and the goal filter). p99 target <= 50 ms.

--middleware-baseline adds a third server to the windows: the bare routes wrapped in the API's
own middleware, which splits the gap into what that stack costs and what the routes do.
--profile FILE records one more (a) window of the server with py-spy (--gil, raw format).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvloop
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
# Run as a script, this directory comes first on sys.path, and sibling benches (projections.py,
# search.py, ...) would shadow the product's packages of the same name: import from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from domain.clients import SCOPES  # noqa: E402
from domain.ids import registered_agent_id  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from interfaces.bootstrap import build_system  # noqa: E402
from ops.bench.commands import (  # noqa: E402
    NCPU,
    CpuMeter,
    Http1,
    LoadRun,
    LogPosition,
    Phase,
    ServerProcs,
    _free_port,
    _request,
    console,
    drive,
)
from ops.bench.registry_fleet import (  # noqa: E402
    SEARCH_KINDS,
    Agent,
    Fleet,
    make_fleet,
    search_params,
    search_path,
    writes,
)
from ops.bench.scratch import create_database, drop_database  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HOST = "Host: 127.0.0.1\r\n"
SEARCH_WARMUP = 20
MIDDLEWARE = "bare+middleware"
EXPECTED = {"a": 200, "b": 304, "c": 200}
KINDS = {
    "a": "(a) GET card, token, 200",
    "b": "(b) GET card, token, If-None-Match, 304",
    "c": "(c) GET well-known card, public, 200",
}


def get(path: str, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\n{HOST}{headers}\r\n".encode()


def header(head: bytes, name: bytes) -> str:
    """A response header's value from a raw head ("" when absent)."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode()
    return ""


def run_async(coroutine: Any) -> Any:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


# --- the servers --------------------------------------------------------------------------------


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        "MAX_AGENTS_PER_CLIENT": "0",
        "TOKEN_TTL_S": "86400",  # one token per tenant for the whole run
        "RATE_LIMIT_BAD_TOKENS": "100000000/minute",
    }
    if args.cache == "redis":
        env["REDIS_URL"] = args.redis_url
    return env


def tokens(server: ServerProcs, tenants: Sequence[str]) -> dict[str, str]:
    """An Authorization line per tenant: a client with every scope, a client_credentials token."""
    keys = ("DATABASE_URL", "APP_ENV", "DATA_DIR")
    settings = Settings.model_validate(
        {**{k: server.env[k] for k in keys}, "RUN_PROJECTIONS_IN_PROCESS": "0"}
    )
    system = build_system(settings)
    try:
        issued = {t: system.clients.create(t, "bench", sorted(SCOPES), actor="bench") for t in tenants}
    finally:
        system.close()
    lines = {}
    for tenant, client in issued.items():
        answer = httpx.post(
            f"{server.base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, client.client_secret),
            timeout=30,
        )
        answer.raise_for_status()
        lines[tenant] = f"Authorization: Bearer {answer.json()['access_token']}\r\n"
    return lines


class BareServer:
    """bare_app.py as a subprocess, answering with `body` and `headers`."""

    def __init__(
        self, workdir: Path, body: bytes, headers: dict[str, str], *, middleware: bool = False
    ) -> None:
        self.port = _free_port()
        answer = workdir / "bare-answer.json"
        answer.write_text(json.dumps({"body": body.decode(), "headers": headers}))
        self._logf = (workdir / f"bare-{self.port}.log").open("w")
        cmd = [sys.executable, "-m", "ops.bench.bare_app", "--port", str(self.port), "--answer", str(answer)]
        cmd += ["--middleware"] if middleware else []
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bare app exited:\n{(workdir / f'bare-{self.port}.log').read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/api/v1/agents/x/card", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("bare app did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()


# --- the load -------------------------------------------------------------------------------------


def load(server: ServerProcs, fleet: Fleet, auth: dict[str, str], concurrency: int) -> tuple[int, float]:
    """Every agent's writes, an agent's in order on one connection; (requests, seconds)."""
    rng = random.Random(1)
    slices = [fleet.agents[i::concurrency] for i in range(concurrency)]

    def source(agents: list[Agent]) -> Iterator[bytes]:
        for agent in agents:
            headers = HOST + auth[agent.tenant]
            for method, path, body in writes(agent, rng):
                yield _request(method, path, headers, json.dumps(body).encode())

    t = time.perf_counter()
    run = drive("127.0.0.1", server.port, [source(s) for s in slices])
    if run.errors:
        raise RuntimeError(f"loading failed ({run.errors} errors): {run.error_samples}")
    return run.count, time.perf_counter() - t


def wait_read_models(server: ServerProcs, auth: str) -> float:
    """Seconds until the registry's read models (by `?min_position=`) and every other one
    reached the end of the log; then the tables are ANALYZEd, as autovacuum would."""
    t = time.perf_counter()
    position = LogPosition(server.url, "a2a_events")
    head = position()
    position.close()
    token = auth.split(":", 1)[1].strip()
    url = f"{server.base}/api/v1/agents"
    while True:
        answer = httpx.get(
            url, params={"min_position": head, "limit": 1}, headers={"Authorization": token}, timeout=60
        )
        if answer.status_code == 200:
            break
        if answer.status_code != 504 or time.perf_counter() - t > 900:
            raise RuntimeError(f"read models did not catch up: {answer.status_code} {answer.text[:300]}")
    if server.wait_caught_up(600) is None:
        raise RuntimeError("projections did not catch up in 600 s")
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - t


# --- card reads -----------------------------------------------------------------------------------


@dataclass
class Cards:
    """The requests of each kind, per connection, and the answer the bare route copies."""

    requests: dict[str, list[list[bytes]]] = field(default_factory=dict)
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


async def _read_all(port: int, requests: list[bytes], concurrency: int) -> list[tuple[int, bytes, bytes]]:
    """(status, head, body) of each request, over `concurrency` connections."""
    answers: list[tuple[int, bytes, bytes]] = [(0, b"", b"")] * len(requests)

    async def client(offset: int) -> None:
        conn = Http1("127.0.0.1", port)
        try:
            for i in range(offset, len(requests), concurrency):
                status, body = await conn.send(requests[i])
                answers[i] = (status, conn.head, body)
        finally:
            conn.close()

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    return answers


def read_once(
    port: int, requests: list[bytes], expected: int, concurrency: int
) -> list[tuple[int, bytes, bytes]]:
    """Every request once; all must answer `expected`."""
    answers: list[tuple[int, bytes, bytes]] = run_async(_read_all(port, requests, concurrency))
    if bad := [(s, b[:200]) for s, _, b in answers if s != expected]:
        raise RuntimeError(f"{len(bad)} card reads did not answer {expected}, e.g. {bad[0]}")
    return answers


def prepare_cards(server: ServerProcs, fleet: Fleet, auth: dict[str, str], concurrency: int) -> Cards:
    """The requests of each kind, with the ETags of a first read of every card in play."""
    in_play = fleet.tenants[: min(concurrency, len(fleet.tenants))]
    own = [(t, a) for t in in_play for a in fleet.by_tenant[t]]
    plain = [get(f"/api/v1/agents/{a.agent_id}/card", auth[t]) for t, a in own]
    answers = read_once(server.port, plain, 200, concurrency)
    etags = [header(h, b"etag") for _, h, _ in answers]
    public_ids = [registered_agent_id(a.tenant, a.agent_id).hex for a in fleet.public]
    public = [get(f"/.well-known/agents/{p}/agent-card.json") for p in public_ids]

    cards = Cards()
    conditional = [
        get(f"/api/v1/agents/{a.agent_id}/card", auth[t] + f"If-None-Match: {etag}\r\n")
        for (t, a), etag in zip(own, etags, strict=True)
    ]
    for kind, every in (("a", plain), ("b", conditional)):
        cards.requests[kind] = [
            [r for (t, _), r in zip(own, every, strict=True) if t == in_play[i % len(in_play)]]
            for i in range(concurrency)
        ]
    cards.requests["c"] = [public[i::concurrency] for i in range(concurrency)]
    # The bare route answers with the card of median size, with the real headers.
    _, head, body = sorted(answers, key=lambda a: len(a[2]))[len(answers) // 2]
    names = (b"etag", b"last-modified", b"cache-control", b"vary")
    cards.body, cards.headers = body, {n.decode(): header(head, n) for n in names}
    return cards


def _random(requests: list[bytes], seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    while True:
        yield rng.choice(requests)


def _absorb(phase: Phase, run: LoadRun) -> None:
    """Adds one window's run to a phase (CPU shares weighted by the windows' lengths)."""
    shares = CpuMeter.shares(run.before, run.after, run.seconds)
    total = phase.seconds + run.seconds
    for role, share in shares.items():
        phase.cpu[role] = (phase.cpu.get(role, 0.0) * phase.seconds + share * run.seconds) / total
    phase.seconds = total
    phase.ops += run.count
    phase.latencies += run.latencies
    phase.errors += run.errors
    phase.error_samples += run.error_samples[: 3 - len(phase.error_samples)]


def compare(
    cards: Cards, ports: dict[str, int], meter: CpuMeter, args: argparse.Namespace
) -> dict[str, dict[str, Phase]]:
    """Each kind on each server in alternating windows: {kind: {server: Phase}}. Each of the
    kind's cards is read once first (the card cache keeps an answer 60 s), so that every kind
    meets the cache equally warm."""
    out: dict[str, dict[str, Phase]] = {}
    for kind, title in KINDS.items():
        every = [r for per_connection in cards.requests[kind] for r in per_connection]
        read_once(ports["a2a-goals"], every, EXPECTED[kind], args.concurrency)
        out[kind] = {name: Phase(title, 0.0, 0, 0) for name in ports}
        for round_ in range(args.rounds):
            for name, port in ports.items():
                sources = [_random(r, 1000 * round_ + i) for i, r in enumerate(cards.requests[kind])]
                slow = _off_the_event_loop(port) if name == "a2a-goals" else {}
                run = drive(
                    "127.0.0.1",
                    port,
                    sources,
                    warmup=args.warmup,
                    seconds=args.seconds,
                    sample=meter.sample,
                    ok=(EXPECTED[kind],),
                )
                _absorb(out[kind][name], run)
                line = _window(run, name)
                if slow:  # warm-up included
                    now = _off_the_event_loop(port)
                    line += ", not from memory: " + " ".join(f"{k}={now[k] - slow.get(k, 0):,.0f}" for k in now)
                console.print(f"  {title}, {name}, window {round_ + 1}: {line}")
    return out


def _off_the_event_loop(port: int) -> dict[str, float]:
    """The server's count of card GETs it did not answer from memory, by where from."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics/", timeout=30).text
    found = re.findall(r'^a2a_card_reads_off_the_event_loop_total\{answered_from="(\w+)"\} (\S+)$', text, re.M)
    return {where: float(count) for where, count in found}


def _window(run: LoadRun, server: str) -> str:
    """One window's rate and CPU per request, printed as it ends: a window that stands out
    (a burst of cache misses, another job) shows here before the averages hide it."""
    shares = CpuMeter.shares(run.before, run.after, run.seconds)
    cpu = shares.get(_role(server), 0.0) * NCPU * run.seconds / run.count * 1e6 if run.count else 0.0
    line = f"{run.count / run.seconds:,.0f} req/s, {cpu:,.0f} CPU µs/req, other={shares['other'] * 100:.0f}%"
    if server != "a2a-goals":  # the API server is idle meanwhile: what its background work costs
        line += f", a2a-goals idle={shares['server'] * NCPU * 100:.0f}% of a core"
    return line


async def _paced(port: int, requests: Iterator[bytes], rate: float, seconds: float, warmup: float) -> LoadRun:
    """Requests due at a fixed rate over a few connections; latency from when each was due."""
    clock = time.perf_counter  # not uvloop's clock, which ticks in whole milliseconds
    run = LoadRun()
    due_times: asyncio.Queue[float | None] = asyncio.Queue()
    start = clock() + 0.1
    window = (start + warmup, start + warmup + seconds)

    async def client() -> None:
        conn = Http1("127.0.0.1", port)
        try:
            while (due := await due_times.get()) is not None:
                try:
                    status, body = await conn.send(next(requests))
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    conn.close()
                    status, body = 0, f"{type(e).__name__}: {e}".encode()
                done = clock()
                if status != 200:
                    run.errors += 1
                    if len(run.error_samples) < 3:
                        run.error_samples.append(f"{status} {body[:300].decode(errors='replace')}")
                elif window[0] <= due < window[1]:
                    run.latencies.append(done - due)
        finally:
            conn.close()

    clients = [asyncio.create_task(client()) for _ in range(8)]
    for n in range(int(rate * (warmup + seconds))):
        due = start + n / rate
        if (delay := due - clock()) > 0:
            await asyncio.sleep(delay)
        due_times.put_nowait(due)
    for _ in clients:
        due_times.put_nowait(None)
    await asyncio.gather(*clients)
    run.count, run.seconds = len(run.latencies), seconds
    return run


def fixed_rate(
    cards: Cards, ports: dict[str, int], meter: CpuMeter, args: argparse.Namespace
) -> dict[str, Phase]:
    out = {}
    every = [r for per_connection in cards.requests["a"] for r in per_connection]
    read_once(ports["a2a-goals"], every, 200, args.concurrency)
    for name, port in ports.items():
        before = meter.sample()
        run = run_async(_paced(port, _random(every, 7), args.rate, args.rate_seconds, args.warmup))
        run.before, run.after = before, meter.sample()
        run.seconds = args.rate_seconds + args.warmup  # CPU over the whole run
        phase = Phase(f"(a) at {args.rate:.0f} req/s", 0.0, 0, 0)
        _absorb(phase, run)
        phase.seconds = args.rate_seconds
        out[name] = phase
    return out


def profile(server: ServerProcs, cards: Cards, args: argparse.Namespace) -> str:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return "py-spy not found (uv pip install py-spy)"
    duration = int(args.seconds) + 2
    cmd = [
        spy,
        "record",
        "--pid",
        str(server.server.pid),
        "--gil",
        "--format",
        "raw",
        "-o",
        str(args.profile),
    ]
    recorder = subprocess.Popen(
        [*cmd, "--duration", str(duration), "--nonblocking"], stdout=subprocess.DEVNULL
    )
    time.sleep(1)
    sources = [_random(r, 99 + i) for i, r in enumerate(cards.requests["a"])]
    drive("127.0.0.1", server.port, sources, warmup=0.5, seconds=duration, ok=(200,))
    recorder.wait(60)
    return f"profile of (a) written to {args.profile}"


# --- searches -------------------------------------------------------------------------------------


@dataclass
class Search:
    kind: str
    example: str = ""
    latencies: list[float] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def _searches(port: int, fleet: Fleet, auth: dict[str, str], queries: int) -> list[Search]:
    rng = random.Random(11)
    visible = {t: fleet.visible(t) for t in fleet.tenants}
    conn = Http1("127.0.0.1", port)
    found = []
    try:
        for kind in SEARCH_KINDS:
            search = Search(kind)
            for n in range(SEARCH_WARMUP + queries):
                tenant = rng.choice(fleet.tenants)
                params = search_params(kind, rng.choice(visible[tenant]), rng)
                path = search_path(params)
                search.example = search.example or path.split("?", 1)[1]
                t = time.perf_counter()
                status, body = await conn.send(get(path, auth[tenant]))
                took = time.perf_counter() - t
                if status != 200:
                    search.errors += 1
                    if len(search.error_samples) < 3:
                        search.error_samples.append(f"{status} {path} {body[:300].decode(errors='replace')}")
                elif n >= SEARCH_WARMUP:
                    search.latencies.append(took)
                    search.totals.append(int(json.loads(body)["total"]))
            found.append(search)
    finally:
        conn.close()
    return found


# --- output ---------------------------------------------------------------------------------------


def _role(server: str) -> str:
    """The CpuMeter role of a server's process."""
    return "server" if server == "a2a-goals" else server


def _cpu(phase: Phase, server: str) -> str:
    roles = ("client", _role(server), "postgres", "other")
    return " ".join(f"{k}={phase.cpu[k] * 100:.0f}%" for k in roles if k in phase.cpu)


def _cpu_per_request(phase: Phase, server: str) -> str:
    """CPU µs the serving process spent per answered request."""
    share = phase.cpu.get(_role(server))
    return f"{share * NCPU * phase.seconds / phase.ops * 1e6:,.0f}" if share and phase.ops else "-"


def _table(title: str, columns: Sequence[str], left: Sequence[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    return table


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    cpu = "CPU (share of machine)"
    table = _table(
        f"card reads, {args.rounds} x {args.seconds:g}s per server, alternated ({NCPU} cores)",
        ("read", "server", "req/s", "ratio", "p50 ms", "p99 ms", "errors", "CPU µs/req", cpu),
        ("read", "server", cpu),
    )
    for pair in results["cards"].values():
        bare = pair["bare"]
        for name, p in pair.items():
            ratio = f"{p.rate / bare.rate:.2f}" if name != "bare" and bare.rate else ""
            row = [p.name, name, f"{p.rate:,.0f}", ratio, f"{p.pct(0.5):.2f}", f"{p.pct(0.99):.2f}"]
            table.add_row(*row, str(p.errors), _cpu_per_request(p, name), _cpu(p, name))
    console.print(table)

    paced = _table(
        f"card reads (a) at a fixed rate ({args.rate_seconds:g}s), p99 target <= 10 ms",
        ("server", "req/s", "p50 ms", "p99 ms", "max ms", "errors", cpu),
        ("server", cpu),
    )
    for name, p in results["paced"].items():
        top = max(p.latencies, default=float("nan")) * 1000
        row = [name, f"{p.rate:,.0f}", f"{p.pct(0.5):.2f}", f"{p.pct(0.99):.2f}", f"{top:.2f}"]
        paced.add_row(*row, str(p.errors), _cpu(p, name))
    console.print(paced)

    searches = _table(
        f"searches, {args.queries} per kind, one at a time, p99 target <= 50 ms",
        ("kind", "example", "mean total", "p50 ms", "p99 ms", "max ms", "errors"),
        ("kind", "example"),
    )
    for s in results["searches"]:
        mean = sum(s.totals) / len(s.totals) if s.totals else float("nan")
        top = max(s.latencies, default=float("nan")) * 1000
        searches.add_row(
            s.kind,
            s.example,
            f"{mean:,.0f}",
            f"{s.pct(0.5):.1f}",
            f"{s.pct(0.99):.1f}",
            f"{top:.1f}",
            str(s.errors),
        )
    console.print(searches)

    for phases in (*results["cards"].values(), results["paced"]):
        for name, p in phases.items():
            for sample in p.error_samples:
                console.print(f"[red]{p.name} ({name}) error:[/] {sample}")
    for s in results["searches"]:
        for sample in s.error_samples:
            console.print(f"[red]search {s.kind} error:[/] {sample}")
    summary(results)


def summary(results: dict[str, Any]) -> None:
    """One line per figure, for logs and the README."""
    for kind, pair in results["cards"].items():
        real, bare = pair["a2a-goals"], pair["bare"]
        print(
            f"cards ({kind}): {real.rate:.0f}/s p50={real.pct(0.5):.2f}ms p99={real.pct(0.99):.2f}ms "
            f"bare={bare.rate:.0f}/s ratio={real.rate / bare.rate:.2f} (target >= 0.7)"
        )
    real = results["paced"]["a2a-goals"]
    print(
        f"cards at {real.rate:.0f}/s: p50={real.pct(0.5):.2f}ms p99={real.pct(0.99):.2f}ms (target <= 10 ms)"
    )
    print(
        "search p50/p99 ms: "
        + " ".join(f"{s.kind}={s.pct(0.5):.1f}/{s.pct(0.99):.1f}" for s in results["searches"])
        + " (target p99 <= 50 ms)"
    )


# --- the run --------------------------------------------------------------------------------------


def bench(url: str, fleet: Fleet, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    procs = argparse.Namespace(workers=1, projector="inprocess")
    server = ServerProcs(url, procs, workdir, extra_env=server_env(args))
    bares: dict[str, BareServer] = {}
    results: dict[str, Any] = {"command": server.command}
    try:
        auth = tokens(server, fleet.tenants)
        requests, took = load(server, fleet, auth, args.concurrency)
        results["load"] = (requests, took)
        console.print(
            f"loaded {len(fleet.agents)} agents in {requests} requests, {took:.1f}s ({requests / took:.0f}/s)"
        )
        results["catch_up_s"] = wait_read_models(server, auth[fleet.tenants[0]])
        cards = prepare_cards(server, fleet, auth, args.concurrency)
        bares["bare"] = BareServer(workdir, cards.body, cards.headers)
        if args.middleware_baseline:
            bares[MIDDLEWARE] = BareServer(workdir, cards.body, cards.headers, middleware=True)
        for name, bare in bares.items():
            console.print(
                f"{name} app pid {bare.proc.pid}, port {bare.port}; a card of {len(cards.body)} bytes"
            )
        meter = CpuMeter({"server": server.server.pid, **{n: b.proc.pid for n, b in bares.items()}})
        ports = {"a2a-goals": server.port, **{n: b.port for n, b in bares.items()}}
        results["cards"] = compare(cards, ports, meter, args)
        results["paced"] = fixed_rate(cards, {n: ports[n] for n in ("a2a-goals", "bare")}, meter, args)
        results["searches"] = run_async(_searches(server.port, fleet, auth, args.queries))
        if args.profile:
            results["profile"] = profile(server, cards, args)
        return results
    except BaseException:
        console.print(f"[red]server log (tail):[/]\n{server.log.read_text()[-4000:]}")
        raise
    finally:
        for bare in bares.values():
            bare.stop()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument(
        "--cache", choices=["redis", "inprocess"], default="redis", help="where hot cards are cached"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="for --cache redis")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--public-share", type=float, default=0.3)
    parser.add_argument("--goal-share", type=float, default=0.6)
    parser.add_argument(
        "--concurrency", type=int, default=8, help="connections for the load and the card reads"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window")
    parser.add_argument("--rounds", type=int, default=3, help="windows per kind and server")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the fixed-rate run")
    parser.add_argument("--rate-seconds", type=float, default=15.0)
    parser.add_argument("--queries", type=int, default=300, help="measured searches per kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--middleware-baseline",
        action="store_true",
        help=f"a third server in the windows: the bare routes in the API's middleware ({MIDDLEWARE})",
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of one more (a) window")
    args = parser.parse_args(argv)

    run_id = uuid.uuid4().hex[:6]
    fleet = make_fleet(args.agents, args.tenants, run_id, args.seed, args.goal_share, args.public_share)
    name, url = create_database(args.database_url, "a2a_bench_")
    console.print(
        f"{time.strftime('%Y-%m-%d %H:%M %Z')} database {name}; agents={args.agents} tenants={args.tenants} "
        f"public={len(fleet.public)} cache={args.cache} concurrency={args.concurrency}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="a2a-bench-") as tmp:
            results = bench(url, fleet, args, Path(tmp))
    finally:
        drop_database(args.database_url, name)
    report(results, args)
    console.print(f"server: {results['command']} | read models caught up in {results['catch_up_s']:.1f}s")
    if "profile" in results:
        console.print(results["profile"])
    phases = [p for pair in results["cards"].values() for p in pair.values()] + list(
        results["paced"].values()
    )
    return 1 if any(p.errors for p in phases) or any(s.errors for s in results["searches"]) else 0


if __name__ == "__main__":
    sys.exit(main())
