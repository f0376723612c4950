"""The agent registry through its HTTP API, on a real server: the A2A specification's own
sample cards in and out, the goals extension, ETags, signatures the official SDK verifies,
and tenants that never see each other's private agents."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client.card_resolver import A2ACardResolver, parse_agent_card
from a2a.compat.v0_3.types import AgentCard as V03Card
from a2a.utils.signing import create_signature_verifier
from jwt.api_jwk import PyJWK
from prometheus_client.parser import text_string_to_metric_families

from domain.clients import SCOPES
from tests.conftest import Server
from tests.e2e.support import login, ok, problem

FIXTURES = Path(__file__).parent.parent / "fixtures" / "a2a"
AGENTS = "/api/v1/agents"
GOALS_EXTENSION = "urn:a2a-goals:extension:goals:v1"


def sample(name: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return card


@pytest.fixture
def server(start_server: Callable[..., Server], store_kind: str, request: pytest.FixtureRequest) -> Server:
    env = {"OUTBOUND_ALLOW_NETS": "127.0.0.0/8"}
    if store_kind == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("pg_url")
    return start_server(**env)


@pytest.fixture
def reg(server: Server, tenant: str) -> Iterator[httpx.Client]:
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client


def register(client: httpx.Client, agent_id: str, card: dict[str, Any], visibility: str = "private") -> dict[str, Any]:
    return ok(client.post(AGENTS, json={"agent_id": agent_id, "card": card, "visibility": visibility}), 201)


def served_card(client: httpx.Client, agent_id: str, position: int, **headers: str) -> httpx.Response:
    ok(client.get(f"{AGENTS}/{agent_id}", params={"min_position": position}))
    return client.get(f"{AGENTS}/{agent_id}/card", headers=headers)


def public_index(base: str, *, include_deleted: bool) -> list[dict[str, Any]]:
    """Every entry of a registry's public index, page by page (a small page: paging is tested)."""
    entries: list[dict[str, Any]] = []
    params: dict[str, Any] = {"include_deleted": str(include_deleted).lower(), "limit": 2}
    while True:
        page = ok(httpx.get(f"{base.rstrip('/')}/.well-known/agents/index.json", params=params))
        entries += page["items"]
        if not page["next_cursor"]:
            return entries
        params["cursor"] = page["next_cursor"]


def extension(card: dict[str, Any]) -> dict[str, Any]:
    (found,) = [e for e in card["capabilities"]["extensions"] if e["uri"] == GOALS_EXTENSION]
    return found


def test_the_spec_sample_card_registers_unchanged_and_is_served_in_both_generations(reg: httpx.Client) -> None:
    card = sample("sample-card-v1.0.json")
    written = register(reg, "planner", card, "public")
    record = ok(reg.get(f"{AGENTS}/planner", params={"min_position": written["position"]}))
    assert record["card"] == card
    assert (record["visibility"], record["origin"]) == ("public", "local")
    # The spec's sample carries a signature that is not one of this card (its key is not
    # published either): registered, and recorded as such.
    assert record["signature"]["state"] == "invalid" and record["signature"]["detail"]

    v1 = served_card(reg, "planner", written["position"])
    assert v1.status_code == 200
    parsed = parse_agent_card(v1.json())
    assert parsed.name == card["name"]
    assert [s.id for s in parsed.skills] == [s["id"] for s in card["skills"]]
    assert extension(v1.json())["params"]["has_goals"] is False

    legacy = reg.get(f"{AGENTS}/planner/card", headers={"A2A-Version": "0.3"}).json()
    assert legacy["url"] == card["supportedInterfaces"][0]["url"]
    assert V03Card.model_validate(legacy).name == card["name"]
    original = reg.get(f"{AGENTS}/planner/card", params={"original": "true"}).json()
    assert original == card


def test_a_v0_3_sample_card_registers_and_v1_clients_get_its_v1_form(reg: httpx.Client) -> None:
    card = sample("sample-card-v0.3.json")
    written = register(reg, "legacy", card)
    v1 = served_card(reg, "legacy", written["position"]).json()
    assert v1["supportedInterfaces"][0]["url"] == card["url"]
    assert parse_agent_card(v1).name == card["name"]


def test_an_invalid_card_is_refused_naming_every_wrong_field(reg: httpx.Client) -> None:
    card = sample("sample-card-v1.0.json")
    del card["name"]
    card["skills"][0]["tags"] = "not-a-list"
    body = problem(reg.post(AGENTS, json={"agent_id": "bad", "card": card}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"body.card.name", "body.card.skills.0.tags"} <= fields
    # Within the spec's field rules, but not a card the SDK's clients could read: refused now,
    # rather than a card route that fails for every reader.
    unreadable = {**sample("sample-card-v1.0.json"), "securitySchemes": {"x": {"bogus": {}}}}
    body = problem(reg.post(AGENTS, json={"agent_id": "odd", "card": unreadable}), 422)
    assert [e["field"] for e in body["errors"]] == ["body.card"]
    # An integer no JSON reader keeps exactly is refused where it is, not stored as a float.
    huge = {**sample("sample-card-v1.0.json"), "x-fleet": {"budget": 2**70}}
    body = problem(reg.post(AGENTS, json={"agent_id": "huge", "card": huge}), 422)
    assert [e["field"] for e in body["errors"]] == ["body.card.x-fleet.budget"]


def test_goal_progress_reaches_the_served_card_and_changes_its_etag(reg: httpx.Client) -> None:
    written = register(reg, "planner", sample("sample-card-v1.0.json"))
    first = served_card(reg, "planner", written["position"])
    etag = first.headers["ETag"]
    assert reg.get(f"{AGENTS}/planner/card", headers={"If-None-Match": etag}).status_code == 304
    assert first.headers["Cache-Control"].endswith("max-age=60") and first.headers["Last-Modified"]

    goals = {"goals": {"purpose_statement": "Plan trips", "primary_objectives": [{"id": "route", "title": "Route"}]}}
    ok(reg.post("/api/v1/goals/agents/planner", json=goals), 201)
    progress = ok(reg.put("/api/v1/goals/agents/planner/progress", json={"objective_progress": {"route": 60}}))
    second = served_card(reg, "planner", progress["position"])
    assert second.headers["ETag"] != etag
    params = extension(second.json())["params"]
    assert params["has_goals"] is True
    assert (params["goal_status"], params["overall_progress"], params["objectives_count"]) == ("active", 60.0, 1)
    assert params["milestones_achieved"] == 4  # 25 and 50, of the objective and of overall
    assert reg.get(f"{AGENTS}/planner/card", headers={"If-None-Match": etag}).status_code == 200
    found = ok(
        reg.get(
            AGENTS,
            params={"q": "route planer", "goal_status": "active", "min_progress": 50, "owned": "true"},
        )
    )
    assert [a["agent_id"] for a in found["items"]] == ["planner"] and found["total"] == 1
    none = ok(reg.get(AGENTS, params={"q": "route", "min_progress": 61, "owned": "true"}))
    assert (none["items"], none["total"]) == ([], 0)


def test_served_cards_carry_a_registry_signature_the_official_sdk_verifies(server: Server, reg: httpx.Client) -> None:
    written = register(reg, "planner", sample("sample-card-v1.0.json"), "public")
    served = served_card(reg, "planner", written["position"]).json()
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()

    def key(kid: str | None, _jku: str | None) -> PyJWK:
        (found,) = [k for k in jwks["keys"] if k["kid"] == kid]
        return PyJWK(found)

    verify = create_signature_verifier(key, ["ES256"])
    verify(parse_agent_card(served))  # raises unless a signature verifies
    tampered = copy.deepcopy(served)
    extension(tampered)["params"]["overall_progress"] = 99.0
    with pytest.raises(Exception, match=r"(?i)signature"):
        verify(parse_agent_card(tampered))
    own = httpx.get(f"{server.url}/.well-known/agent-card.json").json()
    verify(parse_agent_card(own))


def test_an_unchanged_card_writes_nothing_and_deregistration_removes_the_agent(reg: httpx.Client) -> None:
    card = sample("sample-card-v1.0.json")
    written = register(reg, "planner", card, "public")
    public_id = ok(reg.get(f"{AGENTS}/planner", params={"min_position": written["position"]}))["id"]
    same = ok(reg.put(f"{AGENTS}/planner", json={"card": card}))
    assert same["version"] == written["version"]
    changed = ok(reg.put(f"{AGENTS}/planner", json={"card": {**card, "description": "Plans better"}}))
    assert changed["version"] == written["version"] + 1
    gone = ok(reg.request("DELETE", f"{AGENTS}/planner"))
    problem(reg.get(f"{AGENTS}/planner", params={"min_position": gone["position"]}), 404)
    problem(reg.put(f"{AGENTS}/planner", json={"visibility": "private"}), 404)
    history = ok(reg.get(f"{AGENTS}/planner/history"))
    events = [i["event"] for i in history["items"]]
    assert events == ["AgentRegistered", "AgentCardUpdated", "AgentDeregistered"]
    assert history["items"][1]["changes"] == [
        {"path": "/description", "from": card["description"], "to": "Plans better"}
    ]
    page = ok(reg.get(f"{AGENTS}/planner/history", params={"after_version": 1, "limit": 1}))
    assert page["items"] == history["items"][1:2]  # diffed against the card before the page
    entries = [i for i in public_index(str(reg.base_url), include_deleted=True) if i["id"] == public_id]
    assert [i["deleted"] for i in entries] == [True]
    assert public_id not in {i["id"] for i in public_index(str(reg.base_url), include_deleted=False)}


def test_a_card_is_fetched_from_its_card_url_through_the_outbound_guard(
    reg: httpx.Client, files: tuple[str, dict[str, bytes]]
) -> None:
    base, documents = files
    card = sample("sample-card-v1.0.json")
    documents["/card.json"] = json.dumps(card).encode()
    written = ok(reg.post(AGENTS, json={"agent_id": "fetched", "card_url": f"{base}/card.json"}), 201)
    record = ok(reg.get(f"{AGENTS}/fetched", params={"min_position": written["position"]}))
    assert record["card"] == card and record["card_url"] == f"{base}/card.json"
    missing = problem(reg.post(AGENTS, json={"agent_id": "missing", "card_url": f"{base}/nope.json"}), 422)
    assert [e["field"] for e in missing["errors"]] == ["body.card_url"]


def test_a_card_url_on_a_refused_network_is_a_422_naming_it(
    start_server: Callable[..., Server], tenant: str, files: tuple[str, dict[str, bytes]]
) -> None:
    server = start_server()  # no OUTBOUND_ALLOW_NETS: loopback is refused
    base, documents = files
    documents["/card.json"] = json.dumps(sample("sample-card-v1.0.json")).encode()
    _, headers = login(server, tenant)
    answer = httpx.post(
        f"{server.url}{AGENTS}", json={"agent_id": "x", "card_url": f"{base}/card.json"}, headers=headers
    )
    assert [e["field"] for e in problem(answer, 422)["errors"]] == ["body.card_url"]


def test_another_tenants_private_agent_is_never_seen_and_its_public_one_is(server: Server, tenant: str) -> None:
    _, mine = login(server, tenant)
    _, theirs = login(server, tenant + "b")
    card = sample("sample-card-v1.0.json")
    with httpx.Client(base_url=server.url, headers=theirs, timeout=30) as b:
        hidden = register(b, "secret", {**card, "name": "Secret planner"}, "private")
        shown = register(b, "open", {**card, "name": "Open planner"}, "public")
        secret_id = ok(b.get(f"{AGENTS}/secret", params={"min_position": shown["position"]}))["id"]
        open_id = ok(b.get(f"{AGENTS}/open"))["id"]
    with httpx.Client(base_url=server.url, headers=mine, timeout=30) as a:
        for ref in ("secret", secret_id):
            for path in ("", "/card", "/history"):
                problem(a.get(f"{AGENTS}/{ref}{path}", params={"min_position": hidden["position"]} if not path else {}), 404)
            problem(a.put(f"{AGENTS}/{ref}", json={"visibility": "public"}), 404)
            problem(a.request("DELETE", f"{AGENTS}/{ref}"), 404)
        record = ok(a.get(f"{AGENTS}/{open_id}"))
        assert (record["owned"], record["agent_id"]) == (False, open_id)
        assert a.get(f"{AGENTS}/{open_id}/card").status_code == 200
        # Its history is B's: earlier cards, who changed them and why are never A's to read.
        problem(a.get(f"{AGENTS}/{open_id}/history"), 404)
        # Search and list: B's public agent is found, its private one never, by any filter,
        # and the totals count only what A may see.
        for params in ({"q": "secret planner"}, {"q": "planner"}, {"skill": card["skills"][0]["id"]}, {}):
            found = ok(a.get(AGENTS, params={**params, "limit": 100, "min_position": shown["position"]}))
            ids = {item["id"] for item in found["items"]}
            assert secret_id not in ids, params
            assert found["total"] == len(found["items"]) or found["next_cursor"], params
        assert open_id in {i["id"] for i in ok(a.get(AGENTS, params={"q": "open planner", "limit": 100}))["items"]}
        assert ok(a.get(AGENTS, params={"q": "secret planner", "owned": "true"}))["total"] == 0
        # Registering the same agent id in A's tenant is A's own agent, not B's.
        register(a, "secret", card)
    assert httpx.get(f"{server.url}/.well-known/agents/{secret_id}/agent-card.json").status_code == 404
    assert httpx.get(f"{server.url}/.well-known/agents/{open_id}/agent-card.json").status_code == 200
    for include_deleted in (False, True):
        entries = {i["id"]: i for i in public_index(server.url, include_deleted=include_deleted)}
        assert secret_id not in entries
        assert entries[open_id]["card_url"].endswith(f"/.well-known/agents/{open_id}/agent-card.json")


def test_the_sdk_resolver_accepts_this_registrys_card_and_every_public_card(server: Server, reg: httpx.Client) -> None:
    written = register(reg, "planner", sample("sample-card-v1.0.json"), "public")
    register(reg, "legacy", sample("sample-card-v0.3.json"), "public")
    ok(reg.get(f"{AGENTS}/planner", params={"min_position": written["position"] + 1}))
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()

    def key(kid: str | None, _jku: str | None) -> PyJWK:
        (found,) = [k for k in jwks["keys"] if k["kid"] == kid]
        return PyJWK(found)

    verify = create_signature_verifier(key, ["ES256"])

    async def resolve_all() -> list[str]:
        async with httpx.AsyncClient() as client:
            resolver = A2ACardResolver(client, server.url)
            names = [(await resolver.get_agent_card(signature_verifier=verify)).name]
            for entry in public_index(server.url, include_deleted=False):
                path = entry["card_url"].removeprefix(server.url)
                names.append((await resolver.get_agent_card(path, signature_verifier=verify)).name)
            return names

    names = asyncio.run(resolve_all())
    assert names[0] == "a2a-goals registry"
    assert {sample("sample-card-v1.0.json")["name"], sample("sample-card-v0.3.json")["name"]} <= set(names[1:])


def test_card_parameters_are_validated_as_documented(reg: httpx.Client) -> None:
    """The card route reads its parameters by hand (interfaces/http/card_params.py): each bad
    one is a 422 naming it, each good one works, and /openapi.json documents exactly them."""
    written = register(reg, "params", sample("sample-card-v1.0.json"))
    card = served_card(reg, "params", written["position"])
    assert card.status_code == 200
    path = f"{AGENTS}/params/card"
    bad = [
        ({"A2A-Version": "one"}, {}, "header.A2A-Version"),
        ({"A2A-Version": "1." + "0" * 20}, {}, "header.A2A-Version"),
        ({"If-None-Match": "x" * 1025}, {}, "header.if-none-match"),
        ({}, {"original": "maybe"}, "query.original"),
        ({}, {"min_position": "-1"}, "query.min_position"),
        ({}, {"min_position": "1.5"}, "query.min_position"),
    ]
    for headers, params, field in bad:
        answer = problem(reg.get(path, headers=headers, params=params), 422)
        assert [e["field"] for e in answer["errors"]] == [field], (headers, params)
    assert reg.get(path, headers={"A2A-Version": "0.3"}).json().get("url")  # the v0.3 form
    assert reg.get(path, params={"original": "true"}).json() == sample("sample-card-v1.0.json")
    assert reg.get(path, headers={"If-None-Match": card.headers["ETag"]}).status_code == 304
    assert reg.get(path, params={"min_position": str(written["position"])}).status_code == 200
    operation = reg.get("/openapi.json").json()["paths"]["/api/v1/agents/{agent_id}/card"]["get"]
    documented = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert documented == {
        ("path", "agent_id"),
        ("header", "A2A-Version"),
        ("header", "if-none-match"),
        ("query", "original"),
        ("query", "min_position"),
    }
    assert operation["security"] == [{"oauth2": ["registry:read"]}]


def _off_the_event_loop(server: Server) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics/", timeout=30).text
    return {
        sample.labels["answered_from"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "a2a_card_reads_off_the_event_loop_total"
    }


def test_a_card_read_again_is_answered_from_memory_and_the_metrics_count_what_was_not(
    server: Server, reg: httpx.Client
) -> None:
    written = register(reg, "counted", sample("sample-card-v1.0.json"), "public")
    ok(reg.get(f"{AGENTS}/counted", params={"min_position": written["position"]}))
    before = _off_the_event_loop(server)
    first = reg.get(f"{AGENTS}/counted/card")
    read = _off_the_event_loop(server)
    assert read.get("read_model", 0) == before.get("read_model", 0) + 1
    for _ in range(5):
        again = reg.get(f"{AGENTS}/counted/card", headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304
    assert _off_the_event_loop(server) == read  # all five from this process's memory

def test_the_card_route_checks_the_caller_as_documented_before_its_parameters(
    server: Server, reg: httpx.Client, tenant: str
) -> None:
    """The card route calls the authentication itself (interfaces/http/auth.py `caller_of`):
    it refuses what `Security(authenticated, scopes=["registry:read"])` refuses, the scope it
    enforces is the one /openapi.json documents, and the caller is decided before the
    parameters are read (no token and a bad id: 401, not 422)."""
    written = register(reg, "guarded", sample("sample-card-v1.0.json"))
    assert served_card(reg, "guarded", written["position"]).status_code == 200
    path = f"{AGENTS}/guarded/card"
    operation = reg.get("/openapi.json").json()["paths"]["/api/v1/agents/{agent_id}/card"]["get"]
    (documented,) = operation["security"][0]["oauth2"]
    without = sorted(SCOPES - {documented})
    client_id, secret = server.client(tenant, without)
    token = ok(
        httpx.post(
            f"{server.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
    )["access_token"]
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        refused = anonymous.get(path, headers={"Authorization": f"Bearer {token}"})
        assert problem(refused, 403)["type"] == "/problems/insufficient-scope"
        assert f'scope="{documented}"' in refused.headers["www-authenticate"]
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}):
            assert problem(anonymous.get(path, headers=headers), 401)
            assert problem(anonymous.get(f"{AGENTS}/-bad/card", headers=headers), 401)
    for bad in ("-bad", "a" * 129, "bad%0A", "x%20y"):
        answer = problem(reg.get(f"{AGENTS}/{bad}/card"), 422)
        assert [e["field"] for e in answer["errors"]] == ["path.agent_id"], bad


def test_a_clients_bad_card_requests_count_against_its_read_limit(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(RATE_LIMIT_READS="3/minute")
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        for _ in range(3):
            problem(client.get(f"{AGENTS}/-bad/card"), 422)
        assert problem(client.get(f"{AGENTS}/good/card"), 429)
