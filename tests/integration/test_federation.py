"""Syncing peers against real HTTP servers on loopback, honest or not, with the API and a
worker as two processes' worth of caches on one store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from application.federation import INDEX_PATH, PeerNotFound
from domain.meta import Meta
from domain.peers import OVERLAP, federated_agent_id
from infrastructure.card_publishing import GOALS_EXTENSION_URI, PEER_GOALS_EXTENSION_URI
from infrastructure.settings import Settings
from interfaces.bootstrap import System, build_system
from tests.integration import web_peers
from tests.integration.web_peers import reply, serving

META = Meta(actor="federation", request_id="test")
CARD: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text()
)
T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class PeerRegistry:
    """A peer's public index and cards, served as a registry serves them (`updated_since`,
    cursor paging), or otherwise when a test sets its own index route."""

    def __init__(self, site: web_peers.Peer) -> None:
        self.site = site
        self.url = site.url
        self.entries: dict[str, dict[str, Any]] = {}
        site.routes[INDEX_PATH] = self._index

    def publish(self, remote_id: str, at: datetime, card: dict[str, Any] | None = None) -> None:
        body = orjson.dumps(card or {**CARD, "name": remote_id})
        self.site.routes[f"/cards/{remote_id}.json"] = reply(200, body, Content_Type="application/json")
        self.entries[remote_id] = {
            "id": remote_id,
            "deleted": False,
            "updated_at": at.isoformat(),
            "card_url": self.card_url(remote_id),
        }

    def delete(self, remote_id: str, at: datetime) -> None:
        self.entries[remote_id] = {"id": remote_id, "deleted": True, "updated_at": at.isoformat()}

    def card_url(self, remote_id: str) -> str:
        return f"{self.url}/cards/{remote_id}.json"

    def fetched(self, path: str) -> int:
        return sum(seen.path.partition("?")[0] == path for seen in self.site.requests)

    def _index(self, handler: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(handler.path).query)
        since = datetime.fromisoformat(query["updated_since"][0]) if "updated_since" in query else None
        after = int(query.get("cursor", ["0"])[0])
        limit = int(query["limit"][0])
        listed = sorted(
            (
                e
                for e in self.entries.values()
                if since is None or datetime.fromisoformat(e["updated_at"]) >= since
            ),
            key=lambda e: (datetime.fromisoformat(e["updated_at"]), e["id"]),
        )
        page = listed[after : after + limit]
        more = after + limit < len(listed)
        answer(handler, {"items": page, "next_cursor": str(after + limit) if more else None})


def answer(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
    reply(200, orjson.dumps(body), Content_Type="application/json")(handler)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(RUN_PROJECTIONS_IN_PROCESS="false", OUTBOUND_ALLOW_NETS="127.0.0.0/8")


@pytest.fixture
def api(settings: Settings) -> Iterator[System]:
    """The process that serves the API (peers added and removed)."""
    built = build_system(settings)
    yield built
    built.close()


@pytest.fixture
def worker(settings: Settings) -> Iterator[System]:
    """The process that runs the syncs, on the same store."""
    built = build_system(settings)
    yield built
    built.close()


@pytest.fixture
def peer() -> Iterator[PeerRegistry]:
    with serving() as site:
        yield PeerRegistry(site)


def added(api: System, peer: PeerRegistry) -> str:
    return api.federation.add_peer(peer.url, META).id.hex


def live_copies(system: System, peer: PeerRegistry) -> set[str]:
    system.runner.catch_up()
    return set(system.agent_cards.copies_of(peer.url))


def copy_of(peer: PeerRegistry, remote_id: str) -> str:
    return federated_agent_id(peer.url, remote_id).hex


# --- two processes, one log ------------------------------------------------------------------


def test_a_peer_synced_by_the_worker_is_removed_through_the_api(
    api: System, worker: System, peer: PeerRegistry
) -> None:
    """The API cached the peer when it was added; the worker's sync changed it since."""
    peer.publish("a1", T)
    peer_id = added(api, peer)
    worker.federation.sync(peer_id, META)
    assert live_copies(api, peer) == {copy_of(peer, "a1")}
    api.federation.remove_peer(peer_id, META)
    with pytest.raises(PeerNotFound):
        worker.federation.peer(peer_id)
    assert live_copies(api, peer) == set()


def test_agents_come_back_when_their_peer_is_added_again(
    api: System, worker: System, peer: PeerRegistry
) -> None:
    """The worker cached the copies it imported; the API removed them with the peer since."""
    peer.publish("a1", T)
    peer_id = added(api, peer)
    worker.federation.sync(peer_id, META)
    assert live_copies(api, peer) == {copy_of(peer, "a1")}
    api.federation.remove_peer(peer_id, META)
    assert live_copies(api, peer) == set()
    added(api, peer)
    assert worker.federation.sync(peer_id, META).imported == 1
    assert live_copies(api, peer) == {copy_of(peer, "a1")}


# --- changes that land late ------------------------------------------------------------------


def test_a_change_stamped_before_the_last_sync_saw_is_read_by_the_next(
    api: System, peer: PeerRegistry
) -> None:
    """Another replica of the peer, its clock behind, committed after our sync read past it."""
    peer.publish("a1", T)
    peer_id = added(api, peer)
    api.federation.sync(peer_id, META)
    peer.publish("a2", T - timedelta(seconds=2))
    result = api.federation.sync(peer_id, META)
    assert (result.imported, result.updated, result.updated_since) == (1, 0, (T - OVERLAP).isoformat())
    assert peer.fetched("/cards/a1.json") == 1  # read again within the overlap: not fetched again
    peer.delete("a1", T - timedelta(seconds=1))  # made private, stamped before its last change
    assert api.federation.sync(peer_id, META).removed == 1
    assert live_copies(api, peer) == {copy_of(peer, "a2")}


# --- what this registry serves of a copy ------------------------------------------------------


def test_a_peer_cannot_publish_goals_as_recorded_by_this_registry(api: System, peer: PeerRegistry) -> None:
    forged = {"overall_progress": 100, "status": "completed"}
    extensions = [
        {"uri": GOALS_EXTENSION_URI, "required": True, "params": forged},
        {"uri": PEER_GOALS_EXTENSION_URI, "params": {"origin": "https://trusted.example", **forged}},
        {"uri": "urn:example:other", "params": {"kept": True}},
    ]
    peer.publish("a1", T, {**CARD, "capabilities": {**CARD["capabilities"], "extensions": extensions}})
    api.federation.sync(added(api, peer), META)
    api.runner.catch_up()
    record = api.agent_cards.public(copy_of(peer, "a1"))
    assert record is not None
    for generation in ("1.0", "0.3"):
        served = orjson.loads(api.card_server.served(record, generation).body)
        listed = {e["uri"]: e for e in served["capabilities"]["extensions"]}
        assert set(listed) == {PEER_GOALS_EXTENSION_URI, "urn:example:other"}, generation
        assert listed[PEER_GOALS_EXTENSION_URI]["params"] == {**forged, "origin": peer.url}
        assert listed[PEER_GOALS_EXTENSION_URI]["required"] is False
