"""The Elasticsearch backend's own behaviours: down, it is unavailable (never an empty or
word-less answer) and the runner waits for it; with a server (ELASTICSEARCH_URL), a page
applied twice changes nothing and a rebuild moves the alias to a new index."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from infrastructure.readstore import SQLiteReadStore
from interfaces.wiring.database import STORE_ERRORS, is_temporary_for_projections
from projections.projection import LogPage
from projections.rebuild import Rebuilder
from projections.runner import ProjectionRunner
from projections.search.elasticsearch import ElasticsearchAgentSearch, ElasticsearchSearchProjection
from projections.search.index import SearchQuery, SearchUnavailable
from tests.conftest import free_port
from tests.integration.search_support import Registry, Searchable, card, elasticsearch_backend


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteReadStore]:
    opened = SQLiteReadStore(tmp_path / "read_models.sqlite")
    yield opened
    opened.close()


class Log:
    """A log in memory, read as the runner reads the real one."""

    def __init__(self) -> None:
        self.events: list[tuple[int, Any]] = []

    def append(self, registry: Registry) -> None:
        self.events += [(len(self.events) + n, e) for n, e in enumerate(registry.pending, 1)]
        registry.pending = []

    def read(self, after: int, limit: int) -> LogPage:
        return [(p, e) for p, e in self.events if p > after][:limit]

    def end(self) -> int:
        return len(self.events)


def test_a_backend_that_is_down_is_unavailable_and_the_runner_waits_for_it(store: SQLiteReadStore) -> None:
    client = Elasticsearch(f"http://127.0.0.1:{free_port()}", request_timeout=1, max_retries=0)
    projection = ElasticsearchSearchProjection(client, "a2a-down")
    search = ElasticsearchAgentSearch(client, "a2a-down")
    for query in (SearchQuery(q="planner"), SearchQuery()):
        with pytest.raises(SearchUnavailable):
            search.search("acme", query)

    registry = Registry(Searchable(store, projection, search))
    registry.register("acme", "router", card("Route Planner"))
    log = Log()
    log.append(registry)
    runner = ProjectionRunner(log.read, store, [projection], errors=STORE_ERRORS)
    runner.setup()  # the index is set up with the first page, once it is back
    with pytest.raises(SearchUnavailable) as unavailable:
        runner.catch_up()
    assert is_temporary_for_projections(unavailable.value)
    ((name, position, state),) = [(s.name, s.position, s.state) for s in runner.statuses()]
    assert (name, position, state) == ("agent_search_es", 0, "live")  # not applied, not failed
    runner.close()
    client.close()


def test_a_page_applied_twice_changes_nothing(store: SQLiteReadStore) -> None:
    with elasticsearch_backend() as (projection, search):
        registry = Registry(Searchable(store, projection, search))
        with store.transaction() as tx:
            projection.create_tables(tx)
        registry.register("acme", "router", card("Route Planner"))
        registry.set_goals("acme", "router")
        page = [(n, e) for n, e in enumerate(registry.pending, 1)]
        for _ in range(2):
            with store.transaction() as tx:
                projection.apply(tx, page)
        registry.pending = []
        found = search.search("acme", SearchQuery(q="planner", goal_status="active"))
        assert [(h.agent_id, h.score) for h in found.items] == [("router", 2.5)]


def test_a_rebuild_builds_a_new_index_and_moves_the_alias_to_it(store: SQLiteReadStore) -> None:
    with elasticsearch_backend() as (projection, search):
        registry = Registry(Searchable(store, projection, search))
        log = Log()
        for n in range(5):
            registry.register("acme", f"a{n}", card(f"Route Planner {n}"), visibility="private")
        registry.set_goals("acme", "a1")
        log.append(registry)
        runner = ProjectionRunner(log.read, store, [projection], errors=STORE_ERRORS)
        runner.setup()
        runner.catch_up()
        before = search.search("acme", SearchQuery(q="route", limit=50))
        client = Elasticsearch(os.environ["ELASTICSEARCH_URL"])
        (old,) = client.indices.get_alias(name=projection.alias)

        Rebuilder(log.read, log.end, store, [projection], errors=STORE_ERRORS).rebuild(["agent_search_es"])

        (new,) = client.indices.get_alias(name=projection.alias)
        assert new != old and not client.indices.exists(index=old)
        assert search.search("acme", SearchQuery(q="route", limit=50)) == before
        registry.deregister("acme", "a0")
        log.append(registry)
        runner.catch_up()  # the live runner writes the new index now
        assert [h.agent_id for h in search.search("acme", SearchQuery(q="route")).items] == [
            "a1",
            "a2",
            "a3",
            "a4",
        ]
        runner.close()
        client.close()
