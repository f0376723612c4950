"""The registry's search backend: Elasticsearch, or the read store's own search."""

from __future__ import annotations

from elasticsearch import Elasticsearch

from application.ports import ReadStore
from infrastructure.readstore import PostgresReadStore, SQLiteReadStore
from infrastructure.settings import Settings
from projections.projection import Projection
from projections.search.elasticsearch import ElasticsearchAgentSearch, ElasticsearchSearchProjection
from projections.search.index import AgentSearch
from projections.search.postgres import PostgresAgentSearch, PostgresSearchProjection
from projections.search.sqlite import SQLiteAgentSearch, SQLiteSearchProjection


def search_backend(settings: Settings, store: ReadStore) -> tuple[Projection, AgentSearch, Elasticsearch | None]:
    """The registry's search read model and its queries: in Elasticsearch when ELASTICSEARCH_URL
    is set, in the read store otherwise. One of them: both would double the work of every page."""
    if settings.elasticsearch_url:
        # No I/O here: the client connects on its first request.
        client = Elasticsearch(
            settings.elasticsearch_url, request_timeout=settings.elasticsearch_timeout_s, max_retries=1
        )
        alias = settings.elasticsearch_index
        return ElasticsearchSearchProjection(client, alias), ElasticsearchAgentSearch(client, alias), client
    if isinstance(store, PostgresReadStore):
        return PostgresSearchProjection(), PostgresAgentSearch(store), None
    assert isinstance(store, SQLiteReadStore)
    return SQLiteSearchProjection(), SQLiteAgentSearch(store), None
