"""The search query the SQL backends share: who may see what, the filters, one page with the
exact total of matches, and the cursor. Each backend says how words match and score (`TextMatch`).

One statement answers a page: the matches are gathered once (`hits`), counted, and the page is
taken after the cursor's sort key; so the total and the page agree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from application.ports import ReadStore, Tx
from projections.search.index import (
    InvalidCursor,
    SearchHit,
    SearchPage,
    SearchQuery,
    SortKey,
    decode_cursor,
    encode_cursor,
    fingerprint,
)


@dataclass(frozen=True)
class Fragment:
    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True)
class TextMatch:
    """How a backend finds and scores the rows matching every word: common table expressions
    to run first, the row source (an `agent_search` row as `s`), conditions, and the score."""

    source: Fragment
    score: Fragment
    where: list[Fragment] = field(default_factory=list)
    ctes: list[tuple[str, Fragment]] = field(default_factory=list)


class SqlAgentSearch(ABC):
    """The search on a SQL read store; subclasses match words and compare instants."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def search(self, tenant: str, query: SearchQuery) -> SearchPage:
        """See `AgentSearch.search`."""
        bound = fingerprint(tenant, query)
        relevance = bool(query.terms)
        after = decode_cursor(query.cursor, bound, relevance=relevance) if query.cursor else None
        with self._store.read() as tx:
            ctes, hits = self._hits(tx, tenant, query)
            page = self._page(relevance, after, query.limit)
            rows = tx.fetchall(_with(ctes, hits) + page.sql, (*_params(ctes, hits), *page.params))
            if rows:
                total = int(rows[0][4])
            elif after is None:
                total = 0
            else:  # past the last hit: the total still counts every hit
                count = tx.fetchone(_with(ctes, hits) + " SELECT count(*) FROM hits", _params(ctes, hits))
                total = int(count[0]) if count else 0
        items = [SearchHit(r[0], r[1], float(r[2]) if relevance else None) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = rows[query.limit - 1]
            first = float(last[2]) if relevance else self._cursor_instant(last[3])
            next_cursor = encode_cursor(bound, SortKey(first, last[0], last[1]))
        return SearchPage(items, total, next_cursor)

    # --- what each backend says ---------------------------------------------------------------

    @abstractmethod
    def _text(self, tx: Tx, tenant: str, terms: Sequence[str]) -> TextMatch:
        """How rows match every one of `terms` in a search by `tenant`, and their score."""

    @abstractmethod
    def _key_filter(self, kind: str, key: str) -> Fragment:
        """Rows of `s` whose skill keys (kind 'skill') or tags (kind 'tag') hold `key`."""

    @abstractmethod
    def _instant(self, moment: datetime) -> Any:
        """An instant as the updated_at column compares with it."""

    @abstractmethod
    def _cursor_instant(self, stored: Any) -> str:
        """An updated_at value as read, as a cursor carries it (ISO 8601)."""

    # --- shared ---------------------------------------------------------------------------

    def _hits(self, tx: Tx, tenant: str, query: SearchQuery) -> tuple[list[tuple[str, Fragment]], Fragment]:
        text = self._text(tx, tenant, query.terms) if query.terms else None
        where = list(text.where) if text else []
        if query.owned:
            where.append(Fragment("s.tenant = ?", (tenant,)))
        else:
            where.append(Fragment("(s.tenant = ? OR s.visibility = 'public')", (tenant,)))
        if query.skill_key is not None:
            where.append(self._key_filter("skill", query.skill_key))
        if query.tag_key is not None:
            where.append(self._key_filter("tag", query.tag_key))
        if query.since is not None:
            where.append(Fragment("s.updated_at >= ?", (self._instant(query.since),)))
        if query.reachable is not None:
            where.append(
                Fragment(
                    "EXISTS (SELECT 1 FROM agent_search_reachability r"
                    " WHERE r.tenant = s.tenant AND r.agent_id = s.agent_id AND r.reachable = ?)",
                    (int(query.reachable),),
                )
            )
        join = _goal_filters(query, where)
        source = text.source if text else Fragment("agent_search s")
        score = text.score if text else Fragment("NULL")
        hits = Fragment(
            f"SELECT s.tenant, s.agent_id, {score.sql} AS score, s.updated_at FROM {source.sql}{join}"
            f" WHERE {' AND '.join(f.sql for f in where)}",
            (*score.params, *source.params, *(p for f in where for p in f.params)),
        )
        return (text.ctes if text else []), hits

    def _page(self, relevance: bool, after: SortKey | None, limit: int) -> Fragment:
        """The page after `after`, one row more than the limit (is there a next page?)."""
        order = "score DESC" if relevance else "updated_at DESC"
        sql = " SELECT tenant, agent_id, score, updated_at, (SELECT count(*) FROM hits) FROM hits"
        params: list[Any] = []
        if after is not None:
            first_column = "score" if relevance else "updated_at"
            first = after.first if relevance else self._cursor_param(after.first)
            sql += (
                f" WHERE {first_column} < ? OR ({first_column} = ?"
                " AND (tenant > ? OR (tenant = ? AND agent_id > ?)))"
            )
            params += [first, first, after.tenant, after.tenant, after.agent_id]
        sql += f" ORDER BY {order}, tenant, agent_id LIMIT ?"
        return Fragment(sql, (*params, limit + 1))

    def _cursor_param(self, first: float | str | int) -> Any:
        if not isinstance(first, str):
            raise InvalidCursor("not a cursor this search handed out")
        try:
            moment = datetime.fromisoformat(first)
        except ValueError:
            raise InvalidCursor("not a cursor this search handed out") from None
        if moment.utcoffset() is None:
            raise InvalidCursor("not a cursor this search handed out")
        return self._instant(moment)


def _goal_filters(query: SearchQuery, where: list[Fragment]) -> str:
    """Add the goal filters to `where`; the join they need, if any."""
    wanted = [
        ("g.goal_status = ?", query.goal_status),
        ("g.overall_progress >= ?", query.min_progress),
        ("g.overall_progress <= ?", query.max_progress),
    ]
    conditions = [Fragment(sql, (value,)) for sql, value in wanted if value is not None]
    if not conditions:
        return ""
    where.extend(conditions)
    return " JOIN agent_search_goals g ON g.tenant = s.tenant AND g.agent_id = s.agent_id"


def _with(ctes: list[tuple[str, Fragment]], hits: Fragment) -> str:
    named = [f"{name} AS ({cte.sql})" for name, cte in ctes]
    return f"WITH {', '.join([*named, f'hits AS MATERIALIZED ({hits.sql})'])}"


def _params(ctes: list[tuple[str, Fragment]], hits: Fragment) -> list[Any]:
    return [*(p for _, cte in ctes for p in cte.params), *hits.params]
