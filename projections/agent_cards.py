"""agent_cards: the registry's records and, beside them, each agent's goal summary, which the
served card carries as its goals extension.

The two follow different aggregates of the same agent (RegisteredAgent and AgentGoals share
the agent_id within a tenant), so a card is served with the goals as of the same log position,
and goal events never touch the stored card. Caches of served cards are evicted after the page
that changed them commits (`committed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from application.json_encoding import encode_json
from application.ports import Tx
from domain.goals import AgentGoals
from domain.peers import FederatedAgent
from domain.registry import RegisteredAgent
from projections.goal_summaries import GoalSummary, Key, fold_page, starting
from projections.projection import LogPage
from projections.reachability import (
    REACHABILITY_DDL,
    REACHABILITY_TABLE,
    forget_reachability,
    record_reachability,
)
from projections.registry_changes import FEDERATED
from projections.views import iso

DDL = (
    "CREATE TABLE IF NOT EXISTS agent_cards ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, visibility TEXT NOT NULL, deleted INTEGER NOT NULL,"
    " card TEXT NOT NULL, card_hash TEXT NOT NULL, card_url TEXT, signature TEXT NOT NULL,"
    " signature_detail TEXT NOT NULL, origin TEXT NOT NULL, registered_by TEXT NOT NULL,"
    " version INTEGER NOT NULL, registered_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
    " position BIGINT NOT NULL, public_id TEXT NOT NULL, ever_public INTEGER NOT NULL, PRIMARY KEY (tenant, agent_id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS agent_cards_by_public_id ON agent_cards (public_id)",
    "CREATE INDEX IF NOT EXISTS agent_cards_public ON agent_cards (visibility, updated_at, tenant, agent_id)",
    "CREATE INDEX IF NOT EXISTS agent_cards_by_client ON agent_cards (tenant, registered_by, deleted)",
    "CREATE TABLE IF NOT EXISTS agent_goal_summaries ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, goal_status TEXT NOT NULL,"
    " overall_progress DOUBLE PRECISION NOT NULL, objectives_count INTEGER NOT NULL,"
    " milestones_achieved INTEGER NOT NULL, last_updated TEXT, objective_progress TEXT NOT NULL,"
    " position BIGINT NOT NULL, PRIMARY KEY (tenant, agent_id))",
    *REACHABILITY_DDL,
)
GOAL_COLUMNS = (
    "tenant",
    "agent_id",
    "goal_status",
    "overall_progress",
    "objectives_count",
    "milestones_achieved",
    "last_updated",
    "objective_progress",
    "position",
)


def _summary_values(key: Key, summary: GoalSummary) -> tuple[Any, ...]:
    return (
        *key,
        summary.goal_status,
        summary.overall_progress,
        summary.objectives_count,
        summary.milestones_achieved,
        summary.last_updated,
        encode_json(summary.objective_progress, from_log=True).decode(),
        summary.position,
    )


class AgentCardsProjection:
    """The registry's records and goal summaries. `evict` is told, after each commit, the
    agents whose served card may have changed (the card caches' invalidation)."""

    name = "agent_cards"
    # µs of replay per event: how rebuilds share the work (a goal event costs a summary fold)
    replay_cost = 4
    tables = ("agent_cards", "agent_goal_summaries", REACHABILITY_TABLE)

    def __init__(self, evict: Callable[[Mapping[Key, int]], bool] | None = None) -> None:
        self._evict = evict
        self._touched: dict[Key, int] = {}  # agent -> the last log position that changed it

    def fresh(self) -> AgentCardsProjection:
        return AgentCardsProjection(self._evict)

    def forget(self) -> None:
        """Nothing is remembered between pages but the keys still to evict, which stay."""

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        goal_events = []
        for position, event in events:
            if isinstance(event, RegisteredAgent.Event):
                self._apply_registry(tx, position, event)
                self._touched[(event.tenant, event.agent_id)] = position
            elif isinstance(event, FederatedAgent.Event):
                self._apply_federated(tx, position, event)
                self._touched[(FEDERATED, event.originator_id.hex)] = position
            elif isinstance(event, AgentGoals.Event):
                goal_events.append((position, event))
        if goal_events:
            self._apply_goals(tx, goal_events)

    def committed(self) -> None:
        """Called after a commit: evict what the pages applied so far touched. With pages in
        flight this may evict a little early too, and again after they commit: harmless."""
        if self._evict is not None and self._touched:
            touched, self._touched = self._touched, {}
            if not self._evict(touched):
                # Kept, with what later pages touch, for the next commit (until then the
                # cache's TTL bounds how long an answer can be stale).
                for key, position in touched.items():
                    self._touched[key] = max(position, self._touched.get(key, 0))

    # --- registry events -------------------------------------------------------------------

    def _apply_registry(self, tx: Tx, position: int, event: RegisteredAgent.Event) -> None:
        at = iso(event.timestamp)
        key = (event.tenant, event.agent_id)
        common = (event.originator_version, at, position)
        match event:
            case RegisteredAgent.AgentRegistered() | RegisteredAgent.AgentReregistered():
                ever_public = _ever_public(tx, key)
                tx.execute("DELETE FROM agent_cards WHERE tenant = ? AND agent_id = ?", key)
                forget_reachability(tx, key)  # a new record: not checked yet
                tx.execute(
                    "INSERT INTO agent_cards (tenant, agent_id, visibility, deleted, card, card_hash,"
                    " card_url, signature, signature_detail, origin, registered_by, version,"
                    " registered_at, updated_at, position, public_id, ever_public)"
                    " VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?)",
                    (
                        *key,
                        event.visibility,
                        encode_json(event.card, from_log=True).decode(),
                        event.card_hash,
                        event.card_url,
                        event.signature,
                        event.signature_detail,
                        event.actor,
                        event.originator_version,
                        at,
                        at,
                        position,
                        event.originator_id.hex,
                        int(event.visibility == "public" or ever_public),
                    ),
                )
            case RegisteredAgent.AgentCardUpdated():
                tx.execute(
                    "UPDATE agent_cards SET card = ?, card_hash = ?, card_url = ?, signature = ?,"
                    " signature_detail = ?, version = ?, updated_at = ?, position = ?"
                    " WHERE tenant = ? AND agent_id = ?",
                    (
                        encode_json(event.card, from_log=True).decode(),
                        event.card_hash,
                        event.card_url,
                        event.signature,
                        event.signature_detail,
                        *common,
                        *key,
                    ),
                )
            case RegisteredAgent.AgentVisibilityChanged():
                tx.execute(
                    "UPDATE agent_cards SET visibility = ?, version = ?, updated_at = ?, position = ?,"
                    " ever_public = CASE WHEN ? = 'public' THEN 1 ELSE ever_public END"
                    " WHERE tenant = ? AND agent_id = ?",
                    (event.visibility, *common, event.visibility, *key),
                )
            case RegisteredAgent.AgentDeregistered():
                tx.execute(
                    "UPDATE agent_cards SET deleted = 1, version = ?, updated_at = ?, position = ?"
                    " WHERE tenant = ? AND agent_id = ?",
                    (*common, *key),
                )
            case RegisteredAgent.ReachabilityChanged():
                # Not a change of the card: updated_at (the index's and peers' order) stays.
                tx.execute(
                    "UPDATE agent_cards SET version = ?, position = ? WHERE tenant = ? AND agent_id = ?",
                    (event.originator_version, position, *key),
                )
                record_reachability(tx, key, event, position)

    # --- copies of peers' agents -------------------------------------------------------

    def _apply_federated(self, tx: Tx, position: int, event: FederatedAgent.Event) -> None:
        """A copy is public, in no tenant (FEDERATED), keyed by its own aggregate id."""
        at = iso(event.timestamp)
        key = (FEDERATED, event.originator_id.hex)
        match event:
            case FederatedAgent.FederatedAgentImported() | FederatedAgent.FederatedAgentUpdated():
                tx.execute("DELETE FROM agent_cards WHERE tenant = ? AND agent_id = ?", key)
                tx.execute(
                    "INSERT INTO agent_cards (tenant, agent_id, visibility, deleted, card, card_hash,"
                    " card_url, signature, signature_detail, origin, registered_by, version,"
                    " registered_at, updated_at, position, public_id, ever_public)"
                    " VALUES (?, ?, 'public', 0, ?, ?, ?, 'unsigned', '', ?, '', ?, ?, ?, ?, ?, 1)",
                    (
                        *key,
                        encode_json(event.card, from_log=True).decode(),
                        event.card_hash,
                        event.card_url,
                        event.peer_url,
                        event.originator_version,
                        at,
                        at,
                        position,
                        event.originator_id.hex,
                    ),
                )
            case FederatedAgent.FederatedAgentRemoved():
                tx.execute(
                    "UPDATE agent_cards SET deleted = 1, version = ?, updated_at = ?, position = ?"
                    " WHERE tenant = ? AND agent_id = ?",
                    (event.originator_version, at, position, *key),
                )

    # --- goal events -----------------------------------------------------------------------

    def _apply_goals(self, tx: Tx, events: list[tuple[int, AgentGoals.Event]]) -> None:
        keys = {(e.tenant, e.agent_id) for _, e in events}
        changed = fold_page(events, _load(tx, keys - starting(events)))
        if changed:
            tx.upsert_rows(
                "agent_goal_summaries",
                GOAL_COLUMNS,
                ("tenant", "agent_id"),
                [_summary_values(k, s) for k, s in changed.items()],
            )
        self._touched.update((k, s.position) for k, s in changed.items())


def _ever_public(tx: Tx, key: Key) -> bool:
    """Whether peers may have seen the agent: they are owed a tombstone when it goes."""
    row = tx.fetchone("SELECT ever_public FROM agent_cards WHERE tenant = ? AND agent_id = ?", key)
    return bool(row and row[0])


def _load(tx: Tx, keys: set[Key]) -> dict[Key, GoalSummary]:
    by_tenant: dict[str, list[str]] = {}
    for tenant, agent_id in keys:
        by_tenant.setdefault(tenant, []).append(agent_id)
    found: dict[Key, GoalSummary] = {}
    for tenant, agent_ids in by_tenant.items():
        for start in range(0, len(agent_ids), 500):
            chunk = agent_ids[start : start + 500]
            rows = tx.fetchall(
                "SELECT agent_id, goal_status, overall_progress, objectives_count, milestones_achieved,"
                " last_updated, objective_progress, position FROM agent_goal_summaries"
                f" WHERE tenant = ? AND agent_id IN ({', '.join('?' * len(chunk))})",
                (tenant, *chunk),
            )
            for r in rows:
                found[(tenant, r[0])] = GoalSummary(
                    goal_status=r[1],
                    overall_progress=float(r[2]),
                    objectives_count=int(r[3]),
                    milestones_achieved=int(r[4]),
                    last_updated=r[5],
                    objective_progress=orjson.loads(r[6]),
                    position=int(r[7]),
                )
    return found
