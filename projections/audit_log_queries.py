"""Reads of the audit_log read model: tree size, leaves, and complete subtree hashes."""

from __future__ import annotations

from collections.abc import Sequence

from application.audit import Leaf
from application.ports import ReadStore
from domain.merkle import Node
from projections.audit_log import node_key


class SubtreeMissing(Exception):
    """A complete subtree the read model should hold is not there."""


class AuditLogQueries:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    def size(self) -> int:
        """Leaves projected so far: the current tree size."""
        with self._store.read() as reader:
            row = reader.fetchone("SELECT MAX(leaf_index) FROM audit_leaves")
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def last_position(self) -> int:
        """The log position of the last leaf (0: none yet)."""
        with self._store.read() as reader:
            row = reader.fetchone("SELECT MAX(position) FROM audit_leaves")
        return 0 if row is None or row[0] is None else int(row[0])

    def leaf(self, position: int) -> Leaf | None:
        with self._store.read() as reader:
            row = reader.fetchone(
                "SELECT leaf_index, tenant FROM audit_leaves WHERE position = ?", (position,)
            )
        return None if row is None else Leaf(position, int(row[0]), row[1])

    def leaf_indexes(self, first: int, last: int) -> list[tuple[int, int]]:
        """(position, leaf index) of the leaves of positions first..last, in log order."""
        with self._store.read() as reader:
            rows = reader.fetchall(
                "SELECT position, leaf_index FROM audit_leaves WHERE position >= ? AND position <= ? ORDER BY position",
                (first, last),
            )
        return [(int(p), int(i)) for p, i in rows]

    def positions(self, first: int, last: int) -> list[int]:
        """The log positions of leaves first..last (indexes), in log order."""
        with self._store.read() as reader:
            rows = reader.fetchall(
                "SELECT position FROM audit_leaves WHERE leaf_index >= ? AND leaf_index <= ? ORDER BY leaf_index",
                (first, last),
            )
        return [int(p) for (p,) in rows]

    def first_index(self, position: int) -> int | None:
        """The leaf index of the first leaf at or after `position`."""
        with self._store.read() as reader:
            row = reader.fetchone(
                "SELECT leaf_index FROM audit_leaves WHERE position >= ? ORDER BY position LIMIT 1",
                (position,),
            )
        return None if row is None else int(row[0])

    def nodes(self, wanted: Sequence[Node]) -> list[bytes]:
        """The hashes of complete subtrees, in the order asked (one read)."""
        if not wanted:
            return []
        keys = [node_key(level, index) for level, index in wanted]
        with self._store.read() as reader:
            rows = reader.fetchall(
                f"SELECT node, hash FROM audit_nodes WHERE node IN ({', '.join('?' * len(keys))})", keys
            )
        found = {int(key): bytes(value) for key, value in rows}
        missing = [node for node, key in zip(wanted, keys, strict=True) if key not in found]
        if missing:
            raise SubtreeMissing(f"no hash for subtrees {missing}")
        return [found[key] for key in keys]
