"""The documents of agent_search on Elasticsearch, without a server: the index template
(their mapping), folding a page's events into them, and the bulk actions that write them.
How they are versioned and why: `projections.search.elasticsearch`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.goals import AgentGoals
from domain.registry import RegisteredAgent
from projections.goal_summaries import GoalSummary, fold_goal
from projections.instants import utc
from projections.projection import LogPage
from projections.registry_changes import (
    CardChanged,
    Change,
    Listed,
    Unlisted,
    VisibilityChanged,
    registry_change,
)
from projections.search.index import FIELDS, SearchDocument, document

Key = tuple[str, str]
WORDS = {"type": "text", "analyzer": "words", "index_prefixes": {"min_chars": 1, "max_chars": 10}}
KEYS = {"type": "keyword", "normalizer": "keys"}

# Fields added after the first indexes were created: put into an existing index's mapping too.
ADDED_FIELDS: dict[str, Any] = {"reachable": {"type": "boolean"}}


def template(alias: str) -> dict[str, Any]:
    """The index template of every index of `alias` (the body of `put_index_template`)."""
    return {
        "index_patterns": [f"{alias}-*"],
        "priority": 500,
        "template": {
            "settings": {
                "analysis": {
                    "analyzer": {
                        "words": {"type": "custom", "tokenizer": "whitespace", "filter": ["lowercase"]}
                    },
                    "normalizer": {"keys": {"type": "custom", "filter": ["lowercase"]}},
                }
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "tenant": {"type": "keyword"},
                    "agent_id": {"type": "keyword"},
                    "registered": {"type": "boolean"},
                    "visibility": {"type": "keyword"},
                    **{f: WORDS for f in FIELDS},
                    "labels": {"type": "text", "analyzer": "words"},
                    "skill_keys": KEYS,
                    "tags": KEYS,
                    "updated_at": {"type": "date_nanos"},  # the microseconds the other backends order by
                    "position": {"type": "long"},
                    "goal_status": {"type": "keyword"},
                    "overall_progress": {"type": "double"},
                    "objective_progress": {"type": "object", "enabled": False},
                    **ADDED_FIELDS,
                },
            },
        },
    }


# --- documents ---------------------------------------------------------------------------------


def card_fields(card: SearchDocument | None) -> dict[str, Any]:
    """What a card puts in an agent's document (empty without a card)."""
    if card is None:
        return {**{f: "" for f in FIELDS}, "labels": "", "skill_keys": [], "tags": []}
    return {
        **card.field_words(),
        "labels": " ".join(card.labels()),
        "skill_keys": list(card.skill_keys),
        "tags": list(card.tags),
    }


@dataclass
class AgentDoc:
    """An agent's document, as folded from its events."""

    tenant: str
    agent_id: str
    position: int = 0
    registered: bool = False
    visibility: str = "private"
    updated_at: str | None = None
    card: dict[str, Any] = field(default_factory=lambda: card_fields(None))
    goals: GoalSummary | None = None
    reachable: bool | None = None  # the last recorded check; None: not checked yet

    @property
    def id(self) -> str:
        return doc_id(self.tenant, self.agent_id)

    def source(self) -> dict[str, Any]:
        goals = self.goals
        return {
            "tenant": self.tenant,
            "agent_id": self.agent_id,
            "registered": self.registered,
            "visibility": self.visibility,
            **self.card,
            "updated_at": self.updated_at,
            "position": self.position,
            "goal_status": goals.goal_status if goals else None,
            "overall_progress": goals.overall_progress if goals else None,
            "objective_progress": dict(goals.objective_progress) if goals else {},
            "reachable": self.reachable,
        }

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> AgentDoc:
        goals = None
        if source.get("goal_status") is not None:
            goals = GoalSummary(
                source["goal_status"],
                float(source["overall_progress"]),
                {k: float(v) for k, v in source.get("objective_progress", {}).items()},
            )
        return cls(
            tenant=source["tenant"],
            agent_id=source["agent_id"],
            position=int(source["position"]),
            registered=bool(source["registered"]),
            visibility=source["visibility"],
            updated_at=source.get("updated_at"),
            card={k: source[k] for k in card_fields(None)},
            goals=goals,
            reachable=source.get("reachable"),
        )


def doc_id(tenant: str, agent_id: str) -> str:
    """Unique: a tenant holds no ':'."""
    return f"{tenant}:{agent_id}"


def fold_page(docs: dict[Key, AgentDoc], events: LogPage) -> dict[Key, AgentDoc]:
    """Fold a page's events into the documents `docs` holds of their agents (changed in
    place, new ones added); the documents the page changed. Events at or before a document's
    position are in it already."""
    changed: dict[Key, AgentDoc] = {}
    for position, event in events:
        change = registry_change(event)
        if change is not None:
            key = change.key
        elif isinstance(event, RegisteredAgent.ReachabilityChanged | AgentGoals.Event):
            key = (event.tenant, event.agent_id)
        else:
            continue
        doc = docs.get(key)
        if doc is not None and position <= doc.position:
            continue
        if change is not None:
            doc = docs[key] = doc or AgentDoc(*key)
            _fold_registry(doc, change)
        elif isinstance(event, RegisteredAgent.ReachabilityChanged):
            if doc is None:
                continue  # registered before this read model existed: a rebuild fills it
            doc.reachable = event.reachable
        else:
            if doc is None or doc.goals is None:
                if not isinstance(event, AgentGoals.Registered):
                    continue  # goals recorded before this read model existed: a rebuild fills them
                doc = docs[key] = doc or AgentDoc(*key)
                doc.goals = GoalSummary()
            fold_goal(doc.goals, event)
        doc.position = position
        changed[key] = doc
    return changed


def _fold_registry(doc: AgentDoc, event: Change) -> None:
    at = utc(event.at).isoformat()
    match event:
        case Listed():
            doc.registered, doc.visibility, doc.updated_at = True, event.visibility, at
            doc.reachable = None  # a new record: not checked yet
            doc.card = card_fields(document(event.card))
        case CardChanged() if doc.registered:
            doc.card, doc.updated_at = card_fields(document(event.card)), at
        case VisibilityChanged() if doc.registered:
            doc.visibility, doc.updated_at = event.visibility, at
        case Unlisted():
            doc.registered, doc.updated_at, doc.card = False, at, card_fields(None)


def bulk_operations(index: str, docs: Sequence[AgentDoc]) -> list[dict[str, Any]]:
    """Whole documents, versioned by log position: applying them again changes nothing."""
    operations: list[dict[str, Any]] = []
    for doc in docs:
        action = {"_index": index, "_id": doc.id, "version": doc.position, "version_type": "external"}
        operations += [{"index": action}, doc.source()]
    return operations


def refused_items(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The bulk items that failed for another reason than a version already there."""
    if not response.get("errors"):
        return []
    failed = [item.get("index", {}) for item in response.get("items", ())]
    return [
        item
        for item in failed
        if "error" in item and not (item.get("status") == 409 and _conflict(item["error"]))
    ]


def _conflict(error: Any) -> bool:
    return isinstance(error, Mapping) and error.get("type") == "version_conflict_engine_exception"
