"""Anchors of the audit log on an EVM chain: the AuditAnchor contract deployed on a chain, and
each Merkle root written to it (one transaction per batch of leaves, never per event).

An anchor is pending from the moment its transaction is sent until its block has
CONFIRMATIONS blocks on top (confirmed), or it failed (reverted, or superseded: a later
anchor reached the contract first, and a contract takes tree sizes in increasing order only).
A transaction the node dropped or replaced is sent again (AnchorResent), same tree size and root.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidCommand
from domain.ids import NAMESPACE
from domain.meta import Meta, meta_fields

PENDING, CONFIRMED, FAILED = "pending", "confirmed", "failed"
HASH_HEX = 64  # a SHA-256 root or a transaction hash, hex without 0x
ADDRESS_HEX = 40


@dataclass(frozen=True)
class ContractRef:
    """Where anchors go: a contract on a chain, and which deployment at that address it is."""

    chain_id: int
    address: str
    deployment: int


def contract_record_id(chain_id: int) -> UUID:
    """The record of the contracts deployed on one chain."""
    return uuid5(NAMESPACE, f"anchor-contract:{chain_id}")


def anchor_id(chain_id: int, contract: str, deployment: int, tree_size: int) -> UUID:
    """One anchor per tree size per contract: two anchorers racing for the same root write one.
    `deployment` tells apart two contracts at one address (a chain started afresh gives the
    same deployer the same addresses again); 0 for a contract named by A2A_CONTRACT_ADDRESS."""
    return uuid5(NAMESPACE, f"anchor:{chain_id}:{contract.lower()}:{deployment}:{tree_size}")


def _check_hex(field: str, value: str, digits: int, prefix: str = "0x") -> None:
    """Transaction hashes and addresses are written as Ethereum writes them (0x...); roots as
    the audit API writes every tree hash (bare hex)."""
    body = value[len(prefix) :] if value.startswith(prefix) else ""
    if len(body) != digits or any(c not in "0123456789abcdef" for c in body):
        raise InvalidCommand({field: f"{prefix}{digits} lowercase hex digits"})


class AnchorContract(Aggregate):
    """The AuditAnchor contracts deployed on one chain, newest last. A chain that lost its
    state (an in-process chain after a restart, a test node started afresh) gets a new one."""

    class Event(Aggregate.Event):
        chain_id: int
        address: str
        tx_hash: str
        block_number: int
        actor: str
        request_id: str
        idempotency_key: str | None

    class ContractDeployed(Event, Aggregate.Created):
        pass

    class ContractRedeployed(Event):
        def apply(self, record: AnchorContract) -> None:
            record.address = self.address
            record.deployments += 1

    def __init__(
        self,
        chain_id: int,
        address: str,
        tx_hash: str,
        block_number: int,
        actor: str,
        request_id: str,
        idempotency_key: str | None,
    ) -> None:
        self.chain_id = chain_id
        self.address = address
        self.deployments = 1

    @classmethod
    def deployed(cls, chain_id: int, address: str, tx_hash: str, block_number: int, meta: Meta) -> AnchorContract:
        _check_hex("address", address.lower(), ADDRESS_HEX)
        _check_hex("tx_hash", tx_hash, HASH_HEX)
        return cls._create(
            cls.ContractDeployed,
            id=contract_record_id(chain_id),
            chain_id=chain_id,
            address=address,
            tx_hash=tx_hash,
            block_number=block_number,
            **meta_fields(meta),
        )

    def redeployed(self, address: str, tx_hash: str, block_number: int, meta: Meta) -> None:
        _check_hex("address", address.lower(), ADDRESS_HEX)
        _check_hex("tx_hash", tx_hash, HASH_HEX)
        self.trigger_event(
            self.ContractRedeployed,
            chain_id=self.chain_id,
            address=address,
            tx_hash=tx_hash,
            block_number=block_number,
            **meta_fields(meta),
        )


class Anchor(Aggregate):
    """One root of the audit log written to the contract: the tree of `tree_size` leaves."""

    class Event(Aggregate.Event):
        actor: str
        request_id: str
        idempotency_key: str | None

    class AnchorSubmitted(Event, Aggregate.Created):
        chain_id: int
        contract: str
        deployment: int
        tree_size: int
        root_hash: str
        tx_hash: str

    class AnchorResent(Event):
        tx_hash: str
        reason: str

        def apply(self, anchor: Anchor) -> None:
            anchor.tx_hash = self.tx_hash
            anchor.sends += 1

    class AnchorConfirmed(Event):
        tx_hash: str
        block_number: int

        def apply(self, anchor: Anchor) -> None:
            anchor.status = CONFIRMED
            anchor.tx_hash = self.tx_hash
            anchor.block_number = self.block_number

    class AnchorFailed(Event):
        reason: str

        def apply(self, anchor: Anchor) -> None:
            anchor.status = FAILED

    def __init__(
        self,
        chain_id: int,
        contract: str,
        deployment: int,
        tree_size: int,
        root_hash: str,
        tx_hash: str,
        actor: str,
        request_id: str,
        idempotency_key: str | None,
    ) -> None:
        self.chain_id = chain_id
        self.contract = contract
        self.deployment = deployment
        self.tree_size = tree_size
        self.root_hash = root_hash
        self.tx_hash = tx_hash
        self.block_number: int | None = None
        self.status = PENDING
        self.sends = 1

    @classmethod
    def submitted(
        cls, where: ContractRef, tree_size: int, root_hash: str, tx_hash: str, meta: Meta
    ) -> Anchor:
        if tree_size < 1:
            raise InvalidCommand({"tree_size": "an anchor covers at least one leaf"})
        _check_hex("root_hash", root_hash, HASH_HEX, prefix="")
        _check_hex("tx_hash", tx_hash, HASH_HEX)
        return cls._create(
            cls.AnchorSubmitted,
            id=anchor_id(where.chain_id, where.address, where.deployment, tree_size),
            chain_id=where.chain_id,
            contract=where.address,
            deployment=where.deployment,
            tree_size=tree_size,
            root_hash=root_hash,
            tx_hash=tx_hash,
            **meta_fields(meta),
        )

    def resent(self, tx_hash: str, reason: str, meta: Meta) -> None:
        _check_hex("tx_hash", tx_hash, HASH_HEX)
        if self.status == PENDING:
            self.trigger_event(self.AnchorResent, tx_hash=tx_hash, reason=reason[:200], **meta_fields(meta))

    def confirmed(self, tx_hash: str, block_number: int, meta: Meta) -> None:
        if self.status == PENDING:
            self.trigger_event(self.AnchorConfirmed, tx_hash=tx_hash, block_number=block_number, **meta_fields(meta))

    def failed(self, reason: str, meta: Meta) -> None:
        if self.status == PENDING:
            self.trigger_event(self.AnchorFailed, reason=reason[:200], **meta_fields(meta))
