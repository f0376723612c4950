"""OAuth clients on both stores: create, authenticate, rotate, disable, list, tenancy."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from application.clients import ClientNotFound, IssuedCredentials
from domain.clients import ClientDisabled
from infrastructure.security_log import REPEAT_WINDOW_S, SecurityLog
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system


def test_created_client_authenticates_with_its_secret_only(system: System, tenant: str) -> None:
    issued = system.clients.create(tenant, "ci", ["goals:read", "goals:write"], actor="admin")
    client = system.clients.authenticate(issued.client_id, issued.client_secret)
    assert client is not None and client.tenant == tenant
    assert system.clients.authenticate(issued.client_id, issued.client_secret + "x") is None
    assert system.clients.authenticate("c_" + "0" * 24, issued.client_secret) is None


def test_rotation_retires_the_old_secret(system: System, tenant: str) -> None:
    issued = system.clients.create(tenant, "ci", ["goals:read"], actor="admin")
    rotated = system.clients.rotate_secret(issued.client_id, "admin", tenant=tenant)
    assert rotated.client_secret != issued.client_secret
    assert system.clients.authenticate(issued.client_id, issued.client_secret) is None
    assert system.clients.authenticate(issued.client_id, rotated.client_secret) is not None


def test_rotations_racing_each_other_all_land_and_the_last_secret_holds(system: System, tenant: str) -> None:
    """Two admins (or two replicas) rotating at once: each rotation is made on what the log
    holds, none is lost to a version conflict (it was a 500)."""
    issued = system.clients.create(tenant, "ci", ["goals:read"], actor="admin")
    start = threading.Barrier(6)

    def rotate() -> IssuedCredentials:
        start.wait()
        return system.clients.rotate_secret(issued.client_id, "admin", tenant=tenant)

    with ThreadPoolExecutor(6) as pool:
        rotated = list(pool.map(lambda _: rotate(), range(6)))
    last = max(rotated, key=lambda r: r.position)
    assert len({r.position for r in rotated}) == 6
    assert system.clients.authenticate(issued.client_id, last.client_secret) is not None
    assert all(system.clients.authenticate(issued.client_id, r.client_secret) is None for r in rotated if r is not last)


def test_another_replica_sees_a_rotation_and_a_disabling_at_once(
    system: System, make_settings: Callable[..., Settings], tenant: str
) -> None:
    issued = system.clients.create(tenant, "ci", ["goals:read"], actor="admin")
    replica = build_system(make_settings(RUN_PROJECTIONS_IN_PROCESS="false"))
    try:
        # the replica has read the client (and may keep it in memory) ...
        assert replica.clients.authenticate(issued.client_id, issued.client_secret) is not None
        # ... when the secret is rotated through the other process
        rotated = system.clients.rotate_secret(issued.client_id, "admin", tenant=tenant)
        assert replica.clients.authenticate(issued.client_id, issued.client_secret) is None
        assert replica.clients.authenticate(issued.client_id, rotated.client_secret) is not None
        # the replica's own changes start from what the log holds, and the first process sees them
        again = replica.clients.rotate_secret(issued.client_id, "admin", tenant=tenant)
        assert system.clients.authenticate(issued.client_id, rotated.client_secret) is None
        assert system.clients.authenticate(issued.client_id, again.client_secret) is not None
        system.clients.disable(issued.client_id, "leaked", "admin", tenant=tenant)
        with pytest.raises(ClientDisabled):
            replica.clients.authenticate(issued.client_id, again.client_secret)
    finally:
        replica.close()


def test_disabled_client_is_refused_and_listed_as_disabled(system: System, tenant: str) -> None:
    issued = system.clients.create(tenant, "ci", ["goals:read"], actor="admin")
    system.clients.disable(issued.client_id, "leaked", "admin", tenant=tenant)
    with pytest.raises(ClientDisabled):
        system.clients.authenticate(issued.client_id, issued.client_secret)
    system.runner.catch_up()
    listed = system.client_queries.list(tenant)
    assert [(c["client_id"], c["disabled"], c["disabled_reason"]) for c in listed] == [
        (issued.client_id, True, "leaked")
    ]
    assert issued.client_id in system.client_queries.disabled_ids()
    assert "secret" not in repr(listed).replace("secret_rotated_at", "")


def test_tenants_cannot_manage_or_list_each_others_clients(system: System, tenant: str) -> None:
    issued = system.clients.create(tenant, "ci", ["admin"], actor="admin")
    other = tenant + "b"
    with pytest.raises(ClientNotFound):
        system.clients.disable(issued.client_id, "x", "admin", tenant=other)
    with pytest.raises(ClientNotFound):
        system.clients.rotate_secret(issued.client_id, "admin", tenant=other)
    system.runner.catch_up()
    assert system.client_queries.list(other) == []
    assert [c["client_id"] for c in system.client_queries.list(tenant)] == [issued.client_id]


def test_security_denials_are_kept_per_tenant(system: System, tenant: str) -> None:
    system.security.record("scope_denied", client_id="c_a", tenant=tenant, request_id="r1", missing=["admin"])
    system.security.record("token_issued", client_id="c_a", tenant=tenant)  # counted, not stored
    system.security.record("rate_limited", client_id="c_b", tenant=tenant + "b", route_class="reads")
    denials = system.security.recent_denials(tenant)
    assert [(d["kind"], d["client_id"], d["detail"]) for d in denials] == [
        ("scope_denied", "c_a", {"missing": ["admin"]})
    ]


def test_a_flood_of_429s_is_a_row_per_window_telling_how_many_it_stands_for(
    system: System, tenant: str
) -> None:
    ticks = iter(range(10_000))
    offset = [0.0]
    security = SecurityLog(system.store, clock=lambda: 1000.0 + next(ticks) / 1000 + offset[0])
    for _ in range(50):
        security.record("rate_limited", client_id="c_a", tenant=tenant, route_class="writes")
    security.record("rate_limited", client_id="c_b", tenant=tenant, route_class="writes")  # its own row
    security.record("rate_limited", client_id="c_a", tenant=tenant, route_class="reads")  # and this
    security.record("scope_denied", client_id="c_a", tenant=tenant, missing=["admin"])  # never held back
    security.record("scope_denied", client_id="c_a", tenant=tenant, missing=["admin"])
    lookups: list[str] = []

    def look_up() -> str:
        lookups.append("c_t")
        return tenant

    for _ in range(20):  # a tenant to look up is looked up for the recorded 429 only
        security.record("rate_limited", client_id="c_t", tenant=look_up, route_class="token")
    assert lookups == ["c_t"]
    offset[0] = REPEAT_WINDOW_S
    security.record("rate_limited", client_id="c_a", tenant=tenant, route_class="writes")
    rows = [(d["kind"], d["client_id"], d["detail"]) for d in security.recent_denials(tenant)]
    assert rows == [
        ("rate_limited", "c_a", {"route_class": "writes", "repeated": 49}),
        ("rate_limited", "c_t", {"route_class": "token"}),
        ("scope_denied", "c_a", {"missing": ["admin"]}),
        ("scope_denied", "c_a", {"missing": ["admin"]}),
        ("rate_limited", "c_a", {"route_class": "reads"}),
        ("rate_limited", "c_b", {"route_class": "writes"}),
        ("rate_limited", "c_a", {"route_class": "writes"}),
    ]
