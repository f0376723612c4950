"""Agents' reachability beside the registry's records (part of the agent_cards read model):
what the last ReachabilityChanged event said, and, in a table of its own that the check job
writes directly (not a projection of the log: a check that changes nothing writes no event),
when each agent was last checked.

`agent_reachability` is rebuilt from the log with agent_cards; `agent_reachability_checks` is
not (a rebuild leaves it as it is: the next checks refresh it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from application.ports import ReadStore, Tx
from domain.registry import RegisteredAgent
from projections.views import iso

Key = tuple[str, str]
REACHABILITY_TABLE = "agent_reachability"
REACHABILITY_DDL = (
    "CREATE TABLE IF NOT EXISTS agent_reachability ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, reachable INTEGER NOT NULL, error TEXT NOT NULL,"
    " url TEXT NOT NULL, since TEXT NOT NULL, position BIGINT NOT NULL, PRIMARY KEY (tenant, agent_id))",
    "CREATE INDEX IF NOT EXISTS agent_reachability_unreachable ON agent_reachability (reachable)",
    "CREATE TABLE IF NOT EXISTS agent_reachability_checks ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, last_checked TEXT NOT NULL,"
    " PRIMARY KEY (tenant, agent_id))",
)


def record_reachability(tx: Tx, key: Key, event: RegisteredAgent.ReachabilityChanged, position: int) -> None:
    tx.execute(
        "INSERT INTO agent_reachability (tenant, agent_id, reachable, error, url, since, position)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, agent_id) DO UPDATE SET"
        " reachable = excluded.reachable, error = excluded.error, url = excluded.url,"
        " since = excluded.since, position = excluded.position",
        (*key, int(event.reachable), event.error, event.url, iso(event.timestamp), position),
    )


def forget_reachability(tx: Tx, key: Key) -> None:
    tx.execute(f"DELETE FROM {REACHABILITY_TABLE} WHERE tenant = ? AND agent_id = ?", key)


class ReachabilityChecks:
    """What the check job reads (live agents and their cards) and writes (when each was last
    checked: once per check)."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def checked(self, tenant: str, agent_id: str, at: datetime) -> None:
        with self._store.transaction() as tx:
            tx.execute(
                "INSERT INTO agent_reachability_checks (tenant, agent_id, last_checked) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant, agent_id) DO UPDATE SET last_checked = excluded.last_checked",
                (tenant, agent_id, iso(at)),
            )

    def unreachable(self) -> int:
        """Live agents whose last recorded check failed, registry-wide (the gauge)."""
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT COUNT(*) FROM agent_reachability r JOIN agent_cards c"
                " ON c.tenant = r.tenant AND c.agent_id = r.agent_id WHERE r.reachable = 0 AND c.deleted = 0"
            )
        return int(row[0]) if row else 0

    def due(self) -> list[Key]:
        """Every live agent registered here (peers' copies are their registries' to check)."""
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT tenant, agent_id FROM agent_cards WHERE deleted = 0 AND origin = ''"
                " ORDER BY tenant, agent_id"
            )
        return [(str(r[0]), str(r[1])) for r in rows]

    def card(self, tenant: str, agent_id: str) -> Mapping[str, Any] | None:
        """The card of the tenant's live agent (None: unknown or deregistered)."""
        with self._store.read() as tx:
            row = tx.fetchone(
                "SELECT card FROM agent_cards WHERE tenant = ? AND agent_id = ? AND deleted = 0",
                (tenant, agent_id),
            )
        card: Mapping[str, Any] | None = orjson.loads(row[0]) if row is not None else None
        return card
