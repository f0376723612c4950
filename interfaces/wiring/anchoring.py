"""Anchoring's parts: the chain (a node, or an in-process chain made on first use), the
audit_anchors read model, and the service that sends roots to the contract."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from application.anchoring import Anchoring, AnchorPolicy, Chain
from application.goals import GoalsApp
from application.ports import ReadStore
from infrastructure.chain import ContractCode, in_process_chain, rpc_chain
from infrastructure.contracts import audit_anchor_artifact
from infrastructure.settings import Settings
from interfaces.wiring.audit import stored_rows
from projections.audit_anchors import AuditAnchorQueries
from projections.audit_log_queries import AuditLogQueries

log = logging.getLogger(__name__)


def contract_code() -> ContractCode:
    artifact = audit_anchor_artifact()
    return ContractCode(abi=artifact["abi"], bytecode=artifact["bytecode"])


def chain_of(settings: Settings) -> Callable[[], Chain]:
    """The chain of A2A_RPC_URL, or an in-process one; made when first asked for, once."""
    made: list[Chain] = []
    lock = threading.Lock()

    def chain() -> Chain:
        with lock:
            if not made:
                code = contract_code()
                if settings.rpc_url:
                    made.append(rpc_chain(settings.rpc_url, settings.chain_key(), code, settings.chain_timeout_s))
                else:
                    log.info("anchoring on an in-process chain: its anchors are worth nothing outside this process")
                    made.append(in_process_chain(code, settings.chain_timeout_s))
            return made[0]

    return chain


def topics_of_leaves(goals: GoalsApp, store: ReadStore) -> Callable[[int, int], Sequence[str]]:
    leaves = AuditLogQueries(store)

    def topics(first: int, last: int) -> Sequence[str]:
        positions = leaves.positions(first, last)
        if not positions:
            return []
        return [row.topic for row in stored_rows(goals, positions[0], positions[-1]) if row.id in set(positions)]

    return topics


def build_anchoring(settings: Settings, goals: GoalsApp, store: ReadStore) -> Anchoring:
    policy = AnchorPolicy(
        every_events=settings.anchor_every_events,
        every_seconds=settings.anchor_every_seconds,
        confirmations=settings.confirmations,
        resend_after_s=settings.anchor_resend_s,
        contract=settings.contract_address,
    )
    return Anchoring(
        goals, chain_of(settings), AuditLogQueries(store), AuditAnchorQueries(store), topics_of_leaves(goals, store), policy
    )
