"""agent_search on PostgreSQL: full-text search with near-misses, the default backend.

Each agent's words are one weighted tsvector (name A, skill ids, names and tags B,
descriptions C, provider D) under a GIN index: whole words and prefixes (`x:*`) are index
lookups, and a hit's score is read from the weights of what matched. The vector is kept in
the row (STORAGE MAIN), not in TOAST: a score tests it up to eight times, and measured at 10k
agents a broad word's hits scored 4x faster so (7 ms against 31 ms).

The text search configuration is 'simple', not 'english': cards come in every language, and
names, skill ids and tags are identifiers that stemming and stop words damage ("IT" and "go"
are English stop words; "planning" and "planner" stem apart); prefixes and near-misses give
back what stemming would, in any language. Words are folded (case, accents) by `index.words`
before PostgreSQL sees them, as the other backends fold them.

Near-misses go through pg_trgm on the vocabulary of the names, skills and providers (each word
once, under a trigram index), not on each agent's concatenated text: there, `<%` rechecked
word_similarity over ~340 characters per candidate and a typo's trigrams picked a third of the
agents as candidates (150-420 ms at 10k agents); on the vocabulary it takes about a
millisecond, and the near-miss words found are then matched like any word (`index`). Beside
each word, the scopes it is used in (`index.vocabulary_scope`: public, or a tenant's private
agents) and by how many agents in each: a search keeps the words used in a scope the caller
may see before it ranks them, so other tenants' private words never compete.

Skill keys and tags are text[] under GIN indexes, for exact filters; goal fields live beside
the rows (`summaries`), so goal events, the bulk of the log, write only their own table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from application.ports import ReadStore, Tx
from domain.goals import AgentGoals
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
from projections.search import reachability, summaries
from projections.search.index import (
    EXPANSIONS,
    FIELDS,
    FUZZY_FACTOR,
    MIN_FUZZY_LEN,
    SCORE_DIGITS,
    Labels,
    SearchDocument,
    VocabularyChanges,
    document,
    exact_score,
    prefix_score,
    scopes_seen_by,
    vocabulary_scope,
)
from projections.search.reachability import apply_reachability
from projections.search.sql import Fragment, SqlAgentSearch, TextMatch

WEIGHTS = {"name": "A", "skills": "B", "description": "C", "provider": "D"}
LABELS = "ABD"  # the weights of the fields near-misses are looked for in
KEY_COLUMNS = {"skill": "skill_keys", "tag": "tags"}
# GIN's pending list takes writes fast and reads slowly: every search scans it, and the
# planner, costing it, left the trigram index unused (an 8 ms scan of the vocabulary instead
# of 0.05 ms) until a vacuum merged it. Registry writes are few; searches are many.
NO_PENDING_LIST = "WITH (fastupdate = off)"
VECTOR = " || ".join(f"setweight(to_tsvector('simple'::regconfig, ?), '{WEIGHTS[f]}')" for f in FIELDS)


def _ddl(trgm: str) -> tuple[str, ...]:
    return (
        "CREATE TABLE IF NOT EXISTS agent_search ("
        ' tenant TEXT COLLATE "C" NOT NULL, agent_id TEXT COLLATE "C" NOT NULL, visibility TEXT NOT NULL,'
        " doc TSVECTOR NOT NULL, skill_keys TEXT[] NOT NULL, tags TEXT[] NOT NULL,"
        " updated_at TIMESTAMPTZ NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, agent_id))",
        "ALTER TABLE agent_search ALTER COLUMN doc SET STORAGE MAIN",
        f"CREATE INDEX IF NOT EXISTS agent_search_doc ON agent_search USING gin (doc) {NO_PENDING_LIST}",
        "CREATE INDEX IF NOT EXISTS agent_search_skill_keys ON agent_search"
        f" USING gin (skill_keys) {NO_PENDING_LIST}",
        f"CREATE INDEX IF NOT EXISTS agent_search_tags ON agent_search USING gin (tags) {NO_PENDING_LIST}",
        "CREATE INDEX IF NOT EXISTS agent_search_recent ON agent_search (updated_at DESC, tenant, agent_id)",
        'CREATE TABLE IF NOT EXISTS agent_search_words (word TEXT COLLATE "C" PRIMARY KEY)',
        "CREATE INDEX IF NOT EXISTS agent_search_words_trigrams"
        f" ON agent_search_words USING gin (word {trgm}.gin_trgm_ops) {NO_PENDING_LIST}",
        "CREATE TABLE IF NOT EXISTS agent_search_word_scopes ("
        ' word TEXT COLLATE "C" NOT NULL, scope TEXT COLLATE "C" NOT NULL, docs INTEGER NOT NULL,'
        " PRIMARY KEY (word, scope))",
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
    """The search read model on PostgreSQL: a row per registered agent, the vocabulary of
    near-misses by scope, goal summaries beside."""

    name = "agent_search"
    tables = (
        "agent_search",
        "agent_search_words",
        "agent_search_word_scopes",
        summaries.TABLE,
        reachability.TABLE,
    )

    def create_tables(self, tx: Tx) -> None:
        """The tables; a vocabulary of earlier versions, in one scope, is counted again by scope."""
        trgm = trgm_schema(tx, create=True)
        unscoped = _has_unscoped_vocabulary(tx)
        if unscoped:
            tx.execute("DROP TABLE agent_search_words")
        for statement in (*_ddl(trgm), *summaries.DDL, *reachability.DDL):
            tx.execute(statement)
        if unscoped:
            _count_words(tx, _vocabulary_of_rows(tx))

    def apply(self, tx: Tx, events: LogPage) -> None:
        goal_events = []
        vocabulary = VocabularyChanges()
        for position, event in events:
            if isinstance(event, AgentGoals.Event):
                goal_events.append((position, event))
            elif (change := registry_change(event)) is not None:
                self._apply_registry(tx, position, change, vocabulary)
            apply_reachability(tx, position, event)
        if goal_events:
            summaries.apply_goal_events(tx, goal_events)
        _count_words(tx, vocabulary)

    def _apply_registry(self, tx: Tx, position: int, event: Change, vocabulary: VocabularyChanges) -> None:
        key = event.key
        at = utc(event.at)
        old = _labels(tx, key)
        match event:
            case Listed():
                card = document(event.card)
                tx.execute(
                    "INSERT INTO agent_search (tenant, agent_id, visibility, doc, skill_keys, tags,"
                    f" updated_at, position) VALUES (?, ?, ?, {VECTOR}, ?, ?, ?, ?)"
                    " ON CONFLICT (tenant, agent_id) DO UPDATE SET visibility = excluded.visibility,"
                    " doc = excluded.doc, skill_keys = excluded.skill_keys, tags = excluded.tags,"
                    " updated_at = excluded.updated_at, position = excluded.position",
                    (*key, event.visibility, *_values(card), at, position),
                )
                scope = vocabulary_scope(key[0], event.visibility)
                vocabulary.replace(old, Labels(scope, frozenset(card.labels())))
            case CardChanged() if old is not None:
                card = document(event.card)
                tx.execute(
                    f"UPDATE agent_search SET doc = {VECTOR}, skill_keys = ?, tags = ?, updated_at = ?,"
                    " position = ? WHERE tenant = ? AND agent_id = ?",
                    (*_values(card), at, position, *key),
                )
                vocabulary.replace(old, Labels(old.scope, frozenset(card.labels())))
            case VisibilityChanged() if old is not None:
                tx.execute(
                    "UPDATE agent_search SET visibility = ?, updated_at = ?, position = ?"
                    " WHERE tenant = ? AND agent_id = ?",
                    (event.visibility, at, position, *key),
                )
                vocabulary.replace(old, Labels(vocabulary_scope(key[0], event.visibility), old.words))
            case Unlisted() if old is not None:
                tx.execute("DELETE FROM agent_search WHERE tenant = ? AND agent_id = ?", key)
                vocabulary.replace(old, None)


def _values(card: SearchDocument) -> tuple[Any, ...]:
    fields = card.field_words()
    return (*(fields[f] for f in FIELDS), list(card.skill_keys), list(card.tags))


def _labels(tx: Tx, key: tuple[str, str]) -> Labels | None:
    """The label words of an agent's row (the name's, skills' and provider's) in their
    scope; None without a row."""
    row = tx.fetchone("SELECT visibility FROM agent_search WHERE tenant = ? AND agent_id = ?", key)
    if row is None:
        return None
    rows = tx.fetchall(
        "SELECT u.lexeme FROM agent_search s, unnest(s.doc) u"
        " WHERE s.tenant = ? AND s.agent_id = ? AND u.weights && ?::text[]",
        (*key, list(LABELS)),
    )
    return Labels(vocabulary_scope(key[0], str(row[0])), frozenset(str(r[0]) for r in rows))


def _has_unscoped_vocabulary(tx: Tx) -> bool:
    """Whether the vocabulary is an earlier version's: each word once, counted over every agent."""
    found = tx.fetchone(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'agent_search_words' AND column_name = 'docs'"
    )
    return found is not None


def _vocabulary_of_rows(tx: Tx) -> VocabularyChanges:
    """The vocabulary the rows give, counted from nothing."""
    rows = tx.fetchall(
        "SELECT s.tenant, s.visibility, u.lexeme FROM agent_search s, unnest(s.doc) u"
        " WHERE u.weights && ?::text[]",
        (list(LABELS),),
    )
    return VocabularyChanges((vocabulary_scope(str(t), str(v)), str(w)) for t, v, w in rows)


def _count_words(tx: Tx, vocabulary: VocabularyChanges) -> None:
    """Apply a page's changes to the vocabulary: one upsert of the counts by scope; words no
    agent uses in a scope leave it, and words no scope holds leave the vocabulary."""
    changed = vocabulary.changed()
    if not changed:
        return
    scopes, words = [s for s, _ in changed], [w for _, w in changed]
    tx.execute(
        "INSERT INTO agent_search_word_scopes (word, scope, docs)"
        " SELECT * FROM unnest(?::text[], ?::text[], ?::integer[])"
        " ON CONFLICT (word, scope) DO UPDATE SET docs = agent_search_word_scopes.docs + excluded.docs",
        (words, scopes, list(changed.values())),
    )
    more = sorted({w for (_, w), delta in changed.items() if delta > 0})
    if more:
        tx.execute(
            "INSERT INTO agent_search_words (word) SELECT unnest(?::text[]) ON CONFLICT (word) DO NOTHING",
            (more,),
        )
    fewer = [entry for entry, delta in changed.items() if delta < 0]
    if fewer:
        tx.execute(
            "DELETE FROM agent_search_word_scopes c USING unnest(?::text[], ?::text[]) AS f(word, scope)"
            " WHERE c.word = f.word AND c.scope = f.scope AND c.docs <= 0",
            ([w for _, w in fewer], [s for s, _ in fewer]),
        )
        tx.execute(
            "DELETE FROM agent_search_words w WHERE w.word = ANY(?::text[])"
            " AND NOT EXISTS (SELECT 1 FROM agent_search_word_scopes c WHERE c.word = w.word)",
            (sorted({w for _, w in fewer}),),
        )


class PostgresAgentSearch(SqlAgentSearch):
    """Searches agent_search on PostgreSQL."""

    backend = "postgres"

    def __init__(self, store: ReadStore) -> None:
        super().__init__(store)
        self._trgm: str | None = None

    def _text(self, tx: Tx, tenant: str, terms: Sequence[str]) -> TextMatch:
        scores, where = [], []
        for term in terms:
            near = self._near_misses(tx, tenant, term)
            alternatives = " | ".join([f"{term}:*", *(f"{word}:{LABELS}" for word, _ in near)])
            where.append(Fragment("s.doc @@ to_tsquery('simple', ?)", (alternatives,)))
            scores.append(_term_score(term, near))
        total = " + ".join(s.sql for s in scores)
        score = Fragment(
            f"round((({total}) / {len(terms)})::numeric, {SCORE_DIGITS})::float8",
            [p for s in scores for p in s.params],
        )
        return TextMatch(source=Fragment("agent_search s"), score=score, where=where)

    def _near_misses(self, tx: Tx, tenant: str, term: str) -> list[tuple[str, float]]:
        """The words most like `term` (but those it is a prefix of: found anyway) among those
        used in the scopes `tenant` sees; words of other scopes are left out before ranking."""
        if len(term) < MIN_FUZZY_LEN:
            return []
        if self._trgm is None:
            self._trgm = trgm_schema(tx)
        # `%%`: the driver reads a lone % as the start of a placeholder (pg_trgm's `<%`).
        rows = tx.fetchall(
            f"SELECT w.word, {self._trgm}.word_similarity(?, w.word) AS similarity FROM agent_search_words w"
            f" WHERE ? OPERATOR({self._trgm}.<%%) w.word AND left(w.word, ?) <> ?"
            " AND EXISTS (SELECT 1 FROM agent_search_word_scopes c WHERE c.word = w.word AND c.scope IN (?, ?))"
            " ORDER BY similarity DESC, w.word LIMIT ?",
            (term, term, len(term), term, *scopes_seen_by(tenant), EXPANSIONS),
        )
        return [(str(word), float(similarity)) for word, similarity in rows]

    def _key_filter(self, kind: str, key: str) -> Fragment:
        return Fragment(f"s.{KEY_COLUMNS[kind]} @> ARRAY[?]::text[]", (key,))

    def _instant(self, moment: datetime) -> Any:
        return utc(moment)

    def _cursor_instant(self, stored: Any) -> str:
        assert isinstance(stored, datetime)
        return utc(stored).isoformat()


def _term_score(term: str, near: list[tuple[str, float]]) -> Fragment:
    """The term's best match: a whole word by field weight, then a prefix, then the most
    similar near-miss."""
    cases, params = [], []
    for suffix, score in (("", exact_score), ("*", prefix_score)):
        for field in FIELDS:
            cases.append(f"WHEN s.doc @@ to_tsquery('simple', ?) THEN {score(field)!r}::float8")
            params.append(f"{term}:{suffix}{WEIGHTS[field]}")
    for word, similarity in near:
        cases.append(f"WHEN s.doc @@ to_tsquery('simple', ?) THEN {FUZZY_FACTOR * similarity!r}::float8")
        params.append(f"{word}:{LABELS}")
    return Fragment(f"CASE {' '.join(cases)} ELSE 0::float8 END", params)
