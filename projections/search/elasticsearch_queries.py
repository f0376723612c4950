"""The bodies of searches of agent_search on Elasticsearch, without a server: who may see
what, the filters, the words and their scores, the order. How words are analysed and scored:
`projections.search.elasticsearch`."""

from __future__ import annotations

from typing import Any

from projections.instants import utc
from projections.search.index import (
    FIELDS,
    FUZZY_FACTOR,
    FUZZY_THRESHOLD,
    MIN_FUZZY_LEN,
    SearchQuery,
    SortKey,
    exact_score,
    prefix_score,
)


def search_body(tenant: str, query: SearchQuery, after: SortKey | None) -> dict[str, Any]:
    """The body of one page's search: who may see what, the filters, the words, the order."""
    relevance = bool(query.terms)
    must = [_term_query(term, len(query.terms)) for term in query.terms]
    body: dict[str, Any] = {
        "query": {"bool": {"filter": _filters(tenant, query), "must": must}},
        "sort": [
            {"_score": "desc"} if relevance else {"updated_at": "desc"},
            {"tenant": "asc"},
            {"agent_id": "asc"},
        ],
        "size": query.limit + 1,  # one more: is there a next page?
        "track_total_hits": True,
        "_source": False,
    }
    if after is not None:
        body["search_after"] = [after.first, after.tenant, after.agent_id]
    return body


def _filters(tenant: str, query: SearchQuery) -> list[dict[str, Any]]:
    mine = {"term": {"tenant": tenant}}
    visible = {"bool": {"should": [mine, {"term": {"visibility": "public"}}], "minimum_should_match": 1}}
    filters: list[dict[str, Any]] = [{"term": {"registered": True}}, mine if query.owned else visible]
    for name, value in (
        ("skill_keys", query.skill_key),
        ("tags", query.tag_key),
        ("goal_status", query.goal_status),
    ):
        if value is not None:
            filters.append({"term": {name: value}})
    progress = {
        op: bound
        for op, bound in (("gte", query.min_progress), ("lte", query.max_progress))
        if bound is not None
    }
    if progress:
        filters.append({"range": {"overall_progress": progress}})
    if query.since is not None:
        filters.append({"range": {"updated_at": {"gte": utc(query.since).isoformat()}}})
    if query.reachable is not None:
        filters.append({"term": {"reachable": query.reachable}})
    return filters


def _term_query(term: str, terms: int) -> dict[str, Any]:
    """A word's best match (dis_max of constant scores): a whole word by field weight, a
    prefix, a near-miss; divided by the number of words, so that their sum is the mean."""

    def scored(match: dict[str, Any], score: float) -> dict[str, Any]:
        return {"constant_score": {"filter": match, "boost": score / terms}}

    queries = [scored({"term": {f: term}}, exact_score(f)) for f in FIELDS]
    queries += [scored({"prefix": {f: term}}, prefix_score(f)) for f in FIELDS]
    if len(term) >= MIN_FUZZY_LEN:
        near = {"fuzzy": {"labels": {"value": term, "fuzziness": "AUTO"}}}
        queries.append(scored(near, FUZZY_FACTOR * FUZZY_THRESHOLD))
    return {"dis_max": {"queries": queries, "tie_breaker": 0}}
