"""Discovery search latency at 10k agents, on PostgreSQL and on SQLite.

Run from the repo root:

    .venv/bin/python ops/bench/search.py [--agents 10000] [--tenants 50] [--runs 300]
        [--goal-events 200000] [--database-url URL] [--seed 7] [--skip-sqlite]

It creates a database `a2a_bench_search_<random>` on the server named by --database-url
(default: $BENCH_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/postgres) and a SQLite
file in a temporary directory, and drops both at the end, also on Ctrl-C.

Load: --agents agents spread over --tenants tenants, a third of them public, each registered
with a seeded card (v1.0 and v0.3 alternately) whose name, description, provider and 3-8
skills (id, name, description, 1-4 tags) draw on a vocabulary of ~150 domain words and ~8,000
made-up ones, Zipf-weighted, so that common and rare words both occur. 80% of the agents set
goals of 1-3 objectives and record 1-3 progress updates; some pause, some complete. The events
are made by the real aggregates and applied through the read model's projection in pages of
5,000 events (a transaction each, as the runner applies them); the load rate is printed. On
PostgreSQL the tables are then ANALYZEd, as autovacuum would after such a load.

Goal events: then --goal-events more progress updates (and the milestones they cross) of the
agents' active goals, applied in pages of 40,000 (PROJECTION_PAGE_SIZE's default), as a
catch-up meets them: the rate of the read model's goal path alone, in events/s.

Queries, --runs of each kind after 20 unmeasured, each by a random tenant through
`AgentSearch.search` in this process (the figures include the Python around the SQL):
  text   1-2 words of the vocabulary: 60% whole words, 20% 4-letter prefixes, 20% with a typo
  broad  one of the 20 most frequent words, found in most cards (the costliest: every hit scored)
  skill  the exact id of a skill of an agent the tenant can see, no words
  goal   a goal status (active or paused) and a 20-point progress range, no words
  list   no words, no filters (the newest first)
Figures: p50, p99 and max in ms, and the mean `total` (matches per search). Target: search
p99 <= 50 ms at 10k agents on PostgreSQL (docs: DESIGN.md section 8).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# ops/bench holds a projections.py, which would shadow the package when this directory comes
# first on sys.path (as it does for a script): it is taken off.
HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(HERE)]
sys.path.insert(0, str(ROOT))

from application.ports import ReadStore  # noqa: E402
from domain.goals import AgentGoals  # noqa: E402
from domain.meta import Meta  # noqa: E402
from domain.objectives import GoalDefinition, Objective  # noqa: E402
from domain.registry import RegisteredAgent, SubmittedCard  # noqa: E402
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore  # noqa: E402
from ops.bench.scratch import create_database, drop_database  # noqa: E402
from projections.projection import Projection  # noqa: E402
from projections.search.index import AgentSearch, SearchQuery  # noqa: E402
from projections.search.postgres import PostgresAgentSearch, PostgresSearchProjection  # noqa: E402
from projections.search.sqlite import SQLiteAgentSearch, SQLiteSearchProjection  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE = 5_000
GOAL_PAGE = 40_000
WARMUP = 20
META = Meta(actor="bench", request_id="bench")
CORE = [
    "route",
    "planner",
    "delivery",
    "logistics",
    "forecast",
    "weather",
    "invoice",
    "billing",
    "payment",
    "ledger",
    "audit",
    "compliance",
    "contract",
    "legal",
    "review",
    "translate",
    "language",
    "summary",
    "report",
    "analytics",
    "dashboard",
    "metrics",
    "monitor",
    "alert",
    "incident",
    "triage",
    "ticket",
    "support",
    "customer",
    "chat",
    "assistant",
    "schedule",
    "calendar",
    "meeting",
    "travel",
    "booking",
    "flight",
    "hotel",
    "inventory",
    "warehouse",
    "shipping",
    "order",
    "purchase",
    "supplier",
    "pricing",
    "quote",
    "sales",
    "lead",
    "crm",
    "marketing",
    "campaign",
    "email",
    "newsletter",
    "social",
    "content",
    "writer",
    "editor",
    "image",
    "vision",
    "video",
    "audio",
    "speech",
    "transcribe",
    "search",
    "index",
    "retrieval",
    "knowledge",
    "document",
    "parser",
    "extract",
    "classify",
    "sentiment",
    "fraud",
    "risk",
    "credit",
    "loan",
    "insurance",
    "claim",
    "health",
    "clinical",
    "patient",
    "pharmacy",
    "lab",
    "genomics",
    "research",
    "paper",
    "citation",
    "code",
    "review",
    "deploy",
    "build",
    "test",
    "security",
    "scan",
    "vulnerability",
    "identity",
    "access",
    "token",
    "secret",
    "backup",
    "storage",
    "database",
    "query",
    "sql",
    "graph",
    "pipeline",
    "etl",
    "stream",
    "kafka",
    "sensor",
    "iot",
    "energy",
    "grid",
    "solar",
    "battery",
    "vehicle",
    "fleet",
    "maps",
    "geocode",
    "traffic",
    "parking",
    "recruiting",
    "resume",
    "interview",
    "payroll",
    "benefits",
    "onboarding",
    "training",
    "tutor",
    "quiz",
    "math",
    "physics",
    "chemistry",
    "music",
    "recipe",
    "nutrition",
    "fitness",
    "sleep",
    "finance",
    "portfolio",
    "trading",
    "market",
    "stock",
    "crypto",
    "tax",
    "accounting",
    "expense",
    "budget",
    "planning",
    "optimizer",
]
TAG_COUNT = 300
ROLES = ("Agent", "Assistant", "Bot", "Planner", "Analyst", "Helper", "Service", "Copilot", "Engine")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# --- the fleet ---------------------------------------------------------------------------------


class Words:
    """The cards' vocabulary: domain words first, then made-up ones, Zipf-weighted."""

    def __init__(self, rng: random.Random, made_up: int = 8_000) -> None:
        self.rng = rng
        syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["ar", "en", "ix", "or", "us"]
        invented = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(made_up)}
        self.all = CORE + sorted(invented - set(CORE))
        self.tags = self.all[:TAG_COUNT]
        self._weights = [1 / (rank + 10) for rank in range(len(self.all))]

    def some(self, n: int, rng: random.Random | None = None) -> list[str]:
        return (rng or self.rng).choices(self.all, weights=self._weights, k=n)

    def sentence(self, low: int, high: int) -> str:
        return " ".join(self.some(self.rng.randint(low, high))).capitalize() + "."


def make_card(words: Words, n: int) -> dict[str, Any]:
    rng = words.rng
    skills = []
    for _ in range(rng.randint(3, 8)):
        name = words.some(rng.randint(2, 3))
        skills.append(
            {
                "id": "-".join(name[:2]) + f"-{rng.randint(1, 99)}",
                "name": " ".join(name).title(),
                "description": words.sentence(8, 15),
                "tags": rng.sample(words.tags, rng.randint(1, 4)),
            }
        )
    brand = rng.choice(words.all[len(CORE) :]).title()
    body: dict[str, Any] = {
        "name": f"{brand} {words.some(1)[0].title()} {rng.choice(ROLES)}",
        "description": words.sentence(12, 25),
        "version": "1.0.0",
        "provider": {
            "organization": f"{rng.choice(words.all[len(CORE) :]).title()} Labs",
            "url": "https://p.example",
        },
        "skills": skills,
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
    }
    if n % 2:
        body.update(url=f"https://a{n}.example/a2a", protocolVersion="0.3.0", preferredTransport="JSONRPC")
    else:
        body["supportedInterfaces"] = [
            {"url": f"https://a{n}.example/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ]
    return body


@dataclass
class Fleet:
    events: list[Any] = field(default_factory=list)
    visible: dict[str, list[str]] = field(default_factory=dict)  # tenant -> skill ids it can see
    goals: list[AgentGoals] = field(default_factory=list)  # the active ones
    goal_events: list[Any] = field(default_factory=list)


def make_fleet(args: argparse.Namespace) -> tuple[Fleet, Words]:
    rng = random.Random(args.seed)
    words = Words(rng)
    fleet = Fleet()
    tenants = [f"tenant-{t:02d}" for t in range(args.tenants)]
    public_skills: list[str] = []
    own: dict[str, list[str]] = {t: [] for t in tenants}
    for n in range(args.agents):
        tenant, agent_id = rng.choice(tenants), f"agent-{n:05d}"
        body = make_card(words, n)
        digest = hashlib.sha256(repr(body).encode()).hexdigest()
        visibility = "public" if rng.random() < 1 / 3 else "private"
        agent = RegisteredAgent.register(
            tenant, agent_id, SubmittedCard(body, f"sha256:{digest}"), visibility, META
        )
        fleet.events += agent.collect_events()
        ids = [s["id"] for s in body["skills"]]
        own[tenant] += ids
        if visibility == "public":
            public_skills += ids
        if rng.random() < 0.8:
            goals = _goals(rng, tenant, agent_id)
            fleet.events += goals.collect_events()
            if goals.status == "active":
                fleet.goals.append(goals)
    fleet.visible = {t: own[t] + public_skills for t in tenants}
    fleet.goal_events = _progress(rng, fleet.goals, args.goal_events)
    return fleet, words


def _goals(rng: random.Random, tenant: str, agent_id: str) -> AgentGoals:
    objectives = tuple(Objective(f"o{k}", f"Objective {k}") for k in range(rng.randint(1, 3)))
    goals = AgentGoals.start(tenant, agent_id, GoalDefinition("Serve well", objectives), META)
    for _ in range(rng.randint(1, 3)):
        goals.record_progress(
            META, objective_progress={o.id: round(rng.uniform(0, 100), 2) for o in objectives}
        )
    roll = rng.random()
    if roll < 0.15:
        goals.change_status("paused", "maintenance", META)
    elif roll < 0.2:
        goals.change_status("completed", "done", META)
    return goals


def _progress(rng: random.Random, fleet: list[AgentGoals], wanted: int) -> list[Any]:
    """Progress updates of random active goals (and the milestones they cross)."""
    events: list[Any] = []
    while len(events) < wanted and fleet:
        goals = rng.choice(fleet)
        objectives = goals.definition.objectives if goals.definition else ()
        goals.record_progress(
            META, objective_progress={o.id: round(rng.uniform(0, 100), 2) for o in objectives}
        )
        events += goals.collect_events()
    return events[:wanted]


# --- the stores -----------------------------------------------------------------------------


@contextmanager
def postgres(args: argparse.Namespace) -> Iterator[tuple[ReadStore, Projection, AgentSearch]]:
    name, url = create_database(args.database_url, "a2a_bench_search_")
    store = PostgresReadStore(url, pool_size=2)
    try:
        yield store, PostgresSearchProjection(), PostgresAgentSearch(store)
    finally:
        store.close()
        drop_database(args.database_url, name)


@contextmanager
def sqlite() -> Iterator[tuple[ReadStore, Projection, AgentSearch]]:
    with tempfile.TemporaryDirectory(prefix="a2a-bench-search-") as directory:
        store = SQLiteReadStore(Path(directory) / "read_models.sqlite")
        try:
            yield store, SQLiteSearchProjection(), SQLiteAgentSearch(store)
        finally:
            store.close()


def load(store: ReadStore, projection: Projection, fleet: Fleet) -> float:
    """Apply the fleet's events through the projection, a page per transaction; events/s."""
    with store.transaction() as tx:
        projection.create_tables(tx)
    rate = apply_pages(store, projection, fleet.events, PAGE, 0)
    if store.dialect == "postgres":
        with store.transaction() as tx:
            for table in projection.tables:
                tx.execute(f"ANALYZE {table}")
    return rate


def apply_pages(store: ReadStore, projection: Projection, events: list[Any], size: int, after: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(events), size):
        page = [(after + start + n + 1, e) for n, e in enumerate(events[start : start + size])]
        with store.transaction() as tx:
            projection.apply(tx, page)
    return len(events) / (time.perf_counter() - started)


# --- the queries ----------------------------------------------------------------------------


def text_query(rng: random.Random, words: Words) -> SearchQuery:
    picked = words.some(rng.randint(1, 2), rng)
    roll = rng.random()
    if roll < 0.2:
        picked[-1] = picked[-1][:4]
    elif roll < 0.4:
        word = next((w for w in picked if len(w) >= 6), picked[-1])
        cut = rng.randrange(1, len(word) - 1)
        picked[picked.index(word)] = word[:cut] + word[cut + 1 :]  # a letter left out
    return SearchQuery(q=" ".join(picked))


def goal_query(rng: random.Random) -> SearchQuery:
    low = rng.choice(range(0, 81, 10))
    return SearchQuery(goal_status=rng.choice(("active", "paused")), min_progress=low, max_progress=low + 20)


@dataclass
class Figure:
    kind: str
    latencies_ms: list[float]
    totals: list[int]

    def line(self) -> str:
        ordered = sorted(self.latencies_ms)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"  {self.kind:<6} p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms"
            f"   max {ordered[-1]:6.2f} ms   mean total {statistics.mean(self.totals):8.1f}"
        )


def measure(search: AgentSearch, fleet: Fleet, words: Words, args: argparse.Namespace) -> list[Figure]:
    rng = random.Random(args.seed + 1)
    tenants = sorted(fleet.visible)
    kinds: dict[str, Callable[[str], SearchQuery]] = {
        "text": lambda tenant: text_query(rng, words),
        "broad": lambda tenant: SearchQuery(q=rng.choice(words.all[:20])),
        "skill": lambda tenant: SearchQuery(skill=rng.choice(fleet.visible[tenant])),
        "goal": lambda tenant: goal_query(rng),
        "list": lambda tenant: SearchQuery(),
    }
    figures = []
    for kind, make in kinds.items():
        figure = Figure(kind, [], [])
        for run in range(WARMUP + args.runs):
            tenant = rng.choice(tenants)
            query = make(tenant)
            started = time.perf_counter()
            page = search.search(tenant, query)
            elapsed = (time.perf_counter() - started) * 1000
            if run >= WARMUP:
                figure.latencies_ms.append(elapsed)
                figure.totals.append(page.total)
        figures.append(figure)
    return figures


def run(label: str, stores: Any, fleet: Fleet, words: Words, args: argparse.Namespace) -> None:
    with stores as (store, projection, search):
        rate = load(store, projection, fleet)
        print(
            f"{label}: loaded {len(fleet.events):,} events ({args.agents:,} agents) at {rate:,.0f} events/s"
        )
        for figure in measure(search, fleet, words, args):
            print(figure.line())
        if fleet.goal_events:
            rate = apply_pages(store, projection, fleet.goal_events, GOAL_PAGE, len(fleet.events))
            print(f"  goal events: {len(fleet.goal_events):,} applied at {rate:,.0f} events/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--goal-events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    fleet, words = make_fleet(args)
    print(
        f"search bench {time.strftime('%Y-%m-%d %H:%M')}: {args.agents:,} agents, {args.tenants} tenants, "
        f"{len(words.all):,} words, {args.runs} runs per kind"
    )
    run("PostgreSQL", postgres(args), fleet, words, args)
    if not args.skip_sqlite:
        run("SQLite", sqlite(), fleet, words, args)


if __name__ == "__main__":
    main()
