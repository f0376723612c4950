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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import elastic_transport
from elasticsearch import ApiError, Elasticsearch, NotFoundError

from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from domain.registry import RegisteredAgent
from projections.goal_summaries import GoalSummary, fold_goal
from projections.instants import utc
from projections.projection import LogPage
from projections.registry_changes import (
    CardChanged,
    Change,
    Listed,
    Unlisted,
    VisibilityChanged,
    registry_change,
)
from projections.search.index import (
    FIELDS,
    FUZZY_FACTOR,
    FUZZY_THRESHOLD,
    MIN_FUZZY_LEN,
    SearchDocument,
    SearchHit,
    SearchPage,
    SearchQuery,
    SearchUnavailable,
    SortKey,
    decode_cursor,
    document,
    encode_cursor,
    exact_score,
    fingerprint,
    prefix_score,
)

log = logging.getLogger(__name__)
BACKEND = "elasticsearch"
CHUNK = 500  # documents per mget or bulk request
RETRY_STATUSES = frozenset({429, 502, 503, 504})
Key = tuple[str, str]
WORDS = {"type": "text", "analyzer": "words", "index_prefixes": {"min_chars": 1, "max_chars": 10}}
KEYS = {"type": "keyword", "normalizer": "keys"}
TABLE_DDL = "CREATE TABLE IF NOT EXISTS agent_search_es_index (index_name TEXT PRIMARY KEY)"


class IndexingRefused(Exception):
    """Elasticsearch refused a document for a reason other than a version already applied
    (a mapping conflict, a closed index): the page fails, loudly."""


# Fields added after the first indexes were created: put into an existing index's mapping too.
ADDED_FIELDS: dict[str, Any] = {"reachable": {"type": "boolean"}}


def template(alias: str) -> dict[str, Any]:
    """The index template of every index of `alias` (the body of `put_index_template`)."""
    return {
        "index_patterns": [f"{alias}-*"],
        "priority": 500,
        "template": {
            "settings": {
                "analysis": {
                    "analyzer": {
                        "words": {"type": "custom", "tokenizer": "whitespace", "filter": ["lowercase"]}
                    },
                    "normalizer": {"keys": {"type": "custom", "filter": ["lowercase"]}},
                }
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "tenant": {"type": "keyword"},
                    "agent_id": {"type": "keyword"},
                    "registered": {"type": "boolean"},
                    "visibility": {"type": "keyword"},
                    **{f: WORDS for f in FIELDS},
                    "labels": {"type": "text", "analyzer": "words"},
                    "skill_keys": KEYS,
                    "tags": KEYS,
                    "updated_at": {"type": "date_nanos"},  # the microseconds the other backends order by
                    "position": {"type": "long"},
                    "goal_status": {"type": "keyword"},
                    "overall_progress": {"type": "double"},
                    "objective_progress": {"type": "object", "enabled": False},
                    **ADDED_FIELDS,
                },
            },
        },
    }


# --- documents ---------------------------------------------------------------------------------


def card_fields(card: SearchDocument | None) -> dict[str, Any]:
    """What a card puts in an agent's document (empty without a card)."""
    if card is None:
        return {**{f: "" for f in FIELDS}, "labels": "", "skill_keys": [], "tags": []}
    return {
        **card.field_words(),
        "labels": " ".join(card.labels()),
        "skill_keys": list(card.skill_keys),
        "tags": list(card.tags),
    }


@dataclass
class AgentDoc:
    """An agent's document, as folded from its events."""

    tenant: str
    agent_id: str
    position: int = 0
    registered: bool = False
    visibility: str = "private"
    updated_at: str | None = None
    card: dict[str, Any] = field(default_factory=lambda: card_fields(None))
    goals: GoalSummary | None = None
    reachable: bool | None = None  # the last recorded check; None: not checked yet

    @property
    def id(self) -> str:
        return doc_id(self.tenant, self.agent_id)

    def source(self) -> dict[str, Any]:
        goals = self.goals
        return {
            "tenant": self.tenant,
            "agent_id": self.agent_id,
            "registered": self.registered,
            "visibility": self.visibility,
            **self.card,
            "updated_at": self.updated_at,
            "position": self.position,
            "goal_status": goals.goal_status if goals else None,
            "overall_progress": goals.overall_progress if goals else None,
            "objective_progress": dict(goals.objective_progress) if goals else {},
            "reachable": self.reachable,
        }

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> AgentDoc:
        goals = None
        if source.get("goal_status") is not None:
            goals = GoalSummary(
                source["goal_status"],
                float(source["overall_progress"]),
                {k: float(v) for k, v in source.get("objective_progress", {}).items()},
            )
        return cls(
            tenant=source["tenant"],
            agent_id=source["agent_id"],
            position=int(source["position"]),
            registered=bool(source["registered"]),
            visibility=source["visibility"],
            updated_at=source.get("updated_at"),
            card={k: source[k] for k in card_fields(None)},
            goals=goals,
            reachable=source.get("reachable"),
        )


def doc_id(tenant: str, agent_id: str) -> str:
    """Unique: a tenant holds no ':'."""
    return f"{tenant}:{agent_id}"


def fold_page(docs: dict[Key, AgentDoc], events: LogPage) -> dict[Key, AgentDoc]:
    """Fold a page's events into the documents `docs` holds of their agents (changed in
    place, new ones added); the documents the page changed. Events at or before a document's
    position are in it already."""
    changed: dict[Key, AgentDoc] = {}
    for position, event in events:
        change = registry_change(event)
        if change is not None:
            key = change.key
        elif isinstance(event, RegisteredAgent.ReachabilityChanged | AgentGoals.Event):
            key = (event.tenant, event.agent_id)
        else:
            continue
        doc = docs.get(key)
        if doc is not None and position <= doc.position:
            continue
        if change is not None:
            doc = docs[key] = doc or AgentDoc(*key)
            _fold_registry(doc, change)
        elif isinstance(event, RegisteredAgent.ReachabilityChanged):
            if doc is None:
                continue  # registered before this read model existed: a rebuild fills it
            doc.reachable = event.reachable
        else:
            if doc is None or doc.goals is None:
                if not isinstance(event, AgentGoals.Registered):
                    continue  # goals recorded before this read model existed: a rebuild fills them
                doc = docs[key] = doc or AgentDoc(*key)
                doc.goals = GoalSummary()
            fold_goal(doc.goals, event)
        doc.position = position
        changed[key] = doc
    return changed


def _fold_registry(doc: AgentDoc, event: Change) -> None:
    at = utc(event.at).isoformat()
    match event:
        case Listed():
            doc.registered, doc.visibility, doc.updated_at = True, event.visibility, at
            doc.reachable = None  # a new record: not checked yet
            doc.card = card_fields(document(event.card))
        case CardChanged() if doc.registered:
            doc.card, doc.updated_at = card_fields(document(event.card)), at
        case VisibilityChanged() if doc.registered:
            doc.visibility, doc.updated_at = event.visibility, at
        case Unlisted():
            doc.registered, doc.updated_at, doc.card = False, at, card_fields(None)


def bulk_operations(index: str, docs: Sequence[AgentDoc]) -> list[dict[str, Any]]:
    """Whole documents, versioned by log position: applying them again changes nothing."""
    operations: list[dict[str, Any]] = []
    for doc in docs:
        action = {"_index": index, "_id": doc.id, "version": doc.position, "version_type": "external"}
        operations += [{"index": action}, doc.source()]
    return operations


def refused_items(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The bulk items that failed for another reason than a version already there."""
    if not response.get("errors"):
        return []
    failed = [item.get("index", {}) for item in response.get("items", ())]
    return [
        item
        for item in failed
        if "error" in item and not (item.get("status") == 409 and _conflict(item["error"]))
    ]


def _conflict(error: Any) -> bool:
    return isinstance(error, Mapping) and error.get("type") == "version_conflict_engine_exception"


# --- queries -----------------------------------------------------------------------------------


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
