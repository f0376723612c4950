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

import application.federation
import application.peer_index
from application.federation import PeerNotFound
from application.peer_index import INDEX_PATH
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


# --- a peer trusted with nothing -----------------------------------------------------------


def test_a_peer_serving_the_same_page_forever_is_read_twice(api: System, peer: PeerRegistry) -> None:
    peer.publish("a1", T)
    peer.site.routes[INDEX_PATH] = lambda h: answer(h, {"items": [peer.entries["a1"]], "next_cursor": "more"})
    peer_id = added(api, peer)
    result = api.federation.sync(peer_id, META)
    assert (result.imported, result.stopped) == (1, "a page brought nothing new")
    assert peer.fetched(INDEX_PATH) == 2 and peer.fetched("/cards/a1.json") == 1
    assert api.federation.peer(peer_id).updated_since == T.isoformat()  # recorded: the next sync goes on


def test_a_peer_whose_cursor_comes_back_is_not_followed_around(api: System, peer: PeerRegistry) -> None:
    pages = iter(range(1000))

    def index(handler: BaseHTTPRequestHandler) -> None:
        remote_id = f"a{next(pages)}"
        peer.publish(remote_id, T)
        answer(handler, {"items": [peer.entries[remote_id]], "next_cursor": "the same"})

    peer.site.routes[INDEX_PATH] = index
    result = api.federation.sync(added(api, peer), META)
    assert (result.imported, result.stopped) == (2, "a cursor came back")
    assert peer.fetched(INDEX_PATH) == 2


def test_an_entry_repeated_within_a_sync_is_taken_once(api: System, peer: PeerRegistry) -> None:
    peer.publish("a1", T)
    peer.site.routes[INDEX_PATH] = lambda h: answer(
        h, {"items": [peer.entries["a1"]] * 3, "next_cursor": None}
    )
    result = api.federation.sync(added(api, peer), META)
    assert (result.imported, result.skipped) == (1, 2)
    assert peer.fetched("/cards/a1.json") == 1


def test_a_card_on_another_origin_is_refused_and_counted(api: System, peer: PeerRegistry) -> None:
    peer.publish("a1", T)
    with serving() as elsewhere:
        elsewhere.routes["/card.json"] = reply(200, orjson.dumps(CARD))
        peer.entries["a2"] = {
            "id": "a2",
            "deleted": False,
            "updated_at": T.isoformat(),
            "card_url": f"{elsewhere.url}/card.json",
        }
        result = api.federation.sync(added(api, peer), META)
        assert elsewhere.requests == []
    assert (result.imported, result.refused) == (1, 1)
    assert live_copies(api, peer) == {copy_of(peer, "a1")}


def test_a_sync_takes_a_bounded_number_of_entries_and_the_next_goes_on_from_there(
    api: System, peer: PeerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(application.peer_index, "MAX_ENTRIES_PER_SYNC", 2)
    for n in range(3):
        peer.publish(f"a{n}", T + timedelta(seconds=n))
    peer_id = added(api, peer)
    first = api.federation.sync(peer_id, META)
    assert (first.imported, first.stopped, first.updated_since) == (
        2,
        "2 entries taken",
        (T + timedelta(seconds=1)).isoformat(),
    )
    second = api.federation.sync(peer_id, META)
    assert (second.imported, second.stopped) == (1, None)
    assert peer.fetched("/cards/a0.json") == 1  # a1 was read again, a0 not at all


def test_a_peer_has_a_bounded_number_of_copies(
    api: System, peer: PeerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(application.federation, "MAX_COPIES_PER_PEER", 2)
    for n in range(3):
        peer.publish(f"a{n}", T + timedelta(seconds=n))
    peer_id = added(api, peer)
    result = api.federation.sync(peer_id, META)
    assert (result.imported, result.refused) == (2, 1)
    peer.delete("a0", T + timedelta(seconds=5))
    peer.publish("a3", T + timedelta(seconds=6))
    api.runner.catch_up()
    result = api.federation.sync(peer_id, META)
    assert (result.removed, result.imported) == (1, 1)  # a0's place taken by a3
    assert live_copies(api, peer) == {copy_of(peer, "a1"), copy_of(peer, "a3")}


def test_a_sync_whose_peer_is_removed_meanwhile_removes_what_it_imported(
    api: System, worker: System, peer: PeerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(application.federation, "LIVE_CHECK_EVERY", 1)
    for n in range(3):
        peer.publish(f"a{n}", T + timedelta(seconds=n))
    peer_id = added(api, peer)
    serve_a1 = peer.site.routes["/cards/a1.json"]

    def removed_while_served(handler: BaseHTTPRequestHandler) -> None:
        api.federation.remove_peer(peer_id, META)  # the operator, while the worker syncs
        serve_a1(handler)

    peer.site.routes["/cards/a1.json"] = removed_while_served
    result = worker.federation.sync(peer_id, META)
    assert result.stopped == "the peer was removed"
    assert peer.fetched("/cards/a2.json") == 0
    assert live_copies(api, peer) == set()


def test_a_sync_that_ends_as_its_peer_is_removed_records_nothing_and_keeps_no_copy(
    api: System, worker: System, peer: PeerRegistry
) -> None:
    """No check between two entries saw the removal: the one made with the sync's record does."""
    peer.publish("a1", T)
    peer_id = added(api, peer)
    serve_a1 = peer.site.routes["/cards/a1.json"]

    def removed_while_served(handler: BaseHTTPRequestHandler) -> None:
        api.federation.remove_peer(peer_id, META)
        serve_a1(handler)

    peer.site.routes["/cards/a1.json"] = removed_while_served
    assert worker.federation.sync(peer_id, META).stopped == "the peer was removed"
    assert live_copies(api, peer) == set()
    assert api.federation.add_peer(peer.url, META).updated_since is None


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
