"""Reads of the agent_cards read model. Every read applies the one visibility rule: a tenant
sees all of its own agents and the public agents of others, never a deregistered one."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from application.ports import ReadStore

RECORD_COLUMNS = (
    "c.tenant, c.agent_id, c.public_id, c.visibility, c.card, c.card_hash, c.card_url, c.signature,"
    " c.signature_detail, c.origin, c.registered_by, c.version, c.registered_at, c.updated_at,"
    " CASE WHEN g.position > c.position THEN g.position ELSE c.position END,"  # card or goals: the later
    " g.goal_status, g.overall_progress, g.objectives_count, g.milestones_achieved, g.last_updated,"
    " r.reachable, r.error, r.since, k.last_checked"
)
FROM = (
    "agent_cards c LEFT JOIN agent_goal_summaries g ON g.tenant = c.tenant AND g.agent_id = c.agent_id"
    " LEFT JOIN agent_reachability r ON r.tenant = c.tenant AND r.agent_id = c.agent_id"
    " LEFT JOIN agent_reachability_checks k ON k.tenant = c.tenant AND k.agent_id = c.agent_id"
)
VISIBLE = "c.deleted = 0 AND (c.tenant = ? OR c.visibility = 'public')"


@dataclass(frozen=True)
class GoalsBlock:
    """The goals extension's params, as of the read model's position."""

    has_goals: bool
    goal_status: str | None = None
    overall_progress: float | None = None
    objectives_count: int = 0
    milestones_achieved: int = 0
    last_updated: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "has_goals": self.has_goals,
            "goal_status": self.goal_status,
            "overall_progress": self.overall_progress,
            "objectives_count": self.objectives_count,
            "milestones_achieved": self.milestones_achieved,
            "last_updated": self.last_updated,
        }


@dataclass(frozen=True)
class Reachability:
    """Whether the agent's own card URL answered at the last check (None: not checked yet),
    since when that holds, the error that made it unreachable, and when it was last checked."""

    reachable: bool | None = None
    since: str | None = None
    last_error: str | None = None
    last_checked: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "since": self.since,
            "last_error": self.last_error,
            "last_checked": self.last_checked,
        }


@dataclass(frozen=True)
class AgentRecord:
    tenant: str
    agent_id: str
    public_id: str
    visibility: str
    card: dict[str, Any]
    card_hash: str
    card_url: str | None
    signature: str
    signature_detail: str
    origin: str
    registered_by: str
    version: int
    registered_at: str
    updated_at: str
    position: int
    goals: GoalsBlock
    reachability: Reachability = Reachability()

    def view(self, caller: str) -> dict[str, Any]:
        """The record as the API shows it to tenant `caller`."""
        owned = caller == self.tenant
        return {
            "agent_id": self.agent_id if owned else self.public_id,
            "id": self.public_id,
            "owned": owned,
            "visibility": self.visibility,
            "card": self.card,
            "card_hash": self.card_hash,
            # Another tenant's card_url without its query, which may carry a credential.
            "card_url": self.card_url if owned or self.card_url is None else self.card_url.split("?", 1)[0],
            "signature": {"state": self.signature, "detail": self.signature_detail},
            "version": self.version,
            "registered_at": self.registered_at,
            "updated_at": self.updated_at,
            "origin": self.origin or "local",
            "goals": self.goals.params(),
            "reachability": self.reachability.view(),
        }


@dataclass(frozen=True)
class IndexPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


class MalformedCursor(ValueError):
    """A cursor this registry did not give out."""


class AgentCardsQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def visible(self, tenant: str, ref: str) -> AgentRecord | None:
        """The caller's own agent `ref`, or else the public agent whose public id is `ref`."""
        with self._store.read() as tx:
            row = tx.fetchone(
                f"SELECT {RECORD_COLUMNS} FROM {FROM} WHERE c.tenant = ? AND c.agent_id = ? AND c.deleted = 0",
                (tenant, ref),
            )
            if row is None:
                row = tx.fetchone(
                    f"SELECT {RECORD_COLUMNS} FROM {FROM} WHERE c.public_id = ? AND {VISIBLE}",
                    (ref, tenant),
                )
        return _record(row) if row is not None else None

    def records(self, tenant: str, keys: Sequence[tuple[str, str]]) -> list[AgentRecord]:
        """The records of (tenant, agent_id) `keys` that `tenant` may see, in the order given
        (what search found; read again here so that the visibility rule is applied twice)."""
        found: dict[tuple[str, str], AgentRecord] = {}
        with self._store.read() as tx:
            for start in range(0, len(keys), 100):
                chunk = keys[start : start + 100]
                pairs = " OR ".join("(c.tenant = ? AND c.agent_id = ?)" for _ in chunk)
                rows = tx.fetchall(
                    f"SELECT {RECORD_COLUMNS} FROM {FROM} WHERE ({pairs}) AND {VISIBLE}",
                    [*(v for key in chunk for v in key), tenant],
                )
                for row in rows:
                    record = _record(row)
                    found[(record.tenant, record.agent_id)] = record
        return [found[key] for key in keys if key in found]

    def public(self, public_id: str) -> AgentRecord | None:
        """A public agent by its public id (what the well-known documents serve)."""
        with self._store.read() as tx:
            row = tx.fetchone(
                f"SELECT {RECORD_COLUMNS} FROM {FROM}"
                " WHERE c.public_id = ? AND c.deleted = 0 AND c.visibility = 'public'",
                (public_id,),
            )
        return _record(row) if row is not None else None

    def registered_by(self, tenant: str, actor: str) -> int:
        """How many live agents this client registered (MAX_AGENTS_PER_CLIENT)."""
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT COUNT(*) FROM agent_cards WHERE tenant = ? AND registered_by = ? AND deleted = 0",
                (tenant, actor),
            )
        return int(row[0]) if row else 0

    def copies_of(self, peer_url: str) -> list[str]:
        """The remote ids of the live copies of a peer's agents."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT public_id FROM agent_cards WHERE origin = ? AND deleted = 0", (peer_url,)
            )
        return [str(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        """Agents by state, registry-wide (for the agents_total metric)."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT CASE WHEN deleted = 1 THEN 'deregistered' ELSE visibility END, COUNT(*)"
                " FROM agent_cards GROUP BY 1"
            )
        return {str(r[0]): int(r[1]) for r in rows}

    def public_index(
        self, *, updated_since: str | None, cursor: str | None, limit: int, include_deleted: bool
    ) -> IndexPage:
        """Public agents in (updated_at, public_id) order, for peers to sync incrementally;
        with `include_deleted`, tombstones of agents deregistered or made private."""
        # Tombstones only of agents that were public once: a private agent is never mentioned.
        where = ["c.ever_public = 1"] if include_deleted else ["c.deleted = 0 AND c.visibility = 'public'"]
        where.append("c.origin = ''")  # our own agents only: peers' copies are not echoed back
        params: list[Any] = []
        if updated_since is not None:
            where.append("c.updated_at >= ?")
            params.append(updated_since)
        if cursor is not None:
            at, after = _decode(cursor)
            where.append("(c.updated_at > ? OR (c.updated_at = ? AND c.public_id > ?))")
            params += [at, at, after]
        with self._store.read() as tx:
            rows = tx.fetchall(
                f"SELECT {RECORD_COLUMNS}, c.deleted FROM {FROM} WHERE {' AND '.join(where)}"
                " ORDER BY c.updated_at, c.public_id LIMIT ?",
                [*params, limit + 1],
            )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [_index_entry(_record(r[:-1]), bool(r[-1])) for r in rows]
        last = items[-1] if more and items else None
        return IndexPage(items, _encode(last["updated_at"], last["id"]) if last else None)


def _index_entry(record: AgentRecord, deleted: bool) -> dict[str, Any]:
    if deleted or record.visibility != "public":
        return {"id": record.public_id, "deleted": True, "updated_at": record.updated_at}
    card = record.card
    skills = [s for s in card.get("skills", []) if isinstance(s, dict)]
    return {
        "id": record.public_id,
        "deleted": False,
        "name": card.get("name"),
        "description": card.get("description"),
        "skills": [s.get("id") for s in skills],
        "tags": sorted({t for s in skills for t in s.get("tags", []) if isinstance(t, str)}),
        "updated_at": record.updated_at,
        "goals": record.goals.params(),
    }


def _record(row: Any) -> AgentRecord:
    has_goals = row[15] is not None
    goals = (
        GoalsBlock(True, row[15], float(row[16]), int(row[17]), int(row[18]), row[19])
        if has_goals
        else GoalsBlock(False)
    )
    return AgentRecord(
        tenant=row[0],
        agent_id=row[1],
        public_id=row[2],
        visibility=row[3],
        card=orjson.loads(row[4]),
        card_hash=row[5],
        card_url=row[6],
        signature=row[7],
        signature_detail=row[8],
        origin=row[9],
        registered_by=row[10],
        version=int(row[11]),
        registered_at=row[12],
        updated_at=row[13],
        position=int(row[14]),
        goals=goals,
        reachability=Reachability(
            None if row[20] is None else bool(row[20]),
            row[22],
            (row[21] or None) if row[20] == 0 else None,
            row[23],
        ),
    )


def _encode(updated_at: str, public_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([updated_at, public_id])).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, str]:
    try:
        at, after = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as e:
        raise MalformedCursor(cursor) from e
    if not isinstance(at, str) or not isinstance(after, str):
        raise MalformedCursor(cursor)
    return at, after
