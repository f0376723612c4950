"""The security log on a real store: a flood of denials is a row per client or address every
window, recording never waits on the store, and the rows' writer rides out a store that is
locked or failing, keeping a bounded number of rows meanwhile."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client import REGISTRY

from infrastructure.denial_writer import DenialWriter
from infrastructure.readstore import PostgresReadStore
from infrastructure.security_log import REPEAT_WINDOW_S, SecurityLog
from interfaces.bootstrap import System
from tests.e2e.test_security import eventually


def unstored() -> float:
    value = REGISTRY.get_sample_value("a2a_security_denials_unstored_total")
    return value or 0.0


def unavailable() -> float:
    value = REGISTRY.get_sample_value("a2a_security_events_total", {"kind": "rate_limiter_unavailable"})
    return value or 0.0


def test_bad_tokens_are_a_row_per_address_per_window(system: System) -> None:
    ticks = itertools.count()
    offset = [0.0]
    security = SecurityLog(system.store, clock=lambda: 1000.0 + next(ticks) / 1000 + offset[0])
    for _ in range(50):
        security.record("auth_denied", address="203.0.113.7", reason="malformed")
    security.record("auth_denied", address="198.51.100.23", reason="expired")  # its own row
    offset[0] = REPEAT_WINDOW_S
    security.record("auth_denied", address="203.0.113.7", reason="bad_signature")
    rows = [
        (d["kind"], d["detail"])
        for d in security.recent_denials("nobody", limit=1000, unattributed=True)
        if 1000.0 <= d["at"] < 1000.0 + 2 * REPEAT_WINDOW_S  # this test's clock
    ]
    security.close()
    assert rows == [
        ("auth_denied", {"reason": "bad_signature", "repeated": 49}),
        ("auth_denied", {"reason": "expired"}),
        ("auth_denied", {"reason": "malformed"}),
    ]


def test_an_outage_of_the_limiters_store_is_a_log_line_per_window_with_its_count(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    offset = [0.0]
    security = SecurityLog(system.store, clock=lambda: 1000.0 + offset[0])
    counted = unavailable()
    with caplog.at_level(logging.INFO, logger="a2a_goals.security"):
        for i in range(300):  # every request of a 30 s outage, 10 a second
            offset[0] = i / 10
            security.record("rate_limiter_unavailable", error="ConnectionError")
    security.close()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "a2a_goals.security"]
    assert [line.get("repeated") for line in lines] == [None, 99, 99]
    assert {line["event"] for line in lines} == {"rate_limiter_unavailable"}
    assert unavailable() == counted + 300  # the counter counts every one


def test_denials_recorded_while_the_table_is_missing_are_counted_and_later_ones_stored(
    system: System, tenant: str
) -> None:
    security = SecurityLog(system.store)
    with system.store.transaction() as tx:
        tx.execute("DROP TABLE security_events")
    before = unstored()
    security.record("scope_denied", client_id="c_lost", tenant=tenant, missing=["admin"])
    assert eventually(lambda: unstored() == before + 1)
    security.setup()  # the table is back: the writer goes on by itself
    security.record("scope_denied", client_id="c_kept", tenant=tenant, missing=["admin"])
    assert eventually(lambda: [d["client_id"] for d in security.recent_denials(tenant)] == ["c_kept"])
    security.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[PostgresReadStore]:
    store = PostgresReadStore(pg_url, pool_size=2)
    SecurityLog(store).setup()
    yield store
    store.close()


def test_while_the_store_is_locked_rows_wait_in_a_bounded_buffer_and_are_written_after(
    pg_store: PostgresReadStore, pg_url: str, tenant: str
) -> None:
    writer = DenialWriter(pg_store, buffered=5)
    row = (1.0, "scope_denied", "c_x", tenant, None, "{}")
    before = unstored()
    with psycopg.connect(pg_url) as busy:
        busy.execute("LOCK TABLE security_events IN ACCESS EXCLUSIVE MODE")
        writer.submit(row)  # taken by the writer, which now waits for the lock
        assert not writer.flush(0.5)
        for _ in range(20):
            writer.submit(row)  # each returns at once: 5 are kept, 15 dropped and counted
        assert unstored() == before + 15
        busy.rollback()
    assert writer.flush(10)
    writer.close()
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute("SELECT count(*) FROM security_events WHERE tenant = %s", (tenant,)).fetchone()
    assert stored == (6,)
