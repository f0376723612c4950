"""The search read model in the system: fed by the runner from the one log the registry and
goals write to, rebuilt from it equal to the live one, and still right after the swap."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from application.goals import ProgressUpdate
from application.ports import ReadStore
from application.registry import CardFetcher, CardSource, CardUnavailable, RegistryService, Signature
from interfaces.bootstrap import System
from projections.search.index import SearchQuery
from tests.integration.search_support import META, card, one_objective, skill
from tests.integration.support import rows

QUERIES = [
    SearchQuery(limit=100),
    SearchQuery(q="planner", limit=100),
    SearchQuery(q="planer rout", limit=100),
    SearchQuery(tag="maps", limit=100),
    SearchQuery(goal_status="paused", limit=100),
    SearchQuery(min_progress=10, limit=100),
]


class AcceptingChecks:
    """Every card is acceptable and unsigned (card validation is not what is tested here)."""

    def problems(self, card: object) -> dict[str, str]:
        return {}

    def card_hash(self, card: Mapping[str, Any]) -> str:
        return "sha256:" + hashlib.sha256(json.dumps(card, sort_keys=True).encode()).hexdigest()

    def verify(self, tenant: str, card: Mapping[str, Any], card_url: str | None = None) -> Signature:
        return Signature("unsigned")


class NoFetching(CardFetcher):
    def fetch(self, url: str) -> object:
        raise CardUnavailable(url, "cards are given inline here")


def _results(system: System, tenant: str) -> list[list[tuple[str, str, float | None]]]:
    """The hits of this test's tenants (a PostgreSQL store is shared with other tests, whose
    public agents every tenant sees)."""
    return [
        [
            (h.tenant, h.agent_id, h.score)
            for h in system.search.search(tenant, query).items
            if h.tenant in (tenant, "other")
        ]
        for query in QUERIES
    ]


def _tables(store: ReadStore) -> dict[str, list[tuple[Any, ...]]]:
    """The read model's rows, but the ids SQLite gives vocabulary words (the order pages meet them)."""
    found = {"goals": rows(store, "SELECT * FROM agent_search_goals ORDER BY tenant, agent_id")}
    found["words"] = rows(store, "SELECT word FROM agent_search_words ORDER BY word")
    if store.dialect == "postgres":
        found["agents"] = rows(store, "SELECT * FROM agent_search ORDER BY tenant, agent_id")
        found["scopes"] = rows(store, "SELECT * FROM agent_search_word_scopes ORDER BY word, scope")
        return found
    found["agents"] = rows(store, "SELECT * FROM agent_search ORDER BY doc")
    found["text"] = rows(store, "SELECT rowid, * FROM agent_search_text ORDER BY rowid")
    found["keys"] = rows(store, "SELECT * FROM agent_search_keys ORDER BY kind, key, doc")
    found["scopes"] = rows(
        store,
        "SELECT w.word, c.scope, c.docs FROM agent_search_word_scopes c JOIN agent_search_words w ON w.id = c.word"
        " ORDER BY w.word, c.scope",
    )
    found["trigrams"] = rows(
        store,
        "SELECT w.word, t.trigram FROM agent_search_word_trigrams t JOIN agent_search_words w ON w.id = t.word"
        " ORDER BY w.word, t.trigram",
    )
    return found


def _seed(system: System, registry: RegistryService, tenant: str) -> None:
    router = card("Route Planner", "Plans routes", [skill("routing", "Routing", tags=["maps"])], "Acme")
    registry.register(tenant, "router", CardSource(card=router), "public", META)
    registry.register(
        tenant, "planner", CardSource(card=card("Meal Planner", generation="0.3")), "private", META
    )
    registry.register(tenant, "temp", CardSource(card=card("Temporary Planner")), "public", META)
    registry.register("other", "secret", CardSource(card=card("Secret Planner")), "private", META)
    for agent in ("router", "planner", "secret"):
        system.goals.set_goals(tenant if agent != "secret" else "other", agent, one_objective(), META)
    system.goals.record_progress(tenant, ProgressUpdate("router", {"o1": 30}), META)
    system.goals.change_status(tenant, "planner", "paused", "holiday", META)
    registry.update(tenant, "planner", CardSource(card=card("Meal Planer", "Weekly menus")), None, META)
    registry.update(tenant, "temp", None, "private", META)
    registry.register(tenant, "shy", CardSource(card=card("Shy Cartographer")), "private", META)
    registry.update(tenant, "shy", None, "public", META)
    registry.update(tenant, "shy", None, "private", META)


def test_the_system_searches_what_the_log_says_and_a_rebuild_equals_it(system: System, tenant: str) -> None:
    registry = RegistryService(system.goals, AcceptingChecks(), NoFetching())
    _seed(system, registry, tenant)
    system.runner.catch_up()
    registry.deregister(tenant, "temp", META)
    system.runner.catch_up()
    live_results, live_tables = _results(system, tenant), _tables(system.store)
    assert ("cartographer", tenant, 1) in live_tables["scopes"]  # private again: in its tenant's scope
    assert ("cartographer", "", 1) not in live_tables["scopes"]
    assert [h[1] for h in live_results[1]] == ["router", "planner"]  # "Meal Planer": a near-miss
    assert [h[1] for h in live_results[4]] == ["planner"]

    system.rebuilder.rebuild(["agent_search"])

    assert _results(system, tenant) == live_results
    assert _tables(system.store) == live_tables

    # The live read model goes on from the rebuilt tables: a card removed after the swap takes
    # its words with it.
    registry.deregister(tenant, "router", META)
    system.goals.record_progress(tenant, ProgressUpdate("router", {"o1": 60}), META)
    system.runner.catch_up()
    assert system.search.search(tenant, SearchQuery(q="route", owned=True)).items == []
    assert _results(system, tenant)[1] == [(tenant, "planner", 0.6)]
    after = _tables(system.store)
    system.rebuilder.rebuild(["agent_search"])
    assert _tables(system.store) == after
