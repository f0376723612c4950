"""Federation: peer registries (registry-wide, managed by the operator tenant's admins) and the
read-only copies of their public agents.

A copy is its own aggregate, keyed by the peer and the agent's public id there, in no tenant:
it can never take the place of a local agent, whatever the peer sends.

A peer's index is ordered by `updated_at`, the peer's clock when it recorded a change. Its
replicas' clocks differ and concurrent commits land out of timestamp order, so a change may
appear after the sync that read past its time: the next sync asks from OVERLAP before the
latest time it saw (`next_start`). Re-reading an unchanged entry costs no fetch (`covers`).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.cards import card_problems
from domain.errors import DomainError, InvalidCommand
from domain.ids import NAMESPACE
from domain.limits import MAX_REASON, MAX_URL, text_problem
from domain.meta import Meta, meta_fields

MAX_CURSOR = 512
# How far before the latest change it saw the next sync asks from: longer than a peer's
# replicas' clocks differ plus a commit takes, so that a change landing late is still read.
OVERLAP = timedelta(minutes=5)
DEFAULT_PORTS = {"http": 80, "https": 443}


def peer_id(url: str) -> UUID:
    return uuid5(NAMESPACE, f"peer:{url}")


def federated_agent_id(peer_url: str, remote_id: str) -> UUID:
    return uuid5(NAMESPACE, f"federated:{len(peer_url)}:{peer_url}:{remote_id}")


def instant(text: str) -> datetime | None:
    """An ISO 8601 instant with its offset, in UTC; None for anything else."""
    try:
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def next_start(previous: str | None, latest: datetime | None, reached_end: bool) -> str | None:
    """Where the next sync asks the peer's index from (`updated_since`), after one that
    started at `previous` and saw changes up to `latest`. One that read the index to its end
    goes back OVERLAP, for changes that land late; one cut short (a cap, a misbehaving peer)
    goes on from where it stopped, or it could read the same entries again and again. Never
    before `previous`: a sync that saw nothing new does not move back."""
    if latest is None:
        return previous
    start = latest
    if reached_end:
        with contextlib.suppress(OverflowError):  # an instant in year 1
            start = latest - OVERLAP
    before = instant(previous) if previous is not None else None
    if before is not None and before >= start:
        return previous
    return start.isoformat()


def same_origin(base: str, url: str) -> bool:
    """Whether `url` is on `base`'s origin: the same scheme, host and port."""
    try:
        return _origin(base) == _origin(url)
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in DEFAULT_PORTS or not host:
        raise ValueError(f"{url!r} has no http(s) origin")
    return scheme, host, parts.port or DEFAULT_PORTS[scheme]


class PeerRemovedError(DomainError):
    def __init__(self, url: str) -> None:
        super().__init__(f"peer {url} was removed")
        self.url = url


class Peer(Aggregate):
    class Event(Aggregate.Event):
        url: str
        actor: str
        request_id: str
        idempotency_key: str | None

    class PeerAdded(Event, Aggregate.Created):
        pass

    class PeerReadded(Event):
        def apply(self, peer: Peer) -> None:
            peer.removed = False
            peer.updated_since = None
            peer.generation += 1

    class PeerRemoved(Event):
        def apply(self, peer: Peer) -> None:
            peer.removed = True

    class PeerSyncCompleted(Event):
        updated_since: str | None
        imported: int
        updated: int
        removed: int

        def apply(self, peer: Peer) -> None:
            peer.updated_since = self.updated_since
            peer.last_error = None

    class PeerSyncFailed(Event):
        reason: str

        def apply(self, peer: Peer) -> None:
            peer.last_error = self.reason

    def __init__(self, url: str, actor: str, request_id: str, idempotency_key: str | None) -> None:
        self.url = url
        self.removed = False
        self.updated_since: str | None = None  # the peer's clock: where the next sync starts
        self.last_error: str | None = None
        self.generation = 0  # how many times it was added again: a sync spans one generation

    @classmethod
    def add(cls, url: str, meta: Meta) -> Peer:
        if problem := text_problem(url, MAX_URL, required=True):
            raise InvalidCommand({"url": problem})
        return cls._create(cls.PeerAdded, id=peer_id(url), url=url, **meta_fields(meta))

    def add_again(self, meta: Meta) -> bool:
        if not self.removed:
            return False
        self.trigger_event(self.PeerReadded, url=self.url, **meta_fields(meta))
        return True

    def remove(self, meta: Meta) -> None:
        if self.removed:
            raise PeerRemovedError(self.url)
        self.trigger_event(self.PeerRemoved, url=self.url, **meta_fields(meta))

    def sync_completed(self, updated_since: str | None, counts: tuple[int, int, int], meta: Meta) -> None:
        if updated_since is not None and (problem := text_problem(updated_since, MAX_CURSOR)):
            raise InvalidCommand({"updated_since": problem})
        imported, updated, removed = counts
        self.trigger_event(
            self.PeerSyncCompleted,
            url=self.url,
            updated_since=updated_since,
            imported=imported,
            updated=updated,
            removed=removed,
            **meta_fields(meta),
        )

    def sync_failed(self, reason: str, meta: Meta) -> None:
        """Recorded when a sync fails after one that did not (not on every failed attempt)."""
        if self.last_error is not None:
            return
        self.trigger_event(self.PeerSyncFailed, url=self.url, reason=reason[:MAX_REASON], **meta_fields(meta))


class FederatedAgent(Aggregate):
    """A peer's public agent, copied: read-only here, visible to every tenant."""

    class Event(Aggregate.Event):
        peer_url: str
        remote_id: str
        actor: str
        request_id: str
        idempotency_key: str | None

    class FederatedAgentImported(Event, Aggregate.Created):
        card: dict[str, Any]
        card_hash: str
        card_url: str
        remote_updated_at: str

    class FederatedAgentUpdated(Event):
        card: dict[str, Any]
        card_hash: str
        card_url: str
        remote_updated_at: str

        def apply(self, agent: FederatedAgent) -> None:
            agent.card, agent.card_hash = self.card, self.card_hash
            agent.card_url, agent.removed = self.card_url, False
            agent.remote_updated_at = self.remote_updated_at

    class FederatedAgentRemoved(Event):
        def apply(self, agent: FederatedAgent) -> None:
            agent.removed = True

    def __init__(
        self,
        peer_url: str,
        remote_id: str,
        actor: str,
        request_id: str,
        idempotency_key: str | None,
        card: dict[str, Any],
        card_hash: str,
        card_url: str,
        remote_updated_at: str,
    ) -> None:
        self.peer_url = peer_url
        self.remote_id = remote_id
        self.card = card
        self.card_hash = card_hash
        self.card_url = card_url
        self.remote_updated_at = remote_updated_at  # the peer's time of the card taken last
        self.removed = False

    @classmethod
    def imported(
        cls, peer_url: str, remote_id: str, card: dict[str, Any], card_hash: str, card_url: str, at: str, meta: Meta
    ) -> FederatedAgent:
        _check(card, card_url, at)
        return cls._create(
            cls.FederatedAgentImported,
            id=federated_agent_id(peer_url, remote_id),
            peer_url=peer_url,
            remote_id=remote_id,
            card=card,
            card_hash=card_hash,
            card_url=card_url,
            remote_updated_at=at,
            **meta_fields(meta),
        )

    def covers(self, card_url: str, at: str) -> bool:
        """Whether an index entry of the agent changed at `at` can bring nothing newer than
        this copy, so that its card need not be fetched again."""
        if self.removed or card_url != self.card_url:
            return False
        mine, theirs = instant(self.remote_updated_at), instant(at)
        return mine is not None and theirs is not None and theirs <= mine

    def update(self, card: dict[str, Any], card_hash: str, card_url: str, at: str, meta: Meta) -> bool:
        """Take the peer's newer card; the same card again writes nothing."""
        _check(card, card_url, at)
        if card_hash == self.card_hash and card_url == self.card_url and not self.removed:
            return False
        self.trigger_event(
            self.FederatedAgentUpdated,
            card=card,
            card_hash=card_hash,
            card_url=card_url,
            remote_updated_at=at,
            **self._keys(meta),
        )
        return True

    def remove(self, meta: Meta) -> bool:
        if self.removed:
            return False
        self.trigger_event(self.FederatedAgentRemoved, **self._keys(meta))
        return True

    def _keys(self, meta: Meta) -> dict[str, Any]:
        return {"peer_url": self.peer_url, "remote_id": self.remote_id, **meta_fields(meta)}


def _check(card: dict[str, Any], card_url: str, at: str) -> None:
    problems = card_problems(card, prefix="card")
    if p := text_problem(card_url, MAX_URL, required=True):
        problems["card_url"] = p
    if p := text_problem(at, 64, required=True):
        problems["updated_at"] = p
    if problems:
        raise InvalidCommand(problems)
