"""audit_anchors: the audit log's roots anchored on a chain, and the contracts they went to.

Anchors and contracts belong to no tenant: a root is a hash, and tells nothing of any event
but how many there are (docs/audit.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from application.anchoring import AnchorRow
from application.ports import ReadStore, Tx
from domain.anchors import Anchor, AnchorContract, ContractRef
from projections.projection import LogPage
from projections.views import iso

DDL = (
    "CREATE TABLE IF NOT EXISTS audit_anchors ("
    " anchor_id TEXT PRIMARY KEY, number BIGINT NOT NULL UNIQUE, chain_id BIGINT NOT NULL,"
    " contract TEXT NOT NULL, deployment INTEGER NOT NULL, tree_size BIGINT NOT NULL, root_hash TEXT NOT NULL, tx_hash TEXT NOT NULL,"
    " block_number BIGINT, status TEXT NOT NULL, reason TEXT, sends INTEGER NOT NULL,"
    " submitted_at TEXT NOT NULL, confirmed_at TEXT, position BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_anchors_by_contract ON audit_anchors (contract, deployment, tree_size)",
    "CREATE INDEX IF NOT EXISTS audit_anchors_by_status ON audit_anchors (status)",
    "CREATE TABLE IF NOT EXISTS audit_contracts ("
    " position BIGINT PRIMARY KEY, chain_id BIGINT NOT NULL, address TEXT NOT NULL, tx_hash TEXT,"
    " block_number BIGINT, deployed_at TEXT NOT NULL, deployed_by TEXT NOT NULL)",
)
ROW = "tree_size, root_hash, contract, deployment, chain_id, tx_hash, block_number, status, submitted_at"
PUBLIC = (
    "number, tree_size, root_hash, tx_hash, block_number, status, reason, contract, deployment, chain_id, sends,"
    " submitted_at, confirmed_at"
)

PUBLIC_NAMES = tuple(name.strip() for name in PUBLIC.split(","))


class AuditAnchorsProjection:
    name = "audit_anchors"
    replay_cost = 1
    tables = ("audit_anchors", "audit_contracts")

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        for position, event in events:
            if isinstance(event, Anchor.Event):
                _anchor(tx, position, event)
            elif isinstance(event, AnchorContract.Event):
                tx.execute(
                    "INSERT INTO audit_contracts (position, chain_id, address, tx_hash, block_number, deployed_at,"
                    " deployed_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (position, event.chain_id, event.address, event.tx_hash, event.block_number,
                     iso(event.timestamp), event.actor),
                )


def _anchor(tx: Tx, position: int, event: Anchor.Event) -> None:
    anchor, at = event.originator_id.hex, iso(event.timestamp)
    match event:
        case Anchor.AnchorSubmitted():
            tx.execute(
                "INSERT INTO audit_anchors (anchor_id, number, chain_id, contract, deployment, tree_size, root_hash,"
                " tx_hash, status, sends, submitted_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 1, ?, ?)",
                (anchor, position, event.chain_id, event.contract, event.deployment, event.tree_size, event.root_hash,
                 event.tx_hash, at, position),
            )
        case Anchor.AnchorResent():
            tx.execute(
                "UPDATE audit_anchors SET tx_hash = ?, sends = sends + 1, reason = ?, position = ?"
                " WHERE anchor_id = ?",
                (event.tx_hash, event.reason, position, anchor),
            )
        case Anchor.AnchorConfirmed():
            tx.execute(
                "UPDATE audit_anchors SET status = 'confirmed', tx_hash = ?, block_number = ?, confirmed_at = ?,"
                " reason = NULL, position = ? WHERE anchor_id = ?",
                (event.tx_hash, event.block_number, at, position, anchor),
            )
        case Anchor.AnchorFailed():
            tx.execute(
                "UPDATE audit_anchors SET status = 'failed', reason = ?, position = ? WHERE anchor_id = ?",
                (event.reason, position, anchor),
            )


def _row(values: Any) -> AnchorRow:
    tree_size, root_hash, contract, deployment, chain_id, tx_hash, block_number, status, submitted_at = values
    return AnchorRow(
        int(tree_size), root_hash, contract, int(deployment), int(chain_id), tx_hash,
        None if block_number is None else int(block_number), status, datetime.fromisoformat(submitted_at),
    )


def _public(values: Any) -> dict[str, Any]:
    return dict(zip(PUBLIC_NAMES, values, strict=True))


class AuditAnchorQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def pending(self) -> list[AnchorRow]:
        with self._store.read() as reader:
            rows = reader.fetchall(f"SELECT {ROW} FROM audit_anchors WHERE status = 'pending' ORDER BY number")
        return [_row(r) for r in rows]

    def newest(self, where: ContractRef) -> AnchorRow | None:
        return self._newest(where, "status <> 'failed'")

    def newest_confirmed(self, where: ContractRef) -> AnchorRow | None:
        return self._newest(where, "status = 'confirmed'")

    def _newest(self, where: ContractRef, condition: str) -> AnchorRow | None:
        with self._store.read() as reader:
            row = reader.fetchone(
                f"SELECT {ROW} FROM audit_anchors WHERE chain_id = ? AND contract = ? AND deployment = ?"
                f" AND {condition} ORDER BY tree_size DESC LIMIT 1",
                (where.chain_id, where.address, where.deployment),
            )
        return None if row is None else _row(row)

    def last_confirmed(self) -> tuple[int, datetime] | None:
        """The tree size and time of the anchor confirmed last, on any contract."""
        with self._store.read() as reader:
            row = reader.fetchone(
                "SELECT tree_size, confirmed_at FROM audit_anchors WHERE status = 'confirmed'"
                " ORDER BY confirmed_at DESC LIMIT 1"
            )
        return None if row is None else (int(row[0]), datetime.fromisoformat(row[1]))

    def confirmed(self) -> list[AnchorRow]:
        """Every confirmed anchor, in increasing tree size per contract (what verify checks)."""
        with self._store.read() as reader:
            rows = reader.fetchall(
                f"SELECT {ROW} FROM audit_anchors WHERE status = 'confirmed' ORDER BY tree_size, number"
            )
        return [_row(r) for r in rows]

    def page(self, before: int | None, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """Anchors newest first; the cursor of the next (older) page."""
        with self._store.read() as reader:
            rows = reader.fetchall(
                f"SELECT {PUBLIC} FROM audit_anchors WHERE number < ? ORDER BY number DESC LIMIT ?",
                (before if before is not None else 2**62, limit + 1),
            )
        items = [_public(r) for r in rows[:limit]]
        return items, (items[-1]["number"] if len(rows) > limit else None)

    def at_size(self, tree_size: int) -> dict[str, Any] | None:
        """The confirmed anchor of `tree_size` on the contract anchored to last."""
        _, found = self._beside_newest("tree_size = ?", tree_size)
        return found

    def covering(self, leaf_index: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The first confirmed anchor whose tree holds leaf `leaf_index`, and the newest one,
        both on the contract anchored to last (None: no confirmed anchor covers it yet)."""
        newest, first = self._beside_newest("tree_size > ?", leaf_index)
        return None if newest is None or first is None else (first, newest)

    def _beside_newest(self, condition: str, value: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The newest confirmed anchor, and the smallest confirmed one meeting `condition` on
        the same contract (the deployment anchored to last: earlier ones may be on a chain
        that is gone)."""
        with self._store.read() as reader:
            row = reader.fetchone(
                f"SELECT {PUBLIC} FROM audit_anchors WHERE status = 'confirmed' ORDER BY number DESC LIMIT 1"
            )
            if row is None:
                return None, None
            newest = _public(row)
            found = reader.fetchone(
                f"SELECT {PUBLIC} FROM audit_anchors WHERE status = 'confirmed' AND chain_id = ? AND contract = ?"
                f" AND deployment = ? AND {condition} ORDER BY tree_size LIMIT 1",
                (newest["chain_id"], newest["contract"], newest["deployment"], value),
            )
        return newest, None if found is None else _public(found)
