"""Federation's rules without I/O: where the next sync of a peer starts, whose cards are
fetched, when a copy needs no fetch, and a peer's generations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from domain.meta import Meta
from domain.peers import OVERLAP, FederatedAgent, Peer, instant, next_start, same_origin

META = Meta(actor="federation", request_id="r1")
CARD = json.loads((Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())
T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_sync_that_read_the_whole_index_is_followed_by_one_that_goes_back_by_the_overlap() -> None:
    assert next_start(None, T, reached_end=True) == (T - OVERLAP).isoformat()
    assert next_start((T - timedelta(hours=1)).isoformat(), T, reached_end=True) == (T - OVERLAP).isoformat()


def test_a_sync_cut_short_is_followed_by_one_that_goes_on_from_where_it_stopped() -> None:
    """Going back would read the same entries again and again when more than a sync takes
    were changed within the overlap."""
    assert next_start((T - timedelta(hours=1)).isoformat(), T, reached_end=False) == T.isoformat()


def test_the_start_never_moves_back() -> None:
    previous = (T - OVERLAP).isoformat()
    assert next_start(previous, None, reached_end=True) == previous  # nothing seen
    assert next_start(previous, T, reached_end=True) == previous  # the same latest change again
    assert next_start(previous, T - timedelta(hours=1), reached_end=False) == previous  # a peer going back


def test_the_start_is_computed_on_instants_whatever_offset_the_peer_writes() -> None:
    assert (
        next_start(None, instant("2026-11-20T13:00:00+01:00"), reached_end=True) == (T - OVERLAP).isoformat()
    )
    assert (
        next_start("2026-11-20T12:00:00Z", T - timedelta(minutes=1), reached_end=False)
        == "2026-11-20T12:00:00Z"
    )
    assert next_start(None, datetime.min.replace(tzinfo=UTC), reached_end=True) is not None


def test_only_instants_with_an_offset_are_read() -> None:
    assert instant("2026-11-20T13:00:00+01:00") == T
    assert instant("2026-11-20T12:00:00") is None
    assert instant("yesterday") is None


def test_a_card_is_fetched_from_the_peers_own_origin_only() -> None:
    peer = "https://peer.example:8443/registry"
    assert same_origin(peer, "https://peer.example:8443/.well-known/agents/a/agent-card.json")
    assert same_origin("https://peer.example", "https://PEER.example:443/card.json")
    assert not same_origin(peer, "https://peer.example/card.json")  # another port
    assert not same_origin(peer, "http://peer.example:8443/card.json")  # another scheme
    assert not same_origin(peer, "https://evil.example:8443/card.json")
    assert not same_origin(peer, "https://peer.example:8443@evil.example:8443/card.json")
    assert not same_origin(peer, "/relative/card.json")
    assert not same_origin(peer, "https://peer.example:99999/card.json")


def test_a_copy_covers_an_entry_no_newer_than_its_card_and_at_the_same_url() -> None:
    at = "2026-11-20T12:00:00+00:00"
    copy = FederatedAgent.imported(
        "https://peer.example", "a1", CARD, "h1", "https://peer.example/a1", at, META
    )
    assert copy.covers("https://peer.example/a1", at)
    assert copy.covers("https://peer.example/a1", "2026-11-20T12:59:00+01:00")  # earlier, in another offset
    assert not copy.covers("https://peer.example/a1", "2026-11-20T12:00:00.000001+00:00")
    assert not copy.covers("https://peer.example/moved", at)
    assert not copy.covers("https://peer.example/a1", "not a time")
    copy.remove(META)
    assert not copy.covers("https://peer.example/a1", at)


def test_a_copy_updated_covers_the_time_of_its_new_card() -> None:
    copy = FederatedAgent.imported(
        "https://p.example", "a1", CARD, "h1", "https://p.example/a1", T.isoformat(), META
    )
    later = (T + timedelta(minutes=1)).isoformat()
    assert copy.update({**CARD, "description": "v2"}, "h2", "https://p.example/a1", later, META)
    assert copy.covers("https://p.example/a1", later)


def test_a_peer_added_again_is_a_new_generation_that_syncs_from_the_start() -> None:
    peer = Peer.add("https://peer.example", META)
    peer.sync_completed(T.isoformat(), (1, 0, 0), META)
    peer.remove(META)
    assert peer.add_again(META)
    assert (peer.removed, peer.generation, peer.updated_since) == (False, 1, None)
