"""agent_search on Elasticsearch (when ELASTICSEARCH_URL is set): the scale-out backend.

One document per agent with goals or a registration, its id `tenant:agent_id`. A deregistered
agent's document stays with `registered: false` (never found) and its goal fields, which a
later registration finds there. Documents are written whole, by bulk `index` actions with
`version_type=external` and the log position of the last event folded into them as version:
a page applied again after a crash is refused item by item as a version conflict, which is
taken as done. Folding reads the documents a page touches (`mget`, real time) and skips the
events at or before a document's position, for the same reason.

Indices are `<alias>-<stamp>`, created from an index template; searches read `<alias>`. The
index this read model writes is named in a table of the read store (`agent_search_es_index`):
a rebuild builds a new index beside the live one (its shadow table names it), and when the
rebuild's tables are swapped in, the alias moves to the new index in one request and the old
indices are deleted (`swapped_in`). Writes wait for a refresh (`refresh=wait_for`): once the
tracking position says an event is applied, searches see it.

Words are folded by `index.words` before they are sent, and analysed by whitespace only, so
whole words and prefixes mean what they mean on PostgreSQL and SQLite, and score alike
(constant scores, no corpus statistics). Near-misses are Elasticsearch's own (`fuzzy`,
AUTO edit distance on the name, skill and provider words), scored as a near-miss at the
threshold. Elasticsearch unreachable, overloaded or timing out: SearchUnavailable, on reads
(the edge answers 503) and on writes (the runner retries the page).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import elastic_transport
from elasticsearch import ApiError, Elasticsearch, NotFoundError

from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from domain.registry import RegisteredAgent
from projections.projection import LogPage
from projections.registry_changes import registry_change
from projections.search.elasticsearch_documents import (
    ADDED_FIELDS,
    AgentDoc,
    Key,
    bulk_operations,
    doc_id,
    fold_page,
    refused_items,
    template,
)
from projections.search.elasticsearch_queries import search_body
from projections.search.index import (
    SearchHit,
    SearchPage,
    SearchQuery,
    SearchUnavailable,
    SortKey,
    decode_cursor,
    encode_cursor,
    fingerprint,
)

log = logging.getLogger(__name__)
BACKEND = "elasticsearch"
CHUNK = 500  # documents per mget or bulk request
RETRY_STATUSES = frozenset({429, 502, 503, 504})
TABLE_DDL = "CREATE TABLE IF NOT EXISTS agent_search_es_index (index_name TEXT PRIMARY KEY)"


class IndexingRefused(Exception):
    """Elasticsearch refused a document for a reason other than a version already applied
    (a mapping conflict, a closed index): the page fails, loudly."""


# --- the read model ------------------------------------------------------------------------------


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Elasticsearch unreachable, overloaded or timing out becomes SearchUnavailable."""
    try:
        yield
    except (elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout) as error:
        raise SearchUnavailable(BACKEND, f"{doing}: {type(error).__name__}") from error
    except ApiError as error:
        if error.meta.status in RETRY_STATUSES:
            raise SearchUnavailable(BACKEND, f"{doing}: HTTP {error.meta.status}") from error
        raise


class ElasticsearchSearchProjection:
    """The search read model in Elasticsearch; its one table names the index it writes."""

    name = "agent_search_es"
    tables = ("agent_search_es_index",)

    def __init__(self, client: Elasticsearch, alias: str) -> None:
        self._client = client
        self.alias = alias
        self._ready: set[str] = set()  # indices known to exist (and the alias, to point somewhere)

    def create_tables(self, tx: Tx) -> None:
        """The table, and a new index named in it if it names none (a first start, or a
        rebuild's shadow). Elasticsearch may be down: the first page sets the index up then."""
        tx.execute(TABLE_DDL)
        index = _index_of(tx)
        if index is None:
            index = f"{self.alias}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
            tx.execute("INSERT INTO agent_search_es_index (index_name) VALUES (?)", (index,))
        try:
            self._set_up(index)
        except SearchUnavailable as error:
            log.warning("%s; the search index is set up with the first page", error)

    def apply(self, tx: Tx, events: LogPage) -> None:
        index = _index_of(tx)
        if index is None:
            raise LookupError("agent_search_es_index names no index: create_tables was not run")
        self._set_up(index)
        keys = {
            change.key if (change := registry_change(e)) is not None else (e.tenant, e.agent_id)
            for _, e in events
            if isinstance(e, AgentGoals.Event | RegisteredAgent.ReachabilityChanged)
            or registry_change(e) is not None
        }
        if not keys:
            return
        changed = fold_page(self._read(index, keys), events)
        self._write(index, list(changed.values()))

    def swapped_in(self, store: ReadStore) -> None:
        """The rebuilt index is the one the live table names now: move the alias to it (one
        request: searches see the old index or the new one), then delete the others."""
        with store.read() as tx:
            index = _index_of(tx)
        assert index is not None
        with translated("moving the alias"):
            self._set_up(index, alias=False)
            self._client.indices.update_aliases(
                actions=[
                    {"remove": {"index": f"{self.alias}-*", "alias": self.alias, "must_exist": False}},
                    {"add": {"index": index, "alias": self.alias}},
                ]
            )
            others = [name for name in self._client.indices.get(index=f"{self.alias}-*") if name != index]
            if others:
                self._client.indices.delete(index=",".join(others))
        self._ready = {index}

    def _set_up(self, index: str, *, alias: bool = True) -> None:
        """The template, the index, and the alias if there is none yet (a first start; during a
        rebuild there is one, and it stays where it is until the swap)."""
        if index in self._ready:
            return
        with translated("setting the index up"):
            self._client.indices.put_index_template(name=self.alias, **template(self.alias))
            if not self._client.indices.exists(index=index):
                self._client.indices.create(index=index)
            else:
                self._client.indices.put_mapping(index=index, properties=ADDED_FIELDS)
            if alias and not self._client.indices.exists_alias(name=self.alias):
                self._client.indices.put_alias(index=index, name=self.alias)
        self._ready.add(index)

    def _read(self, index: str, keys: set[Key]) -> dict[Key, AgentDoc]:
        found: dict[Key, AgentDoc] = {}
        ids = [doc_id(*key) for key in keys]
        with translated("reading documents"):
            for start in range(0, len(ids), CHUNK):
                response = self._client.mget(index=index, ids=ids[start : start + CHUNK])
                for hit in response["docs"]:
                    if hit.get("found"):
                        doc = AgentDoc.from_source(hit["_source"])
                        found[(doc.tenant, doc.agent_id)] = doc
        return found

    def _write(self, index: str, docs: list[AgentDoc]) -> None:
        with translated("writing documents"):
            for start in range(0, len(docs), CHUNK):
                last = start + CHUNK >= len(docs)
                response = self._client.bulk(
                    operations=bulk_operations(index, docs[start : start + CHUNK]),
                    refresh="wait_for" if last else False,
                )
                if refused := refused_items(response.body):
                    raise IndexingRefused(f"{len(refused)} documents refused, the first: {refused[0]}")


def _index_of(tx: Tx) -> str | None:
    row = tx.fetchone("SELECT index_name FROM agent_search_es_index")
    return str(row[0]) if row else None


class ElasticsearchAgentSearch:
    """Searches the alias of the agent_search_es read model."""

    backend = BACKEND

    def __init__(self, client: Elasticsearch, alias: str) -> None:
        self._client = client
        self.alias = alias

    def search(self, tenant: str, query: SearchQuery) -> SearchPage:
        """See `AgentSearch.search`."""
        bound = fingerprint(tenant, query)
        relevance = bool(query.terms)
        after = decode_cursor(query.cursor, bound, relevance=relevance) if query.cursor else None
        try:
            with translated("searching"):
                response = self._client.search(index=self.alias, body=search_body(tenant, query, after))
        except NotFoundError as error:
            raise SearchUnavailable(BACKEND, "the search index is not set up yet") from error
        hits = response["hits"]["hits"]
        items = [
            SearchHit(hit["sort"][1], hit["sort"][2], float(hit["sort"][0]) if relevance else None)
            for hit in hits[: query.limit]
        ]
        next_cursor = None
        if len(hits) > query.limit:
            first, last_tenant, last_agent = hits[query.limit - 1]["sort"]
            next_cursor = encode_cursor(bound, SortKey(first, last_tenant, last_agent))
        return SearchPage(items, int(response["hits"]["total"]["value"]), next_cursor)
