"""AgentCards checked against the A2A specification, both generations, and their summaries."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.cards import (
    MAX_CARD_BYTES,
    MAX_DESCRIPTION,
    MAX_SKILLS,
    MAX_TAGS,
    MAX_URL,
    CardSummary,
    SkillSummary,
    card_problems,
    generation,
    summary,
)
from domain.limits import MAX_JSON_DEPTH

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "a2a"


def sample(name: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return card


def full_v1() -> dict[str, Any]:
    """The specification's v1.0 sample with every optional part it lacks."""
    card = sample("sample-card-v1.0.json")
    card["supportedInterfaces"][0]["tenant"] = "geo"
    card["capabilities"]["extensions"] = [
        {"uri": "https://example.com/ext/v1", "description": "d", "required": False, "params": {"a": 1}}
    ]
    card["securityRequirements"] = [{"schemes": {"google": {"list": ["openid"]}}}]
    card["skills"][0]["securityRequirements"] = [{"schemes": {"google": {"list": ["openid"]}}}]
    card["signatures"][0]["header"] = {"kid": "key-1"}
    return card


def full_v03() -> dict[str, Any]:
    card = sample("sample-card-v0.3.json")
    card["capabilities"]["extensions"] = [{"uri": "https://example.com/ext/v1", "required": True}]
    card["skills"][0]["security"] = [{"google": ["openid"]}]
    return card


def without(card: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(card)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return changed


def replaced(card: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(card)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


# -- the specification's samples ------------------------------------------------------------------


def test_the_specifications_samples_are_valid_for_their_generation() -> None:
    assert generation(sample("sample-card-v1.0.json")) == "1.0"
    assert generation(sample("sample-card-v0.3.json")) == "0.3"
    for card in (sample("sample-card-v1.0.json"), sample("sample-card-v0.3.json"), full_v1(), full_v03()):
        assert card_problems(card) == {}


def test_a_card_of_neither_shape_is_judged_as_v1() -> None:
    assert generation({}) == "1.0"
    assert generation({"url": "https://a.example", "supportedInterfaces": []}) == "1.0"
    assert "card.supportedInterfaces" in card_problems({})


# -- required fields ----------------------------------------------------------------------------

V1_REQUIRED = [
    "name",
    "description",
    "supportedInterfaces",
    "version",
    "capabilities",
    "defaultInputModes",
    "defaultOutputModes",
    "skills",
    "supportedInterfaces.0.url",
    "supportedInterfaces.1.protocolBinding",
    "supportedInterfaces.2.protocolVersion",
    "provider.organization",
    "provider.url",
    "capabilities.extensions.0.uri",
    "skills.0.id",
    "skills.0.name",
    "skills.1.description",
    "skills.1.tags",
    "signatures.0.protected",
    "signatures.0.signature",
]

V03_REQUIRED = [
    "name",
    "description",
    "version",
    "protocolVersion",
    "capabilities",
    "defaultInputModes",
    "defaultOutputModes",
    "skills",
    "additionalInterfaces.1.url",
    "additionalInterfaces.2.transport",
    "provider.organization",
    "provider.url",
    "capabilities.extensions.0.uri",
    "skills.0.id",
    "skills.0.name",
    "skills.1.description",
    "skills.1.tags",
    "signatures.0.protected",
    "signatures.0.signature",
]


@pytest.mark.parametrize("path", V1_REQUIRED)
def test_each_missing_required_v1_field_is_named(path: str) -> None:
    assert card_problems(without(full_v1(), path)) == {f"card.{path}": "is required"}


@pytest.mark.parametrize("path", V03_REQUIRED)
def test_each_missing_required_v03_field_is_named(path: str) -> None:
    assert card_problems(without(full_v03(), path)) == {f"card.{path}": "is required"}


WRONG_TYPE_MESSAGES = {"must be a text", "must be a list", "must be an object"}


@pytest.mark.parametrize(
    ("card", "path"),
    [(full_v1, path) for path in V1_REQUIRED] + [(full_v03, path) for path in [*V03_REQUIRED, "url"]],
)
def test_each_required_field_of_the_wrong_type_is_named(
    card: Callable[[], dict[str, Any]], path: str
) -> None:
    problems = card_problems(replaced(card(), path, 12345))
    assert list(problems) == [f"card.{path}"]
    assert problems[f"card.{path}"] in WRONG_TYPE_MESSAGES


def test_a_v03_card_without_its_url_is_no_longer_v03_and_v1s_interfaces_are_named() -> None:
    card = without(full_v03(), "url")
    assert generation(card) == "1.0"
    assert card_problems(card)["card.supportedInterfaces"] == "is required"


def test_null_in_a_required_field_is_a_wrong_type_and_in_an_optional_one_is_absent() -> None:
    card = replaced(full_v1(), "name", None)
    card["provider"] = None
    card["iconUrl"] = None
    assert card_problems(card) == {"card.name": "must be a text"}


# -- wrong types --------------------------------------------------------------------------------

V1_WRONG = [
    ("name", 7, "must be a text"),
    ("name", "  ", "must not be empty"),
    ("description", ["d"], "must be a text"),
    ("version", 1.2, "must be a text"),
    ("supportedInterfaces", {"url": "https://a.example"}, "must be a list"),
    ("supportedInterfaces", [], "must not be empty"),
    ("supportedInterfaces.1", "https://a.example", "must be an object"),
    ("supportedInterfaces.0.url", "ftp://georoute.example.com", "must be an http:// or https:// URL"),
    ("supportedInterfaces.0.url", "https://", "must be an http:// or https:// URL"),
    ("supportedInterfaces.0.url", "https://a.example/a b", "must be an http:// or https:// URL"),
    ("supportedInterfaces.1.protocolBinding", "", "must not be empty"),
    ("supportedInterfaces.2.protocolVersion", 1.0, "must be a text"),
    ("supportedInterfaces.0.tenant", 3, "must be a text"),
    ("provider", "Example Geo", "must be an object"),
    ("provider.url", 5, "must be a text"),
    ("documentationUrl", 5, "must be a text"),
    ("iconUrl", True, "must be a text"),
    ("capabilities", [], "must be an object"),
    ("capabilities.streaming", "yes", "must be true or false"),
    ("capabilities.pushNotifications", 1, "must be true or false"),
    ("capabilities.extendedAgentCard", "true", "must be true or false"),
    ("capabilities.extensions", {}, "must be a list"),
    ("capabilities.extensions.0", "https://example.com/ext", "must be an object"),
    ("capabilities.extensions.0.uri", 4, "must be a text"),
    ("capabilities.extensions.0.description", 4, "must be a text"),
    ("capabilities.extensions.0.required", "no", "must be true or false"),
    ("capabilities.extensions.0.params", [1], "must be an object"),
    ("securitySchemes", [], "must be an object"),
    ("securitySchemes.google", "oidc", "must be an object"),
    ("securityRequirements", {}, "must be a list"),
    ("securityRequirements.0", "google", "must be an object"),
    ("security", [{"google": "openid"}], None),  # v0.3's field on a v1.0 card: still checked
    ("defaultInputModes", "text/plain", "must be a list"),
    ("defaultOutputModes.1", 5, "must be a text"),
    ("skills", {}, "must be a list"),
    ("skills.0", "route", "must be an object"),
    ("skills.0.id", "", "must not be empty"),
    ("skills.0.tags", "maps", "must be a list"),
    ("skills.0.tags.2", None, "must be a text"),
    ("skills.1.examples", "e", "must be a list"),
    ("skills.0.inputModes.0", {}, "must be a text"),
    ("skills.1.outputModes", None, None),  # null: absent
    ("skills.0.securityRequirements", "g", "must be a list"),
    ("signatures", {}, "must be a list"),
    ("signatures.0", "x.y", "must be an object"),
    ("signatures.0.protected", 1, "must be a text"),
    ("signatures.0.header", "h", "must be an object"),
]


@pytest.mark.parametrize(("path", "value", "message"), V1_WRONG)
def test_each_wrong_v1_field_is_named(path: str, value: Any, message: str | None) -> None:
    problems = card_problems(replaced(full_v1(), path, value))
    if path == "security":
        assert problems == {"card.security.0.google": "must be a list"}
    elif message is None:
        assert problems == {}
    else:
        assert problems == {f"card.{path}": message}


V03_WRONG = [
    ("url", 5, "must be a text"),
    ("url", "georoute-agent.example.com", "must be an http:// or https:// URL"),
    ("protocolVersion", 0.3, "must be a text"),
    ("preferredTransport", "", "must not be empty"),
    ("additionalInterfaces", "https://a.example", "must be a list"),
    ("additionalInterfaces.0.url", "grpc:x", "must be an http:// or https:// URL"),
    ("additionalInterfaces.1.transport", 2, "must be a text"),
    ("capabilities.stateTransitionHistory", "no", "must be true or false"),
    ("supportsAuthenticatedExtendedCard", "yes", "must be true or false"),
    ("security", {"google": []}, "must be a list"),
    ("security.0", ["google"], "must be an object"),
    ("security.0.google", "openid", "must be a list"),
    ("securitySchemes.google", [], "must be an object"),
    ("skills.0.security.0.google.0", 3, "must be a text"),
    ("skills.1.tags", {}, "must be a list"),
    ("name", None, "must be a text"),
]


@pytest.mark.parametrize(("path", "value", "message"), V03_WRONG)
def test_each_wrong_v03_field_is_named(path: str, value: Any, message: str) -> None:
    assert card_problems(replaced(full_v03(), path, value)) == {f"card.{path}": message}


def test_several_problems_are_all_named_with_the_prefix_given() -> None:
    card = full_v1()
    del card["version"]
    card["supportedInterfaces"][1]["protocolBinding"] = 3
    card["skills"][0]["tags"] = ["maps", 2]
    card["capabilities"]["streaming"] = "yes"
    card["provider"] = {"organization": "Example"}
    assert card_problems(card, prefix="body.card") == {
        "body.card.version": "is required",
        "body.card.supportedInterfaces.1.protocolBinding": "must be a text",
        "body.card.skills.0.tags.1": "must be a text",
        "body.card.capabilities.streaming": "must be true or false",
        "body.card.provider.url": "is required",
    }


@pytest.mark.parametrize("value", [None, [], "card", 3, ["name"]])
def test_what_is_not_an_object_is_one_problem(value: object) -> None:
    assert card_problems(value) == {"card": "must be a JSON object"}
    assert card_problems(value, prefix="body") == {"body": "must be a JSON object"}


def test_unknown_fields_are_allowed() -> None:
    card = full_v1()
    card["x-registry"] = {"team": ["maps", {"on-call": True}], "weight": 1.5}
    card["skills"][0]["x-cost"] = 3
    assert card_problems(card) == {}


# -- bounds -------------------------------------------------------------------------------------


def test_texts_are_bounded_and_the_bound_is_said() -> None:
    card = full_v1()
    card["description"] = "d" * (MAX_DESCRIPTION + 1)
    card["supportedInterfaces"][0]["url"] = "https://a.example/" + "p" * MAX_URL
    card["skills"][0]["tags"][0] = "t" * 257
    assert card_problems(card) == {
        "card.description": f"must be at most {MAX_DESCRIPTION} characters",
        "card.supportedInterfaces.0.url": f"must be at most {MAX_URL} characters",
        "card.skills.0.tags.0": "must be at most 256 characters",
    }
    card = full_v1()
    card["description"] = "d" * MAX_DESCRIPTION
    assert card_problems(card) == {}


def test_lists_are_bounded_and_the_bound_is_said() -> None:
    card = full_v1()
    skill = card["skills"][0]
    card["skills"] = [dict(skill, id=f"s{i}") for i in range(MAX_SKILLS + 1)]
    assert card_problems(card) == {"card.skills": f"must have at most {MAX_SKILLS} items"}
    card["skills"] = [dict(skill, tags=[f"t{i}" for i in range(MAX_TAGS + 1)])]
    assert card_problems(card) == {"card.skills.0.tags": f"must have at most {MAX_TAGS} items"}
    card["skills"] = [dict(skill, id=f"s{i}") for i in range(MAX_SKILLS)]
    assert card_problems(card) == {}


def test_every_value_anywhere_must_be_storable_and_canonicalisable() -> None:
    card = full_v1()
    card["x-notes"] = {"a": "nul\x00", "b": [float("nan"), 2**53, "\ud800"], "c\x00": 1}
    card["capabilities"]["extensions"][0]["params"] = {"big": -(2**60)}
    assert card_problems(card) == {
        "card.x-notes.a": "must not contain the NUL character (U+0000)",
        "card.x-notes.b.0": "must be a finite number",
        "card.x-notes.b.1": f"must be an integer between -{2**53 - 1} and {2**53 - 1}",
        "card.x-notes.b.2": "must be valid Unicode (it holds a lone surrogate)",
        "card.x-notes.c\x00": "field name must not contain the NUL character (U+0000)",
        "card.capabilities.extensions.0.params.big": f"must be an integer between -{2**53 - 1} and {2**53 - 1}",
    }


def test_nesting_is_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    card = full_v1()
    card["x-deep"] = deep
    too_deep = "card.x-deep" + ".0" * (MAX_JSON_DEPTH - 1)
    assert card_problems(card) == {too_deep: f"nests more than {MAX_JSON_DEPTH} levels deep"}
    card["x-deep"] = deep[0]
    assert card_problems(card) == {}


def test_the_size_limit_is_exported_for_the_edge() -> None:
    assert MAX_CARD_BYTES == 65_536
    assert len(json.dumps(full_v1()).encode()) < MAX_CARD_BYTES


# -- summary ------------------------------------------------------------------------------------

GEO_SKILLS = (
    SkillSummary(
        "route-optimizer-traffic",
        "Traffic-Aware Route Optimizer",
        sample("sample-card-v1.0.json")["skills"][0]["description"],
        ("maps", "routing", "navigation", "directions", "traffic"),
    ),
    SkillSummary(
        "custom-map-generator",
        "Personalized Map Generator",
        sample("sample-card-v1.0.json")["skills"][1]["description"],
        ("maps", "customization", "visualization", "cartography"),
    ),
)
GEO_URLS = (
    "https://georoute-agent.example.com/a2a/v1",
    "https://georoute-agent.example.com/a2a/grpc",
    "https://georoute-agent.example.com/a2a/json",
)


@pytest.mark.parametrize("name", ["sample-card-v1.0.json", "sample-card-v0.3.json"])
def test_both_samples_summarise_alike(name: str) -> None:
    card = sample(name)
    assert summary(card) == CardSummary(
        name="GeoSpatial Route Planner Agent",
        description=card["description"],
        version="1.2.0",
        provider="Example Geo Services Inc.",
        skills=GEO_SKILLS,
        interfaces=GEO_URLS,  # the v0.3 sample repeats its `url` among its other interfaces
        extensions=(),
    )


def test_a_summary_names_extensions_and_does_without_a_provider() -> None:
    card = full_v1()
    del card["provider"]
    found = summary(card)
    assert found.provider is None
    assert found.extensions == ("https://example.com/ext/v1",)
    assert summary(full_v03()).extensions == ("https://example.com/ext/v1",)
