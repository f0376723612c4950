"""Anchoring on the in-process chain (eth-tester), on SQLite and PostgreSQL: roots reach the
contract in batches, when due, and the anchoring's own events never call for another anchor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from application.anchoring import Anchoring, AnchorPolicy, Chain
from application.goals import ProgressUpdate
from domain.anchors import ContractRef
from domain.merkle import root_of
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.wiring.anchoring import topics_of_leaves
from projections.audit_anchors import AuditAnchorQueries
from projections.audit_log_queries import AuditLogQueries
from tests.integration.support import meta, two_objectives


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def anchored(make_settings: Callable[..., Settings]) -> Iterator[System]:
    built = build_system(make_settings(RUN_PROJECTIONS_IN_PROCESS="false"))
    yield built
    built.close()


def _anchoring(system: System, clock: Clock, **policy: object) -> tuple[Anchoring, Chain]:
    assert system.anchoring is not None
    chain = system.anchoring._chain()  # the system's own in-process chain
    anchoring = Anchoring(
        system.goals,
        lambda: chain,
        AuditLogQueries(system.store),
        AuditAnchorQueries(system.store),
        topics_of_leaves(system.goals, system.store),
        AnchorPolicy(**policy),  # type: ignore[arg-type]
        clock=clock,
    )
    return anchoring, chain


def _of(anchor: dict[str, object], contract: ContractRef) -> bool:
    """Whether an anchor went to this deployment (on PostgreSQL, tests share the read models)."""
    return (anchor["chain_id"], anchor["deployment"]) == (contract.chain_id, contract.deployment)


def _write(system: System, tenant: str, updates: int) -> None:
    system.goals.set_goals(tenant, "agent-1", two_objectives(), meta())
    for i in range(updates):
        system.goals.record_progress(tenant, ProgressUpdate("agent-1", {"speed": i % 100}), meta())
    system.runner.catch_up()


def test_a_root_is_anchored_and_read_back_from_the_contract(anchored: System, tenant: str) -> None:
    clock = Clock()
    anchoring, chain = _anchoring(anchored, clock, every_events=1000, every_seconds=60)
    _write(anchored, tenant, 20)
    size = AuditLogQueries(anchored.store).size()

    first = anchoring.run()
    anchored.runner.catch_up()

    assert first.sent == size and first.pending == 0 and first.backlog == 0
    contract = first.contract.address
    assert chain.root_at(contract, size) == root_of(size, AuditLogQueries(anchored.store).nodes)
    items = [i for i in anchored.anchors.page(None, 50)[0] if _of(i, first.contract)]
    assert [(i["tree_size"], i["status"]) for i in items] == [(size, "confirmed")]
    assert items[0]["root_hash"] == chain.root_at(contract, size).hex()
    assert items[0]["block_number"] >= 1 and items[0]["tx_hash"].startswith("0x")

    # The anchor's own events (and the contract's deployment) are leaves too, but anchoring
    # them would call for another anchor after every anchor: nothing is due.
    clock.now += timedelta(hours=1)
    idle = anchoring.run()
    assert idle.sent is None
    assert AuditLogQueries(anchored.store).size() > size
    assert idle.backlog == 0  # at rest: no backlog for the alert to see, though leaves wait


def test_anchors_wait_for_a_batch_or_for_their_time(anchored: System, tenant: str) -> None:
    clock = Clock()
    anchoring, chain = _anchoring(anchored, clock, every_events=50, every_seconds=60)
    _write(anchored, tenant, 5)
    assert anchoring.run().sent is not None  # the first anchor goes at once
    anchored.runner.catch_up()

    _write(anchored, tenant, 10)
    assert anchoring.run().sent is None  # 10+ leaves: neither 50 of them nor 60 s
    clock.now = datetime.now(UTC) + timedelta(seconds=61)  # past the first anchor's time
    timed = anchoring.run()
    assert timed.sent == timed.tree_size and timed.backlog == 0
    anchored.runner.catch_up()

    _write(anchored, tenant, 60)
    batch = anchoring.run()  # 60 leaves: a batch is due before its time
    anchored.runner.catch_up()
    assert batch.sent == batch.tree_size
    # The store is shared by the tests on PostgreSQL: this test's are those of its deployment.
    ours = [i for i in anchored.anchors.page(None, 50)[0] if _of(i, batch.contract)]
    sizes = [i["tree_size"] for i in ours]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 3
    assert chain.latest_tree_size(batch.contract.address) == sizes[0]


def test_a_chain_that_lost_the_contract_gets_a_new_one(anchored: System, tenant: str) -> None:
    clock = Clock()
    anchoring, _ = _anchoring(anchored, clock)
    _write(anchored, tenant, 3)
    first = anchoring.run()
    anchored.runner.catch_up()
    # Another in-process chain, as after a restart: the recorded contract is not on it.
    fresh = build_system(anchored.settings)
    try:
        assert fresh.anchoring is not None
        again = fresh.anchoring.run()
        # The same deployer gets the same address on a fresh chain: a new deployment all the same.
        assert again.contract.address == first.contract.address
        assert again.contract.deployment == first.contract.deployment + 1
        assert again.sent == again.tree_size and again.backlog == 0
        fresh.runner.catch_up()
        deployments = (first.contract.deployment, again.contract.deployment)
        statuses = {
            i["deployment"]: i["status"]
            for i in fresh.anchors.page(None, 50)[0]
            if i["chain_id"] == first.contract.chain_id and i["deployment"] in deployments
        }
        assert statuses == dict.fromkeys(deployments, "confirmed")
    finally:
        fresh.close()
