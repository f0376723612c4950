"""Hot cards read again before they expire (interfaces/http/card_refresh.py): what is stored
is what a request would have read and stored, and only while the caller may still see it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from application.registry import CardSource
from domain.ids import registered_agent_id
from infrastructure.card_cache import Due, own_key, public_key
from interfaces.bootstrap import System
from interfaces.http.card_refresh import refresh
from interfaces.http.card_responses import cached_card, card_response, public_card
from tests.integration.support import meta, wait_until

CARD: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text()
)


def test_a_due_answer_is_read_again_as_a_request_would_read_it(system: System, tenant: str) -> None:
    public_id = registered_agent_id(tenant, "x").hex
    own, public = own_key(tenant, "x", "0.3", False), public_key(public_id, "1.0", False)
    due = [Due(own, (tenant, "x"), "0.3", False, public=False), Due(public, (tenant, "x"), "1.0", False, public=True)]
    system.registry.register(tenant, "x", CardSource(card=CARD), "public", meta())
    system.runner.catch_up()
    card_response(system, tenant, "x", "0.3", False, None)  # a request of the owner...
    first = public_card(system, public_id, None, None)  # ...and one of the well-known document
    cache = system.card_cache
    assert cache.get(public) is not None and cache.get(public).etag == first.headers["etag"]  # type: ignore[union-attr]

    changed = copy.deepcopy(CARD)
    changed["description"] = "Plans the route, and now the stops too."
    system.registry.update(tenant, "x", CardSource(card=changed), None, meta())
    system.runner.catch_up()  # the change evicts both
    assert refresh(system, due) == 2
    record = system.agent_cards.visible(tenant, "x")
    assert record is not None
    assert cache.get(own) == cached_card(system, record, "0.3", False)
    assert cache.get(public) == cached_card(system, record, "1.0", False)
    assert cache.get(public).etag != first.headers["etag"]  # type: ignore[union-attr]

    system.registry.update(tenant, "x", None, "private", meta())
    system.runner.catch_up()
    wait_until(lambda: cache.get(public) is None, 5, "the change evicted")
    assert refresh(system, due) == 1  # the owner's answer only: no public key for a private agent
    assert cache.get(public) is None
    assert cache.get(own) is not None and cache.get(own).public is False  # type: ignore[union-attr]

    system.registry.deregister(tenant, "x", meta())
    system.runner.catch_up()
    wait_until(lambda: cache.get(own) is None, 5, "the deregistration evicted")
    assert refresh(system, due) == 0
    assert cache.get(own) is None and cache.get(public) is None


def test_another_tenants_due_answers_are_read_as_their_owners(system: System, tenant: str) -> None:
    """A due answer is read with its owner's visibility: whoever hit it, another tenant's
    private agent never gets a public key."""
    other = f"{tenant}b"
    system.registry.register(other, "y", CardSource(card=CARD), "private", meta())
    system.runner.catch_up()
    public_id = registered_agent_id(other, "y").hex
    forged = Due(public_key(public_id, "1.0", False), (other, "y"), "1.0", False, public=True)
    mismatched = Due(own_key(tenant, "y", "1.0", False), (tenant, "y"), "1.0", False, public=False)
    assert refresh(system, [forged, mismatched]) == 0
    assert system.card_cache.get(forged.key) is None and system.card_cache.get(mismatched.key) is None
