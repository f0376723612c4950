"""What the Elasticsearch backend sends, without a server: the index template, the documents
folded from events and their bulk actions, and the bodies of searches."""

from __future__ import annotations

from typing import Any

from domain.goals import AgentGoals
from domain.meta import Meta
from domain.objectives import GoalDefinition, Objective
from domain.registry import RegisteredAgent, SubmittedCard
from projections.search.elasticsearch_documents import (
    AgentDoc,
    bulk_operations,
    fold_page,
    refused_items,
    template,
)
from projections.search.elasticsearch_queries import search_body
from projections.search.index import FIELDS, SearchQuery, SortKey, exact_score, prefix_score

META = Meta(actor="tester")
CARD = {
    "name": "Route Planner",
    "description": "Plans routes",
    "version": "1.0.0",
    "supportedInterfaces": [
        {"url": "https://agent.example/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    ],
    "capabilities": {},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "provider": {"organization": "Acme", "url": "https://acme.example"},
    "skills": [{"id": "routing", "name": "Routing", "description": "Finds tours", "tags": ["Maps"]}],
}


def _registered(
    tenant: str = "acme", agent_id: str = "router", visibility: str = "public"
) -> RegisteredAgent:
    return RegisteredAgent.register(tenant, agent_id, SubmittedCard(CARD, "sha256:x"), visibility, META)


def _goals(tenant: str = "acme", agent_id: str = "router") -> AgentGoals:
    objectives = (Objective("o1", "First"), Objective("o2", "Second"))
    return AgentGoals.start(tenant, agent_id, GoalDefinition("Serve", objectives), META)


def _page(*aggregates: RegisteredAgent | AgentGoals, start: int = 1) -> list[tuple[int, Any]]:
    events = [e for a in aggregates for e in a.collect_events()]
    return [(start + n, e) for n, e in enumerate(events)]


def test_the_template_maps_every_field_a_document_has_and_nothing_else() -> None:
    body = template("a2a-agents")
    assert body["index_patterns"] == ["a2a-agents-*"]
    mappings = body["template"]["mappings"]
    assert mappings["dynamic"] == "strict"
    doc = AgentDoc("acme", "router")
    assert set(doc.source()) == set(mappings["properties"])
    analysis = body["template"]["settings"]["analysis"]
    assert analysis["analyzer"]["words"] == {
        "type": "custom",
        "tokenizer": "whitespace",
        "filter": ["lowercase"],
    }
    for name in FIELDS:
        assert mappings["properties"][name]["analyzer"] == "words"
    for name in ("tenant", "agent_id", "visibility", "goal_status"):
        assert mappings["properties"][name] == {"type": "keyword"}
    assert mappings["properties"]["tags"] == {"type": "keyword", "normalizer": "keys"}
    assert mappings["properties"]["objective_progress"] == {"type": "object", "enabled": False}


def test_a_page_folds_into_one_whole_document_per_agent_versioned_by_its_last_position() -> None:
    agent, goals = _registered(), _goals()
    goals.record_progress(META, objective_progress={"o1": 80})
    goals.change_status("paused", "holiday", META)
    page = _page(agent, goals)
    docs: dict[tuple[str, str], AgentDoc] = {}

    changed = fold_page(docs, page)

    assert list(changed) == [("acme", "router")]
    operations = bulk_operations("a2a-agents-1", list(changed.values()))
    assert operations[0] == {
        "index": {
            "_index": "a2a-agents-1",
            "_id": "acme:router",
            "version": len(page),
            "version_type": "external",
        }
    }
    source = operations[1]
    assert (source["registered"], source["visibility"], source["name"]) == (True, "public", "route planner")
    assert (source["skill_keys"], source["tags"], source["provider"]) == (["routing"], ["maps"], "acme")
    assert source["labels"] == "route planner routing routing maps acme"
    assert (source["goal_status"], source["overall_progress"]) == ("paused", 40.0)
    assert source["objective_progress"] == {"o1": 80.0}
    # What the index keeps is enough to fold the next page on: the document read back from it
    # writes the same source.
    assert AgentDoc.from_source(source).source() == changed[("acme", "router")].source()


def test_a_page_applied_again_changes_nothing() -> None:
    agent, goals = _registered(), _goals()
    page = _page(agent, goals)
    docs: dict[tuple[str, str], AgentDoc] = {}
    fold_page(docs, page)
    stored = {key: AgentDoc.from_source(doc.source()) for key, doc in docs.items()}
    assert fold_page(stored, page) == {}


def test_goals_before_the_registration_stay_with_the_agent_after_a_deregistration() -> None:
    goals = _goals()
    goals.record_progress(META, objective_progress={"o1": 50, "o2": 50})
    docs: dict[tuple[str, str], AgentDoc] = {}
    fold_page(docs, _page(goals))
    doc = docs[("acme", "router")]
    assert (doc.registered, doc.goals is not None) == (False, True)

    agent = _registered()
    agent.deregister("retired", META)
    fold_page(docs, _page(agent, start=100))
    assert doc.registered is False
    assert doc.card["name"] == "" and doc.card["skill_keys"] == []
    assert doc.goals is not None and doc.goals.overall_progress == 50.0


def test_goal_events_of_goals_started_before_the_read_model_are_left_to_a_rebuild() -> None:
    goals = _goals()
    goals.collect_events()
    goals.record_progress(META, objective_progress={"o1": 10})
    assert fold_page({}, _page(goals)) == {}


def test_a_version_conflict_is_an_item_applied_before_and_anything_else_is_refused() -> None:
    conflict = {"index": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}
    mapping = {"index": {"status": 400, "error": {"type": "strict_dynamic_mapping_exception"}}}
    assert refused_items({"errors": False, "items": [{"index": {"status": 201}}]}) == []
    assert refused_items({"errors": True, "items": [conflict]}) == []
    assert refused_items({"errors": True, "items": [conflict, mapping]}) == [mapping["index"]]


def test_a_search_sees_the_callers_agents_and_public_ones_registered() -> None:
    body = search_body("acme", SearchQuery(), None)
    filters = body["query"]["bool"]["filter"]
    assert filters == [
        {"term": {"registered": True}},
        {
            "bool": {
                "should": [{"term": {"tenant": "acme"}}, {"term": {"visibility": "public"}}],
                "minimum_should_match": 1,
            }
        },
    ]
    assert body["sort"] == [{"updated_at": "desc"}, {"tenant": "asc"}, {"agent_id": "asc"}]
    assert (body["size"], body["track_total_hits"], body["_source"]) == (21, True, False)
    assert "search_after" not in body
    owned = search_body("acme", SearchQuery(owned=True), None)["query"]["bool"]["filter"]
    assert owned[1] == {"term": {"tenant": "acme"}}


def test_filters_are_exact_terms_and_ranges() -> None:
    query = SearchQuery(
        skill=" Route-Planning ",
        tag="MAPS",
        goal_status="paused",
        min_progress=10,
        max_progress=50,
        updated_since="2026-01-01T01:00:00+01:00",
    )
    filters = search_body("acme", query, None)["query"]["bool"]["filter"][2:]
    assert filters == [
        {"term": {"skill_keys": "route-planning"}},
        {"term": {"tags": "maps"}},
        {"term": {"goal_status": "paused"}},
        {"range": {"overall_progress": {"gte": 10, "lte": 50}}},
        {"range": {"updated_at": {"gte": "2026-01-01T00:00:00+00:00"}}},
    ]


def test_each_word_scores_its_best_match_and_the_words_their_mean() -> None:
    body = search_body("acme", SearchQuery(q="route ai", limit=5), SortKey(2.35, "acme", "a1"))
    must = body["query"]["bool"]["must"]
    assert len(must) == 2
    route, short = (m["dis_max"]["queries"] for m in must)

    def scored(match: dict[str, Any], score: float) -> dict[str, Any]:
        return {"constant_score": {"filter": match, "boost": score / 2}}

    assert route[:-1] == [scored({"term": {f: "route"}}, exact_score(f)) for f in FIELDS] + [
        scored({"prefix": {f: "route"}}, prefix_score(f)) for f in FIELDS
    ]
    assert route[-1]["constant_score"]["filter"] == {
        "fuzzy": {"labels": {"value": "route", "fuzziness": "AUTO"}}
    }
    assert route[-1]["constant_score"]["boost"] < prefix_score("provider") / 2
    assert not any("fuzzy" in q["constant_score"]["filter"] for q in short)  # too short for a near-miss
    assert body["sort"][0] == {"_score": "desc"}
    assert body["search_after"] == [2.35, "acme", "a1"]
    assert body["size"] == 6


def test_the_reachable_filter_is_a_term_of_the_documents_field() -> None:
    for reachable in (True, False):
        filters = search_body("acme", SearchQuery(reachable=reachable), None)["query"]["bool"]["filter"]
        assert filters[2:] == [{"term": {"reachable": reachable}}]
    assert all(
        "reachable" not in str(f) for f in search_body("acme", SearchQuery(), None)["query"]["bool"]["filter"]
    )
    assert template("a2a-agents")["template"]["mappings"]["properties"]["reachable"] == {"type": "boolean"}


def test_reachability_changes_fold_into_the_document_and_a_new_registration_forgets_them() -> None:
    agent = _registered()
    page = _page(agent)
    docs = fold_page({}, page)
    assert docs[("acme", "router")].source()["reachable"] is None
    agent.record_reachability(
        False, "timeout: no answer in 5 s", "https://agent.example/.well-known/agent-card.json", META
    )
    changed = fold_page(docs, _page(agent, start=10))
    assert changed[("acme", "router")].source()["reachable"] is False
    assert AgentDoc.from_source(changed[("acme", "router")].source()).reachable is False
    agent.deregister("gone", META)
    agent.register_again(SubmittedCard(CARD, "sha256:x"), "public", META)
    again = fold_page(docs, _page(agent, start=20))
    assert again[("acme", "router")].source()["reachable"] is None
