"""Reading a peer registry's public index for one sync: page by page, from where the last sync
started, and trusting the peer with nothing. A cursor that comes back, a page that brings
nothing new, MAX_ENTRIES_PER_SYNC entries or the sync's time budget end the reading (the sync
goes on from there next time); an entry repeated within the sync is read once, a malformed
one is skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from domain.limits import text_problem
from domain.peers import instant

INDEX_PATH = "/.well-known/agents/index.json"
PAGE = 200
# Entries one sync takes at most, changed or not (about a card fetch each when changed).
MAX_ENTRIES_PER_SYNC = 5_000
MAX_REMOTE_ID = 256
_NEVER = datetime.min.replace(tzinfo=UTC)



class PeerIndexInvalid(ValueError):
    """The peer answered something that is not a registry index."""

class IndexFetcher(Protocol):
    def get_json(self, url: str) -> Any: ...


@dataclass(frozen=True)
class Entry:
    """An entry of the index, as far as a sync reads it."""

    remote_id: str
    at: str  # `updated_at` as the peer wrote it
    updated_at: datetime
    deleted: bool
    card_url: str | None


class IndexReading:
    """One pass over a peer's index. `stopped` says why it ended before the index did."""

    def __init__(
        self,
        fetcher: IndexFetcher,
        peer_url: str,
        updated_since: str | None,
        *,
        deadline: float,
        clock: Callable[[], float],
    ) -> None:
        self._fetcher = fetcher
        self._peer_url = peer_url
        self._updated_since = updated_since
        self._deadline = deadline
        self._clock = clock
        self.stopped: str | None = None
        self.skipped = 0  # malformed entries
        self.repeated = 0  # entries this pass had read already

    def entries(self) -> Iterator[Entry]:
        params: dict[str, Any] = {"include_deleted": "true", "limit": PAGE}
        if self._updated_since:
            params["updated_since"] = self._updated_since
        cursors: set[str] = set()
        seen: dict[str, datetime] = {}
        while True:
            page = self._fetcher.get_json(f"{self._peer_url}{INDEX_PATH}?{urlencode(params)}")
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise PeerIndexInvalid(f"{self._peer_url} answered no index (no items)")
            fresh = False
            for entry in filter(None, map(self._entry, items)):
                if entry.updated_at <= seen.get(entry.remote_id, _NEVER):
                    self.repeated += 1
                    continue
                if reason := self._limit(len(seen)):
                    self.stopped = reason
                    return
                seen[entry.remote_id], fresh = entry.updated_at, True
                yield entry
            cursor = page.get("next_cursor")
            if not isinstance(cursor, str) or not cursor:
                return  # the end of the index
            if reason := _cut_off(cursor, cursors, fresh):
                self.stopped = reason
                return
            cursors.add(cursor)
            params["cursor"] = cursor

    def _limit(self, taken: int) -> str | None:
        if taken >= MAX_ENTRIES_PER_SYNC:
            return f"{MAX_ENTRIES_PER_SYNC} entries taken"
        if self._clock() >= self._deadline:
            return "the sync's time budget is spent"
        return None

    def _entry(self, item: object) -> Entry | None:
        """The entry, if it names an agent and when it changed."""
        if not isinstance(item, dict):
            self.skipped += 1
            return None
        remote_id, at, card_url = item.get("id"), item.get("updated_at"), item.get("card_url")
        named = isinstance(remote_id, str) and not text_problem(remote_id, MAX_REMOTE_ID, required=True)
        updated_at = instant(at) if isinstance(at, str) else None
        if not named or updated_at is None:
            self.skipped += 1
            return None
        card_url = card_url if isinstance(card_url, str) else None
        return Entry(str(remote_id), str(at), updated_at, bool(item.get("deleted")), card_url)


def _cut_off(cursor: str, cursors: set[str], fresh: bool) -> str | None:
    """Why a peer that pages on should not be followed: it would page forever."""
    if not fresh:
        return "a page brought nothing new"
    if cursor in cursors:
        return "a cursor came back"
    return None
