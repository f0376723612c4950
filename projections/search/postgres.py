"""agent_search on PostgreSQL: full-text search with near-misses, the default backend.

Each agent's words are indexed twice: a weighted tsvector (name A, skill ids, names and tags B,
descriptions C, provider D) under a GIN index, for whole words and prefixes (`x:*`); and the
name, skill and provider words as plain text under a pg_trgm GIN index, for near-misses
(`<%`, word_similarity). The text search configuration is 'simple', not 'english': cards come
in every language, and names, skill ids and tags are identifiers that stemming and stop words
damage ("IT" and "go" are English stop words, "planning" and "planner" stem apart); prefixes
and near-misses give back what stemming would, in any language. The words are folded (case,
accents) by `index.words` before PostgreSQL sees them, as the other backends fold them.

Skill keys and tags are text[] under GIN indexes, for exact filters; goal fields live beside
the rows (`summaries`), so goal events, the bulk of the log, write only their own table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
from domain.registry import RegisteredAgent
from projections.instants import utc
from projections.projection import LogPage
from projections.search import summaries
from projections.search.index import (
    FIELDS,
    FUZZY_FACTOR,
    MIN_FUZZY_LEN,
    SCORE_DIGITS,
    SearchDocument,
    document,
    exact_score,
    prefix_score,
)
from projections.search.sql import Fragment, SqlAgentSearch, TextMatch

WEIGHTS = {"name": "A", "skills": "B", "description": "C", "provider": "D"}
TEXT_COLUMNS = ("name_words", "skill_words", "description_words", "provider_words")
KEY_COLUMNS = {"skill": "skill_keys", "tag": "tags"}


def _ddl(trgm: str) -> tuple[str, ...]:
    vector = " || ".join(
        f"setweight(to_tsvector('simple'::regconfig, {column}), '{WEIGHTS[field]}')"
        for field, column in zip(FIELDS, TEXT_COLUMNS, strict=True)
    )
    return (
        "CREATE TABLE IF NOT EXISTS agent_search ("
        ' tenant TEXT COLLATE "C" NOT NULL, agent_id TEXT COLLATE "C" NOT NULL, visibility TEXT NOT NULL,'
        " name_words TEXT NOT NULL, skill_words TEXT NOT NULL, description_words TEXT NOT NULL,"
        " provider_words TEXT NOT NULL, skill_keys TEXT[] NOT NULL, tags TEXT[] NOT NULL,"
        " updated_at TIMESTAMPTZ NOT NULL, position BIGINT NOT NULL,"
        f" doc TSVECTOR GENERATED ALWAYS AS ({vector}) STORED,"
        " labels TEXT GENERATED ALWAYS AS (name_words || ' ' || skill_words || ' ' || provider_words) STORED,"
        " PRIMARY KEY (tenant, agent_id))",
        "CREATE INDEX IF NOT EXISTS agent_search_doc ON agent_search USING gin (doc)",
        f"CREATE INDEX IF NOT EXISTS agent_search_labels ON agent_search USING gin (labels {trgm}.gin_trgm_ops)",
        "CREATE INDEX IF NOT EXISTS agent_search_skill_keys ON agent_search USING gin (skill_keys)",
        "CREATE INDEX IF NOT EXISTS agent_search_tags ON agent_search USING gin (tags)",
        "CREATE INDEX IF NOT EXISTS agent_search_recent ON agent_search (updated_at DESC, tenant, agent_id)",
    )


def trgm_schema(tx: Tx, *, create: bool = False) -> str:
    """The schema pg_trgm is installed in, quoted (created in public first if `create`): a
    rebuild's shadow store, whose search path is its own schema, names it explicitly."""
    if create:
        found = tx.fetchone("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if found is None:
            tx.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    row = tx.fetchone(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_trgm'"
    )
    if row is None:
        raise LookupError("pg_trgm is not installed: the agent_search read model creates it")
    return '"' + str(row[0]).replace('"', '""') + '"'


class PostgresSearchProjection:
    """The search read model on PostgreSQL: a row per registered agent, goal summaries beside."""

    name = "agent_search"
    tables = ("agent_search", summaries.TABLE)

    def create_tables(self, tx: Tx) -> None:
        for statement in (*_ddl(trgm_schema(tx, create=True)), *summaries.DDL):
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        goal_events = []
        for position, event in events:
            if isinstance(event, RegisteredAgent.Event):
                self._apply_registry(tx, position, event)
            elif isinstance(event, AgentGoals.Event):
                goal_events.append((position, event))
        if goal_events:
            summaries.apply_goal_events(tx, goal_events)

    def _apply_registry(self, tx: Tx, position: int, event: RegisteredAgent.Event) -> None:
        key = (event.tenant, event.agent_id)
        at = utc(event.timestamp)
        match event:
            case RegisteredAgent.AgentRegistered() | RegisteredAgent.AgentReregistered():
                values = (*key, event.visibility, *_text_values(document(event.card)), at, position)
                columns = ("tenant", "agent_id", "visibility", *TEXT_COLUMNS, *KEY_COLUMNS.values())
                sets = ", ".join(f"{c} = excluded.{c}" for c in (*columns[2:], "updated_at", "position"))
                tx.execute(
                    f"INSERT INTO agent_search ({', '.join(columns)}, updated_at, position)"
                    f" VALUES ({', '.join('?' * len(values))})"
                    f" ON CONFLICT (tenant, agent_id) DO UPDATE SET {sets}",
                    values,
                )
            case RegisteredAgent.AgentCardUpdated():
                sets = ", ".join(f"{c} = ?" for c in (*TEXT_COLUMNS, *KEY_COLUMNS.values()))
                tx.execute(
                    f"UPDATE agent_search SET {sets}, updated_at = ?, position = ?"
                    " WHERE tenant = ? AND agent_id = ?",
                    (*_text_values(document(event.card)), at, position, *key),
                )
            case RegisteredAgent.AgentVisibilityChanged():
                tx.execute(
                    "UPDATE agent_search SET visibility = ?, updated_at = ?, position = ?"
                    " WHERE tenant = ? AND agent_id = ?",
                    (event.visibility, at, position, *key),
                )
            case RegisteredAgent.AgentDeregistered():
                tx.execute("DELETE FROM agent_search WHERE tenant = ? AND agent_id = ?", key)


def _text_values(doc: SearchDocument) -> tuple[Any, ...]:
    fields = doc.field_words()
    return (*(fields[f] for f in FIELDS), list(doc.skill_keys), list(doc.tags))


class PostgresAgentSearch(SqlAgentSearch):
    """Searches agent_search on PostgreSQL."""

    backend = "postgres"

    def __init__(self, store: ReadStore) -> None:
        super().__init__(store)
        self._trgm: str | None = None

    def _text(self, tx: Tx, terms: Sequence[str]) -> TextMatch:
        if self._trgm is None:
            self._trgm = trgm_schema(tx)
        scores = [self._term_score(term) for term in terms]
        where = [self._term_match(term) for term in terms]
        total = " + ".join(s.sql for s in scores)
        score = Fragment(
            f"round((({total}) / {len(terms)})::numeric, {SCORE_DIGITS})::float8",
            [p for s in scores for p in s.params],
        )
        return TextMatch(source=Fragment("agent_search s"), score=score, where=where)

    def _term_match(self, term: str) -> Fragment:
        """A whole word or a prefix in any field (the GIN index on doc), or a near-miss of a
        word of the labels (the trigram index)."""
        if len(term) < MIN_FUZZY_LEN:
            return Fragment("s.doc @@ to_tsquery('simple', ?)", (f"{term}:*",))
        # `%%`: the driver reads a lone % as the start of a placeholder (pg_trgm's `<%`).
        return Fragment(
            f"(s.doc @@ to_tsquery('simple', ?) OR ? OPERATOR({self._trgm}.<%%) s.labels)",
            (f"{term}:*", term),
        )

    def _term_score(self, term: str) -> Fragment:
        """The term's best match: a whole word by field weight, then a prefix, then a near-miss."""
        cases, params = [], []
        for suffix, score in (("", exact_score), ("*", prefix_score)):
            for field in FIELDS:
                cases.append(f"WHEN s.doc @@ to_tsquery('simple', ?) THEN {score(field)!r}::float8")
                params.append(f"{term}:{suffix}{WEIGHTS[field]}")
        if len(term) >= MIN_FUZZY_LEN:
            cases.append(f"ELSE {FUZZY_FACTOR!r}::float8 * {self._trgm}.word_similarity(?, s.labels)")
            params.append(term)
        else:
            cases.append("ELSE 0::float8")
        return Fragment(f"CASE {' '.join(cases)} END", params)

    def _key_filter(self, kind: str, key: str) -> Fragment:
        return Fragment(f"s.{KEY_COLUMNS[kind]} @> ARRAY[?]::text[]", (key,))

    def _instant(self, moment: datetime) -> Any:
        return utc(moment)

    def _cursor_instant(self, stored: Any) -> str:
        assert isinstance(stored, datetime)
        return utc(stored).isoformat()
