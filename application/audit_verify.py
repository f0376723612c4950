"""`audit verify`: recompute every leaf and root from the event store and compare them with
the audit_log read model, and every anchored root with the one recomputed and the one the
chain holds. Stops at the first position that differs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from eventsourcing.persistence import Notification

from application.anchoring import AnchorRow
from application.audit import AuditTree, Decode, leaf_of
from domain.merkle import Node, node_hash, root_of

PAGE = 5000
ReadRows = Callable[[int, int], Sequence[Notification]]  # (after, limit): stored rows after a position


class AuditRows(AuditTree, Protocol):
    """The read model as verify reads it."""

    def leaf_indexes(self, first: int, last: int) -> list[tuple[int, int]]:
        """(position, leaf index) of the leaves of positions first..last."""
        ...

    def first_index(self, position: int) -> int | None:
        """The leaf index of the first leaf at or after `position`."""
        ...


@dataclass(frozen=True)
class Discrepancy:
    """The first position where the event store and the read model disagree."""

    position: int
    what: str


ChainRoot = Callable[[AnchorRow], "bytes | None"]  # the root the chain holds for an anchor; None: not checkable


@dataclass
class Verified:
    events: int = 0
    tree_size: int = 0
    root_hash: str = ""
    first_bad: Discrepancy | None = None
    anchors_checked: int = 0  # anchored roots equal to the recomputed one and to the chain's
    anchors_unchecked: int = 0  # equal to the recomputed one; their contract is not on the chain now


class AuditVerifier:
    def __init__(self, tree: AuditRows, read_rows: ReadRows, decode: Decode) -> None:
        self._tree = tree
        self._read_rows = read_rows
        self._decode = decode

    def verify(
        self,
        start: int = 1,
        stop: int | None = None,
        on_page: Callable[[int], None] | None = None,
        anchors: Sequence[AnchorRow] = (),
        chain_root: ChainRoot | None = None,
    ) -> Verified:
        """Positions start..stop (every position by default); `on_page` gets the last position
        of each page. Each of `anchors` whose tree size is reached is checked: its root must be
        the recomputed one, and (with `chain_root`) the one the chain holds."""
        result = Verified()
        anchored: dict[int, list[AnchorRow]] = {}
        for anchor in anchors:
            anchored.setdefault(anchor.tree_size, []).append(anchor)
        projected = self._tree.size()
        first = self._tree.first_index(start)
        index = projected if first is None else first
        frontier = self._frontier(index)
        for rows in self._pages(start - 1, stop):
            known = dict(self._tree.leaf_indexes(rows[0].id, rows[-1].id))
            page_start = index
            held = self._tree.nodes([(0, i) for i in range(index, min(index + len(rows), projected))])
            completed: list[tuple[Node, bytes, int]] = []  # subtrees the page completes, and by which position
            for row in rows:
                leaf = held[index - page_start] if index < projected else b""
                bad = self._check(row, index, known.pop(row.id, None), projected, leaf)
                if bad is not None:
                    result.first_bad = bad
                    return result
                completed += [(node, h, row.id) for node, h in _push(frontier, index, leaf)]
                index += 1
                result.events += 1
                if index in anchored:
                    bad = self._check_anchors(anchored[index], _fold(frontier), row.id, chain_root, result)
                    if bad is not None:
                        result.first_bad = bad
                        return result
            bad = self._check_subtrees(completed)
            if bad is not None:
                result.first_bad = bad
                return result
            if known:  # a leaf whose stored row is gone
                position = min(known)
                result.first_bad = Discrepancy(
                    position, "the read model has a leaf for it; the event store has no row"
                )
                return result
            if index <= projected:
                bad = self._check_root(frontier, index, rows[-1].id)
                if bad is not None:
                    result.first_bad = bad
                    return result
            if on_page is not None:
                on_page(rows[-1].id)
        result.tree_size = index
        result.root_hash = _fold(frontier).hex() if frontier else ""
        return result

    def _pages(self, after: int, stop: int | None) -> Iterator[Sequence[Notification]]:
        while True:
            rows = [r for r in self._read_rows(after, PAGE) if stop is None or r.id <= stop]
            if not rows:
                return
            yield rows
            after = rows[-1].id

    def _check(
        self, row: Notification, index: int, leaf_index: int | None, projected: int, stored: bytes
    ) -> Discrepancy | None:
        if leaf_index is None or index >= projected:
            return Discrepancy(row.id, "no leaf in the read model (not projected yet, or skipped)")
        if leaf_index != index:
            return Discrepancy(
                row.id, f"leaf index {leaf_index} in the read model, {index} from the event store"
            )
        try:
            recomputed = leaf_of(row, self._decode(row))
        except Exception as error:
            return Discrepancy(row.id, f"the stored event cannot be read: {type(error).__name__}: {error}")
        if recomputed != stored:
            return Discrepancy(
                row.id, f"leaf hash {stored.hex()} in the read model, {recomputed.hex()} from the event store"
            )
        return None

    @staticmethod
    def _check_anchors(
        anchors: list[AnchorRow], recomputed: bytes, position: int, chain_root: ChainRoot | None, result: Verified
    ) -> Discrepancy | None:
        """The anchors of the tree ending at `position`: recorded and on chain, as recomputed."""
        for anchor in anchors:
            by = f"tx {anchor.tx_hash}" if anchor.tx_hash else "the contract's latest"
            where = f"anchored root of {anchor.tree_size} leaves ({by})"
            if anchor.root_hash != recomputed.hex():
                return Discrepancy(
                    position,
                    f"{where} is {anchor.root_hash}, {recomputed.hex()} recomputed from the event store:"
                    " an event at or before this position was changed after it was anchored",
                )
            held = None if chain_root is None else chain_root(anchor)
            if held is None:
                result.anchors_unchecked += 1
            elif held != recomputed:
                return Discrepancy(
                    position, f"{where}: the chain holds {held.hex()}, {recomputed.hex()} recomputed"
                )
            else:
                result.anchors_checked += 1
        return None

    def _frontier(self, size: int) -> dict[int, bytes]:
        """The pending subtrees before leaf `size`, taken from the read model (a --from run trusts what lies before)."""
        wanted = [(level, (size >> level) - 1) for level in range(size.bit_length()) if (size >> level) & 1]
        return {level: h for (level, _), h in zip(wanted, self._tree.nodes(wanted), strict=True)}

    def _check_subtrees(self, completed: list[tuple[Node, bytes, int]]) -> Discrepancy | None:
        """Every interior subtree the read model holds for these leaves equals the one recomputed."""
        held = self._tree.nodes([node for node, _, _ in completed])
        for (node, recomputed, position), found in zip(completed, held, strict=True):
            if found != recomputed:
                return Discrepancy(
                    position,
                    f"subtree {node} (level, index) {found.hex()} in the read model, {recomputed.hex()} recomputed",
                )
        return None

    def _check_root(self, frontier: dict[int, bytes], size: int, position: int) -> Discrepancy | None:
        recomputed = _fold(frontier)
        held = root_of(size, self._tree.nodes)
        if recomputed != held:
            return Discrepancy(
                position,
                f"root of {size} leaves {held.hex()} in the read model, {recomputed.hex()} recomputed",
            )
        return None


def _push(frontier: dict[int, bytes], index: int, leaf: bytes) -> list[tuple[Node, bytes]]:
    """Add leaf `index`; the interior subtrees it completes."""
    level, current = 0, leaf
    completed: list[tuple[Node, bytes]] = []
    while index & 1:
        current = node_hash(frontier.pop(level), current)
        level, index = level + 1, index >> 1
        completed.append(((level, index), current))
    frontier[level] = current
    return completed


def _fold(frontier: dict[int, bytes]) -> bytes:
    """The root from the pending subtrees: the smallest on the right, folded leftwards."""
    levels = sorted(frontier)
    acc = frontier[levels[0]]
    for level in levels[1:]:
        acc = node_hash(frontier[level], acc)
    return acc
