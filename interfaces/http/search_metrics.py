"""Registry searches counted by kind of query and timed."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from projections.search.index import AgentSearch, SearchPage, SearchQuery

QUERIES = Counter(
    "a2a_registry_search_queries_total", "Registry searches, by kind of query.", ["query_type"]
)
DURATION = Histogram(
    "a2a_registry_search_duration_seconds",
    "Time a registry search takes in its backend.",
    ["query_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)


def query_type(query: SearchQuery) -> str:
    """text, skill, tag, goal or list: the most specific part of the query."""
    if query.q:
        return "text"
    if query.skill:
        return "skill"
    if query.tag:
        return "tag"
    if query.goal_status or query.min_progress is not None or query.max_progress is not None:
        return "goal"
    return "list"


def timed_search(search: AgentSearch, tenant: str, query: SearchQuery) -> SearchPage:
    kind = query_type(query)
    QUERIES.labels(kind).inc()
    started = time.perf_counter()
    try:
        return search.search(tenant, query)
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - started)
