"""agent_search on SQLite (the embedded default): FTS5, with the same semantics as PostgreSQL.

An agent's row in `agent_search` is linked by its rowid (`doc`) to its words in an FTS5 table
(a column per weighted field), and to its skill keys and tags (`agent_search_keys`). Whole
words and prefixes (`"x"*`) are FTS5 queries per field, scored as `index` says: no bm25, whose
corpus statistics would move a hit's score, and a cursor with it, whenever an agent is
registered.

Near-misses: the words of every name, skill and provider (a vocabulary, counted by how many
agents use each) are indexed by the FTS5 `trigram` tokenizer (SQLite 3.34 and later). A word
of the query finds the vocabulary words sharing its trigrams (the CANDIDATES best), keeps the
EXPANSIONS most similar by pg_trgm's word similarity, and matches those as whole words. Where
the tokenizer is missing, near-misses are not found; whole words and prefixes still are.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
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
from projections.search import summaries
from projections.search.index import (
    EXPANSIONS,
    FIELDS,
    FUZZY_FACTOR,
    FUZZY_THRESHOLD,
    MIN_FUZZY_LEN,
    SCORE_DIGITS,
    SearchDocument,
    document,
    exact_score,
    prefix_score,
    word_similarity,
)
from projections.search.sql import Fragment, SqlAgentSearch, TextMatch

log = logging.getLogger(__name__)
TRIGRAMS = sqlite3.sqlite_version_info >= (3, 34, 0)
CANDIDATES = 200  # vocabulary words sharing trigrams with a query word, most alike first
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
    "CREATE TABLE IF NOT EXISTS agent_search_words ("
    " id INTEGER PRIMARY KEY, word TEXT NOT NULL UNIQUE, docs INTEGER NOT NULL)",
)
TRIGRAM_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS agent_search_trigrams USING fts5(word, tokenize = 'trigram')"
)
Key = tuple[str, str]


class SQLiteSearchProjection:
    """The search read model on SQLite: rows, their FTS5 words and keys, the vocabulary of
    near-misses, and goal summaries."""

    name = "agent_search"
    tables = (
        "agent_search",
        "agent_search_text",
        "agent_search_keys",
        "agent_search_words",
        *(("agent_search_trigrams",) if TRIGRAMS else ()),
        summaries.TABLE,
    )

    def create_tables(self, tx: Tx) -> None:
        if not TRIGRAMS:
            log.warning(
                "SQLite %s has no trigram tokenizer: search finds no near-misses", sqlite3.sqlite_version
            )
        for statement in (*DDL, *((TRIGRAM_DDL,) if TRIGRAMS else ()), *summaries.DDL):
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        goal_events = []
        vocabulary: Counter[str] = Counter()  # how many more agents use each label word
        for position, event in events:
            if isinstance(event, AgentGoals.Event):
                goal_events.append((position, event))
            elif (change := registry_change(event)) is not None:
                self._apply_registry(tx, position, change, vocabulary)
        if goal_events:
            summaries.apply_goal_events(tx, goal_events)
        if TRIGRAMS:
            _count_words(tx, vocabulary)

    def _apply_registry(self, tx: Tx, position: int, event: Change, vocabulary: Counter[str]) -> None:
        key = event.key
        at = sqlite_instant(event.at)
        match event:
            case Listed():
                doc = _doc(tx, key)
                if doc is None:
                    row = tx.fetchone(
                        "INSERT INTO agent_search (tenant, agent_id, visibility, updated_at, position)"
                        " VALUES (?, ?, ?, ?, ?) RETURNING doc",
                        (*key, event.visibility, at, position),
                    )
                    assert row is not None
                    doc = int(row[0])
                else:
                    _drop_words(tx, doc, vocabulary)
                    tx.execute(
                        "UPDATE agent_search SET visibility = ?, updated_at = ?, position = ? WHERE doc = ?",
                        (event.visibility, at, position, doc),
                    )
                _write_words(tx, doc, document(event.card), vocabulary)
            case CardChanged():
                if (doc := _doc(tx, key)) is not None:
                    _drop_words(tx, doc, vocabulary)
                    _write_words(tx, doc, document(event.card), vocabulary)
                    tx.execute(
                        "UPDATE agent_search SET updated_at = ?, position = ? WHERE doc = ?",
                        (at, position, doc),
                    )
            case VisibilityChanged():
                tx.execute(
                    "UPDATE agent_search SET visibility = ?, updated_at = ?, position = ?"
                    " WHERE tenant = ? AND agent_id = ?",
                    (event.visibility, at, position, *key),
                )
            case Unlisted():
                if (doc := _doc(tx, key)) is not None:
                    _drop_words(tx, doc, vocabulary)
                    tx.execute("DELETE FROM agent_search WHERE doc = ?", (doc,))


def _doc(tx: Tx, key: Key) -> int | None:
    row = tx.fetchone("SELECT doc FROM agent_search WHERE tenant = ? AND agent_id = ?", key)
    return int(row[0]) if row else None


def _write_words(tx: Tx, doc: int, card: SearchDocument, vocabulary: Counter[str]) -> None:
    fields = card.field_words()
    tx.execute(
        f"INSERT INTO agent_search_text (rowid, {', '.join(FIELDS)}) VALUES (?, ?, ?, ?, ?)",
        (doc, *(fields[f] for f in FIELDS)),
    )
    keys = [("skill", k, doc) for k in card.skill_keys] + [("tag", t, doc) for t in card.tags]
    if keys:
        tx.executemany("INSERT OR IGNORE INTO agent_search_keys (kind, key, doc) VALUES (?, ?, ?)", keys)
    vocabulary.update(set(card.labels()))


def _drop_words(tx: Tx, doc: int, vocabulary: Counter[str]) -> None:
    row = tx.fetchone("SELECT name, skills, provider FROM agent_search_text WHERE rowid = ?", (doc,))
    if row is not None:
        vocabulary.subtract(set(" ".join(row).split()))
    tx.execute("DELETE FROM agent_search_text WHERE rowid = ?", (doc,))
    tx.execute("DELETE FROM agent_search_keys WHERE doc = ?", (doc,))


def _count_words(tx: Tx, deltas: Counter[str]) -> None:
    """Apply a page's changes to the vocabulary: words no agent uses any more leave it (and
    its trigram index), new ones enter both. One read and a few batched writes per page."""
    changed = {word: delta for word, delta in deltas.items() if delta}
    if not changed:
        return
    current: dict[str, tuple[int, int]] = {}
    words = list(changed)
    for start in range(0, len(words), CHUNK):
        chunk = words[start : start + CHUNK]
        rows = tx.fetchall(
            f"SELECT word, id, docs FROM agent_search_words WHERE word IN ({', '.join('?' * len(chunk))})",
            chunk,
        )
        current.update({word: (int(i), int(docs)) for word, i, docs in rows})
    gone = [(i,) for word, (i, docs) in current.items() if docs + changed[word] <= 0]
    kept = [(docs + changed[word], i) for word, (i, docs) in current.items() if docs + changed[word] > 0]
    tx.executemany("UPDATE agent_search_words SET docs = ? WHERE id = ?", kept)
    tx.executemany("DELETE FROM agent_search_words WHERE id = ?", gone)
    tx.executemany("DELETE FROM agent_search_trigrams WHERE rowid = ?", gone)
    new = [word for word, delta in changed.items() if word not in current and delta > 0]
    if new:
        top = tx.fetchone("SELECT COALESCE(MAX(id), 0) FROM agent_search_words")
        first = int(top[0]) + 1 if top else 1
        tx.executemany(
            "INSERT INTO agent_search_words (id, word, docs) VALUES (?, ?, ?)",
            [(first + n, word, changed[word]) for n, word in enumerate(new)],
        )
        tx.executemany(
            "INSERT INTO agent_search_trigrams (rowid, word) VALUES (?, ?)",
            [(first + n, word) for n, word in enumerate(new)],
        )


class SQLiteAgentSearch(SqlAgentSearch):
    """Searches agent_search on SQLite."""

    backend = "sqlite"

    def _text(self, tx: Tx, terms: Sequence[str]) -> TextMatch:
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
            for word, similarity in self._near_misses(tx, term):
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

    def _near_misses(self, tx: Tx, term: str) -> list[tuple[str, float]]:
        """The vocabulary words most like `term` (but those it is a prefix of: found anyway)."""
        if len(term) < MIN_FUZZY_LEN or not TRIGRAMS:
            return []
        grams = sorted({term[i : i + 3] for i in range(len(term) - 2)})
        rows = tx.fetchall(
            "SELECT word FROM agent_search_trigrams WHERE agent_search_trigrams MATCH ? ORDER BY rank LIMIT ?",
            (" OR ".join(f'"{g}"' for g in grams), CANDIDATES),
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
