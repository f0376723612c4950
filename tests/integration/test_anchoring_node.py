"""Anchoring against a real anvil node of the test's own: a node that stops holds anchoring back
and never the writes, and anchoring catches up when it returns with its state; a transaction
the node dropped is sent again; an anchor waits for its confirmations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from application.goals import ProgressUpdate
from domain.merkle import root_of
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.workers.anchoring import BACKLOG, CHAIN_UP, anchor_round
from projections.audit_log_queries import AuditLogQueries
from tests.chain_support import OWNER_KEY, PrivateAnvil
from tests.integration.support import meta, two_objectives


def rpc(url: str, method: str, *params: Any) -> Any:
    # Mining thousands of blocks takes anvil seconds on a loaded machine.
    answer = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=120)
    body = answer.json()
    assert "error" not in body, body
    return body["result"]


@pytest.fixture
def node(start_anvil: Callable[[], PrivateAnvil]) -> PrivateAnvil:
    return start_anvil()


@pytest.fixture
def on_node(
    make_settings: Callable[..., Settings], node: PrivateAnvil, store_kind: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., System]]:
    built: list[System] = []
    # Every private anvil is chain 31337 with the same deployer, so the same contract
    # addresses: on PostgreSQL each test keeps its anchors in a database of its own.
    own = {"DATABASE_URL": request.getfixturevalue("own_pg_url")} if store_kind == "postgres" else {}

    def build(**overrides: object) -> System:
        settings = make_settings(
            **own,
            RUN_PROJECTIONS_IN_PROCESS="false",
            A2A_RPC_URL=node.url,
            A2A_PRIVATE_KEY=OWNER_KEY,
            CHAIN_TIMEOUT_S="1",
            **overrides,
        )
        system = build_system(settings)
        built.append(system)
        return system

    yield build
    for system in built:
        system.close()


def _write(system: System, tenant: str, updates: int) -> None:
    system.goals.set_goals(tenant, "agent-1", two_objectives(), meta())
    for i in range(updates):
        system.goals.record_progress(tenant, ProgressUpdate("agent-1", {"speed": i % 100}), meta())
    system.runner.catch_up()


def _anchored_root(system: System, contract: str, size: int) -> bytes:
    assert system.anchoring is not None
    held: bytes = system.anchoring._chain().root_at(contract, size)
    return held


def test_a_stopped_node_holds_anchoring_back_never_the_writes(
    on_node: Callable[..., System], node: PrivateAnvil, tenant: str
) -> None:
    system = on_node()
    assert system.anchoring is not None
    _write(system, tenant, 5)
    first = anchor_round(system.anchoring)
    assert first is not None and first.sent == first.tree_size
    system.runner.catch_up()

    node.stop()
    _write(system, tenant, 30)  # every write succeeds with the node down
    started = time.monotonic()
    assert anchor_round(system.anchoring, force=True) is None
    assert time.monotonic() - started < 10  # CHAIN_TIMEOUT_S bounds each call: a round fails fast
    assert CHAIN_UP._value.get() == 0
    leaves = AuditLogQueries(system.store).size()
    assert leaves > first.tree_size

    node.start()  # with its state: the contract and the first root are still there
    caught_up = anchor_round(system.anchoring, force=True)
    assert caught_up is not None and caught_up.sent == leaves and caught_up.backlog == 0
    assert CHAIN_UP._value.get() == 1 and BACKLOG._value.get() == 0
    contract = caught_up.contract.address
    assert contract == first.contract.address and caught_up.contract.deployment == first.contract.deployment
    assert _anchored_root(system, contract, first.tree_size) != bytes(32)
    assert _anchored_root(system, contract, leaves) == root_of(leaves, AuditLogQueries(system.store).nodes)


def test_a_dropped_transaction_is_sent_again(on_node: Callable[..., System], node: PrivateAnvil, tenant: str) -> None:
    system = on_node()
    assert system.anchoring is not None
    system.anchoring.contract()  # deployed while blocks are still mined at once
    rpc(node.url, "evm_setAutomine", False)
    _write(system, tenant, 3)
    sent = anchor_round(system.anchoring)
    assert sent is not None and sent.sent is not None and sent.pending == 1
    system.runner.catch_up()
    (row,) = [a for a in system.anchors.page(None, 5)[0] if a["tree_size"] == sent.sent]
    assert row["status"] == "pending"

    rpc(node.url, "anvil_dropTransaction", row["tx_hash"])
    assert rpc(node.url, "eth_getTransactionByHash", row["tx_hash"]) is None  # gone from the node
    again = anchor_round(system.anchoring)
    assert again is not None and again.pending == 1
    system.runner.catch_up()
    (resent,) = [a for a in system.anchors.page(None, 5)[0] if a["tree_size"] == sent.sent]
    assert resent["sends"] == 2 and resent["status"] == "pending"
    # The same transaction again (same nonce and fields: the same hash), back on the node.
    assert rpc(node.url, "eth_getTransactionByHash", resent["tx_hash"]) is not None

    rpc(node.url, "evm_mine")
    confirmed = anchor_round(system.anchoring)
    system.runner.catch_up()
    assert confirmed is not None and confirmed.anchored == sent.sent
    (done,) = [a for a in system.anchors.page(None, 5)[0] if a["tree_size"] == sent.sent]
    assert (done["status"], done["tx_hash"]) == ("confirmed", resent["tx_hash"])


def test_an_anchor_waits_for_its_confirmations(
    on_node: Callable[..., System], node: PrivateAnvil, tenant: str
) -> None:
    system = on_node(CONFIRMATIONS="3")
    assert system.anchoring is not None
    _write(system, tenant, 3)
    sent = anchor_round(system.anchoring)
    assert sent is not None and sent.sent is not None and sent.pending == 1 and sent.anchored == 0
    system.runner.catch_up()
    waiting = anchor_round(system.anchoring)  # one block on top of it so far: not yet
    assert waiting is not None and waiting.pending == 1 and waiting.sent is None

    rpc(node.url, "anvil_mine", hex(2))
    settled = anchor_round(system.anchoring)
    system.runner.catch_up()
    assert settled is not None and settled.pending == 0 and settled.anchored == sent.sent
    (row,) = [a for a in system.anchors.page(None, 5)[0] if a["tree_size"] == sent.sent]
    assert row["status"] == "confirmed" and row["block_number"] is not None


def test_a_lost_anchor_transaction_is_found_in_windows_a_provider_allows(
    on_node: Callable[..., System], node: PrivateAnvil, tenant: str
) -> None:
    system = on_node()
    assert system.anchoring is not None
    _write(system, tenant, 3)
    sent = anchor_round(system.anchoring)
    assert sent is not None and sent.sent is not None
    chain = system.anchoring.chain()
    rpc(node.url, "anvil_mine", hex(2500))  # the transaction is now three windows of logs back
    found = chain.anchored_in(sent.contract.address, sent.sent)
    system.runner.catch_up()
    (row,) = [a for a in system.anchors.page(None, 5)[0] if a["tree_size"] == sent.sent]
    assert found is not None and (found.tx_hash, found.block_number) == (row["tx_hash"], row["block_number"])
    assert chain.anchored_in(sent.contract.address, sent.sent + 1) is None
