"""Federation's use cases: add and remove peer registries, and sync a peer: pull its public
index incrementally (`updated_since`, tombstones), import each public card as a read-only
copy, update changed ones, remove deleted ones. Copies live in no tenant, so a peer can never
overwrite a local agent.

Syncs run in a worker process while peers are added and removed through the API: every load
here reads the log, never a copy another process may have made stale since it was cached, and
a save that loses a race is made again on what the log then holds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from application.errors import ConcurrencyConflict
from application.goals import GoalsApp
from domain.errors import InvalidCommand
from domain.meta import Meta
from domain.peers import FederatedAgent, Peer, federated_agent_id, instant, next_start, peer_id

log = logging.getLogger(__name__)
INDEX_PATH = "/.well-known/agents/index.json"
PAGE = 200
MAX_PAGES = 1000  # a peer that pages forever is cut off (the next sync goes on from there)
CHANGE_ATTEMPTS = 10

A = TypeVar("A", bound=Aggregate)


class PeerNotFound(Exception):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no peer {ref!r}")
        self.ref = ref


class FederationDisabled(Exception):
    def __init__(self) -> None:
        super().__init__("federation is turned off here (ENABLE_FEDERATION=false)")


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
    skipped: int
    updated_since: str | None  # where the next sync starts


class FederationService:
    def __init__(
        self,
        app: GoalsApp,
        fetcher: PeerFetcher,
        rules: CardRules,
        *,
        enabled: bool = True,
        copies_of: Callable[[str], list[str]] | None = None,
    ) -> None:
        self._app = app
        self._fetcher = fetcher
        self._rules = rules
        self._enabled = enabled
        self._copies_of = copies_of

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
            peer = _present(peer, ref)
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
        peer (once, until a sync succeeds again) and raised."""
        self._check_enabled()
        peer = self._peer(ref)
        try:
            result = self._pull(peer, meta)
        except Exception as e:
            reason = str(e) or type(e).__name__

            def failed(now: Peer | None) -> Peer:
                now = _present(now, ref)
                now.sync_failed(reason, meta)
                return now

            self._change(peer.id, Peer, failed)
            raise

        def completed(now: Peer | None) -> Peer:
            now = _present(now, ref)
            now.sync_completed(result.updated_since, (result.imported, result.updated, result.removed), meta)
            return now

        self._change(peer.id, Peer, completed)
        return result

    def _pull(self, peer: Peer, meta: Meta) -> SyncResult:
        imported = updated = removed = skipped = 0
        latest: datetime | None = None  # the latest change seen
        ended: list[bool] = []
        for entry in self._entries(peer, ended):
            remote_id = str(entry.get("id", ""))
            at = str(entry.get("updated_at", ""))
            changed = instant(at)
            if not remote_id or changed is None:
                skipped += 1
                continue
            latest = max(latest or changed, changed)
            if entry.get("deleted"):
                removed += self._remove_copy(peer.url, remote_id, meta)
                continue
            outcome = self._copy(peer.url, remote_id, entry, at, meta)
            imported += outcome == "imported"
            updated += outcome == "updated"
            skipped += outcome == "skipped"
        return SyncResult(
            imported, updated, removed, skipped, next_start(peer.updated_since, latest, bool(ended))
        )

    def _entries(self, peer: Peer, ended: list[bool]) -> Iterator[dict[str, Any]]:
        """The index's entries from where the last sync started; `ended` is given True once
        the index was read to its end."""
        params: dict[str, Any] = {"include_deleted": "true", "limit": PAGE}
        if peer.updated_since:
            params["updated_since"] = peer.updated_since
        for _ in range(MAX_PAGES):
            page = self._fetcher.get_json(f"{peer.url}{INDEX_PATH}?{urlencode(params)}")
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise ValueError(f"{peer.url} answered no index (no items)")
            yield from (i for i in items if isinstance(i, dict))
            cursor = page.get("next_cursor")
            if not isinstance(cursor, str) or not cursor:
                ended.append(True)
                return
            params["cursor"] = cursor

    def _copy(self, peer_url: str, remote_id: str, entry: dict[str, Any], at: str, meta: Meta) -> str:
        """Save the peer's card as the copy: "imported" (new, or again after its removal),
        "updated", "unchanged", or "skipped" (not fetched, or not a card). The card is fetched
        only when the entry is newer than the copy."""
        card_url = entry.get("card_url")
        if not isinstance(card_url, str):
            return "skipped"
        copy = self._load(federated_agent_id(peer_url, remote_id), FederatedAgent)
        if copy is not None and copy.covers(card_url, at):
            return "unchanged"
        try:
            card = self._fetcher.get_json(card_url)
        except Exception as e:
            log.info("card %s of peer %s not fetched: %s", remote_id, peer_url, e)
            return "skipped"
        if not isinstance(card, dict) or self._rules.problems(card):
            return "skipped"
        card_hash = self._rules.card_hash(card)
        outcome = "unchanged"

        def take(copy: FederatedAgent | None) -> FederatedAgent | None:
            nonlocal outcome
            if copy is None:
                outcome = "imported"
                return FederatedAgent.imported(peer_url, remote_id, card, card_hash, card_url, at, meta)
            outcome = "imported" if copy.removed else "updated"
            if copy.update(card, card_hash, card_url, at, meta):
                return copy
            outcome = "unchanged"
            return None

        self._change(federated_agent_id(peer_url, remote_id), FederatedAgent, take)
        return outcome

    def _remove_copy(self, peer_url: str, remote_id: str, meta: Meta) -> int:
        return self._remove(federated_agent_id(peer_url, remote_id), meta)

    def _remove(self, copy_id: UUID, meta: Meta) -> int:
        def remove(copy: FederatedAgent | None) -> FederatedAgent | None:
            return copy if copy is not None and copy.remove(meta) else None

        _, saved = self._change(copy_id, FederatedAgent, remove)
        return int(saved)

    def _peer(self, ref: str) -> Peer:
        return _present(self._load(_peer_uuid(ref), Peer), ref)

    def _change(
        self, aggregate_id: UUID, kind: type[A], change: Callable[[A | None], A | None]
    ) -> tuple[A | None, bool]:
        """Load the aggregate from the log (None if there is none) and save what `change`
        makes of it (None: nothing to save); a save that lost a race with another process is
        made again on what the log then holds, a bounded number of times. The aggregate, as
        saved or else as loaded, and whether it was saved."""
        for _ in range(CHANGE_ATTEMPTS):
            found = self._load(aggregate_id, kind)
            changed = change(found)
            if changed is None:
                return found, False
            try:
                self._app.save(changed)
            except IntegrityError:
                continue
            return changed, True
        raise ConcurrencyConflict(aggregate_id.hex, CHANGE_ATTEMPTS, kind=kind.__name__)

    def _load(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        """The aggregate as the log holds it now, not as this process cached it: another
        process (the API, a worker) may have changed it since."""
        cache = self._app.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)
        try:
            found: object = self._app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    def _check_enabled(self) -> None:
        if not self._enabled:
            raise FederationDisabled()


def _present(peer: Peer | None, ref: str) -> Peer:
    if peer is None or peer.removed:
        raise PeerNotFound(ref)
    return peer


def _peer_uuid(ref: str) -> UUID:
    try:
        return UUID(hex=ref)
    except ValueError:
        raise PeerNotFound(ref) from None
