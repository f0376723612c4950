"""Federation's use cases: add and remove peer registries, and sync a peer: pull its public
index incrementally (`updated_since`, tombstones), import each public card as a read-only
copy, update changed ones, remove deleted ones. Copies live in no tenant, so a peer can never
overwrite a local agent."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.goals import GoalsApp
from domain.errors import InvalidCommand
from domain.meta import Meta
from domain.peers import FederatedAgent, Peer, federated_agent_id, peer_id

log = logging.getLogger(__name__)
INDEX_PATH = "/.well-known/agents/index.json"
PAGE = 200
MAX_PAGES = 1000  # a peer that pages forever is cut off (the next sync goes on from there)


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
    updated_since: str | None


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
        try:
            peer: Peer = self._app.repository.get(peer_id(url))
        except AggregateNotFoundError:
            peer = Peer.add(url, meta)
        else:
            peer.add_again(meta)
        self._app.save(peer)
        return peer

    def remove_peer(self, ref: str, meta: Meta) -> None:
        """Remove a peer and the copies of its agents."""
        peer = self._peer(ref)
        peer.remove(meta)
        self._app.save(peer)
        for copy_id in self._copies_of(peer.url) if self._copies_of else []:
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
            peer = self._peer(ref)
            peer.sync_failed(str(e) or type(e).__name__, meta)
            self._app.save(peer)
            raise
        peer = self._peer(ref)
        peer.sync_completed(result.updated_since, (result.imported, result.updated, result.removed), meta)
        self._app.save(peer)
        return result

    def _pull(self, peer: Peer, meta: Meta) -> SyncResult:
        imported = updated = removed = skipped = 0
        watermark = peer.updated_since
        for entry in self._entries(peer):
            remote_id = str(entry.get("id", ""))
            at = str(entry.get("updated_at", ""))
            if not remote_id or not at:
                skipped += 1
                continue
            watermark = max(watermark or at, at)
            if entry.get("deleted"):
                removed += self._remove_copy(peer.url, remote_id, meta)
                continue
            outcome = self._copy(peer.url, remote_id, entry, at, meta)
            imported += outcome == "imported"
            updated += outcome == "updated"
            skipped += outcome == "skipped"
        return SyncResult(imported, updated, removed, skipped, watermark)

    def _entries(self, peer: Peer) -> Iterator[dict[str, Any]]:
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
                return
            params["cursor"] = cursor

    def _copy(self, peer_url: str, remote_id: str, entry: dict[str, Any], at: str, meta: Meta) -> str:
        card_url = entry.get("card_url")
        if not isinstance(card_url, str):
            return "skipped"
        try:
            card = self._fetcher.get_json(card_url)
        except Exception as e:
            log.info("card %s of peer %s not fetched: %s", remote_id, peer_url, e)
            return "skipped"
        if not isinstance(card, dict) or self._rules.problems(card):
            return "skipped"
        card_hash = self._rules.card_hash(card)
        copy = self._copy_of(peer_url, remote_id)
        if copy is None:
            self._app.save(FederatedAgent.imported(peer_url, remote_id, card, card_hash, card_url, at, meta))
            return "imported"
        if copy.update(card, card_hash, card_url, at, meta):
            self._app.save(copy)
            return "updated"
        return "unchanged"

    def _remove_copy(self, peer_url: str, remote_id: str, meta: Meta) -> int:
        return self._remove(federated_agent_id(peer_url, remote_id), meta)

    def _remove(self, copy_id: UUID, meta: Meta) -> int:
        copy = self._get_copy(copy_id)
        if copy is None or not copy.remove(meta):
            return 0
        self._app.save(copy)
        return 1

    def _copy_of(self, peer_url: str, remote_id: str) -> FederatedAgent | None:
        return self._get_copy(federated_agent_id(peer_url, remote_id))

    def _get_copy(self, copy_id: UUID) -> FederatedAgent | None:
        try:
            copy: object = self._app.repository.get(copy_id)
        except AggregateNotFoundError:
            return None
        return copy if isinstance(copy, FederatedAgent) else None

    def _peer(self, ref: str) -> Peer:
        try:
            found: Peer = self._app.repository.get(UUID(hex=ref))
        except (ValueError, AggregateNotFoundError):
            raise PeerNotFound(ref) from None
        if not isinstance(found, Peer) or found.removed:
            raise PeerNotFound(ref)
        return found

    def _check_enabled(self) -> None:
        if not self._enabled:
            raise FederationDisabled()
