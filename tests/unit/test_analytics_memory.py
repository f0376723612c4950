"""Which tenants the system analytics remember: the most recently asked, within bounds."""

from __future__ import annotations

from projections.analytics_memory import AnalyticsMemory


def test_the_most_recently_asked_tenants_are_remembered() -> None:
    memory = AnalyticsMemory(tenants=2)
    t1, t2 = memory.of("t1"), memory.of("t2")
    assert memory.of("t1") is t1  # now t2 is the least recently asked ...
    t3 = memory.of("t3")  # ... and is forgotten for t3
    assert (memory.of("t1"), memory.of("t3")) == (t1, t3)
    assert memory.of("t2") is not t2


def test_the_tenant_asked_is_kept_even_beyond_the_bound_on_points() -> None:
    memory = AnalyticsMemory(points=0)
    first = memory.of("t1")
    assert memory.of("t1") is first  # no points remembered yet: nothing to drop
