"""The agents ops/bench/registry.py registers: cards made from the A2A specification's sample
card (tests/fixtures/a2a/sample-card-v1.0.json), with seeded names, descriptions and 3-8
skills drawn from a dozen domains' words, spread over several tenants, some public, many
with goals and progress. Also the searches that find them: words of their cards, prefixes,
near-misses, skill ids and goal filters."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "fixtures" / "a2a" / "sample-card-v1.0.json"
DOMAINS: dict[str, tuple[str, ...]] = {
    "routing": ("route", "traffic", "navigation", "maps", "directions", "geocode", "fleet", "parking"),
    "billing": ("invoice", "billing", "payment", "ledger", "refund", "subscription", "receipt", "tax"),
    "support": ("ticket", "triage", "customer", "support", "escalation", "helpdesk", "feedback", "chat"),
    "legal": ("contract", "compliance", "clause", "policy", "regulation", "audit", "privacy", "review"),
    "travel": ("flight", "hotel", "booking", "itinerary", "travel", "visa", "luggage", "airport"),
    "logistics": (
        "shipping",
        "warehouse",
        "inventory",
        "delivery",
        "parcel",
        "tracking",
        "freight",
        "customs",
    ),
    "health": (
        "patient",
        "clinical",
        "pharmacy",
        "diagnosis",
        "appointment",
        "symptom",
        "nutrition",
        "fitness",
    ),
    "finance": ("portfolio", "trading", "market", "forecast", "budget", "expense", "credit", "risk"),
    "content": (
        "summary",
        "translation",
        "article",
        "newsletter",
        "caption",
        "transcript",
        "editor",
        "grammar",
    ),
    "engineering": (
        "deploy",
        "pipeline",
        "incident",
        "monitoring",
        "security",
        "vulnerability",
        "database",
        "query",
    ),
    "research": (
        "citation",
        "paper",
        "dataset",
        "experiment",
        "genomics",
        "literature",
        "survey",
        "statistics",
    ),
    "energy": ("solar", "battery", "grid", "sensor", "weather", "consumption", "meter", "outage"),
}
GENERIC_TAGS = ("enterprise", "realtime", "batch", "beta", "multilingual", "streaming", "free", "gdpr")
VERBS = (
    "Plans",
    "Optimizes",
    "Answers",
    "Tracks",
    "Summarizes",
    "Reviews",
    "Forecasts",
    "Detects",
    "Schedules",
)
NOUNS = ("Optimizer", "Assistant", "Analyzer", "Generator", "Checker", "Planner", "Tracker", "Advisor")
ROLES = ("Agent", "Assistant", "Planner", "Analyst", "Copilot", "Service", "Bot")
SYLLABLES = [c + v for c in "bcdfgklmnprstvz" for v in "aeiou"]
OBJECTIVES = ("o1", "o2", "o3")


@dataclass
class Agent:
    tenant: str
    agent_id: str
    public: bool
    card: dict[str, Any]
    words: list[str]  # the domain words its card uses
    skill_ids: list[str]
    goals: bool
    paused: bool = False


@dataclass
class Fleet:
    agents: list[Agent]
    tenants: list[str]
    by_tenant: dict[str, list[Agent]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for agent in self.agents:
            self.by_tenant.setdefault(agent.tenant, []).append(agent)

    @property
    def public(self) -> list[Agent]:
        return [a for a in self.agents if a.public]

    def visible(self, tenant: str) -> list[Agent]:
        """What `tenant` may find: its own agents and every public one."""
        return [a for a in self.agents if a.tenant == tenant or a.public]


def make_fleet(
    agents: int, tenants: int, run_id: str, seed: int, goal_share: float, public_share: float
) -> Fleet:
    """`agents` agents over `tenants` tenants named after `run_id` (so that no cache entry of
    another run answers for them)."""
    rng = random.Random(seed)
    sample = json.loads(SAMPLE.read_text())
    sample.pop("signatures")  # its key is not published: every registration would try to fetch it
    names = [f"bench-{run_id}-t{t:02d}" for t in range(tenants)]
    fleet = []
    for n in range(agents):
        card, words, skill_ids = make_card(sample, rng, n)
        has_goals = rng.random() < goal_share
        fleet.append(
            Agent(
                tenant=names[n % tenants],
                agent_id=f"agent-{n:05d}",
                public=rng.random() < public_share,
                card=card,
                words=words,
                skill_ids=skill_ids,
                goals=has_goals,
                paused=has_goals and rng.random() < 0.1,
            )
        )
    return Fleet(fleet, names)


def _brand(rng: random.Random) -> str:
    return "".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))).title()


def make_card(
    sample: dict[str, Any], rng: random.Random, n: int
) -> tuple[dict[str, Any], list[str], list[str]]:
    """A card of the sample's shape with its own texts; (card, the domain words in it, skill ids)."""
    main, other = rng.sample(sorted(DOMAINS), 2)
    vocabulary = list(DOMAINS[main]) + list(DOMAINS[other][:4])
    brand = _brand(rng)
    used: list[str] = []

    def pick(k: int) -> list[str]:
        chosen = rng.sample(vocabulary, k)
        used.extend(chosen)
        return chosen

    card = copy.deepcopy(sample)
    head, w1, w2, w3, w4 = pick(5)
    card["name"] = f"{brand} {head.title()} {rng.choice(ROLES)}"
    card["description"] = (
        f"{rng.choice(VERBS)} {w1} and {w2} for {w3} teams, with {w4} reports and real-time updates."
    )
    host = f"{brand.lower()}-{n}.example.com"
    for interface in card["supportedInterfaces"]:
        interface["url"] = interface["url"].replace("georoute-agent.example.com", host)
    card["provider"] = {"organization": f"{brand} Inc.", "url": f"https://{host}"}
    card["iconUrl"] = f"https://{host}/icon.png"
    card["documentationUrl"] = f"https://{host}/docs"
    skills: list[dict[str, Any]] = []
    for k in range(rng.randint(3, 8)):
        a, b, c = pick(3)
        skill = copy.deepcopy(rng.choice(sample["skills"]))
        skill["id"] = f"{a}-{b}" if f"{a}-{b}" not in {s["id"] for s in skills} else f"{a}-{b}-{k}"
        skill["name"] = f"{a.title()} {b.title()} {rng.choice(NOUNS)}"
        skill["description"] = f"{rng.choice(VERBS)} {a} {b} data and reports {c} changes as they happen."
        skill["tags"] = [a, b, *rng.sample(GENERIC_TAGS, rng.randint(0, 3))]
        skill["examples"] = [f"Which {a} {b} needs attention today?"]
        skills.append(skill)
    card["skills"] = skills
    return card, sorted(set(used)), [s["id"] for s in skills]


# --- what is sent ---------------------------------------------------------------------------------


def writes(agent: Agent, rng: random.Random) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, body) to register one agent and, if it has them, set its goals, record
    progress and maybe pause them, in order."""
    visibility = "public" if agent.public else "private"
    yield "POST", "/api/v1/agents", {"agent_id": agent.agent_id, "card": agent.card, "visibility": visibility}
    if not agent.goals:
        return
    objectives = OBJECTIVES[: rng.randint(1, 3)]
    goals = {
        "purpose_statement": f"Serve {agent.words[0]} requests well",
        "primary_objectives": [
            {"id": o, "title": f"{agent.words[k % len(agent.words)]} {o}"} for k, o in enumerate(objectives)
        ],
    }
    path = f"/api/v1/goals/agents/{agent.agent_id}"
    yield "POST", path, {"goals": goals}
    progress = {o: round(rng.uniform(0, 99), 1) for o in objectives}
    yield "PUT", f"{path}/progress", {"objective_progress": progress}
    if agent.paused:
        yield "PUT", f"{path}/status", {"status": "paused", "reason": "maintenance"}


def typo(word: str, rng: random.Random) -> str:
    """The word with one inner letter left out or two swapped: a near-miss of it."""
    at = rng.randrange(1, len(word) - 2)
    if rng.random() < 0.5:
        return word[:at] + word[at + 1 :]
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def search_params(kind: str, agent: Agent, rng: random.Random) -> dict[str, str]:
    """The query string of one search of `kind`, drawn from an agent the caller can see."""
    word = rng.choice(agent.words)
    long_words = [w for w in agent.words if len(w) >= 6] or [word]
    match kind:
        case "text":
            return {"q": " ".join(rng.sample(agent.words, rng.randint(1, 2)))}
        case "prefix":
            return {"q": word[: max(3, min(len(word) - 1, rng.randint(4, 5)))]}
        case "typo":
            return {"q": typo(rng.choice(long_words), rng)}
        case "skill":
            return {"skill": rng.choice(agent.skill_ids)}
        case "goal":
            return {"goal_status": "active", "min_progress": "50"}
        case "combined":
            return {"q": word, "goal_status": "active", "min_progress": "50"}
    raise ValueError(kind)


SEARCH_KINDS: Sequence[str] = ("text", "prefix", "typo", "skill", "goal", "combined")


def search_path(params: dict[str, str]) -> str:
    return "/api/v1/agents?" + urlencode(params)
