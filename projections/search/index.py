"""What every search backend shares: the query and its page, the port, the document a card
gives, the words of a text, how hits are scored, and the cursor.

Semantics, the same on every backend:
- A tenant sees its own agents (any visibility) and other tenants' public ones; a deregistered
  agent is never found.
- `q` is words (letters and digits; case and accents are ignored), every one of which must
  match: as a whole word, as the start of a word ("rout" finds "routing"), or, for words of
  MIN_FUZZY_LEN letters or more, as a near-miss of a word of the name, skills or provider
  ("planer" finds "planner": pg_trgm's word similarity >= FUZZY_THRESHOLD; the EXPANSIONS
  most similar words of the agents the caller may see are searched for: `vocabulary_scope`).
  Query operators (quotes, OR, minus) are not offered: each backend would read them its own way.
- Each word scores by its best match: a whole word 2 + half its field's weight, a prefix 1 +
  half the weight, a near-miss FUZZY_FACTOR times its similarity (< 1); a hit's score is the
  mean over the words. So a whole-word hit always ranks above a prefix hit, and both above a
  near-miss; a name above a skill, a skill above a description, a description above the
  provider. Scores depend on the agent's own card only (no corpus statistics): a hit's score,
  the cursor's sort key, does not move when other agents are registered.
- Order: score desc, tenant, agent_id with `q`; otherwise updated_at desc (the last change of
  the registry record, not of its goals), tenant, agent_id. Tenants and agent ids compare by
  code point.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

import orjson

from domain.status import Status

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_Q = 256
MAX_TERMS = 8
MAX_KEY = 200
MAX_CURSOR = 1024
# What is read of a card (it is validated elsewhere; this only bounds the index).
MAX_SKILLS = 100
MAX_TEXT = 4096
MAX_WORD = 64

FIELDS = ("name", "skills", "description", "provider")
FIELD_WEIGHTS = {"name": 1.0, "skills": 0.4, "description": 0.2, "provider": 0.1}
EXACT, PREFIX, FUZZY_FACTOR = 2.0, 1.0, 0.9
# pg_trgm's default word_similarity_threshold: what PostgreSQL's `<%` uses, and the others too.
FUZZY_THRESHOLD = 0.6
MIN_FUZZY_LEN = 4
EXPANSIONS = 8  # near-misses of one query word searched for
SCORE_DIGITS = 6

WORD = re.compile(r"[^\W_]+")


class InvalidSearch(Exception):
    """A search whose parameters break a rule; `errors` maps each parameter to what is wrong
    (the edge answers 422 naming them)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in errors.items()))
        self.errors = errors


class InvalidCursor(InvalidSearch):
    """A cursor this search did not hand out (altered, truncated, or from another query)."""

    def __init__(self, reason: str) -> None:
        super().__init__({"cursor": reason})


class SearchUnavailable(Exception):
    """The search backend cannot answer now; the same search may succeed later (the edge
    answers 503 with Retry-After). Never answered with a search that ignores `q`."""

    def __init__(self, backend: str, reason: str, retry_after_s: float = 5.0) -> None:
        super().__init__(f"{backend} search is unavailable: {reason}")
        self.backend = backend
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SearchQuery:
    """One search, as the edge parsed it. Checked on construction: InvalidSearch."""

    q: str | None = None
    skill: str | None = None  # a skill id or name, exact, case-insensitive
    tag: str | None = None  # exact, case-insensitive
    goal_status: str | None = None
    min_progress: float | None = None
    max_progress: float | None = None
    owned: bool = False  # only the caller's tenant
    reachable: bool | None = None  # only agents whose last check answered (True) or failed (False)
    updated_since: str | None = None  # ISO 8601 instant with an offset
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if problems := _problems(self):
            raise InvalidSearch(problems)

    @cached_property
    def terms(self) -> tuple[str, ...]:
        """The distinct words of `q`, in order (empty without `q`)."""
        return tuple(dict.fromkeys(words(self.q))) if self.q is not None else ()

    @property
    def skill_key(self) -> str | None:
        return key_of(self.skill) if self.skill is not None else None

    @property
    def tag_key(self) -> str | None:
        return key_of(self.tag) if self.tag is not None else None

    @property
    def since(self) -> datetime | None:
        return datetime.fromisoformat(self.updated_since) if self.updated_since is not None else None


def _problems(query: SearchQuery) -> dict[str, str]:
    problems: dict[str, str] = {}
    if query.q is not None:
        if len(query.q) > MAX_Q:
            problems["q"] = f"at most {MAX_Q} characters"
        elif not query.terms:
            problems["q"] = "has no words to search for (letters or digits)"
        elif len(query.terms) > MAX_TERMS:
            problems["q"] = f"at most {MAX_TERMS} words"
    for name, value in (("skill", query.skill), ("tag", query.tag)):
        if value is not None and not 0 < len(value.strip()) <= MAX_KEY:
            problems[name] = f"1 to {MAX_KEY} characters"
    if query.goal_status is not None and query.goal_status not in {s.value for s in Status}:
        problems["goal_status"] = f"must be one of {', '.join(s.value for s in Status)}"
    for name, bound in (("min_progress", query.min_progress), ("max_progress", query.max_progress)):
        if bound is not None and not (math.isfinite(bound) and 0 <= bound <= 100):
            problems[name] = "must be between 0 and 100"
    if (
        query.min_progress is not None
        and query.max_progress is not None
        and "min_progress" not in problems
        and "max_progress" not in problems
        and query.min_progress > query.max_progress
    ):
        problems["min_progress"] = "must not exceed max_progress"
    if query.updated_since is not None:
        try:
            since = datetime.fromisoformat(query.updated_since)
        except ValueError:
            problems["updated_since"] = "must be an ISO 8601 instant, e.g. 2026-11-20T12:00:00Z"
        else:
            if since.utcoffset() is None:
                problems["updated_since"] = "must carry a time zone offset, e.g. 2026-11-20T12:00:00Z"
    if query.cursor is not None and not 0 < len(query.cursor) <= MAX_CURSOR:
        problems["cursor"] = "not a cursor this search handed out"
    if not 1 <= query.limit <= MAX_LIMIT:
        problems["limit"] = f"must be between 1 and {MAX_LIMIT}"
    return problems


@dataclass(frozen=True)
class SearchHit:
    tenant: str
    agent_id: str
    score: float | None  # None without `q`


@dataclass(frozen=True)
class SearchPage:
    items: list[SearchHit]
    total: int  # every match of the query, not only this page's
    next_cursor: str | None  # None on the last page


class AgentSearch(Protocol):
    """The registry's discovery search (a read model: as fresh as its projection)."""

    def search(self, tenant: str, query: SearchQuery) -> SearchPage:
        """The page of agents `tenant` may see that match `query`. InvalidSearch (a bad
        cursor: InvalidCursor) for what no search could answer; SearchUnavailable when the
        backend cannot answer now."""
        ...


# --- words ---------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case, without accents: how every backend compares words."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def words(text: str) -> list[str]:
    """The words of `text` as every backend indexes and searches them: runs of letters and
    digits, folded; a run longer than MAX_WORD (a hash, a blob) is not a word."""
    return [w for w in WORD.findall(fold(text)) if len(w) <= MAX_WORD]


def key_of(text: str) -> str:
    """A skill id or name, or a tag, as exact filters compare it: trimmed, lower case."""
    return text.strip().lower()


def exact_score(field_name: str) -> float:
    return EXACT + FIELD_WEIGHTS[field_name] / 2


def prefix_score(field_name: str) -> float:
    return PREFIX + FIELD_WEIGHTS[field_name] / 2


def trigrams(word: str) -> list[str]:
    """pg_trgm's trigrams of one word, in order: padded with two spaces before, one after."""
    padded = f"  {word} "
    return [padded[i : i + 3] for i in range(len(padded) - 2)]


def word_similarity(term: str, word: str) -> float:
    """pg_trgm's word_similarity of `term` to one `word`: the greatest similarity between the
    term's trigrams and those of any run of the word's (shared / union)."""
    wanted = set(trigrams(term))
    sequence = trigrams(word)
    best = 0.0
    for start in range(len(sequence)):
        seen: set[str] = set()
        shared = 0
        for gram in sequence[start:]:
            if gram not in seen:
                seen.add(gram)
                shared += gram in wanted
                best = max(best, shared / (len(wanted) + len(seen) - shared))
    return best


def trigrams_needed(term: str) -> int:
    """The fewest of `term`'s trigrams a word must hold to be a near-miss: word similarity is
    shared / (term's + run's - shared) <= shared / term's, and must reach FUZZY_THRESHOLD."""
    return math.ceil(FUZZY_THRESHOLD * len(set(trigrams(term))) - 1e-9)  # 0.6 * 5 is 3.0000000000000004


# --- the vocabulary of near-misses ---------------------------------------------------------

# The scope of public agents' words (peers' copies included): no tenant is named so (tenants
# start with a letter or digit).
PUBLIC_SCOPE = ""


def vocabulary_scope(tenant: str, visibility: str) -> str:
    """Whose vocabulary an agent's label words are counted in: the public one, or its
    tenant's. A search by a tenant picks its near-misses among the words of the public scope
    and of its own only, so that which words it picks (the EXPANSIONS most similar) tells it
    nothing of another tenant's private agents."""
    return PUBLIC_SCOPE if visibility == "public" else tenant


def scopes_seen_by(tenant: str) -> tuple[str, str]:
    """The scopes a tenant's search looks for near-misses in."""
    return (PUBLIC_SCOPE, tenant)


@dataclass(frozen=True)
class Labels:
    """An agent's label words (`SearchDocument.labels`) and the scope they are counted in."""

    scope: str
    words: frozenset[str]

    def entries(self) -> list[tuple[str, str]]:
        return [(self.scope, word) for word in sorted(self.words)]


class VocabularyChanges(Counter[tuple[str, str]]):
    """How many more agents use each word in each scope, over a page of events."""

    def replace(self, old: Labels | None, new: Labels | None) -> None:
        """An agent's label words are counted as `new` instead of `old` (None: not at all)."""
        if old is not None:
            self.subtract(old.entries())
        if new is not None:
            self.update(new.entries())

    def changed(self) -> dict[tuple[str, str], int]:
        """The entries whose count changes, in order (a store meets them the same way each time)."""
        return {entry: self[entry] for entry in sorted(self) if self[entry]}


# --- documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchDocument:
    """What search reads of a card, from either generation (v1.0 and v0.3 share these fields)."""

    name: str = ""
    description: str = ""
    provider: str = ""
    skills_text: str = ""  # skill ids, names and tags, a line each
    skill_descriptions: str = ""
    skill_keys: tuple[str, ...] = ()  # skill ids and names, as `key_of` gives them
    tags: tuple[str, ...] = field(default=())  # as `key_of` gives them

    def field_words(self) -> dict[str, str]:
        """Each weighted field's words, space-separated (what the backends index)."""
        return {
            "name": " ".join(words(self.name)),
            "skills": " ".join(words(self.skills_text)),
            "description": " ".join(words(f"{self.description}\n{self.skill_descriptions}")),
            "provider": " ".join(words(self.provider)),
        }

    def labels(self) -> list[str]:
        """The words near-misses are looked for in: the name's, the skills' and the provider's."""
        return words(f"{self.name}\n{self.skills_text}\n{self.provider}")


def document(card: Mapping[str, Any]) -> SearchDocument:
    """The searchable parts of an AgentCard as submitted, read defensively: a field of the
    wrong type counts as absent."""
    skills = [s for s in _items(card.get("skills")) if isinstance(s, Mapping)][:MAX_SKILLS]
    labels: list[str] = []
    descriptions: list[str] = []
    keys: dict[str, None] = {}
    tags: dict[str, None] = {}
    for skill in skills:
        skill_tags = [t for t in map(_text, _items(skill.get("tags"))) if t.strip()]
        names = [n for n in (_text(skill.get("id")), _text(skill.get("name"))) if n.strip()]
        labels.extend([*names, *skill_tags])
        descriptions.append(_text(skill.get("description")))
        keys.update(dict.fromkeys(key_of(n) for n in names))
        tags.update(dict.fromkeys(key_of(t) for t in skill_tags))
    provider = card.get("provider")
    return SearchDocument(
        name=_text(card.get("name")),
        description=_text(card.get("description")),
        provider=_text(provider.get("organization")) if isinstance(provider, Mapping) else "",
        skills_text="\n".join(labels),
        skill_descriptions="\n".join(d for d in descriptions if d),
        skill_keys=tuple(k for k in keys if len(k) <= MAX_KEY),
        tags=tuple(t for t in tags if len(t) <= MAX_KEY),
    )


def _text(value: object) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _items(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


# --- cursors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    """The sort key of a hit: its score (with `q`) or the backend's updated_at value, then
    tenant and agent_id."""

    first: float | str | int
    tenant: str
    agent_id: str


def fingerprint(tenant: str, query: SearchQuery) -> str:
    """What a cursor is bound to: the caller and every parameter but the cursor and the limit."""
    since = query.since
    described = [
        tenant,
        list(query.terms),
        query.skill_key,
        query.tag_key,
        query.goal_status,
        query.min_progress,
        query.max_progress,
        query.owned,
        since.timestamp() if since is not None else None,
        # Only when given: cursors handed out before this filter existed stay valid.
        *([query.reachable] if query.reachable is not None else []),
    ]
    return hashlib.sha256(orjson.dumps(described)).hexdigest()[:16]


def encode_cursor(bound_to: str, key: SortKey) -> str:
    """Opaque to clients: the sort key of the last hit handed out, and the query it belongs to."""
    raw = orjson.dumps([bound_to, key.first, key.tenant, key.agent_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, bound_to: str, *, relevance: bool) -> SortKey:
    """The sort key `encode_cursor` wrote for the same query; InvalidCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InvalidCursor("not a cursor this search handed out") from None
    if not (isinstance(found, list) and len(found) == 4):
        raise InvalidCursor("not a cursor this search handed out")
    owner, first, tenant, agent_id = found
    if owner != bound_to:
        raise InvalidCursor("belongs to another search (other parameters or caller)")
    if not (isinstance(tenant, str) and isinstance(agent_id, str) and _first_fits(first, relevance)):
        raise InvalidCursor("not a cursor this search handed out")
    return SortKey(first, tenant, agent_id)


def _first_fits(first: object, relevance: bool) -> bool:
    if isinstance(first, bool):
        return False
    if relevance:
        return isinstance(first, int | float) and math.isfinite(first)
    return isinstance(first, str | int)
