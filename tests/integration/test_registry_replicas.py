"""Two replicas of the registry on one store, each with its own aggregate cache: "nothing to
change" is decided on the log, like a refusal, so a stale copy never swallows a command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from application.errors import VersionMismatch
from application.preconditions import IfMatch
from application.registry import CardSource
from infrastructure.settings import Settings
from tests.integration.support import meta, one_objective, running_system

CARD: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text()
)


def test_a_stale_replica_does_not_take_a_change_for_no_change(
    make_settings: Callable[..., Settings], tenant: str
) -> None:
    with running_system(make_settings) as one, running_system(make_settings) as two:
        one.registry.register(tenant, "x", CardSource(card=CARD), "public", meta("one"))
        one.registry.update(tenant, "x", None, "private", meta("one"))  # one caches: private
        two.registry.update(tenant, "x", None, "public", meta("two"))  # the log: public

        made_private = one.registry.update(tenant, "x", None, "private", meta("one"))

        assert made_private.first.version == 4  # written, not answered from the stale copy
        assert two.registry.update(tenant, "x", None, "private", meta("two")).first.version == 4
        with pytest.raises(VersionMismatch):
            # One's copy was at version 2 when its If-Match: "2" would have passed unchecked.
            one.registry.update(tenant, "x", CardSource(card=CARD), None, meta("one"), expected_version=IfMatch.version(2))


def test_a_record_is_stamped_with_its_latest_change_card_or_goals(
    make_settings: Callable[..., Settings], tenant: str
) -> None:
    """The card cache stores an answer only if it was read at or after the agent's last
    eviction, which a goal change makes too: a record stamped with its card's position alone
    was never cached again once its goals moved."""
    with running_system(make_settings) as system:
        registered = system.registry.register(tenant, "x", CardSource(card=CARD), "public", meta())
        goals = system.goals.set_goals(tenant, "x", one_objective(), meta())
        system.runner.catch_up()
        record = system.agent_cards.visible(tenant, "x")
        assert record is not None
        assert record.position == goals.position > registered.position
