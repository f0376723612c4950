"""Proofs of the audit log (RFC 9162): roots, inclusion and consistency, from the read model,
each tied to the anchor on the chain that holds its root when there is one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import Notification

from domain.audit_leaf import StoredEvent, canonical_bytes
from domain.merkle import Node, inclusion_ranges, leaf_hash, prove_consistency, range_hashes, root_of

ReadStored = Callable[[int, int], Sequence[Notification]]  # positions first..last, in log order
Decode = Callable[[Notification], Any]  # a stored row to its domain event


@dataclass(frozen=True)
class Leaf:
    """One leaf of the audit log: its position in the log, its index in the tree, its tenant."""

    position: int
    index: int
    tenant: str | None


class AuditTree(Protocol):
    """The audit_log read model, as proofs read it."""

    def size(self) -> int: ...

    def leaf(self, position: int) -> Leaf | None: ...

    def nodes(self, wanted: Sequence[Node]) -> list[bytes]: ...


class AnchorsOf(Protocol):
    """The confirmed anchors, as proofs read them (docs/audit.md#anchors)."""

    def covering(self, leaf_index: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The first confirmed anchor holding the leaf, and the newest confirmed anchor."""
        ...

    def at_size(self, tree_size: int) -> dict[str, Any] | None:
        """The confirmed anchor of exactly this tree size, on the contract anchored to last."""
        ...


class NotInLog(Exception):
    """No leaf for this position that the caller may see."""

    def __init__(self, position: int) -> None:
        super().__init__(f"no event at position {position} in the audit log")
        self.position = position


class BeyondTree(Exception):
    """A tree size larger than the leaves projected so far, or too small for the leaf."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Viewer:
    """Whose events a caller may see proofs of: one tenant's, or every event (None)."""

    tenant: str | None


def stored_event(notification: Notification, event: Any) -> StoredEvent:
    """What the leaf of a stored row covers; the timestamp is the decoded event's."""
    return StoredEvent(
        position=notification.id,
        aggregate_id=str(notification.originator_id),
        version=notification.originator_version,
        topic=notification.topic,
        timestamp=event.timestamp,
        state=bytes(notification.state),
    )


class AuditProofs:
    """Roots and proofs served to callers; leaves' bytes are read back from the event store."""

    def __init__(self, tree: AuditTree, read_stored: ReadStored, decode: Decode, anchors: AnchorsOf) -> None:
        self._tree = tree
        self._anchors = anchors
        self._read_stored = read_stored
        self._decode = decode

    def root(self) -> dict[str, Any]:
        size = self._tree.size()
        return {"tree_size": size, "root_hash": root_of(size, self._tree.nodes).hex()}

    def leaf_data(self, position: int) -> bytes | None:
        """The canonical bytes of the stored event at `position`, as the event store holds it now."""
        found = [n for n in self._read_stored(position, position) if n.id == position]
        if not found:
            return None
        return canonical_bytes(stored_event(found[0], self._decode(found[0])))

    def inclusion(self, position: int, who: Viewer, tree_size: int | None = None) -> dict[str, Any]:
        """The leaf of `position` with its inclusion proof against the root of the first anchor
        that holds it (or, not anchored yet, the current tree; or an explicit `tree_size`), and
        a consistency proof from that anchor to the newest one. NotInLog when there is no such
        leaf, or it is another tenant's."""
        leaf = self._tree.leaf(position)
        if leaf is None or (who.tenant is not None and leaf.tenant != who.tenant):
            raise NotInLog(position)
        current = self._tree.size()
        anchor: dict[str, Any] | None = None
        newest: dict[str, Any] | None = None
        if tree_size is None:
            found = self._anchors.covering(leaf.index)
            if found is not None:
                anchor, newest = found
        else:
            anchor = self._anchors.at_size(tree_size)
        if tree_size is not None:
            size = tree_size
        elif anchor is not None:
            size = int(anchor["tree_size"])
        else:
            size = current
        if size > current:
            raise BeyondTree("tree_size", f"the audit log holds {current} leaves so far")
        if size <= leaf.index:
            raise BeyondTree("tree_size", f"the leaf of position {position} is leaf {leaf.index}")
        data = self.leaf_data(position)
        # The path, the leaf and the root in one read of the subtrees they are made of.
        *path, leaf_digest, root_digest = range_hashes(
            [*inclusion_ranges(leaf.index, size), (leaf.index, leaf.index + 1), (0, size)], self._tree.nodes
        )
        return {
            "position": position,
            "leaf_index": leaf.index,
            "leaf_data": None if data is None else data.hex(),
            "leaf_hash": leaf_digest.hex(),
            "inclusion_proof": [h.hex() for h in path],
            "tree_size": size,
            "root_hash": root_digest.hex(),
            "anchored": anchor is not None,
            **_anchor_fields(anchor),
            "newest_anchor": self._newest(anchor, newest),
        }

    def _newest(self, anchor: dict[str, Any] | None, newest: dict[str, Any] | None) -> dict[str, Any] | None:
        """The newest anchor, with PROOF(anchor's size, newest's size): the anchored tree is a
        prefix of the newest anchored one (None when there is no anchor, or it is the newest)."""
        if anchor is None or newest is None or newest["tree_size"] == anchor["tree_size"]:
            return None
        first, second = int(anchor["tree_size"]), int(newest["tree_size"])
        return {
            "tree_size": second,
            "root_hash": newest["root_hash"],
            **_anchor_fields(newest),
            "consistency_proof": [h.hex() for h in prove_consistency(first, second, self._tree.nodes)],
        }

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        """PROOF(first, D[second]) and both roots (roots are public)."""
        current = self._tree.size()
        if second > current:
            raise BeyondTree("second", f"the audit log holds {current} leaves so far")
        if first > second:
            raise BeyondTree("first", "first must not be larger than second")
        proof = [] if first == 0 else prove_consistency(first, second, self._tree.nodes)
        return {
            "first": first,
            "second": second,
            "first_root": root_of(first, self._tree.nodes).hex(),
            "second_root": root_of(second, self._tree.nodes).hex(),
            "consistency_proof": [h.hex() for h in proof],
        }


def _anchor_fields(anchor: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("tx_hash", "block_number", "contract", "chain_id")
    return {key: None if anchor is None else anchor[key] for key in keys}


def leaf_of(notification: Notification, event: Any) -> bytes:
    return leaf_hash(canonical_bytes(stored_event(notification, event)))
