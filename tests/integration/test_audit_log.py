"""The audit_log read model, on SQLite and PostgreSQL, is the RFC 9162 tree of the stored log."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from application.audit import Viewer, leaf_of
from application.goals import ProgressUpdate
from domain.merkle import leaf_hash, root, verify_consistency, verify_inclusion
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from interfaces.wiring.audit import audit_verifier
from projections.audit_log import node_key
from projections.audit_log_queries import AuditLogQueries
from tests.integration.support import meta, two_objectives


@pytest.fixture
def system(make_settings: Callable[..., Settings], store_kind: str, request: pytest.FixtureRequest) -> Iterator[System]:
    """The whole log is the tree: on PostgreSQL, a database of its own, so that no other test's
    events (or changes to them) are in the tree these tests recompute."""
    own = {"DATABASE_URL": request.getfixturevalue("own_pg_url")} if store_kind == "postgres" else {}
    built = build_system(make_settings(RUN_PROJECTIONS_IN_PROCESS="false", **own))
    yield built
    built.close()


def _random_log(system: System, tenant: str, rng: random.Random) -> None:
    agents = [f"agent-{i}" for i in range(rng.randint(1, 4))]
    for agent in agents:
        system.goals.set_goals(tenant, agent, two_objectives(), meta())
    for _ in range(rng.randint(5, 40)):
        update = ProgressUpdate(rng.choice(agents), {"speed": rng.randint(0, 100)})
        system.goals.record_progress(tenant, update, meta())


def _stored_leaves(system: System, size: int) -> list[tuple[int, bytes]]:
    rows = system.goals.recorder.select_notifications(start=None, limit=size)
    return [(row.id, leaf_of(row, system.goals.mapper.to_domain_event(row))) for row in rows]


def test_the_read_model_is_the_tree_of_the_stored_log(system: System, tenant: str) -> None:
    rng = random.Random(tenant)
    queries = AuditLogQueries(system.store)
    for _ in range(3):  # several pages, each projected on top of the last
        _random_log(system, tenant, rng)
        system.runner.catch_up()
        size = queries.size()
        assert size == len(system.goals.recorder.select_notifications(start=None, limit=10**6))
        stored = _stored_leaves(system, size)
        top = root([h for _, h in stored])
        assert system.audit.root() == {"tree_size": size, "root_hash": top.hex()}
        for index in rng.sample(range(size), min(size, 20)):
            position, digest = stored[index]
            proof = system.audit.inclusion(position, Viewer(tenant=None))
            assert proof["leaf_index"] == index
            assert leaf_hash(bytes.fromhex(proof["leaf_data"])) == digest
            verify_inclusion(index, size, digest, [bytes.fromhex(h) for h in proof["inclusion_proof"]], top)
            earlier = rng.randint(index + 1, size)
            old = system.audit.inclusion(position, Viewer(tenant=None), tree_size=earlier)
            old_root = root([h for _, h in stored[:earlier]])
            assert old["root_hash"] == old_root.hex()
            verify_inclusion(index, earlier, digest, [bytes.fromhex(h) for h in old["inclusion_proof"]], old_root)
            answer = system.audit.consistency(earlier, size)
            verify_consistency(
                earlier, size, [bytes.fromhex(h) for h in answer["consistency_proof"]], old_root, top
            )


def test_a_rebuild_gives_the_same_tree(system: System, tenant: str) -> None:
    _random_log(system, tenant, random.Random(1))
    system.runner.catch_up()
    before = system.audit.root()
    system.rebuilder.rebuild(["audit_log"])
    assert system.audit.root() == before


def test_verify_finds_a_changed_subtree_and_checks_from_the_middle(system: System, tenant: str) -> None:
    _random_log(system, tenant, random.Random(2))
    system.runner.catch_up()
    verifier = audit_verifier(system.goals, system.store)
    whole = verifier.verify()
    assert whole.first_bad is None and whole.root_hash == system.audit.root()["root_hash"]
    middle = system.goals.log_position() // 2
    assert verifier.verify(middle).first_bad is None

    size = AuditLogQueries(system.store).size()
    key = node_key(1, size // 2 - 1)  # the last pair of leaves
    with system.store.read() as reader:
        (held,) = reader.fetchone("SELECT hash FROM audit_nodes WHERE node = ?", (key,)) or (None,)
    with system.store.transaction() as tx:
        tx.execute("UPDATE audit_nodes SET hash = ? WHERE node = ?", (b"\x00" * 32, key))
    try:
        bad = verifier.verify().first_bad
        assert bad is not None and f"subtree (1, {size // 2 - 1})" in bad.what
    finally:
        with system.store.transaction() as tx:
            tx.execute("UPDATE audit_nodes SET hash = ? WHERE node = ?", (bytes(held), key))
    assert verifier.verify().first_bad is None
