"""audit_log: every stored event of the log as a Merkle leaf (RFC 9162), in log order.

`audit_leaves` maps a log position to its leaf index and its tenant (NULL for an aggregate
of no tenant). `audit_nodes` holds the hash of every complete subtree, keyed by
`node_key(level, index)`: level 0 are the leaf hashes, and the node at level k+1 index i is
written as soon as both its children exist. Any root and any proof is then assembled from
O(log n) rows (`domain.merkle.range_hashes`).

A leaf hashes the event store's stored bytes, not what the projection decodes, so each page
reads the stored rows of its positions from the event store (`read_stored`).
"""

from __future__ import annotations

from typing import Any

from application.audit import ReadStored, stored_event
from application.ports import Tx
from domain.audit_leaf import canonical_bytes
from domain.merkle import Node, leaf_hash, node_hash
from projections.projection import LogPage

LEVEL_SPAN = 1 << 48  # indexes below 2**48 leaves; levels up to 48

DDL = (
    "CREATE TABLE IF NOT EXISTS audit_leaves ("
    " position BIGINT PRIMARY KEY, leaf_index BIGINT NOT NULL UNIQUE, tenant TEXT)",
    "CREATE TABLE IF NOT EXISTS audit_nodes (node BIGINT PRIMARY KEY, hash BYTEA NOT NULL)",
)


class StoredRowMissing(Exception):
    """The event store has no stored row for a position the log just gave."""


def node_key(level: int, index: int) -> int:
    return level * LEVEL_SPAN + index


def tenant_of(event: Any) -> str | None:
    tenant = getattr(event, "tenant", None)
    return tenant if isinstance(tenant, str) else None


def pending_nodes(size: int) -> list[Node]:
    """The complete subtrees of a tree of `size` leaves still waiting for a right sibling."""
    return [(level, (size >> level) - 1) for level in range(size.bit_length()) if (size >> level) & 1]


class AuditLogProjection:
    """Leaves and complete subtrees. Remembers the tree's size and its pending subtrees
    between pages (so that a pipelined page reads nothing from its transaction); without
    that memory, a page reads them: one row per level."""

    name = "audit_log"
    tables = ("audit_leaves", "audit_nodes")
    replay_cost = 5

    def __init__(self, read_stored: ReadStored) -> None:
        self._read_stored = read_stored
        self._memory: tuple[int, dict[int, bytes]] | None = None

    def fresh(self) -> AuditLogProjection:
        return AuditLogProjection(self._read_stored)

    def forget(self) -> None:
        self._memory = None

    def create_tables(self, tx: Tx) -> None:
        for statement in DDL:
            tx.execute(statement)

    def apply(self, tx: Tx, events: LogPage) -> None:
        if not events:
            return
        stored = {n.id: n for n in self._read_stored(events[0][0], events[-1][0])}
        size, frontier = self._memory if self._memory is not None else self._recall(tx)
        frontier = dict(frontier)
        leaves: list[tuple[int, int, str | None]] = []
        nodes: list[tuple[int, bytes]] = []
        for position, event in events:
            notification = stored.get(position)
            if notification is None:
                raise StoredRowMissing(f"no stored event at position {position}")
            digest = leaf_hash(canonical_bytes(stored_event(notification, event)))
            leaves.append((position, size, tenant_of(event)))
            self._add(size, digest, frontier, nodes)
            size += 1
        tx.append_rows("audit_leaves", ("position", "leaf_index", "tenant"), leaves)
        tx.append_rows("audit_nodes", ("node", "hash"), nodes)
        # Trusted only while the runner's tracking row is what this page leaves (else forget()).
        self._memory = (size, frontier)

    def _recall(self, tx: Tx) -> tuple[int, dict[int, bytes]]:
        row = tx.fetchone("SELECT MAX(leaf_index) FROM audit_leaves")
        size = 0 if row is None or row[0] is None else int(row[0]) + 1
        return size, self._frontier(tx, size)

    @staticmethod
    def _frontier(tx: Tx, size: int) -> dict[int, bytes]:
        """Level -> hash of the pending subtree at that level."""
        wanted = pending_nodes(size)
        if not wanted:
            return {}
        keys = [node_key(level, index) for level, index in wanted]
        rows = tx.fetchall(
            f"SELECT node, hash FROM audit_nodes WHERE node IN ({', '.join('?' * len(keys))})", keys
        )
        found = {int(key): bytes(value) for key, value in rows}
        return {level: found[node_key(level, index)] for level, index in wanted}

    @staticmethod
    def _add(index: int, digest: bytes, frontier: dict[int, bytes], nodes: list[tuple[int, bytes]]) -> None:
        """Write leaf `index` and every subtree it completes."""
        level, current = 0, digest
        nodes.append((node_key(0, index), current))
        while index & 1:
            current = node_hash(frontier.pop(level), current)
            level, index = level + 1, index >> 1
            nodes.append((node_key(level, index), current))
        frontier[level] = current
