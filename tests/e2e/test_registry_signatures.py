"""Cards signed by their agents, through the API: verified with the key their `jku` names
(fetched through the outbound guard), invalid when one byte changed; REQUIRE_SIGNED_CARDS;
MAX_AGENTS_PER_CLIENT."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import httpx
from a2a.client.card_resolver import parse_agent_card
from a2a.utils.signing import ProtectedHeader, create_agent_card_signer
from google.protobuf.json_format import MessageToDict

from tests.conftest import Server
from tests.e2e.support import login, ok, problem
from tests.e2e.test_registry import AGENTS, sample
from tests.unit.test_a2a_cards import es256_key, pem


def signed_card(jku: str, kid: str, private: Any) -> dict[str, Any]:
    """The spec's sample card signed by the A2A SDK's own signer, with our key."""
    card = sample("sample-card-v1.0.json")
    del card["signatures"]
    header: ProtectedHeader = {"alg": "ES256", "typ": "JOSE", "kid": kid, "jku": jku}
    signed = create_agent_card_signer(pem(private), header)(parse_agent_card(copy.deepcopy(card)))
    return {**card, "signatures": [MessageToDict(s) for s in signed.signatures]}


def test_a_signed_card_is_verified_and_one_changed_byte_makes_it_invalid(
    start_server: Callable[..., Server], tenant: str, files: tuple[str, dict[str, bytes]]
) -> None:
    """The agent publishes its card and its keys on its own origin; the registry fetches both
    through the outbound guard."""
    server = start_server(OUTBOUND_ALLOW_NETS="127.0.0.0/8")
    base, documents = files
    private, jwk = es256_key()
    documents["/jwks.json"] = json.dumps({"keys": [{**jwk, "kid": "agent-key"}]}).encode()
    card = signed_card(f"{base}/jwks.json", "agent-key", private)
    documents["/card.json"] = json.dumps(card).encode()
    documents["/tampered.json"] = json.dumps({**card, "description": card["description"] + "!"}).encode()
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        good = ok(api.post(AGENTS, json={"agent_id": "signed", "card_url": f"{base}/card.json"}), 201)
        record = ok(api.get(f"{AGENTS}/signed", params={"min_position": good["position"]}))
        assert record["signature"]["state"] == "verified", record["signature"]
        bad = ok(api.post(AGENTS, json={"agent_id": "tampered", "card_url": f"{base}/tampered.json"}), 201)
        record = ok(api.get(f"{AGENTS}/tampered", params={"min_position": bad["position"]}))
        assert record["signature"]["state"] == "invalid"
        # The record keeps the agent's own signature; the served card carries the registry's.
        assert record["card"]["signatures"] == card["signatures"]
        served = ok(api.get(f"{AGENTS}/signed/card"))
        assert served["signatures"] != card["signatures"]
        # The same signed card sent inline speaks for georoute-agent.example.com, whose keys
        # are not the ones on this loopback origin: a key anyone can publish proves nothing.
        inline = ok(api.post(AGENTS, json={"agent_id": "inline", "card": card}), 201)
        record = ok(api.get(f"{AGENTS}/inline", params={"min_position": inline["position"]}))
        assert record["signature"]["state"] == "invalid"


def test_only_verified_cards_are_taken_when_signed_cards_are_required(
    start_server: Callable[..., Server], tenant: str, files: tuple[str, dict[str, bytes]]
) -> None:
    server = start_server(OUTBOUND_ALLOW_NETS="127.0.0.0/8", REQUIRE_SIGNED_CARDS="true")
    base, documents = files
    private, jwk = es256_key()
    documents["/jwks.json"] = json.dumps({"keys": [{**jwk, "kid": "k"}]}).encode()
    _, headers = login(server, tenant)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        unsigned = {k: v for k, v in sample("sample-card-v1.0.json").items() if k != "signatures"}
        refused = problem(api.post(AGENTS, json={"agent_id": "plain", "card": unsigned}), 422)
        assert [e["field"] for e in refused["errors"]] == ["body.card.signatures"]
        invalid = problem(api.post(AGENTS, json={"agent_id": "spec", "card": sample("sample-card-v1.0.json")}), 422)
        assert "invalid" in invalid["detail"]
        documents["/card.json"] = json.dumps(signed_card(f"{base}/jwks.json", "k", private)).encode()
        ok(api.post(AGENTS, json={"agent_id": "signed", "card_url": f"{base}/card.json"}), 201)


def test_a_client_registers_at_most_max_agents_per_client(start_server: Callable[..., Server], tenant: str) -> None:
    server = start_server(MAX_AGENTS_PER_CLIENT="2")
    _, headers = login(server, tenant)
    card = sample("sample-card-v1.0.json")
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        last = {}
        for agent_id in ("one", "two"):
            last = ok(api.post(AGENTS, json={"agent_id": agent_id, "card": card}), 201)
        ok(api.get(f"{AGENTS}/two", params={"min_position": last["position"]}))
        body = problem(api.post(AGENTS, json={"agent_id": "three", "card": card}), 409)
        assert body["limit"] == 2
        gone = ok(api.request("DELETE", f"{AGENTS}/one"))
        ok(api.get(f"{AGENTS}/two", params={"min_position": gone["position"]}))
        ok(api.post(AGENTS, json={"agent_id": "three", "card": card}), 201)


def test_a_retried_registration_is_answered_as_the_first_even_at_the_quota(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server(MAX_AGENTS_PER_CLIENT="1")
    _, headers = login(server, tenant)
    body = {"agent_id": "one", "card": sample("sample-card-v1.0.json")}
    with httpx.Client(base_url=server.url, headers={**headers, "Idempotency-Key": "reg-1"}, timeout=30) as api:
        first = ok(api.post(AGENTS, json=body), 201)
        ok(api.get(f"{AGENTS}/one", params={"min_position": first["position"]}))
        again = ok(api.post(AGENTS, json=body), 201)
    assert again == {**first, "replayed": True}


def test_keys_a_tenant_registers_verify_its_cards_and_no_one_elses(
    start_server: Callable[..., Server], tenant: str
) -> None:
    server = start_server()
    private, jwk = es256_key()
    card = signed_card("https://keys.elsewhere.example/jwks.json", "team-key", private)
    _, mine = login(server, tenant)
    _, theirs = login(server, tenant + "b")
    with httpx.Client(base_url=server.url, headers=mine, timeout=30) as api:
        refused = problem(api.put("/api/v1/registry/keys", json={"keys": [{**jwk, "kid": "k", "d": "secret"}]}), 422)
        assert [e["field"] for e in refused["errors"]] == ["body.keys.0"]
        ok(api.put("/api/v1/registry/keys", json={"keys": [{**jwk, "kid": "team-key"}]}))
        assert ok(api.get("/api/v1/registry/keys"))["keys"] == [{**jwk, "kid": "team-key"}]
        written = ok(api.post(AGENTS, json={"agent_id": "signed", "card": card}), 201)
        record = ok(api.get(f"{AGENTS}/signed", params={"min_position": written["position"]}))
        assert record["signature"]["state"] == "verified"
    with httpx.Client(base_url=server.url, headers=theirs, timeout=30) as api:
        assert ok(api.get("/api/v1/registry/keys"))["keys"] == []
        written = ok(api.post(AGENTS, json={"agent_id": "signed", "card": card}), 201)
        record = ok(api.get(f"{AGENTS}/signed", params={"min_position": written["position"]}))
        assert record["signature"]["state"] == "invalid"  # another tenant's keys vouch for nothing here
