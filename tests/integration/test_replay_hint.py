"""The audit replay may take a read model's hint for the version at an instant, but the log
has the last word: a stale read model cannot make it answer with an old state."""

from __future__ import annotations

from datetime import UTC, datetime

from application.goals import ProgressUpdate
from interfaces.bootstrap import System
from tests.integration.support import meta, two_objectives


def test_as_of_is_right_whether_or_not_the_read_model_has_caught_up(system: System, tenant: str) -> None:
    system.goals.set_goals(tenant, "h", two_objectives(), meta())
    system.goals.record_progress(tenant, ProgressUpdate("h", {"speed": 10}), meta())
    system.runner.catch_up()
    projected_at = datetime.now(UTC)
    latest = system.goals.record_progress(tenant, ProgressUpdate("h", {"speed": 20}), meta())

    # the facts stop before the last write: the hint is stale, the log is not
    now = datetime.now(UTC)
    assert system.events.version_at(tenant, "h", now) != latest.first.version
    assert system.goals.goals_at(tenant, "h", as_of=now).version == latest.first.version
    # an instant the facts do cover is answered from the hint, and agrees with the log
    before = system.goals.goals_at(tenant, "h", as_of=projected_at)
    assert before.objective_progress == {"speed": 10.0}
    system.runner.catch_up()
    assert system.goals.goals_at(tenant, "h", as_of=projected_at).version == before.version
    assert system.goals.goals_at(tenant, "h", as_of=now).version == latest.first.version
