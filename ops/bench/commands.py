"""Command throughput on PostgreSQL: eventsourcing's raw append rate against the real HTTP server.

Run from the repo root:

    .venv/bin/python ops/bench/commands.py [--database-url URL] [--seconds N] [--concurrency C]

It creates a fresh database `a2a_bench_<random>` on the server named by --database-url
(default: $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres) and drops it
at the end. Phases, each measured over the same window length after a warm-up:

  (a) raw append: a plain eventsourcing Application (same PostgreSQL, same pool settings as
      the server) saving one event per save() from C threads, each thread appending to its
      own in-memory aggregates (no loads, no conflicts): the ceiling the command path is
      measured against.
  (a') app: GoalsApp.record_progress called in-process from C threads (load + decide + save,
      no HTTP, no projections): informational, it splits (b)'s cost into "application" and
      "HTTP + projections".
  (b) HTTP: the real `serve` process; N agents get goals first, then C keep-alive
      connections PUT /api/v1/goals/agents/{id}/progress, each connection on its own slice
      of agents (no two in-flight commands on one agent).
  (c) ratio (b)/(a), target >= 0.6.
  (d) bulk: POST /api/v1/goals/progress:batch with --batch-size updates per request, events/s
      counted from log positions.
  --encryption: (a') and (b) again with ENCRYPTION=on (payloads sealed per tenant, a fresh
      database for the second server), and the cost of encryption on each: 1 - on/off,
      target <= 10%.

The load generator is a minimal asyncio HTTP/1.1 client on uvloop (not httpx): on a 2-core
machine every CPU cycle the client spends is taken from the server, so its CPU share is
printed next to the server's and PostgreSQL's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
# Run as a script, this directory comes first on sys.path, and sibling benches (projections.py,
# auth.py, ...) would shadow the product's packages of the same name: import from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from application.goals import GoalsApp, ProgressUpdate  # noqa: E402
from domain.goals import AgentGoals  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Objective  # noqa: E402
from infrastructure.data_keys import MasterKeys  # noqa: E402
from infrastructure.eventstore import eventsourcing_env  # noqa: E402
from infrastructure.payload_cipher import payload_mapper  # noqa: E402
from infrastructure.settings import Settings  # noqa: E402
from ops.bench.scratch import create_database, drop_database  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TENANT = "bench"
OBJECTIVES = ("o1", "o2", "o3")
# Progress stays under the first milestone (25%), so every progress command writes exactly
# one event; the log positions confirm it (events/request is printed).
MAX_PCT = 24.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

console = Console(width=None if sys.stdout.isatty() else 160)


# --- results ---------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one measured window produced."""

    name: str
    seconds: float
    ops: int
    events: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def events_rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# --- CPU accounting from /proc ---------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _all_stats() -> dict[int, tuple[str, int, float]]:
    found: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (s := _stat(int(entry))) is not None:
            found[int(entry)] = s
    return found


def _tree(stats: dict[int, tuple[str, int, float]], root: int) -> set[int]:
    pids = {root}
    grew = True
    while grew:
        grew = False
        for pid, (_, ppid, _) in stats.items():
            if ppid in pids and pid not in pids:
                pids.add(pid)
                grew = True
    return pids & set(stats)


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores, not idle or waiting on I/O)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class CpuMeter:
    """CPU seconds per role (client = this process, server tree, projector tree, postgres)."""

    def __init__(self, roles: dict[str, int]) -> None:
        self.roles = roles

    def sample(self) -> dict[str, dict[int, float]]:
        stats = _all_stats()
        taken: dict[str, dict[int, float]] = {"client": {os.getpid(): time.process_time()}}
        for role, root in self.roles.items():
            taken[role] = {pid: stats[pid][2] for pid in _tree(stats, root)}
        taken["postgres"] = {pid: s[2] for pid, s in stats.items() if s[0].startswith("postgres")}
        taken["machine"] = {0: _machine_busy()}
        return taken

    @staticmethod
    def shares(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], wall: float
    ) -> dict[str, float]:
        """CPU used per role as a fraction of the whole machine (1.0 = all cores busy)."""
        out: dict[str, float] = {}
        for role, now in after.items():
            then = before.get(role, {})
            used = sum(v - then.get(pid, 0.0) for pid, v in now.items())
            out[role] = used / (wall * NCPU)
        # Whatever else ran on the machine meanwhile (other jobs skew the figures).
        out["other"] = max(0.0, out.pop("machine") - sum(out.values()))
        return out


# --- a tiny aggregate for the raw append rate --------------------------------------------------


class Tally(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Bumped")
    def bump(self, by: int) -> None:
        self.count += by


class RawApp(Application[Any]):
    name = "bench_raw"


class BenchGoalsApp(GoalsApp):
    """The product's GoalsApp on its own tables, so (a') does not touch the server's log."""

    name = "bench_goals"


class SealedBenchGoalsApp(GoalsApp):
    """(a') with ENCRYPTION=on, on tables of its own."""

    name = "bench_sealed"


def _master_keys() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# --- database lifecycle ----------------------------------------------------------------------


class LogPosition:
    """max(notification_id) of an events table, read over one dedicated connection."""

    def __init__(self, url: str, table: str) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        self._table = table

    def __call__(self) -> int:
        try:
            row = self._conn.execute(f'SELECT max(notification_id) FROM "{self._table}"').fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        return int(row[0] or 0) if row else 0

    def close(self) -> None:
        self._conn.close()


# --- threaded drivers: (a) and (a') ----------------------------------------------------------


def run_threads(
    name: str,
    workers: Sequence[Callable[[], None]],
    *,
    warmup: float,
    seconds: float,
    position: Callable[[], int],
    meter: CpuMeter,
) -> Phase:
    """Each worker is called in a loop on its own thread; completions inside the window count."""
    window: list[float] = [float("inf"), float("inf")]
    stop = threading.Event()
    per_thread: list[list[float]] = [[] for _ in workers]
    errors: list[str] = []

    def loop(i: int, work: Callable[[], None]) -> None:
        out = per_thread[i]
        while not stop.is_set():
            t = time.perf_counter()
            try:
                work()
            except Exception as e:  # a failed save is an error, not a crash of the bench
                errors.append(f"{type(e).__name__}: {e}")
                continue
            done = time.perf_counter()
            if window[0] <= done <= window[1]:
                out.append(done - t)

    threads = [threading.Thread(target=loop, args=(i, w), daemon=True) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    pos0, cpu0 = position(), meter.sample()
    window[1] = float("inf")
    window[0] = t0 = time.perf_counter()
    time.sleep(seconds)
    window[1] = t1 = time.perf_counter()
    pos1, cpu1 = position(), meter.sample()
    stop.set()
    for t in threads:
        t.join()
    latencies = [x for out in per_thread for x in out]
    return Phase(
        name,
        t1 - t0,
        len(latencies),
        pos1 - pos0,
        latencies,
        errors=len(errors),
        error_samples=errors[:3],
        cpu=CpuMeter.shares(cpu0, cpu1, t1 - t0),
    )


def bench_raw(url: str, settings: Settings, args: argparse.Namespace, meter: CpuMeter) -> Phase:
    """(a): one event per save(), C threads, each on its own in-memory aggregates.

    The baseline is eventsourcing's own PostgreSQL recorder, as shipped (the target is a
    ratio to it); the server uses its OrderedInsertRecorder."""
    env = eventsourcing_env(settings)
    env.pop("APPLICATION_RECORDER_TOPIC", None)
    app = RawApp(env)
    position = LogPosition(url, f"{RawApp.name}_events")
    try:
        per_thread = max(1, args.agents // args.concurrency)
        tallies = [[Tally(f"t{i}-{j}") for j in range(per_thread)] for i in range(args.concurrency)]
        app.save(*[t for group in tallies for t in group])

        def worker(group: list[Tally]) -> Callable[[], None]:
            cycle = iter(_forever(group))

            def work() -> None:
                tally = next(cycle)
                tally.bump(1)
                app.save(tally)

            return work

        return run_threads(
            "(a) raw append (eventsourcing)",
            [worker(g) for g in tallies],
            warmup=args.warmup,
            seconds=args.seconds,
            position=position,
            meter=meter,
        )
    finally:
        position.close()
        app.close()


def bench_app(
    url: str, settings: Settings, args: argparse.Namespace, meter: CpuMeter, *, sealed: bool = False
) -> Phase:
    """(a'): GoalsApp.record_progress in-process (load + decide + save), no HTTP, no projections."""
    kind = SealedBenchGoalsApp if sealed else BenchGoalsApp
    app = kind(
        eventsourcing_env(settings),
        snapshot_interval=settings.snapshot_interval,
        max_retries=settings.command_retries,
        payload_mapper=payload_mapper(MasterKeys.parse(_master_keys())) if sealed else None,
    )
    position = LogPosition(url, f"{kind.name}_events")
    meta = Meta(actor="bench", request_id="bench")
    definition = GoalDefinition(
        purpose_statement="bench agent",
        objectives=tuple(Objective(o, f"objective {o}") for o in OBJECTIVES),
    )
    try:
        ids = [f"agent-{i:05d}" for i in range(args.agents)]
        for chunk in range(0, len(ids), 500):
            app.save(*[AgentGoals.start(TENANT, a, definition, meta) for a in ids[chunk : chunk + 500]])
        slices = _slices(ids, args.concurrency)

        def worker(agents: list[str]) -> Callable[[], None]:
            cycle = iter(_forever(agents))
            rnd = random.Random(agents[0])

            def work() -> None:
                update = ProgressUpdate(next(cycle), _progress(rnd))
                app.record_progress(TENANT, update, meta)

            return work

        return run_threads(
            "(a') GoalsApp.record_progress in-process" + (", ENCRYPTION=on" if sealed else ""),
            [worker(s) for s in slices],
            warmup=args.warmup,
            seconds=args.seconds,
            position=position,
            meter=meter,
        )
    finally:
        position.close()
        app.close()


# --- the HTTP load generator -----------------------------------------------------------------


class Http1:
    """One keep-alive HTTP/1.1 connection: just enough protocol for this API, and cheap."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = b""  # the last response's status line and headers

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, request: bytes) -> tuple[int, bytes]:
        reader, writer = await self._open()
        writer.write(request)
        head = self.head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if status in (204, 304):  # no body, whatever the headers say (RFC 9112 §6.3)
            body = b""
        elif at >= 0:
            end = lower.index(b"\r\n", at + 2)
            body = await reader.readexactly(int(lower[at + 17 : end]))
        elif b"transfer-encoding: chunked" in lower:
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            body = b"".join(parts)
        else:
            body = await reader.read()
            self.close()
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, body


def _request(method: str, path: str, headers: str, body: bytes) -> bytes:
    """`headers`: the shared header lines (Host, tenant, actor, auth), each ending in CRLF."""
    return (
        f"{method} {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class LoadRun:
    count: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    before: Any = None
    after: Any = None


async def _drive(
    host: str,
    port: int,
    sources: Sequence[Iterator[bytes]],
    *,
    warmup: float,
    seconds: float | None,
    sample: Callable[[], Any],
    ok: Container[int],
) -> LoadRun:
    """One connection per source. Timed (seconds) or until every source is exhausted; a
    status not in `ok` is an error."""
    run = LoadRun()
    # Not clock(): uvloop's clock ticks in whole milliseconds, too coarse for latencies.
    clock = time.perf_counter
    window = [float("inf"), float("inf")]
    stop = asyncio.Event()

    async def client(source: Iterator[bytes]) -> None:
        conn = Http1(host, port)
        try:
            for request in source:
                if stop.is_set():
                    return
                t = clock()
                try:
                    status, body = await conn.send(request)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    conn.close()
                    status, body = 0, f"{type(e).__name__}: {e}".encode()
                done = clock()
                if status not in ok:
                    run.errors += 1
                    if len(run.error_samples) < 3:
                        run.error_samples.append(f"{status} {body[:300].decode(errors='replace')}")
                elif window[0] <= done <= window[1]:
                    run.latencies.append(done - t)
        finally:
            conn.close()

    tasks = [asyncio.create_task(client(s)) for s in sources]
    if seconds is None:
        run.before, t0 = sample(), clock()
        window[0] = t0
        await asyncio.gather(*tasks)
        run.seconds = clock() - t0
        run.after = sample()
    else:
        await asyncio.sleep(warmup)
        run.before = sample()
        window[0] = t0 = clock()
        await asyncio.sleep(seconds)
        window[1] = t1 = clock()
        run.after = sample()
        run.seconds = t1 - t0
        stop.set()
        await asyncio.gather(*tasks)
    run.count = len(run.latencies)
    return run


def drive(
    host: str,
    port: int,
    sources: Sequence[Iterator[bytes]],
    *,
    warmup: float = 0.0,
    seconds: float | None = None,
    sample: Callable[[], Any] = lambda: None,
    ok: Container[int] = range(200, 300),
) -> LoadRun:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_drive(host, port, sources, warmup=warmup, seconds=seconds, sample=sample, ok=ok))


# --- the server --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcs:
    """`serve` (and, with --projector separate, `project`) as subprocesses."""

    def __init__(
        self,
        url: str,
        args: argparse.Namespace,
        workdir: Path,
        extra_env: Mapping[str, str] | None = None,
        *,
        serve: Sequence[str] = ("-m", "interfaces.cli.main", "serve"),
        start_timeout: float = 60.0,
    ) -> None:
        """`serve` is the server's command line after the interpreter (before --port)."""
        self.url = url
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        in_process = args.projector == "inprocess"
        self.projecting = args.projector != "none"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "APP_ENV": "test",
            "DATA_DIR": str(workdir / "data"),
            "RUN_PROJECTIONS_IN_PROCESS": "true" if in_process else "false",
            # Where the server rate-limits callers, the limiter stays in the request path but
            # must not throttle the bench (unknown settings are ignored by older versions).
            **dict.fromkeys(
                ("RATE_LIMIT_READS", "RATE_LIMIT_WRITES", "RATE_LIMIT_TOKEN", "RATE_LIMIT_SEARCH"),
                "100000000/minute",
            ),
            **(extra_env or {}),
        }
        env.pop("PORT", None)
        self.env = env
        self.log = workdir / "server.log"
        self._logf = self.log.open("w")
        cmd = [sys.executable, *serve, "--port", str(self.port)]
        if args.workers > 1:
            cmd += ["--workers", str(args.workers)]
        self.command = " ".join(cmd[1:])
        self.server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._logf, stderr=subprocess.STDOUT)
        self.projector: subprocess.Popen[bytes] | None = None
        if args.projector == "separate":
            self.projector = subprocess.Popen(
                [sys.executable, "-m", "interfaces.cli.main", "project"],
                cwd=ROOT,
                env=env,
                stdout=self._logf,
                stderr=subprocess.STDOUT,
            )
        self._headers: dict[str, str] = {}
        try:
            self._wait_ready(start_timeout)
        except BaseException:
            self.stop()
            raise
        console.print(
            f"server pid {self.server.pid}"
            + (f", projector pid {self.projector.pid}" if self.projector else "")
            + f", port {self.port}"
        )

    def roles(self) -> dict[str, int]:
        roles = {"server": self.server.pid}
        if self.projector is not None:
            roles["projector"] = self.projector.pid
        return roles

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/api/v1/goals/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def auth_header(self) -> str:
        """An Authorization line when this version of the server wants bearer tokens, else ""."""
        if httpx.post(f"{self.base}/api/v1/goals/agents/probe", json={}, timeout=10).status_code != 401:
            return ""
        from domain.clients import SCOPES  # only in versions with OAuth clients
        from interfaces.bootstrap import build_system

        keys = ("DATABASE_URL", "APP_ENV", "DATA_DIR", "ENCRYPTION", "MASTER_KEYS")
        settings = Settings.model_validate(
            {**{k: self.env[k] for k in keys if k in self.env}, "RUN_PROJECTIONS_IN_PROCESS": "0"}
        )
        system = build_system(settings)
        try:
            issued = system.clients.create(TENANT, "bench", sorted(SCOPES), actor="bench")
        finally:
            system.close()
        answer = httpx.post(
            f"{self.base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(issued.client_id, issued.client_secret),
            timeout=30,
        )
        answer.raise_for_status()
        self._headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        return f"Authorization: {self._headers['Authorization']}\r\n"

    def lag(self) -> int:
        """Events the slowest read model has yet to apply, from the database (health tells
        lags in seconds only)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            end = conn.execute('SELECT max(notification_id) FROM "a2a_events"').fetchone()
            reached = conn.execute("SELECT min(position) FROM projection_tracking").fetchone()
        return max(0, int((end and end[0]) or 0) - int((reached and reached[0]) or 0))

    def wait_caught_up(self, timeout: float) -> float | None:
        """Seconds until every projection reached the log head, None when it did not in time."""
        if not self.projecting:
            return 0.0
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.lag() == 0:
                return time.monotonic() - t0
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        for proc in (self.projector, self.server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.projector, self.server):
            if proc is None:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._logf.close()


# --- load shapes ------------------------------------------------------------------------------


def _forever(items: Sequence[Any]) -> Iterator[Any]:
    while True:
        yield from items


def _slices(items: Sequence[str], n: int) -> list[list[str]]:
    n = max(1, min(n, len(items)))
    return [list(items[i::n]) for i in range(n)]


def _progress(rnd: random.Random) -> dict[str, float]:
    return {o: round(rnd.uniform(0, MAX_PCT), 2) for o in rnd.sample(OBJECTIVES, 2)}


GOALS_BODY = json.dumps(
    {
        "goals": {
            "purpose_statement": "bench agent",
            "primary_objectives": [
                {"id": "o1", "title": "Latency", "weight": 2},
                {"id": "o2", "title": "Throughput"},
                {"id": "o3", "title": "Quality", "kpi": {"metric": "score", "target": 100}},
            ],
            "success_criteria": ["fast enough"],
        }
    }
).encode()


def seed_sources(headers: str, agents: Sequence[str], concurrency: int) -> list[Iterator[bytes]]:
    def source(mine: list[str]) -> Iterator[bytes]:
        for agent in mine:
            yield _request("POST", f"/api/v1/goals/agents/{agent}", headers, GOALS_BODY)

    return [source(s) for s in _slices(agents, concurrency)]


def progress_sources(headers: str, agents: Sequence[str], concurrency: int) -> list[Iterator[bytes]]:
    def source(mine: list[str]) -> Iterator[bytes]:
        rnd = random.Random(mine[0])
        for agent in _forever(mine):
            body = json.dumps({"objective_progress": _progress(rnd)}).encode()
            yield _request("PUT", f"/api/v1/goals/agents/{agent}/progress", headers, body)

    return [source(s) for s in _slices(agents, concurrency)]


def batch_sources(headers: str, agents: Sequence[str], concurrency: int, size: int) -> list[Iterator[bytes]]:
    def source(mine: list[str]) -> Iterator[bytes]:
        rnd = random.Random(mine[0])
        at = 0
        while True:
            chosen = [mine[(at + k) % len(mine)] for k in range(min(size, len(mine)))]
            at += len(chosen)
            updates = [{"agent_id": a, "objective_progress": _progress(rnd)} for a in chosen]
            yield _request(
                "POST", "/api/v1/goals/progress:batch", headers, json.dumps({"updates": updates}).encode()
            )

    return [source(s) for s in _slices(agents, concurrency)]


# --- the HTTP phases ----------------------------------------------------------------------------


def bench_http(
    url: str, args: argparse.Namespace, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> tuple[Phase, Phase | None, dict[str, Any]]:
    server = ServerProcs(url, args, workdir, extra_env)
    info: dict[str, Any] = {"command": server.command, "auth": "none (X-Tenant)"}
    try:
        auth = server.auth_header()
        if auth:
            info["auth"] = "bearer token (client_credentials)"
        host = f"Host: 127.0.0.1:{server.port}\r\nX-Tenant: {TENANT}\r\nX-Actor: bench\r\n{auth}"
        agents = [f"agent-{i:05d}" for i in range(args.agents)]
        position = LogPosition(url, "a2a_events")
        meter = CpuMeter(server.roles())

        def sample() -> tuple[int, dict[str, dict[int, float]]]:
            return position(), meter.sample()

        t = time.perf_counter()
        seeded = drive("127.0.0.1", server.port, seed_sources(host, agents, args.concurrency))
        info["seed"] = (len(agents), time.perf_counter() - t, seeded.errors, seeded.error_samples)
        if seeded.errors:
            raise RuntimeError(f"seeding failed: {seeded.error_samples}")
        info["seed_catch_up_s"] = server.wait_caught_up(120)

        run = drive(
            "127.0.0.1",
            server.port,
            progress_sources(host, agents, args.concurrency),
            warmup=args.warmup,
            seconds=args.seconds,
            sample=sample,
        )
        (pos0, cpu0), (pos1, cpu1) = run.before, run.after
        single = Phase(
            "(b) HTTP PUT .../progress" + (", ENCRYPTION=on" if extra_env else ""),
            run.seconds,
            run.count,
            pos1 - pos0,
            run.latencies,
            run.errors,
            run.error_samples,
            CpuMeter.shares(cpu0, cpu1, run.seconds),
        )
        info["lag_after_b"] = server.lag()
        info["catch_up_after_b_s"] = server.wait_caught_up(120)

        bulk = None
        if args.batch_size:
            conc = max(1, min(args.batch_concurrency, len(agents) // args.batch_size or 1))
            run = drive(
                "127.0.0.1",
                server.port,
                batch_sources(host, agents, conc, args.batch_size),
                warmup=args.warmup,
                seconds=args.seconds,
                sample=sample,
            )
            (pos0, cpu0), (pos1, cpu1) = run.before, run.after
            bulk = Phase(
                f"(d) HTTP POST progress:batch x{min(args.batch_size, len(agents) // conc)}",
                run.seconds,
                run.count,
                pos1 - pos0,
                run.latencies,
                run.errors,
                run.error_samples,
                CpuMeter.shares(cpu0, cpu1, run.seconds),
                note=f"{conc} connections",
            )
            info["lag_after_d"] = server.lag()
            info["catch_up_after_d_s"] = server.wait_caught_up(300)
        position.close()
        return single, bulk, info
    finally:
        server.stop()


# --- output ------------------------------------------------------------------------------------


def _cpu(phase: Phase) -> str:
    order = ["client", "server", "projector", "postgres", "other"]
    return " ".join(f"{k}={phase.cpu[k] * 100:.0f}%" for k in order if k in phase.cpu)


def encryption_cost(pairs: Sequence[tuple[Phase, Phase]], load: str) -> None:
    """Print each pair's cost of encryption: 1 - on/off throughput (target <= 10%), and the
    CPU each command took in the process doing the work (the server, or this one for (a')),
    which other load on the machine moves less than throughput."""
    for off, on in pairs:
        cost = 1 - on.rate / off.rate if off.rate else float("nan")
        print(
            f"encryption: {off.name}: off={off.rate:.0f}/s on={on.rate:.0f}/s cost={cost * 100:.1f}% "
            f"(target <= 10%); CPU per command off={_cpu_ms(off):.2f}ms on={_cpu_ms(on):.2f}ms "
            f"({(_cpu_ms(on) / _cpu_ms(off) - 1) * 100 if _cpu_ms(off) else float('nan'):+.1f}%) load={load}"
        )


def _cpu_ms(phase: Phase) -> float:
    """CPU milliseconds per command of the process that runs the commands."""
    share = phase.cpu.get("server", phase.cpu.get("client", 0.0))
    return share * NCPU * phase.seconds / phase.ops * 1000 if phase.ops else 0.0


def report(phases: list[Phase], raw: Phase | None, http: Phase | None, bulk: Phase | None) -> None:
    table = Table(title=f"a2a-goals command throughput on PostgreSQL ({NCPU} cores)")
    for col in (
        "phase",
        "ops/s",
        "events/s",
        "ev/op",
        "p50 ms",
        "p99 ms",
        "errors",
        "CPU (share of machine)",
    ):
        table.add_column(col, justify="left" if col in ("phase", "CPU (share of machine)") else "right")
    for p in phases:
        table.add_row(
            p.name + (f" [{p.note}]" if p.note else ""),
            f"{p.rate:,.0f}",
            f"{p.events_rate:,.0f}",
            f"{p.events / p.ops:.2f}" if p.ops else "-",
            f"{p.pct(0.5):.1f}",
            f"{p.pct(0.99):.1f}",
            str(p.errors),
            _cpu(p),
        )
    if raw and http:
        table.add_row("(c) ratio (b)/(a)", f"{http.rate / raw.rate:.2f}", "", "", "", "", "", "target >= 0.6")
    console.print(table)
    for p in phases:
        for sample in p.error_samples:
            console.print(f"[red]{p.name} error:[/] {sample}")
    if raw and http:
        print(
            f"commands: http={http.rate:.0f}/s p50={http.pct(0.5):.1f}ms p99={http.pct(0.99):.1f}ms "
            f"errors={http.errors} raw_append={raw.rate:.0f}/s ratio={http.rate / raw.rate:.2f} "
            "(target >= 0.6)"
        )
    if bulk:
        print(
            f"bulk: events={bulk.events_rate:.0f}/s requests={bulk.rate:.1f}/s "
            f"p50={bulk.pct(0.5):.0f}ms errors={bulk.errors} (target >= 15000 events/s, later issue)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each window")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="threads for (a) and (a'), connections for (b); 8 is where both peak on 2 cores",
    )
    parser.add_argument(
        "--agents", type=int, default=2000, help="agents (aggregates) the load is spread over"
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="updates per progress:batch (0: skip (d))"
    )
    parser.add_argument("--batch-concurrency", type=int, default=2, help="connections for (d)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes for the server")
    parser.add_argument(
        "--projector",
        choices=["inprocess", "separate", "none"],
        default=None,
        help="where projections run: in the server (default for 1 worker), a separate `project` "
        "process (default for more workers), or nowhere (write path only)",
    )
    parser.add_argument("--skip-raw", action="store_true", help="skip (a) (and so the ratio)")
    parser.add_argument("--skip-app", action="store_true", help="skip (a') the in-process GoalsApp run")
    parser.add_argument(
        "--encryption",
        action="store_true",
        help="also run (a') and (b) with ENCRYPTION=on and print the cost",
    )
    args = parser.parse_args(argv)
    if args.projector is None:
        args.projector = "inprocess" if args.workers == 1 else "separate"

    name, url = create_database(args.database_url, "a2a_bench_")
    settings = Settings(DATABASE_URL=url, APP_ENV="test")
    console.print(
        f"database {name}; concurrency={args.concurrency} agents={args.agents} seconds={args.seconds} "
        f"warmup={args.warmup} workers={args.workers} projector={args.projector} "
        f"pool={settings.db_pool_size}+{settings.db_pool_size} overflow"
    )
    phases: list[Phase] = []
    pairs: list[tuple[Phase, Phase]] = []
    raw = http = bulk = None
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        meter = CpuMeter({})
        if not args.skip_raw:
            raw = bench_raw(url, settings, args, meter)
            phases.append(raw)
        if not args.skip_app:
            phases.append(bench_app(url, settings, args, meter))
            if args.encryption:
                pairs.append((phases[-1], bench_app(url, settings, args, meter, sealed=True)))
                phases.append(pairs[-1][1])
        with tempfile.TemporaryDirectory(prefix="a2a-bench-") as tmp:
            http, bulk, info = bench_http(url, args, Path(tmp))
        phases.append(http)
        if bulk:
            phases.append(bulk)
        if args.encryption:
            sealed_name, sealed_url = create_database(args.database_url, "a2a_bench_")
            try:
                with tempfile.TemporaryDirectory(prefix="a2a-bench-") as tmp:
                    env = {"ENCRYPTION": "on", "MASTER_KEYS": _master_keys()}
                    sealed_http, sealed_bulk, _ = bench_http(sealed_url, args, Path(tmp), env)
            finally:
                drop_database(args.database_url, sealed_name)
            pairs.append((http, sealed_http))
            phases.append(sealed_http)
            if bulk and sealed_bulk:
                sealed_bulk.name += ", ENCRYPTION=on"
                pairs.append((bulk, sealed_bulk))
                phases.append(sealed_bulk)
    finally:
        drop_database(args.database_url, name)
    report(phases, raw, http, bulk)
    load = f"{load} -> {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    encryption_cost(pairs, load)
    n, took, _, _ = info["seed"]
    console.print(
        f"server: {info['command']} | auth: {info['auth']} | seeded {n} agents in {took:.1f}s ({n / took:.0f}/s) | "
        f"projection lag after (b): {info['lag_after_b']} events, caught up in "
        f"{_secs(info['catch_up_after_b_s'])}"
        + (
            f" | after (d): {info['lag_after_d']} events, caught up in {_secs(info['catch_up_after_d_s'])}"
            if "lag_after_d" in info
            else ""
        )
    )
    return 1 if any(p.errors for p in phases) else 0


def _secs(value: float | None) -> str:
    return "timeout" if value is None else f"{value:.1f}s"


if __name__ == "__main__":
    sys.exit(main())
