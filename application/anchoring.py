"""Anchoring the audit log's root on a chain (docs/audit.md#anchors): one transaction per
batch of leaves, every ANCHOR_EVERY_EVENTS leaves or ANCHOR_EVERY_SECONDS, whichever first.

One anchor is in flight at a time: the next is sent once the previous one is confirmed (its
block has CONFIRMATIONS blocks on top) or failed. So tree sizes reach the contract in
increasing order, and a transaction the node dropped can be sent again as it was. The chain
being down, slow or in error holds anchoring back, never the writes: each round does what
the chain lets it and the next round, a few seconds later, carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from application.aggregate_changes import change, load
from application.audit import AuditTree
from application.goals import GoalsApp
from domain.anchors import (
    CONFIRMED,
    PENDING,
    Anchor,
    AnchorContract,
    ContractRef,
    anchor_id,
    contract_record_id,
)
from domain.merkle import root_of
from domain.meta import Meta

log = logging.getLogger(__name__)
ANCHORER = Meta(actor="anchoring")
ZERO_ROOT = bytes(32)
# A backlog this small may be nothing but the anchoring's own events (an anchor sent and
# confirmed leaves two): the leaves are looked at, and such a backlog is not anchored, or
# each anchor would call for the next one forever.
OWN_EVENTS_AT_MOST = 8
ANCHOR_TOPICS = ("domain.anchors:",)


class ChainUnavailable(Exception):
    """The chain's node is down, slow, or answered an error: try again later."""


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    ok: bool  # False: the transaction reverted
    contract_address: str | None = None


class Chain(Protocol):
    name: str

    def chain_id(self) -> int: ...

    def head(self) -> int: ...

    def has_code(self, address: str) -> bool: ...

    def deploy(self) -> Receipt: ...

    def send_anchor(self, contract: str, tree_size: int, root: bytes, replacing: str | None = None) -> str:
        """Its transaction hash; `replacing`: a transaction still pending, whose place (nonce)
        the new one takes with a higher fee."""
        ...

    def receipt(self, tx_hash: str) -> Receipt | None: ...

    def knows(self, tx_hash: str) -> bool: ...

    def root_at(self, contract: str, tree_size: int) -> bytes: ...

    def latest_tree_size(self, contract: str) -> int: ...

    def anchored_in(self, contract: str, tree_size: int) -> Receipt | None:
        """The receipt of the transaction that wrote `tree_size`'s root (None: none did)."""
        ...


@dataclass(frozen=True)
class AnchorRow:
    """An anchor as the audit_anchors read model holds it."""

    tree_size: int
    root_hash: str
    contract: str
    deployment: int
    chain_id: int
    tx_hash: str
    block_number: int | None
    status: str
    submitted_at: datetime


class AnchorReads(Protocol):
    def pending(self) -> list[AnchorRow]: ...

    def newest(self, where: ContractRef) -> AnchorRow | None:
        """The anchor of the largest tree size on the contract that did not fail."""
        ...

    def newest_confirmed(self, where: ContractRef) -> AnchorRow | None: ...


@dataclass(frozen=True)
class AnchorPolicy:
    every_events: int = 1000
    every_seconds: float = 60.0
    confirmations: int = 1
    resend_after_s: float = 120.0
    contract: str = ""  # A2A_CONTRACT_ADDRESS: the contract to use; empty: deploy one


@dataclass(frozen=True)
class Round:
    """What one round of anchoring found and did."""

    contract: ContractRef
    tree_size: int  # leaves in the audit log
    anchored: int  # the largest tree size confirmed on the contract
    sent: int | None = None  # the tree size anchored by this round
    pending: int = 0  # anchors still waiting for their confirmations
    # Leaves not under a confirmed anchor, but for the anchoring's own last events (never
    # anchored on their own: a system at rest has a backlog of 0, not of 2 forever).
    backlog: int = 0


class Anchoring:
    def __init__(
        self,
        app: GoalsApp,
        chain: Callable[[], Chain],
        tree: AuditTree,
        anchors: AnchorReads,
        topics_of_leaves: Callable[[int, int], Sequence[str]],
        policy: AnchorPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._app = app
        self._chain = chain  # made on first use: an in-process chain takes a second to start
        self.chain = chain
        self._tree = tree
        self._anchors = anchors
        self._topics_of_leaves = topics_of_leaves  # the topics of leaves first..last (indexes)
        self.policy = policy
        self._clock = clock

    def deploy(self, meta: Meta = ANCHORER) -> str:
        """Deploy a new AuditAnchor contract and record it; its address."""
        chain = self._chain()
        chain_id = chain.chain_id()
        deployed = chain.deploy()
        address = deployed.contract_address or ""

        def record(found: AnchorContract | None) -> AnchorContract:
            if found is None:
                return AnchorContract.deployed(chain_id, address, deployed.tx_hash, deployed.block_number, meta)
            found.redeployed(address, deployed.tx_hash, deployed.block_number, meta)
            return found

        change(self._app, contract_record_id(chain_id), AnchorContract, record)
        log.info("AuditAnchor contract deployed at %s on chain %d (%s)", address, chain_id, chain.name)
        return address

    def contract(self) -> ContractRef:
        """The contract anchors go to: A2A_CONTRACT_ADDRESS, else the one deployed last on
        this chain, else a new one (also when the chain no longer holds the last one: an
        in-process chain after a restart)."""
        found = self.current()
        if found is None:
            self.deploy()
            found = self.current()
            if found is None:
                raise ChainUnavailable(f"{self._chain().name}: the contract just deployed has no code")
        return found

    def current(self) -> ContractRef | None:
        """The contract anchors go to now, if there is one (nothing is deployed)."""
        chain = self._chain()
        chain_id = chain.chain_id()
        if self.policy.contract:
            # A transaction to an address with no code succeeds and writes nothing: anchors
            # sent there would be confirmed and never be on the chain.
            if not chain.has_code(self.policy.contract):
                raise ChainUnavailable(
                    f"{chain.name}: A2A_CONTRACT_ADDRESS {self.policy.contract} holds no contract on chain {chain_id}"
                )
            return ContractRef(chain_id, self.policy.contract, 0)
        record = load(self._app, contract_record_id(chain_id), AnchorContract)
        if record is None or not chain.has_code(record.address):
            return None
        return ContractRef(chain_id, record.address, record.deployments)

    def held_on_chain(self) -> AnchorRow | None:
        """The newest root the contract anchored to now holds, read from the chain alone (the
        read model's anchors can be deleted along with a changed event): what verify checks
        besides the recorded anchors. None when nothing is deployed or anchored yet."""
        current = self.current()
        if current is None:
            return None
        chain = self._chain()
        size = chain.latest_tree_size(current.address)
        if size <= 0:
            return None
        root = chain.root_at(current.address, size)
        return AnchorRow(
            size, root.hex(), current.address, current.deployment, current.chain_id, "", None, CONFIRMED, self._clock()
        )

    def chain_roots(self) -> Callable[[AnchorRow], bytes | None]:
        """The root the chain holds for an anchor; None for an anchor on another chain or an
        earlier deployment, which this chain cannot speak for."""
        chain, current = self._chain(), self.current()

        def held(anchor: AnchorRow) -> bytes | None:
            if current is None or (anchor.chain_id, anchor.contract.lower(), anchor.deployment) != (
                current.chain_id,
                current.address.lower(),
                current.deployment,
            ):
                return None
            return chain.root_at(anchor.contract, anchor.tree_size)

        return held

    def run(self, *, force: bool = False) -> Round:
        """One round: settle the anchor in flight, then send the next one when it is due (or
        whenever there is anything to anchor, with `force`). ChainUnavailable when the node
        cannot be used; nothing is lost, the next round picks up from the log."""
        chain = self._chain()
        contract = self.contract()
        pending = [row for row in self._anchors.pending() if row.chain_id == contract.chain_id]
        confirmed: list[int] = []  # tree sizes confirmed by this round (the read model lags)
        still = sum(self._settle(chain, row, contract, confirmed) for row in pending)
        size = self._tree.size()
        if still:
            return self._round(contract, size, pending=still, confirmed=confirmed)
        newest = self._anchors.newest(contract)
        if not self._due(size, newest, force):
            return self._round(contract, size, confirmed=confirmed)
        root = root_of(size, self._tree.nodes)
        held = chain.latest_tree_size(contract.address)
        if held < size:
            tx_hash = chain.send_anchor(contract.address, size, root)
        else:  # sending it would revert, and be sent again (and paid for) every round
            mined = chain.anchored_in(contract.address, size) if held == size else None
            if mined is None or chain.root_at(contract.address, size) != root:
                log.warning(
                    "not anchoring %d leaves: the contract at %s already holds a tree of %d (a restored"
                    " database, or another deployment anchoring to it)",
                    size,
                    contract.address,
                    held,
                )
                return self._round(contract, size, confirmed=confirmed)
            tx_hash = mined.tx_hash  # sent by a round that stopped before recording it
        anchor = Anchor.submitted(contract, size, root.hex(), tx_hash, ANCHORER)
        try:
            self._app.save(anchor)
        except IntegrityError:  # another round anchored this size first: its record stands
            return self._round(contract, size, confirmed=confirmed)
        row = _row(anchor, self._clock())
        left = self._settle(chain, row, contract, confirmed)  # mined at once on an automining node
        return self._round(contract, size, sent=size, pending=int(left), confirmed=confirmed)

    def _due(self, size: int, newest: AnchorRow | None, force: bool) -> bool:
        anchored = 0 if newest is None else newest.tree_size
        backlog = size - anchored
        if backlog <= 0:
            return False
        if backlog <= OWN_EVENTS_AT_MOST and self._only_anchoring(anchored, size - 1):
            return False
        if force or newest is None or backlog >= self.policy.every_events:
            return True
        return (self._clock() - newest.submitted_at).total_seconds() >= self.policy.every_seconds

    def _only_anchoring(self, first: int, last: int) -> bool:
        topics = self._topics_of_leaves(first, last)
        return bool(topics) and all(t.startswith(ANCHOR_TOPICS) for t in topics)

    def _settle(self, chain: Chain, row: AnchorRow, contract: ContractRef, confirmed: list[int]) -> bool:
        """Move a pending anchor on as far as the chain allows; whether it is still pending."""
        aggregate_id = anchor_id(row.chain_id, row.contract, row.deployment, row.tree_size)
        if (row.contract.lower(), row.deployment) != (contract.address.lower(), contract.deployment):
            self._record(aggregate_id, lambda a: a.failed("its contract is no longer the one anchored to", ANCHORER))
            return False
        anchor = load(self._app, aggregate_id, Anchor)
        if anchor is None or anchor.status != PENDING:
            return False
        receipt = chain.receipt(anchor.tx_hash)
        if receipt is None:
            waited = (self._clock() - anchor.modified_on).total_seconds()
            if chain.knows(anchor.tx_hash) and waited < self.policy.resend_after_s:
                return True
            late = waited >= self.policy.resend_after_s
            reason = f"not mined after {waited:.0f} s" if late else "dropped by the node"
            return self._send_again(chain, anchor, reason, confirmed)
        if not receipt.ok:
            return self._reverted(chain, anchor, confirmed)
        if chain.head() - receipt.block_number + 1 < self.policy.confirmations:
            return True
        self._record(aggregate_id, lambda a: a.confirmed(receipt.tx_hash, receipt.block_number, ANCHORER))
        confirmed.append(anchor.tree_size)
        return False

    def _send_again(self, chain: Chain, anchor: Anchor, reason: str, confirmed: list[int]) -> bool:
        """Send a dropped or stuck anchor again, unless the contract already holds its size."""
        if chain.latest_tree_size(anchor.contract) >= anchor.tree_size:
            return self._reverted(chain, anchor, confirmed)
        stuck = anchor.tx_hash if chain.knows(anchor.tx_hash) else None  # else dropped: sent as it was
        tx_hash = chain.send_anchor(anchor.contract, anchor.tree_size, bytes.fromhex(anchor.root_hash), stuck)
        self._record(anchor.id, lambda a: a.resent(tx_hash, reason, ANCHORER))
        log.warning("anchor of tree size %d sent again (%s): %s", anchor.tree_size, reason, tx_hash)
        return True

    def _reverted(self, chain: Chain, anchor: Anchor, confirmed: list[int]) -> bool:
        """The contract refused the transaction, or holds the size already: confirmed if it
        holds this root (an earlier send of it was mined), failed if it holds another."""
        held = chain.root_at(anchor.contract, anchor.tree_size)
        if held == bytes.fromhex(anchor.root_hash):
            mined = chain.anchored_in(anchor.contract, anchor.tree_size)
            if mined is not None:
                self._record(anchor.id, lambda a: a.confirmed(mined.tx_hash, mined.block_number, ANCHORER))
                confirmed.append(anchor.tree_size)
                return False
        reason = "superseded by a later anchor" if held == ZERO_ROOT else "the contract holds another root"
        self._record(anchor.id, lambda a: a.failed(reason, ANCHORER))
        log.warning("anchor of tree size %d failed: %s", anchor.tree_size, reason)
        return False

    def _record(self, aggregate_id: UUID, act: Callable[[Anchor], None]) -> None:
        def make(found: Anchor | None) -> Anchor | None:
            if found is None or found.status != PENDING:
                return None
            act(found)
            return found

        change(self._app, aggregate_id, Anchor, make)

    def _round(
        self, contract: ContractRef, size: int, *, confirmed: list[int], sent: int | None = None, pending: int = 0
    ) -> Round:
        newest = self._anchors.newest_confirmed(contract)
        anchored = max([0 if newest is None else newest.tree_size, *confirmed])
        backlog = max(size - anchored, 0)
        if 0 < backlog <= OWN_EVENTS_AT_MOST and self._only_anchoring(anchored, size - 1):
            backlog = 0
        return Round(contract, size, anchored, sent, pending, backlog)


def _row(anchor: Anchor, at: datetime) -> AnchorRow:
    return AnchorRow(
        anchor.tree_size,
        anchor.root_hash,
        anchor.contract,
        anchor.deployment,
        anchor.chain_id,
        anchor.tx_hash,
        None,
        PENDING,
        at,
    )


def anchoring_state(leaves: int, anchored: tuple[int, datetime] | None, now: datetime, patience_s: float) -> str:
    """What health says of anchoring, from the read models alone (no call to the chain):
    `ok` (every leaf anchored but the anchoring's own last events, or the last anchor is
    recent), `waiting` (nothing anchored yet), or `behind` (leaves wait and no anchor was
    confirmed for `patience_s`: the chain is down or slow, or no round runs)."""
    if anchored is None:
        return "waiting" if leaves else "ok"
    size, confirmed_at = anchored
    if leaves - size <= OWN_EVENTS_AT_MOST or (now - confirmed_at).total_seconds() <= patience_s:
        return "ok"
    return "behind"
