"""Reachability in the domain: where an agent is checked, and one event per change of state,
never one per check."""

from __future__ import annotations

from typing import Any

import pytest

from domain.meta import Meta
from domain.reachability import card_check_url
from domain.registry import RegisteredAgent, SubmittedCard

META = Meta(actor="reachability")
URL = "https://agent.example/.well-known/agent-card.json"
V1 = {
    "name": "Planner",
    "description": "Plans",
    "version": "1.0.0",
    "supportedInterfaces": [
        {
            "url": "https://agent.example:8443/a2a/v1?x=1",
            "protocolBinding": "JSONRPC",
            "protocolVersion": "1.0",
        },
        {"url": "https://other.example/a2a", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
    ],
    "capabilities": {},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [{"id": "plan", "name": "Plan", "description": "Plans", "tags": ["plans"]}],
}


def _v03(url: str) -> dict[str, Any]:
    card = {k: v for k, v in V1.items() if k != "supportedInterfaces"}
    return {**card, "url": url, "preferredTransport": "JSONRPC", "protocolVersion": "0.3.0"}


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (V1, "https://agent.example:8443/.well-known/agent-card.json"),
        (_v03("http://127.0.0.1:9000/rpc"), "http://127.0.0.1:9000/.well-known/agent-card.json"),
        (_v03("http://user:pw@[::1]:81/"), "http://[::1]:81/.well-known/agent-card.json"),
    ],
)
def test_the_check_url_is_the_first_interfaces_origin_and_the_well_known_path(
    card: dict[str, Any], expected: str
) -> None:
    assert card_check_url(card) == expected


def _agent() -> RegisteredAgent:
    agent = RegisteredAgent.register("acme", "planner", SubmittedCard(V1, "sha256:x"), "private", META)
    agent.collect_events()
    return agent


def test_only_a_change_of_reachability_is_recorded() -> None:
    agent = _agent()
    assert agent.record_reachability(True, "", URL, META)  # the first check says something new
    assert not agent.record_reachability(True, "", URL, META)
    assert agent.record_reachability(False, "unreachable: connection refused", URL, META)
    assert not agent.record_reachability(False, "timeout: no answer", URL, META)
    assert agent.record_reachability(True, "", URL, META)
    events = agent.collect_events()
    assert [(e.reachable, e.error) for e in events if isinstance(e, RegisteredAgent.ReachabilityChanged)] == [
        (True, ""),
        (False, "unreachable: connection refused"),
        (True, ""),
    ]


def test_a_deregistered_agent_records_no_reachability_and_starts_unchecked_when_registered_again() -> None:
    agent = _agent()
    agent.record_reachability(False, "timeout", URL, META)
    agent.deregister("", META)
    assert not agent.record_reachability(True, "", URL, META)
    agent.register_again(SubmittedCard(V1, "sha256:x"), "private", META)
    assert agent.reachable is None
    assert agent.record_reachability(False, "timeout", URL, META)
