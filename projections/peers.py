"""peers: the registry's peers and how their syncs went, for operators."""

from __future__ import annotations

from typing import Any

from application.ports import ReadStore, Tx
from domain.peers import Peer
from projections.projection import LogPage
from projections.views import iso

DDL = (
    "CREATE TABLE IF NOT EXISTS peers ("
    " peer_id TEXT PRIMARY KEY, url TEXT NOT NULL, removed INTEGER NOT NULL, added_at TEXT NOT NULL,"
    " added_by TEXT NOT NULL, last_sync_at TEXT, last_sync_status TEXT, last_error TEXT,"
    " updated_since TEXT, imported INTEGER NOT NULL, updated INTEGER NOT NULL, removed_agents INTEGER NOT NULL,"
    " position BIGINT NOT NULL)",
)
COLUMNS = (
    "peer_id, url, removed, added_at, added_by, last_sync_at, last_sync_status, last_error,"
    " updated_since, imported, updated, removed_agents"
)


class PeersProjection:
    name = "peers"
    replay_cost = 1
    tables = ("peers",)

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        for position, event in events:
            if not isinstance(event, Peer.Event):
                continue
            peer, at = event.originator_id.hex, iso(event.timestamp)
            match event:
                case Peer.PeerAdded():
                    tx.execute(
                        "INSERT INTO peers (peer_id, url, removed, added_at, added_by, imported, updated,"
                        " removed_agents, position) VALUES (?, ?, 0, ?, ?, 0, 0, 0, ?)",
                        (peer, event.url, at, event.actor, position),
                    )
                case Peer.PeerReadded():
                    tx.execute(
                        "UPDATE peers SET removed = 0, updated_since = NULL, position = ? WHERE peer_id = ?",
                        (position, peer),
                    )
                case Peer.PeerRemoved():
                    tx.execute("UPDATE peers SET removed = 1, position = ? WHERE peer_id = ?", (position, peer))
                case Peer.PeerSyncCompleted():
                    tx.execute(
                        "UPDATE peers SET last_sync_at = ?, last_sync_status = 'ok', last_error = NULL,"
                        " updated_since = ?, imported = imported + ?, updated = updated + ?,"
                        " removed_agents = removed_agents + ?, position = ? WHERE peer_id = ?",
                        (at, event.updated_since, event.imported, event.updated, event.removed, position, peer),
                    )
                case Peer.PeerSyncFailed():
                    tx.execute(
                        "UPDATE peers SET last_sync_at = ?, last_sync_status = 'failed', last_error = ?,"
                        " position = ? WHERE peer_id = ?",
                        (at, event.reason, position, peer),
                    )


class PeerQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def peers(self) -> list[dict[str, Any]]:
        with self._store.read() as tx:
            rows = tx.fetchall(f"SELECT {COLUMNS} FROM peers WHERE removed = 0 ORDER BY url")
        names = [c.strip() for c in COLUMNS.split(",")]
        return [{k: v for k, v in zip(names, r, strict=True) if k != "removed"} for r in rows]
