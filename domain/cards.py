"""A2A AgentCards as agents submit them: which generation a card is, what is wrong with it, and
the summary that search and the public index show.

A card is kept as submitted (a JSON object), so it is checked here field by field against the
A2A specification: v1.0 (camelCase JSON of the AgentCard message, `supportedInterfaces`) or
v0.3 (and 0.2.x: `url`, `preferredTransport`, `additionalInterfaces`). Every required field must
be there with its type; optional fields are type-checked when present (JSON null counts as
absent); fields the specification does not name are allowed, since cards evolve. Texts and lists
are bounded so that no single field can be huge, and every value anywhere in the card (unknown
fields too) must be storable and canonicalisable: no NUL character or lone surrogate, finite
numbers within JSON's exact integer range, nesting at most ``domain.limits.MAX_JSON_DEPTH`` deep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from domain.limits import json_problems, text_problem

__all__ = [
    "MAX_CARD_BYTES",
    "CardSummary",
    "Generation",
    "SkillSummary",
    "card_problems",
    "generation",
    "summary",
]

MAX_CARD_BYTES = 65_536  # a card's JSON, checked by the edge before parsing
MAX_DESCRIPTION = 4096  # descriptions and skill examples
MAX_URL = 2048
MAX_SHORT = 256  # names, ids, versions, tags, media types, protocol names
MAX_SIGNATURE_PART = 4096  # a JWS protected header or signature, base64url
MAX_INTERFACES = 32
MAX_SKILLS = 256
MAX_TAGS = 64
MAX_EXAMPLES = 32
MAX_MODES = 64
MAX_EXTENSIONS = 64
MAX_SECURITY = 64  # security schemes, requirements, schemes in one requirement
MAX_SIGNATURES = 16

Generation = Literal["1.0", "0.3"]
Problems = dict[str, str]
Check = Callable[[object, str, Problems], None]


@dataclass(frozen=True)
class Field:
    check: Check
    required: bool = False


def generation(card: Mapping[str, Any]) -> Generation:
    """ "1.0" for a card with `supportedInterfaces`, "0.3" for one with only the older `url`
    (v0.3 and 0.2.x cards), and "1.0" otherwise, so that problems name v1.0's fields."""
    if "supportedInterfaces" in card:
        return "1.0"
    return "0.3" if "url" in card else "1.0"


def card_problems(card: object, *, prefix: str = "card") -> dict[str, str]:
    """Every wrong field of a card, by dotted path (``card.skills.0.tags``) -> what is wrong.

    An empty dict means the card is valid for its generation (see :func:`generation`)."""
    if not isinstance(card, Mapping):
        return {prefix: "must be a JSON object"}
    problems: Problems = {}
    rules = _V1_CARD if generation(card) == "1.0" else _V03_CARD
    _check_fields(card, rules, prefix, problems)
    for path, problem in json_problems(card, prefix).items():
        problems.setdefault(path, problem)
    return problems


# -- checks, composed into the two generations' rules --------------------------------------------


def _check_fields(
    value: Mapping[str, Any], rules: Mapping[str, Field], path: str, problems: Problems
) -> None:
    for name, field in rules.items():
        item = value.get(name)
        if item is None and not field.required:
            continue
        if name not in value:
            problems[f"{path}.{name}"] = "is required"
        else:
            field.check(item, f"{path}.{name}", problems)


def _text(max_length: int = MAX_SHORT, *, non_empty: bool = False) -> Check:
    def check(value: object, path: str, problems: Problems) -> None:
        if (problem := text_problem(value, max_length, required=non_empty)) is not None:
            problems[path] = problem

    return check


def _url(value: object, path: str, problems: Problems) -> None:
    if (problem := text_problem(value, MAX_URL, required=True)) is not None:
        problems[path] = problem
        return
    assert isinstance(value, str)
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 0x20 for c in value)
    ):
        problems[path] = "must be an http:// or https:// URL"


def _flag(value: object, path: str, problems: Problems) -> None:
    if not isinstance(value, bool):
        problems[path] = "must be true or false"


def _free_object(value: object, path: str, problems: Problems) -> None:
    if not isinstance(value, Mapping):
        problems[path] = "must be an object"


def _object(rules: Mapping[str, Field]) -> Check:
    def check(value: object, path: str, problems: Problems) -> None:
        if not isinstance(value, Mapping):
            problems[path] = "must be an object"
        else:
            _check_fields(value, rules, path, problems)

    return check


def _list(item: Check, max_items: int, *, non_empty: bool = False) -> Check:
    def check(value: object, path: str, problems: Problems) -> None:
        if not isinstance(value, list):
            problems[path] = "must be a list"
        elif non_empty and not value:
            problems[path] = "must not be empty"
        elif len(value) > max_items:
            problems[path] = f"must have at most {max_items} items"
        else:
            for index, entry in enumerate(value):
                item(entry, f"{path}.{index}", problems)

    return check


def _map(value_check: Check, max_entries: int) -> Check:
    def check(value: object, path: str, problems: Problems) -> None:
        if not isinstance(value, Mapping):
            problems[path] = "must be an object"
        elif len(value) > max_entries:
            problems[path] = f"must have at most {max_entries} entries"
        else:
            for key, entry in value.items():
                if (problem := text_problem(key, MAX_SHORT, required=True)) is not None:
                    problems[f"{path}.{str(key)[:MAX_SHORT]}"] = f"name {problem}"
                else:
                    value_check(entry, f"{path}.{key}", problems)

    return check




_TEXTS = _list(_text(), MAX_MODES)
_LEGACY_SECURITY = _list(_map(_list(_text(), MAX_SECURITY), MAX_SECURITY), MAX_SECURITY)
_SECURITY_SCHEMES = _map(_free_object, MAX_SECURITY)
_SIGNATURES = _list(
    _object(
        {
            "protected": Field(_text(MAX_SIGNATURE_PART, non_empty=True), required=True),
            "signature": Field(_text(MAX_SIGNATURE_PART, non_empty=True), required=True),
            "header": Field(_free_object),
        }
    ),
    MAX_SIGNATURES,
)
_PROVIDER = _object(
    {"organization": Field(_text(), required=True), "url": Field(_text(MAX_URL), required=True)}
)
_EXTENSION = _object(
    {
        "uri": Field(_text(MAX_URL, non_empty=True), required=True),
        "description": Field(_text(MAX_DESCRIPTION)),
        "required": Field(_flag),
        "params": Field(_free_object),
    }
)
_CAPABILITIES = {
    "streaming": Field(_flag),
    "pushNotifications": Field(_flag),
    "stateTransitionHistory": Field(_flag),  # v0.3; gone in v1.0 but still seen
    "extensions": Field(_list(_EXTENSION, MAX_EXTENSIONS)),
}
_SKILL = {
    "id": Field(_text(non_empty=True), required=True),
    "name": Field(_text(non_empty=True), required=True),
    "description": Field(_text(MAX_DESCRIPTION), required=True),
    "tags": Field(_list(_text(), MAX_TAGS), required=True),
    "examples": Field(_list(_text(MAX_DESCRIPTION), MAX_EXAMPLES)),
    "inputModes": Field(_TEXTS),
    "outputModes": Field(_TEXTS),
}
_COMMON = {
    "name": Field(_text(non_empty=True), required=True),
    "description": Field(_text(MAX_DESCRIPTION), required=True),
    "version": Field(_text(), required=True),
    "defaultInputModes": Field(_TEXTS, required=True),
    "defaultOutputModes": Field(_TEXTS, required=True),
    "provider": Field(_PROVIDER),
    "documentationUrl": Field(_text(MAX_URL)),
    "iconUrl": Field(_text(MAX_URL)),
    "securitySchemes": Field(_SECURITY_SCHEMES),
    "signatures": Field(_SIGNATURES),
}
_V03_INTERFACE = _object(
    {"url": Field(_url, required=True), "transport": Field(_text(non_empty=True), required=True)}
)
# v0.3's own fields, also type-checked when a v1.0 card carries them beside its own (the A2A
# SDK serves both on one card, and v1.0's sample card still says `security`).
_V03_ONLY = {
    "url": Field(_url),
    "protocolVersion": Field(_text(non_empty=True)),
    "preferredTransport": Field(_text(non_empty=True)),
    "additionalInterfaces": Field(_list(_V03_INTERFACE, MAX_INTERFACES)),
    "security": Field(_LEGACY_SECURITY),
    "supportsAuthenticatedExtendedCard": Field(_flag),
}

_V1_CARD: dict[str, Field] = {
    **_V03_ONLY,
    **_COMMON,
    "supportedInterfaces": Field(
        _list(
            _object(
                {
                    "url": Field(_url, required=True),
                    "protocolBinding": Field(_text(non_empty=True), required=True),
                    "protocolVersion": Field(_text(non_empty=True), required=True),
                    "tenant": Field(_text()),
                }
            ),
            MAX_INTERFACES,
            non_empty=True,
        ),
        required=True,
    ),
    "capabilities": Field(_object({**_CAPABILITIES, "extendedAgentCard": Field(_flag)}), required=True),
    "skills": Field(
        _list(
            _object({**_SKILL, "securityRequirements": Field(_list(_free_object, MAX_SECURITY))}),
            MAX_SKILLS,
        ),
        required=True,
    ),
    "securityRequirements": Field(_list(_free_object, MAX_SECURITY)),
}

_V03_CARD: dict[str, Field] = {
    **_COMMON,
    **_V03_ONLY,
    "url": Field(_url, required=True),
    "protocolVersion": Field(_text(non_empty=True), required=True),
    "capabilities": Field(_object(_CAPABILITIES), required=True),
    "skills": Field(
        _list(_object({**_SKILL, "security": Field(_LEGACY_SECURITY)}), MAX_SKILLS), required=True
    ),
}


# -- summary ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkillSummary:
    id: str
    name: str
    description: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class CardSummary:
    """What search and the public index show of a card, the same for either generation."""

    name: str
    description: str
    version: str
    provider: str | None  # the provider's organization
    skills: tuple[SkillSummary, ...]
    interfaces: tuple[str, ...]  # endpoint URLs, the preferred one first
    extensions: tuple[str, ...]  # extension URIs


def summary(card: Mapping[str, Any]) -> CardSummary:
    """The summary of a valid card (one that :func:`card_problems` finds nothing wrong with)."""
    provider = card.get("provider") or {}
    capabilities = card.get("capabilities") or {}
    if generation(card) == "1.0":
        urls = [interface["url"] for interface in card["supportedInterfaces"]]
    else:
        urls = [card["url"], *(i["url"] for i in card.get("additionalInterfaces") or ())]
    return CardSummary(
        name=card["name"],
        description=card["description"],
        version=card["version"],
        provider=provider.get("organization"),
        skills=tuple(
            SkillSummary(skill["id"], skill["name"], skill["description"], tuple(skill["tags"]))
            for skill in card["skills"]
        ),
        interfaces=tuple(dict.fromkeys(urls)),  # v0.3 cards often repeat `url` among the others
        extensions=tuple(e["uri"] for e in capabilities.get("extensions") or ()),
    )
