"""The registry's discovery search, one suite on SQLite (FTS5), on PostgreSQL (tsvector and
pg_trgm) and on Elasticsearch (when ELASTICSEARCH_URL names a server): what a tenant finds, in
which order, page by page, as registry and goal events arrive."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infrastructure.settings import Settings
from projections.search.index import InvalidCursor, SearchHit, SearchQuery
from tests.integration.search_support import (
    Registry,
    Searchable,
    card,
    elasticsearch_backend,
    one_objective,
    search_backend,
    skill,
    walk,
)
from tests.integration.support import fresh_read_store, rows

ROUTER = card(
    "Route Planner",
    "Plans delivery routes across a city",
    [skill("route-planning", "Route planning", "Finds the shortest tour", ["Logistics", "maps"])],
    "Acme Mobility",
)
FORECASTER = card(
    "Weather Oracle",
    "Forecasts rain for routing decisions",
    [skill("forecast", "Forecast", "Predicts the weather", ["weather"])],
    "Globex",
    generation="0.3",
)


@pytest.fixture(params=["sqlite", "postgres", "elasticsearch"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The backends: the read store's (SQLite, PostgreSQL), or Elasticsearch (whose read model
    keeps the name of its index in a SQLite store)."""
    kind: str = request.param
    return kind


@pytest.fixture
def registry(store_kind: str, make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Registry]:
    with fresh_read_store(make_settings(), tmp_path) as store:
        if store_kind == "elasticsearch":
            with elasticsearch_backend() as (projection, search):
                yield _ready(Searchable(store, projection, search))
        else:
            yield _ready(Searchable(store, *search_backend(store)))


def _ready(target: Searchable) -> Registry:
    with target.store.transaction() as tx:
        target.projection.create_tables(tx)
    return Registry(target)


def test_words_of_the_name_description_skills_and_provider_are_found(registry: Registry) -> None:
    registry.register("acme", "router", ROUTER)
    registry.register("acme", "oracle", FORECASTER)
    registry.project()

    assert registry.found("acme", q="planner") == ["router"]  # name
    assert registry.found("acme", q="city") == ["router"]  # description
    assert registry.found("acme", q="shortest tour") == ["router"]  # a skill's description
    assert registry.found("acme", q="logistics") == ["router"]  # a skill's tag
    assert registry.found("acme", q="forecast") == ["oracle"]  # a skill's id and name (v0.3 card)
    assert registry.found("acme", q="GLOBEX") == ["oracle"]  # the provider, whatever the case
    assert registry.found("acme", q="submarine") == []


def test_every_word_must_match(registry: Registry) -> None:
    registry.register("acme", "router", ROUTER)
    registry.register("acme", "oracle", FORECASTER)
    registry.project()

    assert registry.found("acme", q="route city") == ["router"]
    assert registry.found("acme", q="route weather") == []


def test_a_prefix_and_a_near_miss_match_and_rank_below_whole_words(registry: Registry) -> None:
    registry.register("acme", "router", ROUTER)
    registry.register("acme", "oracle", FORECASTER)  # "routing", in its description
    registry.register("acme", "planners", card("Planners Guild", "A guild"))
    registry.register("acme", "planer", card("Wood Planer", "Smooths boards"))
    registry.project()

    assert registry.found("acme", q="rout") == ["router", "oracle"]  # a name's prefix, then a description's
    assert set(registry.found("acme", q="planer")) >= {"planer", "router"}  # "planner": a near-miss
    found = registry.search("acme", q="planer", limit=10).items
    assert found[0].agent_id == "planer"  # the whole word first
    assert found[0].score is not None and found[0].score > 2 > 1 > found[-1].score  # type: ignore[operator]
    ranked = registry.search("acme", q="planner", limit=10).items
    assert [hit.agent_id for hit in ranked][:3] == ["router", "planners", "planer"]  # word, prefix, near-miss
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)  # type: ignore[arg-type]


def test_skill_and_tag_filters_are_exact_whatever_the_case(registry: Registry) -> None:
    registry.register("acme", "router", ROUTER)
    registry.register("acme", "oracle", FORECASTER)
    registry.project()

    assert registry.found("acme", skill="ROUTE-PLANNING") == ["router"]  # by id
    assert registry.found("acme", skill="route planning") == ["router"]  # by name
    assert registry.found("acme", skill="route") == []
    assert registry.found("acme", tag="Maps") == ["router"]
    assert registry.found("acme", tag="map") == []
    assert registry.found("acme", tag="weather", q="rain") == ["oracle"]


def test_goal_filters_follow_the_goal_events(registry: Registry) -> None:
    for agent in ("a", "b", "c"):
        registry.register("acme", agent, card(f"Agent {agent}"))
    registry.set_goals("acme", "a")
    registry.set_goals("acme", "b", one_objective(weight_of_second=1.0))
    registry.progress("acme", "a", o1=80)
    registry.progress("acme", "b", o1=60, o2=20)  # overall 40
    registry.status("acme", "a", "paused")
    registry.project()

    assert registry.found("acme", goal_status="paused") == ["a"]
    assert registry.found("acme", goal_status="active") == ["b"]  # c has no goals
    assert sorted(registry.found("acme", min_progress=30)) == ["a", "b"]
    assert registry.found("acme", min_progress=30, max_progress=50) == ["b"]

    registry.status("acme", "a", "active")
    registry.set_goals("acme", "b", one_objective())  # o2 dropped: overall is o1's 60
    registry.project()
    assert registry.found("acme", goal_status="paused") == []
    assert registry.found("acme", min_progress=55, max_progress=65) == ["b"]


def test_goals_set_before_the_registration_are_found_with_it(registry: Registry) -> None:
    registry.set_goals("acme", "late")
    registry.progress("acme", "late", o1=70)
    registry.project()
    assert registry.found("acme", min_progress=50) == []

    registry.register("acme", "late", card("Late Registrant"))
    registry.project()
    assert registry.found("acme", min_progress=50, goal_status="active") == ["late"]


def test_another_tenants_private_agent_is_never_found(registry: Registry) -> None:
    registry.register("acme", "mine", card("Shared Planner"), visibility="private")
    registry.register("globex", "theirs", card("Secret Planner"), visibility="private")
    registry.register("globex", "open", card("Open Planner"), visibility="public")
    registry.set_goals("globex", "theirs")
    registry.project()

    for query in ({}, {"q": "planner"}, {"q": "planer"}, {"goal_status": "active"}):
        assert "theirs" not in registry.found("acme", **query)
    assert sorted(registry.found("acme", q="planner")) == ["mine", "open"]
    assert sorted(registry.found("globex", q="planner")) == ["open", "theirs"]
    assert registry.found("globex", goal_status="active") == ["theirs"]
    assert registry.found("acme", owned=True) == ["mine"]
    assert registry.search("acme", q="planner").total == 2


def test_a_visibility_change_shows_up(registry: Registry) -> None:
    registry.register("globex", "shy", card("Shy Planner"), visibility="private")
    registry.project()
    assert registry.found("acme", q="planner") == []

    registry.change_visibility("globex", "shy", "public")
    registry.project()
    assert registry.found("acme", q="planner") == ["shy"]

    registry.change_visibility("globex", "shy", "private")
    registry.project()
    assert registry.found("acme", q="planner") == []


# acme's decoys: eight words (EXPANSIONS) like enough to the misspelt "vendrakso" to be its
# near-misses (word similarity 0.7), and a little less like it than globex's "vendraksa" (0.8):
# were that word to compete, it would push the last decoy out.
DECOYS = [f"vendrak{c}{c}" for c in "pqrtuvwx"]
TYPO = "vendrakso"


def _near_misses_of_the_typo(registry: Registry, tenant: str) -> tuple[list[SearchHit], int]:
    page = registry.search(tenant, q=TYPO, limit=100)
    return page.items, page.total


def _decoys(registry: Registry) -> None:
    for n, word in enumerate(DECOYS):
        registry.register("acme", f"decoy-{n}", card(f"{word.title()} Agent"), visibility="private")


def test_a_near_miss_search_tells_nothing_of_another_tenants_private_words(
    registry: Registry, store_kind: str
) -> None:
    if store_kind == "elasticsearch":
        pytest.skip("Elasticsearch picks near-misses its own way (fuzzy, up to 50 of the index's terms)")
    _decoys(registry)
    registry.project()
    alone = _near_misses_of_the_typo(registry, "acme")
    assert sorted(hit.agent_id for hit in alone[0]) == [f"decoy-{n}" for n in range(8)]

    registry.register("globex", "secret", card("Vendraksa Engine"), visibility="private")
    registry.project()
    assert _near_misses_of_the_typo(registry, "acme") == alone
    assert "secret" in registry.found("globex", q=TYPO)  # its own private words are globex's near-misses

    registry.change_visibility("globex", "secret", "public")
    registry.project()
    found = registry.found("acme", q=TYPO)
    assert "secret" in found and "decoy-7" not in found  # the last of acme's decoys gives way

    registry.change_visibility("globex", "secret", "private")
    registry.project()
    assert _near_misses_of_the_typo(registry, "acme") == alone


def test_a_word_leaves_the_public_vocabulary_with_its_last_public_agent(
    registry: Registry, store_kind: str
) -> None:
    if store_kind == "elasticsearch":
        pytest.skip("Elasticsearch picks near-misses its own way (fuzzy, up to 50 of the index's terms)")
    _decoys(registry)
    registry.project()
    alone = _near_misses_of_the_typo(registry, "acme")
    registry.register("globex", "secret", card("Vendraksa Engine"), visibility="private")
    registry.register("globex", "open", card("Vendraksa Service"))
    registry.project()
    assert "open" in registry.found("acme", q=TYPO)

    registry.deregister("globex", "open")
    registry.project()
    assert _near_misses_of_the_typo(registry, "acme") == alone
    assert "secret" in registry.found("globex", q=TYPO)


EARLIER_VOCABULARY = {
    "postgres": ("CREATE TABLE agent_search_words (word TEXT PRIMARY KEY, docs INTEGER NOT NULL)",),
    "sqlite": (
        "CREATE TABLE agent_search_words (id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE, docs INTEGER NOT NULL)",
        "CREATE VIRTUAL TABLE agent_search_trigrams USING fts5(word, tokenize = 'trigram')",
    ),
}


def test_an_earlier_versions_vocabulary_is_counted_again_by_scope(
    registry: Registry, store_kind: str
) -> None:
    if store_kind == "elasticsearch":
        pytest.skip("Elasticsearch keeps no vocabulary")
    _decoys(registry)
    registry.register("globex", "secret", card("Vendraksa Engine"), visibility="private")
    registry.project()
    before = [_near_misses_of_the_typo(registry, tenant) for tenant in ("acme", "globex")]
    store = registry.target.store
    with store.transaction() as tx:  # the vocabulary as earlier versions kept it: every word in one
        for table in ("agent_search_words", "agent_search_word_scopes", "agent_search_word_trigrams"):
            tx.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in EARLIER_VOCABULARY[store.dialect]:
            tx.execute(statement)
        tx.execute("INSERT INTO agent_search_words (word, docs) VALUES ('vendraksa', 1)")

    with store.transaction() as tx:
        registry.target.projection.create_tables(tx)
    assert [_near_misses_of_the_typo(registry, tenant) for tenant in ("acme", "globex")] == before
    registry.deregister("globex", "secret")  # and the counts go on from there
    registry.project()
    assert rows(store, "SELECT word FROM agent_search_words WHERE word = 'vendraksa'") == []


def test_a_deregistered_agent_vanishes_and_returns_with_its_goals(registry: Registry) -> None:
    registry.register("acme", "gone", ROUTER)
    registry.set_goals("acme", "gone")
    registry.progress("acme", "gone", o1=45)
    registry.project()
    registry.deregister("acme", "gone")
    registry.project()

    assert registry.found("acme") == []
    assert registry.found("acme", q="planner") == []
    assert registry.found("acme", skill="route-planning") == []

    registry.register("acme", "gone", card("Comeback Kid"))
    registry.project()
    assert registry.found("acme", q="comeback", min_progress=40) == ["gone"]
    assert registry.found("acme", q="planner") == []  # the old card's words went with it


def test_a_new_card_replaces_the_words_and_moves_the_agent_up(registry: Registry) -> None:
    registry.register("acme", "shifty", card("Route Planner"))
    registry.project()
    registry.register("acme", "other", card("Other"))
    registry.project()
    assert registry.found("acme") == ["other", "shifty"]
    since = registry.target.search.search("acme", SearchQuery(limit=1))
    assert since.items[0].agent_id == "other"

    registry.update("acme", "shifty", card("Tide Table", skills=[skill("tides", "Tides", tags=["sea"])]))
    registry.project()
    assert registry.found("acme", q="route") == []
    assert registry.found("acme", q="tide", tag="sea") == ["shifty"]
    assert registry.found("acme") == ["shifty", "other"]  # most recently updated first


def test_near_misses_follow_the_words_cards_use_now(registry: Registry) -> None:
    registry.register("acme", "one", card("Route Planner"))
    registry.register("acme", "two", card("Meal Planner"))
    registry.project()
    assert sorted(registry.found("acme", q="planer")) == ["one", "two"]

    registry.update("acme", "one", card("Tide Table"))
    registry.project()
    assert registry.found("acme", q="planer") == ["two"]
    registry.deregister("acme", "two")
    registry.project()
    assert registry.found("acme", q="planer") == []
    registry.register("acme", "two", card("Planner Again"))
    registry.project()
    assert registry.found("acme", q="planer") == ["two"]


def test_updated_since_keeps_the_recent_changes(registry: Registry) -> None:
    registry.register("acme", "old", card("Old"))
    registry.project()
    registry.register("acme", "new", card("New"))
    registry.project()
    new = registry.agents[("acme", "new")]
    assert registry.found("acme", updated_since=new.modified_on.isoformat()) == ["new"]


def test_the_total_counts_every_match_and_pages_walk_each_once_in_order(registry: Registry) -> None:
    for n in range(11):
        words = "Planner" if n % 2 else "Plan Maker"
        registry.register("acme", f"agent-{n:02d}", card(f"{words} {n}", "plans things"))
    registry.register("globex", "hidden", card("Planner"), visibility="private")
    registry.project()

    for query in ({}, {"q": "plan"}, {"q": "planner plans"}):
        everything = registry.search("acme", limit=100, **query)
        first = registry.search("acme", limit=3, **query)
        assert first.total == everything.total == len(everything.items)
        assert len(first.items) == 3
        pages = list(walk(registry, "acme", 3, **query))
        assert [hit for page in pages for hit in page] == [(h.tenant, h.agent_id) for h in everything.items]
        assert all(len(page) == 3 for page in pages[:-1])
    assert registry.search("acme", q="plan").total == 11


def test_a_cursor_is_stable_while_agents_are_registered(registry: Registry) -> None:
    for n in range(9):
        registry.register("acme", f"a{n}", card(f"Route Planner {n}"))
    registry.project()

    for query in ({}, {"q": "route"}):
        seen: list[str] = []
        cursor = None
        for round_ in range(5):
            page = registry.search("acme", limit=2, cursor=cursor, **query)
            seen += [hit.agent_id for hit in page.items]
            registry.register("acme", f"late-{round_}-{len(query)}", card("Route Planner late"))
            registry.project()
            cursor = page.next_cursor
            if cursor is None:
                break
        originals = [agent for agent in seen if not agent.startswith("late")]
        assert len(originals) == len(set(originals))
        assert {f"a{n}" for n in range(9)} <= set(seen) | set(_rest(registry, cursor, query))


def _rest(registry: Registry, cursor: str | None, query: dict[str, str]) -> list[str]:
    found: list[str] = []
    while cursor is not None:
        page = registry.search("acme", limit=2, cursor=cursor, **query)
        found += [hit.agent_id for hit in page.items]
        cursor = page.next_cursor
    return found


def test_a_cursor_past_the_last_hit_still_counts_them(registry: Registry) -> None:
    registry.register("acme", "only", card("Only"))
    registry.project()
    registry.register("acme", "other", card("Other"))
    registry.project()
    first = registry.search("acme", limit=1)
    assert [hit.agent_id for hit in first.items] == ["other"] and first.next_cursor is not None
    registry.deregister("acme", "only")
    registry.project()
    rest = registry.search("acme", limit=1, cursor=first.next_cursor)
    assert (rest.items, rest.total, rest.next_cursor) == ([], 1, None)


def test_a_malformed_or_foreign_cursor_is_refused(registry: Registry) -> None:
    for n in range(3):
        registry.register("acme", f"a{n}", card(f"Planner {n}"))
    registry.project()
    cursor = registry.search("acme", q="planner", limit=1).next_cursor
    recent = registry.search("acme", limit=1).next_cursor
    assert cursor is not None and recent is not None
    tampered = base64.urlsafe_b64encode(b'["x", 1, "acme", "a0"]').decode()
    wrong_type = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(recent + "==").replace(b'"acme"', b"7")
    ).decode()

    for bad, query in [
        ("not-a-cursor!!", {"q": "planner"}),
        (cursor[:-4], {"q": "planner"}),
        (tampered, {"q": "planner"}),
        (cursor, {"q": "plan"}),  # another query's
        (recent, {"q": "planner"}),  # another order's
        (wrong_type, {}),
    ]:
        with pytest.raises(InvalidCursor) as refused:
            registry.search("acme", cursor=bad, **query)
        assert refused.value.errors.keys() == {"cursor"}
    with pytest.raises(InvalidCursor):
        registry.target.search.search("globex", SearchQuery(q="planner", cursor=cursor))  # another caller's


def test_the_reachable_filter_follows_the_last_recorded_check(registry: Registry) -> None:
    for agent in ("up", "down", "unchecked"):
        registry.register("acme", agent, card(f"Agent {agent}"))
    registry.register("other", "hidden", card("Hidden"), visibility="private")
    registry.reachability("acme", "up", True)
    registry.reachability("acme", "down", False, "timeout: no answer in time")
    registry.reachability("other", "hidden", False, "unreachable: no connection could be made")
    registry.project()

    assert registry.found("acme", reachable=True) == ["up"]
    assert registry.found("acme", reachable=False) == ["down"]  # never another tenant's private agent
    assert sorted(registry.found("other", reachable=False)) == ["down", "hidden"]
    assert len(registry.found("acme")) == 3  # unchecked: in neither, but listed without the filter

    registry.reachability("acme", "up", False, "status: answered 503")
    registry.reachability("acme", "down", True)
    registry.project()
    assert registry.found("acme", reachable=True, q="agent") == ["down"]
    assert registry.found("acme", reachable=False) == ["up"]

    registry.deregister("acme", "down")
    registry.register("acme", "down", card("Agent down"))  # registered again: not checked yet
    registry.project()
    assert registry.found("acme", reachable=True) == []
