"""The reachability side of the SQL search read models: whether each agent's last recorded
check answered (RegisteredAgent.ReachabilityChanged), for the `reachable` filter. An agent never
checked has no row: it matches neither `reachable=true` nor `reachable=false`."""

from __future__ import annotations

from application.ports import Tx
from domain.registry import RegisteredAgent

TABLE = "agent_search_reachability"
DDL = (
    "CREATE TABLE IF NOT EXISTS agent_search_reachability ("
    " tenant TEXT NOT NULL, agent_id TEXT NOT NULL, reachable INTEGER NOT NULL, position BIGINT NOT NULL,"
    " PRIMARY KEY (tenant, agent_id))",
)


def apply_reachability(tx: Tx, position: int, event: object) -> None:
    """Keep the row of a reachability change; a registration (again) starts unchecked."""
    match event:
        case RegisteredAgent.ReachabilityChanged():
            tx.execute(
                "INSERT INTO agent_search_reachability (tenant, agent_id, reachable, position)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (tenant, agent_id) DO UPDATE SET"
                " reachable = excluded.reachable, position = excluded.position",
                (event.tenant, event.agent_id, int(event.reachable), position),
            )
        case RegisteredAgent.AgentRegistered() | RegisteredAgent.AgentReregistered():
            tx.execute(
                "DELETE FROM agent_search_reachability WHERE tenant = ? AND agent_id = ?",
                (event.tenant, event.agent_id),
            )
