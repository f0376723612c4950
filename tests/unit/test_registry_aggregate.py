"""The RegisteredAgent aggregate's rules, without I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain.errors import InvalidCommand
from domain.ids import registered_agent_id
from domain.meta import Meta
from domain.registry import AgentAlreadyRegistered, AgentDeregisteredError, RegisteredAgent, SubmittedCard

META = Meta(actor="client-1", request_id="r1")


SAMPLE = json.loads((Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())


def submitted(**changes: Any) -> SubmittedCard:
    body = {**SAMPLE, **changes}
    return SubmittedCard(body, card_hash=f"sha256:{sorted(map(str, body.items()))!r}")


def test_registration_records_the_card_as_submitted_under_the_tenant_and_key() -> None:
    agent = RegisteredAgent.register("acme", "planner", submitted(x=1), "public", META)
    assert agent.id == registered_agent_id("acme", "planner")
    assert agent.card == {**SAMPLE, "x": 1}
    assert (agent.visibility, agent.registered_by, agent.deregistered) == ("public", "client-1", False)
    assert [type(e).__name__ for e in agent.collect_events()] == ["AgentRegistered"]


def test_the_same_card_again_writes_nothing_and_a_changed_one_writes_an_update() -> None:
    agent = RegisteredAgent.register("acme", "planner", submitted(), "private", META)
    agent.collect_events()
    assert agent.update_card(submitted(), META) is False
    assert agent.collect_events() == []
    assert agent.update_card(submitted(description="new"), META) is True
    (event,) = agent.collect_events()
    assert isinstance(event, RegisteredAgent.AgentCardUpdated)
    assert agent.card["description"] == "new"


def test_visibility_changes_only_when_it_differs_and_only_to_a_known_value() -> None:
    agent = RegisteredAgent.register("acme", "planner", submitted(), "private", META)
    agent.collect_events()
    assert agent.change_visibility("private", META) is False
    assert agent.change_visibility("public", META) is True
    (event,) = agent.collect_events()
    assert (event.visibility, event.previous) == ("public", "private")  # type: ignore[attr-defined]
    with pytest.raises(InvalidCommand) as refused:
        agent.change_visibility("everyone", META)
    assert "visibility" in refused.value.errors


def test_a_deregistered_agent_refuses_changes_until_registered_again() -> None:
    agent = RegisteredAgent.register("acme", "planner", submitted(), "private", META)
    agent.deregister("retired", META)
    with pytest.raises(AgentDeregisteredError):
        agent.update_card(submitted(description="x"), META)
    with pytest.raises(AgentDeregisteredError):
        agent.deregister("again", META)
    agent.register_again(submitted(description="back"), "public", META)
    assert (agent.deregistered, agent.visibility, agent.card["description"]) == (False, "public", "back")
    with pytest.raises(AgentAlreadyRegistered):
        agent.register_again(submitted(), "public", META)


@pytest.mark.parametrize(
    ("card", "path"),
    [
        ({"name": "a\x00b"}, "card.name"),
        ({"skills": [{"id": "x"}]}, "card.skills.0.tags"),
        ({"nested": {"deep": 2**60}}, "card.nested.deep"),
        ({"n": float("nan")}, "card.n"),
        ({"list": [1, {"k\x00": 1}]}, "card.list.1.k\x00"),
    ],
)
def test_a_card_the_log_could_not_keep_exactly_is_refused_naming_the_field(card: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        RegisteredAgent.register("acme", "planner", SubmittedCard({**SAMPLE, **card}, "sha256:x"), "public", META)
    assert path in refused.value.errors


def test_nesting_beyond_the_bound_is_refused() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidCommand) as refused:
        RegisteredAgent.register(
            "acme", "planner", SubmittedCard({**SAMPLE, "ext": deep}, "sha256:x"), "public", META
        )
    assert any("levels deep" in message for message in refused.value.errors.values())
