"""oauth_clients: the registered clients, for admins and for refusing disabled ones fast."""

from __future__ import annotations

import json
from typing import Any

from application.ports import ReadStore, Tx
from domain.clients import OAuthClient
from projections.projection import LogPage
from projections.views import iso

DDL = (
    "CREATE TABLE IF NOT EXISTS oauth_clients ("
    " client_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, scopes TEXT NOT NULL,"
    " disabled INTEGER NOT NULL, disabled_reason TEXT, created_at TEXT NOT NULL, created_by TEXT NOT NULL,"
    " secret_rotated_at TEXT, updated_at TEXT NOT NULL, position BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS oauth_clients_by_tenant ON oauth_clients (tenant, client_id)",
)


class ClientsProjection:
    name = "oauth_clients"
    # µs of replay per event (ops/bench/projections.py, 1M events): how rebuilds share the work
    replay_cost = 1
    tables = ("oauth_clients",)

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        for position, event in events:
            match event:
                case OAuthClient.Registered():
                    tx.execute(
                        "INSERT INTO oauth_clients (client_id, tenant, name, scopes, disabled,"
                        " created_at, created_by, updated_at, position) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
                        (
                            event.client_id,
                            event.tenant,
                            event.name,
                            json.dumps(list(event.scopes)),
                            iso(event.timestamp),
                            event.actor,
                            iso(event.timestamp),
                            position,
                        ),
                    )
                case OAuthClient.SecretRotated():
                    tx.execute(
                        "UPDATE oauth_clients SET secret_rotated_at = ?, updated_at = ?, position = ?"
                        " WHERE client_id = ?",
                        (iso(event.timestamp), iso(event.timestamp), position, event.client_id),
                    )
                case OAuthClient.Disabled():
                    tx.execute(
                        "UPDATE oauth_clients SET disabled = 1, disabled_reason = ?, updated_at = ?,"
                        " position = ? WHERE client_id = ?",
                        (event.reason, iso(event.timestamp), position, event.client_id),
                    )


class ClientQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def list(self, tenant: str | None) -> list[dict[str, Any]]:
        where, params = ("WHERE tenant = ?", [tenant]) if tenant else ("", [])
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT client_id, tenant, name, scopes, disabled, disabled_reason, created_at, created_by,"
                f" secret_rotated_at FROM oauth_clients {where} ORDER BY created_at, client_id",
                params,
            )
        return [
            {
                "client_id": r[0],
                "tenant": r[1],
                "name": r[2],
                "scopes": json.loads(r[3]),
                "disabled": bool(r[4]),
                "disabled_reason": r[5],
                "created_at": r[6],
                "created_by": r[7],
                "secret_rotated_at": r[8],
            }
            for r in rows
        ]

    def disabled_ids(self) -> set[str]:
        with self._store.read() as tx:
            return {str(r[0]) for r in tx.fetchall("SELECT client_id FROM oauth_clients WHERE disabled = 1")}
