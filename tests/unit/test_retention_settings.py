"""Retention settings: per-tenant overrides parsed or refused naming the setting, and the
pruning job scheduled only when some tenant has a retention."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from infrastructure.settings import Settings
from interfaces.workers.actors import PRUNE_READ_SIDE
from interfaces.workers.scheduler import polls
from projections.retention import RetentionPolicy, cutoffs


def test_per_tenant_retention_is_read_from_tenant_days_pairs() -> None:
    settings = Settings(RETENTION_DAYS="90", RETENTION_DAYS_BY_TENANT="acme=30, audit-heavy=0")
    assert settings.retention_days == 90
    assert settings.retention_days_by_tenant == {"acme": 30, "audit-heavy": 0}


@pytest.mark.parametrize(
    "value", ["acme", "acme=", "acme=-1", "acme=thirty", "=30", "acme=30,acme=40", "acme=36501"]
)
def test_a_malformed_per_tenant_retention_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(RETENTION_DAYS_BY_TENANT=value)
    assert "RETENTION_DAYS_BY_TENANT" in str(refused.value)


def test_a_negative_default_retention_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(RETENTION_DAYS="-1")
    assert "RETENTION_DAYS" in str(refused.value)


@pytest.mark.parametrize(
    ("values", "scheduled"),
    [
        ({}, False),  # kept for ever: nothing to prune
        ({"RETENTION_DAYS_BY_TENANT": "acme=0"}, False),
        ({"RETENTION_DAYS": "30"}, True),
        ({"RETENTION_DAYS_BY_TENANT": "acme=7"}, True),
        ({"RETENTION_DAYS": "30", "RETENTION_CHECK_S": "0"}, False),
    ],
)
def test_the_pruning_job_is_scheduled_only_when_some_tenant_has_a_retention(
    values: dict[str, str], scheduled: bool
) -> None:
    assert any(p.actor == PRUNE_READ_SIDE for p in polls(Settings(**values))) is scheduled  # type: ignore[arg-type]


def test_each_tenant_gets_its_own_cutoff_and_the_default_covers_the_others() -> None:
    now = datetime(2026, 3, 31, 12, 34, tzinfo=UTC)
    found = cutoffs(RetentionPolicy(30, {"acme": 7, "keep": 0}), now)
    assert [(s.tenants, s.all_but, c) for s, c in found] == [
        (("acme",), False, datetime(2026, 3, 24, 12, tzinfo=UTC)),
        (("acme", "keep"), True, datetime(2026, 3, 1, 12, tzinfo=UTC)),
    ]
