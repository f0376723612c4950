"""Federation's use cases: add and remove peer registries, and sync a peer: pull its public
index incrementally (`updated_since`, tombstones), import each public card as a read-only
copy, update changed ones, remove deleted ones. Copies live in no tenant, so a peer can never
overwrite a local agent.

Syncs run in a worker process while peers are added and removed through the API: every load
here reads the log, never a copy another process may have made stale since it was cached, and
a save that loses a race is made again on what the log then holds.

A peer is trusted with nothing: its index is read within bounds (`application.peer_index`),
its cards are fetched only from its own origin, it has MAX_COPIES_PER_PEER copies at most,
and a sync that finds its peer removed undoes what it imported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from application.aggregate_changes import change, load
from application.goals import GoalsApp
from application.peer_index import Entry, IndexReading
from domain.errors import InvalidCommand
from domain.meta import Meta
from domain.peers import FederatedAgent, Peer, federated_agent_id, next_start, peer_id, same_origin

log = logging.getLogger(__name__)
# Live copies of one peer's agents at most: past it, new agents of the peer are not imported.
MAX_COPIES_PER_PEER = 10_000
# A sync stops taking entries after this long (well within its job's time limit), so that
# what it did is recorded and the next one goes on from there.
SYNC_BUDGET_S = 5 * 60
LIVE_CHECK_EVERY = 50  # entries between two checks that the peer was not removed meanwhile

A = TypeVar("A", bound=Aggregate)


class PeerNotFound(Exception):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no peer {ref!r}")
        self.ref = ref


class FederationDisabled(Exception):
    def __init__(self) -> None:
        super().__init__("federation is turned off here (ENABLE_FEDERATION=false)")


class _PeerGone(Exception):
    """The peer was removed (and maybe added again) while it synced."""


class PeerFetcher(Protocol):
    def check_url(self, url: str) -> None:
        """Raise when the outbound guard refuses `url` (its reason in the message)."""
        ...

    def get_json(self, url: str) -> Any: ...


class CardRules(Protocol):
    def problems(self, card: object) -> dict[str, str]: ...

    def card_hash(self, card: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class SyncResult:
    imported: int
    updated: int
    removed: int
    skipped: int  # malformed, repeated, or whose card could not be fetched or was invalid
    refused: int  # a card on another origin than the peer's, or past MAX_COPIES_PER_PEER
    updated_since: str | None  # where the next sync starts
    stopped: str | None  # why the sync ended before the peer's index did


@dataclass
class _Sync:
    """What one sync of a peer did so far."""

    peer: Peer  # as it was when the sync started
    reading: IndexReading
    live_copies: int
    imported: int = 0
    updated: int = 0
    removed: int = 0
    skipped: int = 0
    refused: int = 0
    latest: datetime | None = None  # the latest change seen
    written: list[UUID] = field(default_factory=list)  # copies imported or updated

    def counts(self) -> tuple[int, int, int]:
        return self.imported, self.updated, self.removed

    def result(self, updated_since: str | None, stopped: str | None) -> SyncResult:
        skipped = self.skipped + self.reading.skipped + self.reading.repeated
        return SyncResult(*self.counts(), skipped, self.refused, updated_since, stopped)


class FederationService:
    def __init__(
        self,
        app: GoalsApp,
        fetcher: PeerFetcher,
        rules: CardRules,
        *,
        enabled: bool = True,
        copies_of: Callable[[str], list[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app = app
        self._fetcher = fetcher
        self._rules = rules
        self._enabled = enabled
        self._copies_of = copies_of
        self._clock = clock

    def add_peer(self, url: str, meta: Meta) -> Peer:
        self._check_enabled()
        url = url.rstrip("/")
        try:
            self._fetcher.check_url(url)
        except Exception as e:
            raise InvalidCommand({"url": f"refused by the outbound guard: {e}"}) from None

        def add(peer: Peer | None) -> Peer | None:
            if peer is None:
                return Peer.add(url, meta)
            return peer if peer.add_again(meta) else None

        added, _ = self._change(peer_id(url), Peer, add)
        assert added is not None
        return added

    def remove_peer(self, ref: str, meta: Meta) -> None:
        """Remove a peer and the copies of its agents."""

        def remove(peer: Peer | None) -> Peer:
            if peer is None or peer.removed:
                raise PeerNotFound(ref)
            peer.remove(meta)
            return peer

        removed, _ = self._change(_peer_uuid(ref), Peer, remove)
        assert removed is not None
        for copy_id in self._copies_of(removed.url) if self._copies_of else []:
            self._remove(UUID(hex=copy_id), meta)

    def peer(self, ref: str) -> Peer:
        return self._peer(ref)

    def sync(self, ref: str, meta: Meta) -> SyncResult:
        """Pull what changed at the peer since the last sync. A failure is recorded on the
        peer (once, until a sync succeeds again) and raised. A sync whose peer is removed
        meanwhile removes the copies it wrote, and records nothing."""
        self._check_enabled()
        sync = self._start(self._peer(ref))
        try:
            self._pull(sync, meta)
            updated_since = next_start(sync.peer.updated_since, sync.latest, sync.reading.stopped is None)
            self._change(sync.peer.id, Peer, lambda now: self._completed(sync, now, updated_since, meta))
        except _PeerGone:
            self._undo(sync, meta)
            return sync.result(sync.peer.updated_since, "the peer was removed")
        except Exception as e:
            if not self._failed(sync, str(e) or type(e).__name__, meta):
                self._undo(sync, meta)
            raise
        stopped = sync.reading.stopped
        if stopped or sync.refused:
            log.warning("sync of %s: %s; %d entries refused", sync.peer.url, stopped or "done", sync.refused)
        return sync.result(updated_since, stopped)

    def _start(self, peer: Peer) -> _Sync:
        deadline = self._clock() + SYNC_BUDGET_S
        reading = IndexReading(
            self._fetcher, peer.url, peer.updated_since, deadline=deadline, clock=self._clock
        )
        return _Sync(peer, reading, len(self._copies_of(peer.url)) if self._copies_of else 0)

    def _pull(self, sync: _Sync, meta: Meta) -> None:
        for taken, entry in enumerate(sync.reading.entries(), 1):
            sync.latest = max(sync.latest or entry.updated_at, entry.updated_at)
            if entry.deleted:
                removed = self._remove(federated_agent_id(sync.peer.url, entry.remote_id), meta)
                sync.removed += removed
                sync.live_copies -= removed
            else:
                self._take(sync, entry, meta)
            if taken % LIVE_CHECK_EVERY == 0 and not _live(self._load(sync.peer.id, Peer), sync.peer):
                raise _PeerGone()

    def _take(self, sync: _Sync, entry: Entry, meta: Meta) -> None:
        """Import or update the copy of an entry's agent, fetching its card only when the
        entry is newer than the copy."""
        peer_url, card_url = sync.peer.url, entry.card_url
        if card_url is None:
            sync.skipped += 1
            return
        if not same_origin(peer_url, card_url):
            sync.refused += 1
            return
        copy_id = federated_agent_id(peer_url, entry.remote_id)
        copy = self._load(copy_id, FederatedAgent)
        if copy is not None and copy.covers(card_url, entry.at):
            return
        if (copy is None or copy.removed) and sync.live_copies >= MAX_COPIES_PER_PEER:
            sync.refused += 1
            return
        card = self._card(peer_url, entry.remote_id, card_url)
        if card is None:
            sync.skipped += 1
            return
        try:
            outcome = self._copy(peer_url, entry, card_url, card, meta)
        except InvalidCommand as e:
            log.info("agent %s of peer %s not copied: %s", entry.remote_id, peer_url, e)
            sync.skipped += 1
            return
        if outcome != "unchanged":
            sync.written.append(copy_id)
        sync.imported += outcome == "imported"
        sync.updated += outcome == "updated"
        sync.live_copies += outcome == "imported"

    def _card(self, peer_url: str, remote_id: str, card_url: str) -> dict[str, Any] | None:
        try:
            card = self._fetcher.get_json(card_url)
        except Exception as e:
            log.info("card %s of peer %s not fetched: %s", remote_id, peer_url, e)
            return None
        if not isinstance(card, dict) or self._rules.problems(card):
            return None
        return card

    def _copy(self, peer_url: str, entry: Entry, card_url: str, card: dict[str, Any], meta: Meta) -> str:
        """Save the card as the copy: "imported" (new, or again after its removal), "updated"
        or "unchanged"."""
        card_hash = self._rules.card_hash(card)
        outcome = "unchanged"

        def take(copy: FederatedAgent | None) -> FederatedAgent | None:
            nonlocal outcome
            if copy is None:
                outcome = "imported"
                return FederatedAgent.imported(
                    peer_url, entry.remote_id, card, card_hash, card_url, entry.at, meta
                )
            outcome = "imported" if copy.removed else "updated"
            if copy.update(card, card_hash, card_url, entry.at, meta):
                return copy
            outcome = "unchanged"
            return None

        self._change(federated_agent_id(peer_url, entry.remote_id), FederatedAgent, take)
        return outcome

    def _completed(self, sync: _Sync, peer: Peer | None, updated_since: str | None, meta: Meta) -> Peer:
        if peer is None or not _live(peer, sync.peer):
            raise _PeerGone()
        peer.sync_completed(updated_since, sync.counts(), meta)
        return peer

    def _failed(self, sync: _Sync, reason: str, meta: Meta) -> bool:
        """Record a failed sync on its peer; False if the peer was removed meanwhile."""
        live = True

        def failed(peer: Peer | None) -> Peer | None:
            nonlocal live
            live = _live(peer, sync.peer)
            if peer is None or not live:
                return None
            peer.sync_failed(reason, meta)
            return peer

        self._change(sync.peer.id, Peer, failed)
        return live

    def _undo(self, sync: _Sync, meta: Meta) -> None:
        """Remove the copies a sync wrote: its peer was removed while it ran (the removal
        removed the copies it knew of, maybe not these)."""
        for copy_id in sync.written:
            self._remove(copy_id, meta)
        log.warning(
            "peer %s was removed while it synced: %d copies removed", sync.peer.url, len(sync.written)
        )

    def _remove(self, copy_id: UUID, meta: Meta) -> int:
        def remove(copy: FederatedAgent | None) -> FederatedAgent | None:
            return copy if copy is not None and copy.remove(meta) else None

        _, saved = self._change(copy_id, FederatedAgent, remove)
        return int(saved)

    def _peer(self, ref: str) -> Peer:
        found = self._load(_peer_uuid(ref), Peer)
        if found is None or found.removed:
            raise PeerNotFound(ref)
        return found

    def _change(
        self, aggregate_id: UUID, kind: type[A], make: Callable[[A | None], A | None]
    ) -> tuple[A | None, bool]:
        return change(self._app, aggregate_id, kind, make)

    def _load(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        return load(self._app, aggregate_id, kind)

    def _check_enabled(self) -> None:
        if not self._enabled:
            raise FederationDisabled()


def _live(now: Peer | None, synced: Peer) -> bool:
    """Whether the peer a sync started with is still there: not removed, nor added again."""
    return now is not None and not now.removed and now.generation == synced.generation


def _peer_uuid(ref: str) -> UUID:
    try:
        return UUID(hex=ref)
    except ValueError:
        raise PeerNotFound(ref) from None
