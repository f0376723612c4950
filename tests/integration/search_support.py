"""Helpers of the search tests: cards of both generations, a registry of real aggregates whose
events are projected page by page, and a read store with the search read model on it."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from application.ports import ReadStore
from domain.goals import AgentGoals
from domain.meta import Meta
from domain.objectives import GoalDefinition, Objective
from domain.registry import RegisteredAgent, SubmittedCard
from projections.projection import Projection
from projections.search.elasticsearch import ElasticsearchAgentSearch, ElasticsearchSearchProjection
from projections.search.index import AgentSearch, SearchPage, SearchQuery
from projections.search.postgres import PostgresAgentSearch, PostgresSearchProjection
from projections.search.sqlite import SQLiteAgentSearch, SQLiteSearchProjection

META = Meta(actor="tester", request_id="search-test")


def skill(skill_id: str, name: str, description: str = "", tags: Sequence[str] = ()) -> dict[str, Any]:
    return {"id": skill_id, "name": name, "description": description, "tags": list(tags)}


def card(
    name: str,
    description: str = "",
    skills: Sequence[dict[str, Any]] = (),
    organization: str | None = None,
    *,
    generation: str = "1.0",
) -> dict[str, Any]:
    """An AgentCard of either generation: v1.0 (`supportedInterfaces`) or v0.3 (`url`)."""
    body: dict[str, Any] = {
        "name": name,
        "description": description,
        "version": "1.0.0",
        "skills": list(skills),
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "capabilities": {},
    }
    if generation == "1.0":
        body["supportedInterfaces"] = [
            {"url": "https://agent.example/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ]
    else:
        body.update(url="https://agent.example/a2a", preferredTransport="JSONRPC", protocolVersion="0.3.0")
    if organization is not None:
        body["provider"] = {"organization": organization, "url": "https://provider.example"}
    return body


def submitted(body: dict[str, Any]) -> SubmittedCard:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return SubmittedCard(body, card_hash=f"sha256:{digest}")


def one_objective(weight_of_second: float | None = None) -> GoalDefinition:
    objectives = [Objective("o1", "First")]
    if weight_of_second is not None:
        objectives.append(Objective("o2", "Second", weight=weight_of_second))
    return GoalDefinition("Serve well", tuple(objectives))


@dataclass
class Searchable:
    store: ReadStore
    projection: Projection
    search: AgentSearch


def search_backend(store: ReadStore) -> tuple[Projection, AgentSearch]:
    if store.dialect == "postgres":
        return PostgresSearchProjection(), PostgresAgentSearch(store)
    return SQLiteSearchProjection(), SQLiteAgentSearch(store)


@contextmanager
def elasticsearch_backend() -> Iterator[tuple[ElasticsearchSearchProjection, ElasticsearchAgentSearch]]:
    """The Elasticsearch backend on the server ELASTICSEARCH_URL names, under an alias of its
    own (its indices and template deleted afterwards); the test is skipped without one."""
    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        pytest.skip("ELASTICSEARCH_URL is not set: no Elasticsearch server to test the backend against")
    client = Elasticsearch(url, request_timeout=30)
    alias = f"a2a-test-{uuid.uuid4().hex[:10]}"
    try:
        yield ElasticsearchSearchProjection(client, alias), ElasticsearchAgentSearch(client, alias)
    finally:
        # By name: Elasticsearch refuses to delete by wildcard (action.destructive_requires_name).
        names = list(client.indices.get(index=f"{alias}-*", allow_no_indices=True))
        if names:
            client.indices.delete(index=",".join(names))
        client.indices.delete_index_template(name=alias)
        client.close()


@dataclass
class Registry:
    """Real aggregates; `project` applies the events they recorded since, as one page."""

    target: Searchable
    agents: dict[tuple[str, str], RegisteredAgent] = field(default_factory=dict)
    goals: dict[tuple[str, str], AgentGoals] = field(default_factory=dict)
    pending: list[Any] = field(default_factory=list)
    position: int = 0

    def register(self, tenant: str, agent_id: str, body: dict[str, Any], visibility: str = "public") -> None:
        key = (tenant, agent_id)
        if key in self.agents:
            self.agents[key].register_again(submitted(body), visibility, META)
        else:
            self.agents[key] = RegisteredAgent.register(tenant, agent_id, submitted(body), visibility, META)
        self._collect(self.agents[key])

    def update(self, tenant: str, agent_id: str, body: dict[str, Any]) -> None:
        self.agents[(tenant, agent_id)].update_card(submitted(body), META)
        self._collect(self.agents[(tenant, agent_id)])

    def change_visibility(self, tenant: str, agent_id: str, visibility: str) -> None:
        self.agents[(tenant, agent_id)].change_visibility(visibility, META)
        self._collect(self.agents[(tenant, agent_id)])

    def deregister(self, tenant: str, agent_id: str) -> None:
        self.agents[(tenant, agent_id)].deregister("retired", META)
        self._collect(self.agents[(tenant, agent_id)])

    def reachability(self, tenant: str, agent_id: str, reachable: bool, error: str = "") -> None:
        url = "https://agent.example/.well-known/agent-card.json"
        self.agents[(tenant, agent_id)].record_reachability(reachable, error, url, META)
        self._collect(self.agents[(tenant, agent_id)])

    def set_goals(self, tenant: str, agent_id: str, definition: GoalDefinition | None = None) -> None:
        key = (tenant, agent_id)
        if key in self.goals:
            self.goals[key].set_goals(definition or one_objective(), META)
        else:
            self.goals[key] = AgentGoals.start(tenant, agent_id, definition or one_objective(), META)
        self._collect(self.goals[key])

    def progress(self, tenant: str, agent_id: str, **objective_progress: float) -> None:
        self.goals[(tenant, agent_id)].record_progress(META, objective_progress=objective_progress)
        self._collect(self.goals[(tenant, agent_id)])

    def status(self, tenant: str, agent_id: str, to: str) -> None:
        self.goals[(tenant, agent_id)].change_status(to, "because", META)
        self._collect(self.goals[(tenant, agent_id)])

    def _collect(self, aggregate: RegisteredAgent | AgentGoals) -> None:
        self.pending.extend(aggregate.collect_events())

    def project(self) -> None:
        page = [(self.position + n, event) for n, event in enumerate(self.pending, 1)]
        self.position += len(page)
        self.pending = []
        with self.target.store.transaction() as tx:
            self.target.projection.apply(tx, page)

    def search(self, tenant: str, **query: Any) -> SearchPage:
        return self.target.search.search(tenant, SearchQuery(**query))

    def found(self, tenant: str, **query: Any) -> list[str]:
        """The agent ids of the whole first page (at most 100)."""
        return [hit.agent_id for hit in self.search(tenant, limit=100, **query).items]


def walk(registry: Registry, tenant: str, limit: int, **query: Any) -> Iterable[list[tuple[str, str]]]:
    """Every page of a search, following the cursors."""
    cursor = None
    while True:
        page = registry.search(tenant, limit=limit, cursor=cursor, **query)
        yield [(hit.tenant, hit.agent_id) for hit in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return
