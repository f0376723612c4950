"""Read-your-writes: waiting for a read model to reach a position is bounded."""

from __future__ import annotations

import pytest

from application.errors import NotCaughtUp
from interfaces.bootstrap import System
from projections.freshness import wait_for_position
from tests.integration.support import meta, one_objective


def test_a_read_model_that_does_not_catch_up_in_time_is_reported(system: System, tenant: str) -> None:
    written = system.goals.set_goals(tenant, "slow", one_objective(), meta())
    with pytest.raises(NotCaughtUp) as late:
        wait_for_position(system.store, ["goal_progress"], written.position, 0.2)
    assert late.value.wanted == written.position
    assert late.value.reached < written.position
    system.runner.catch_up()
    wait_for_position(system.store, ["goal_progress", "event_facts"], written.position, 0.2)
    assert system.progress.goal_json(tenant, "slow") is not None
