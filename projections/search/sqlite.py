"""agent_search on SQLite (the embedded default): FTS5, with the same semantics as PostgreSQL.

An agent's row in `agent_search` is linked by its rowid (`doc`) to its words in an FTS5 table
(a column per weighted field), and to its skill keys and tags (`agent_search_keys`). Whole
words and prefixes (`"x"*`) are FTS5 queries per field, scored as `index` says: no bm25, whose
corpus statistics would move a hit's score, and a cursor with it, whenever an agent is
registered.

Near-misses: the words of every name, skill and provider (a vocabulary), each with pg_trgm's
trigrams (`index.trigrams`) and the scopes it is used in (`index.vocabulary_scope`: public, or
a tenant's private agents), by how many agents in each. A word of the query finds the words
that hold enough of its trigrams to reach FUZZY_THRESHOLD (word similarity is at most the
share of the query word's trigrams a word holds) and are used in a scope the caller sees,
keeps the EXPANSIONS most similar, and matches those as whole words. Nothing else ranks the
candidates (FTS5's trigram tokenizer ranked them by bm25, over the words of every scope), so
other tenants' private words never compete, and words are picked as PostgreSQL picks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from application.ports import Tx
from domain.goals import AgentGoals
from projections.instants import sqlite_instant
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
    FUZZY_THRESHOLD,
    MIN_FUZZY_LEN,
    SCORE_DIGITS,
    Labels,
    SearchDocument,
    VocabularyChanges,
    document,
    exact_score,
    prefix_score,
    scopes_seen_by,
    trigrams,
    trigrams_needed,
    vocabulary_scope,
    word_similarity,
)
from projections.search.reachability import apply_reachability
from projections.search.sql import Fragment, SqlAgentSearch, TextMatch

CHUNK = 500
LABEL_FIELDS = "{name skills provider}"
DDL = (
    "CREATE TABLE IF NOT EXISTS agent_search ("
    " doc INTEGER PRIMARY KEY, tenant TEXT NOT NULL, agent_id TEXT NOT NULL, visibility TEXT NOT NULL,"
    " updated_at TEXT NOT NULL, position INTEGER NOT NULL, UNIQUE (tenant, agent_id))",
    "CREATE INDEX IF NOT EXISTS agent_search_recent ON agent_search (updated_at DESC, tenant, agent_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS agent_search_text USING fts5("
    f"{', '.join(FIELDS)}, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS agent_search_keys ("
    " kind TEXT NOT NULL, key TEXT NOT NULL, doc INTEGER NOT NULL, PRIMARY KEY (kind, key, doc)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS agent_search_keys_doc ON agent_search_keys (doc)",
    "CREATE TABLE IF NOT EXISTS agent_search_words (id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS agent_search_word_scopes ("
    " word INTEGER NOT NULL, scope TEXT NOT NULL, docs INTEGER NOT NULL, PRIMARY KEY (word, scope))"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS agent_search_word_trigrams ("
    " trigram TEXT NOT NULL, word INTEGER NOT NULL, PRIMARY KEY (trigram, word)) WITHOUT ROWID",
)
Key = tuple[str, str]


class SQLiteSearchProjection:
    """The search read model on SQLite: rows, their FTS5 words and keys, the vocabulary of
    near-misses by scope, and goal summaries."""

    name = "agent_search"
    tables = (
        "agent_search",
        "agent_search_text",
        "agent_search_keys",
        "agent_search_words",
        "agent_search_word_scopes",
        "agent_search_word_trigrams",
        summaries.TABLE,
        reachability.TABLE,
    )

    def create_tables(self, tx: Tx) -> None:
        """The tables; a vocabulary of earlier versions, in one scope, is counted again by scope."""
        unscoped = _has_unscoped_vocabulary(tx)
        if unscoped:
            tx.execute("DROP TABLE IF EXISTS agent_search_trigrams")
            tx.execute("DROP TABLE agent_search_words")
        for statement in (*DDL, *summaries.DDL, *reachability.DDL):
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
        at = sqlite_instant(event.at)
        found = _entry(tx, key)
        match event:
            case Listed():
                if found is None:
                    row = tx.fetchone(
                        "INSERT INTO agent_search (tenant, agent_id, visibility, updated_at, position)"
                        " VALUES (?, ?, ?, ?, ?) RETURNING doc",
                        (*key, event.visibility, at, position),
                    )
                    assert row is not None
                    doc, old = int(row[0]), None
                else:
                    doc, old = found
                    _drop_words(tx, doc)
                    tx.execute(
                        "UPDATE agent_search SET visibility = ?, updated_at = ?, position = ? WHERE doc = ?",
                        (event.visibility, at, position, doc),
                    )
                card = document(event.card)
                _write_words(tx, doc, card)
                scope = vocabulary_scope(key[0], event.visibility)
                vocabulary.replace(old, Labels(scope, frozenset(card.labels())))
            case CardChanged() if found is not None:
                doc, old = found
                card = document(event.card)
                _drop_words(tx, doc)
                _write_words(tx, doc, card)
                tx.execute(
                    "UPDATE agent_search SET updated_at = ?, position = ? WHERE doc = ?", (at, position, doc)
                )
                vocabulary.replace(old, Labels(old.scope, frozenset(card.labels())))
            case VisibilityChanged() if found is not None:
                doc, old = found
                tx.execute(
                    "UPDATE agent_search SET visibility = ?, updated_at = ?, position = ? WHERE doc = ?",
                    (event.visibility, at, position, doc),
                )
                vocabulary.replace(old, Labels(vocabulary_scope(key[0], event.visibility), old.words))
            case Unlisted() if found is not None:
                doc, old = found
                _drop_words(tx, doc)
                tx.execute("DELETE FROM agent_search WHERE doc = ?", (doc,))
                vocabulary.replace(old, None)


def _entry(tx: Tx, key: Key) -> tuple[int, Labels] | None:
    """An agent's row and its label words (the name's, skills' and provider's) in their
    scope; None without a row."""
    row = tx.fetchone(
        "SELECT s.doc, s.visibility, t.name, t.skills, t.provider FROM agent_search s"
        " JOIN agent_search_text t ON t.rowid = s.doc WHERE s.tenant = ? AND s.agent_id = ?",
        key,
    )
    if row is None:
        return None
    doc, visibility, *labels = row
    return int(doc), Labels(vocabulary_scope(key[0], str(visibility)), frozenset(" ".join(labels).split()))


def _write_words(tx: Tx, doc: int, card: SearchDocument) -> None:
    fields = card.field_words()
    tx.execute(
        f"INSERT INTO agent_search_text (rowid, {', '.join(FIELDS)}) VALUES (?, ?, ?, ?, ?)",
        (doc, *(fields[f] for f in FIELDS)),
    )
    keys = [("skill", k, doc) for k in card.skill_keys] + [("tag", t, doc) for t in card.tags]
    if keys:
        tx.executemany("INSERT OR IGNORE INTO agent_search_keys (kind, key, doc) VALUES (?, ?, ?)", keys)


def _drop_words(tx: Tx, doc: int) -> None:
    tx.execute("DELETE FROM agent_search_text WHERE rowid = ?", (doc,))
    tx.execute("DELETE FROM agent_search_keys WHERE doc = ?", (doc,))


def _has_unscoped_vocabulary(tx: Tx) -> bool:
    """Whether the vocabulary is an earlier version's: each word once, counted over every
    agent (and indexed by FTS5's trigram tokenizer)."""
    found = tx.fetchone("SELECT 1 FROM pragma_table_info('agent_search_words') WHERE name = 'docs'")
    return found is not None


def _vocabulary_of_rows(tx: Tx) -> VocabularyChanges:
    """The vocabulary the rows give, counted from nothing."""
    vocabulary = VocabularyChanges()
    rows = tx.fetchall(
        "SELECT s.tenant, s.visibility, t.name, t.skills, t.provider FROM agent_search s"
        " JOIN agent_search_text t ON t.rowid = s.doc"
    )
    for tenant, visibility, *labels in rows:
        scope = vocabulary_scope(str(tenant), str(visibility))
        vocabulary.replace(None, Labels(scope, frozenset(" ".join(labels).split())))
    return vocabulary


def _count_words(tx: Tx, vocabulary: VocabularyChanges) -> None:
    """Apply a page's changes to the vocabulary: words new to it enter with their trigrams,
    the counts by scope are added to, a scope no agent uses a word in any more leaves it, and
    so does a word left in no scope. A read or two and a few batched writes per page."""
    changed = vocabulary.changed()
    if not changed:
        return
    ids = _word_ids(tx, sorted({word for _, word in changed}))
    new = sorted({word for (_, word), delta in changed.items() if delta > 0 and word not in ids})
    if new:
        top = tx.fetchone("SELECT COALESCE(MAX(id), 0) FROM agent_search_words")
        first = int(top[0]) + 1 if top else 1
        added = {word: first + n for n, word in enumerate(new)}
        tx.executemany(
            "INSERT INTO agent_search_words (id, word) VALUES (?, ?)", [(i, w) for w, i in added.items()]
        )
        tx.executemany(
            "INSERT INTO agent_search_word_trigrams (trigram, word) VALUES (?, ?)",
            [(gram, i) for word, i in added.items() for gram in sorted(set(trigrams(word)))],
        )
        ids.update(added)
    tx.executemany(
        "INSERT INTO agent_search_word_scopes (word, scope, docs) VALUES (?, ?, ?)"
        " ON CONFLICT (word, scope) DO UPDATE SET docs = docs + excluded.docs",
        [(ids[word], scope, delta) for (scope, word), delta in changed.items()],
    )
    fewer = [(ids[word], scope) for (scope, word), delta in changed.items() if delta < 0]
    if fewer:
        tx.executemany(
            "DELETE FROM agent_search_word_scopes WHERE word = ? AND scope = ? AND docs <= 0", fewer
        )
        _drop_unused(tx, sorted({i for i, _ in fewer}))


def _word_ids(tx: Tx, words: list[str]) -> dict[str, int]:
    """The ids of those of `words` the vocabulary holds."""
    ids: dict[str, int] = {}
    for start in range(0, len(words), CHUNK):
        chunk = words[start : start + CHUNK]
        rows = tx.fetchall(
            f"SELECT word, id FROM agent_search_words WHERE word IN ({', '.join('?' * len(chunk))})", chunk
        )
        ids.update({str(word): int(i) for word, i in rows})
    return ids


def _drop_unused(tx: Tx, ids: list[int]) -> None:
    """Take the words of `ids` that no scope uses any more out of the vocabulary."""
    unused: list[tuple[int, str]] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows = tx.fetchall(
            f"SELECT id, word FROM agent_search_words w WHERE id IN ({', '.join('?' * len(chunk))})"
            " AND NOT EXISTS (SELECT 1 FROM agent_search_word_scopes c WHERE c.word = w.id)",
            chunk,
        )
        unused += [(int(i), str(word)) for i, word in rows]
    tx.executemany("DELETE FROM agent_search_words WHERE id = ?", [(i,) for i, _ in unused])
    tx.executemany(
        "DELETE FROM agent_search_word_trigrams WHERE trigram = ? AND word = ?",
        [(gram, i) for i, word in unused for gram in set(trigrams(word))],
    )


class SQLiteAgentSearch(SqlAgentSearch):
    """Searches agent_search on SQLite."""

    backend = "sqlite"

    def _text(self, tx: Tx, tenant: str, terms: Sequence[str]) -> TextMatch:
        """Every way each term matches, as (doc, term, score) rows; a doc's score per term is
        its best, and a doc matches when every term does."""
        arms: list[str] = []
        params: list[Any] = []
        select = (
            "SELECT rowid AS doc, {} AS term, {} AS s FROM agent_search_text WHERE agent_search_text MATCH ?"
        )
        for n, term in enumerate(terms):
            for field in FIELDS:
                arms += [
                    select.format(n, repr(exact_score(field))),
                    select.format(n, repr(prefix_score(field))),
                ]
                params += [f'{field} : "{term}"', f'{field} : "{term}" *']
            for word, similarity in self._near_misses(tx, tenant, term):
                arms.append(select.format(n, "?"))
                params += [FUZZY_FACTOR * similarity, f'{LABEL_FIELDS} : "{word}"']
        count = len(terms)
        ctes = [
            ("matched", Fragment(" UNION ALL ".join(arms), params)),
            ("per_term", Fragment("SELECT doc, term, MAX(s) AS s FROM matched GROUP BY doc, term")),
            (
                "scored",
                Fragment(
                    f"SELECT doc, ROUND(SUM(s) / {count}, {SCORE_DIGITS}) AS score FROM per_term"
                    f" GROUP BY doc HAVING COUNT(*) = {count}"
                ),
            ),
        ]
        return TextMatch(
            source=Fragment("scored t JOIN agent_search s ON s.doc = t.doc"),
            score=Fragment("t.score"),
            ctes=ctes,
        )

    def _near_misses(self, tx: Tx, tenant: str, term: str) -> list[tuple[str, float]]:
        """The words most like `term` (but those it is a prefix of: found anyway) among those
        used in the scopes `tenant` sees; words of other scopes are left out before ranking."""
        if len(term) < MIN_FUZZY_LEN:
            return []
        grams = sorted(set(trigrams(term)))
        rows = tx.fetchall(
            "SELECT w.word FROM (SELECT word FROM agent_search_word_trigrams"
            f" WHERE trigram IN ({', '.join('?' * len(grams))}) GROUP BY word HAVING COUNT(*) >= ?) c"
            " JOIN agent_search_words w ON w.id = c.word WHERE EXISTS (SELECT 1 FROM agent_search_word_scopes v"
            " WHERE v.word = c.word AND v.scope IN (?, ?))",
            (*grams, trigrams_needed(term), *scopes_seen_by(tenant)),
        )
        alike = [(w, word_similarity(term, w)) for (w,) in rows if not w.startswith(term)]
        alike = [(w, s) for w, s in alike if s >= FUZZY_THRESHOLD]
        return sorted(alike, key=lambda found: (-found[1], found[0]))[:EXPANSIONS]

    def _key_filter(self, kind: str, key: str) -> Fragment:
        return Fragment(
            "s.doc IN (SELECT doc FROM agent_search_keys WHERE kind = ? AND key = ?)", (kind, key)
        )

    def _instant(self, moment: datetime) -> Any:
        return sqlite_instant(moment)

    def _cursor_instant(self, stored: Any) -> str:
        return str(stored)
