"""Anchoring's guards against a node that cannot hold what it is told: a contract address with no
contract behind it confirms nothing, and a node URL's secrets stay out of every error and log."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from application.goals import ProgressUpdate
from domain.merkle import root_of
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.workers.anchoring import anchor_round
from projections.audit_log_queries import AuditLogQueries
from tests.chain_support import OTHER_ADDRESS, OWNER_ADDRESS, OWNER_KEY, PrivateAnvil
from tests.conftest import free_port
from tests.integration.support import meta, two_objectives

SECRET = "k3y0fTh3Pr0v1d3r"
# SQLite only: these systems anchor on nodes of their own (chain 31337, the contract at the
# same address as on the shared node), and the PostgreSQL read models are shared by the session.
pytestmark = pytest.mark.parametrize("store_kind", ["sqlite"])


@pytest.fixture
def build(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., System]]:
    built: list[System] = []

    def make(**overrides: object) -> System:
        system = build_system(
            make_settings(
                RUN_PROJECTIONS_IN_PROCESS="false",
                A2A_PRIVATE_KEY=OWNER_KEY,
                CHAIN_TIMEOUT_S="1",
                **overrides,
            )
        )
        built.append(system)
        return system

    yield make
    for system in built:
        system.close()


def _write(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "agent-1", two_objectives(), meta())
    system.goals.record_progress(tenant, ProgressUpdate("agent-1", {"speed": 1}), meta())
    system.runner.catch_up()


def test_a_contract_address_with_no_contract_confirms_no_anchor(
    build: Callable[..., System], start_anvil: Callable[[], PrivateAnvil], tenant: str
) -> None:
    node = start_anvil()
    # An account, not a contract (a typo, another chain's address, a node started afresh): a
    # transaction to it succeeds and writes nothing.
    system = build(A2A_RPC_URL=node.url, A2A_CONTRACT_ADDRESS=OTHER_ADDRESS)
    assert system.anchoring is not None
    _write(system, tenant)
    assert anchor_round(system.anchoring, force=True) is None  # the chain cannot be used as configured
    system.runner.catch_up()
    assert [a for a in system.anchors.page(None, 10)[0] if a["status"] == "confirmed"] == []
    assert system.anchors.confirmed() == []


class _RefusingProvider(http.server.BaseHTTPRequestHandler):
    """A provider that refuses the key in its URL, naming the URL back as requests does."""

    def do_POST(self) -> None:
        self.send_response(401)
        self.end_headers()
        self.wfile.write(b"invalid project id")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_provider() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _RefusingProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("where", ["down", "refusing"])
def test_the_node_urls_secrets_stay_out_of_the_log(
    build: Callable[..., System],
    refusing_provider: int,
    tenant: str,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port() if where == "down" else refusing_provider
    system = build(A2A_RPC_URL=f"http://user:pa55{SECRET}@127.0.0.1:{port}/v3/{SECRET}?apikey={SECRET}")
    assert system.anchoring is not None
    _write(system, tenant)
    with caplog.at_level(logging.WARNING):
        assert anchor_round(system.anchoring, force=True) is None
    said = caplog.text
    assert "anchoring waits for the chain" in said and f"127.0.0.1:{port}" in said
    assert SECRET not in said


def _nonce(url: str, address: str) -> int:
    body = httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionCount", "params": [address, "latest"]},
    ).json()
    return int(body["result"], 16)


def test_no_transaction_is_sent_for_a_size_the_contract_is_already_past(
    build: Callable[..., System], start_anvil: Callable[[], PrivateAnvil], tenant: str, tmp_path: Path
) -> None:
    # A contract that holds a larger tree already (a database restored from a backup, a second
    # deployment given the same A2A_CONTRACT_ADDRESS): every anchor of a smaller size reverts,
    # and each would be sent again, and paid for, round after round.
    node = start_anvil()
    ahead = build(A2A_RPC_URL=node.url, DATA_DIR=str(tmp_path / "ahead"), DATABASE_URL="")
    assert ahead.anchoring is not None
    for i in range(4):
        ahead.goals.set_goals(tenant, f"agent-{i}", two_objectives(), meta())
    ahead.runner.catch_up()
    first = anchor_round(ahead.anchoring, force=True)
    assert first is not None and first.anchored == first.tree_size

    behind = build(
        A2A_RPC_URL=node.url,
        A2A_CONTRACT_ADDRESS=first.contract.address,
        DATA_DIR=str(tmp_path / "behind"),
        DATABASE_URL="",
    )
    assert behind.anchoring is not None
    _write(behind, tenant)
    assert AuditLogQueries(behind.store).size() < first.tree_size
    sent_before = _nonce(node.url, OWNER_ADDRESS)
    for _ in range(3):
        done = anchor_round(behind.anchoring, force=True)
        assert done is not None and done.sent is None
        behind.runner.catch_up()
    assert _nonce(node.url, OWNER_ADDRESS) == sent_before  # nothing sent, nothing paid


def test_an_anchor_sent_by_a_round_that_stopped_before_recording_it_is_recorded(
    build: Callable[..., System], start_anvil: Callable[[], PrivateAnvil], tenant: str
) -> None:
    node = start_anvil()
    system = build(A2A_RPC_URL=node.url)
    assert system.anchoring is not None
    _write(system, tenant)
    contract = system.anchoring.contract()
    system.runner.catch_up()
    size = AuditLogQueries(system.store).size()
    root = root_of(size, AuditLogQueries(system.store).nodes)
    # What a round does before it records the anchor; the process stops there.
    tx_hash = system.anchoring._chain().send_anchor(contract.address, size, root)
    sent_before = _nonce(node.url, OWNER_ADDRESS)

    again = anchor_round(system.anchoring, force=True)
    system.runner.catch_up()
    assert again is not None and again.sent == size and again.anchored == size
    assert _nonce(node.url, OWNER_ADDRESS) == sent_before  # not sent twice
    (row,) = [a for a in system.anchors.page(None, 10)[0] if a["tree_size"] == size]
    assert (row["status"], row["tx_hash"], row["root_hash"]) == ("confirmed", tx_hash, root.hex())


def test_a_transaction_not_mined_in_time_is_replaced_not_queued_behind(
    build: Callable[..., System], start_anvil: Callable[[], PrivateAnvil], tenant: str
) -> None:
    node = start_anvil()
    system = build(A2A_RPC_URL=node.url, ANCHOR_RESEND_S="0.001")
    assert system.anchoring is not None
    system.anchoring.contract()  # deployed while blocks are still mined at once
    before = _nonce(node.url, OWNER_ADDRESS)
    httpx.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_setAutomine", "params": [False]})
    _write(system, tenant)
    sent = anchor_round(system.anchoring)
    assert sent is not None and sent.sent is not None and sent.pending == 1
    system.runner.catch_up()
    late = anchor_round(system.anchoring)  # not mined after ANCHOR_RESEND_S: sent again
    assert late is not None and late.pending == 1
    system.runner.catch_up()

    httpx.post(node.url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []})
    done = anchor_round(system.anchoring)
    system.runner.catch_up()
    assert done is not None and done.anchored == sent.sent
    # One transaction mined for the anchor: the second send took the first one's place (its
    # nonce, a higher fee) instead of queueing behind it, to revert and be paid for.
    assert _nonce(node.url, OWNER_ADDRESS) == before + 1
    (row,) = [a for a in system.anchors.page(None, 10)[0] if a["tree_size"] == sent.sent]
    assert row["status"] == "confirmed" and row["sends"] >= 2
