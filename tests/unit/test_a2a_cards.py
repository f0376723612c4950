"""AgentCards in and out: RFC 8785 canonical form, hash, v1.0/v0.3 conversions through the A2A SDK."""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from a2a.client.card_resolver import parse_agent_card

from domain.cards import card_problems
from infrastructure.a2a_cards import (
    CardNotConvertible,
    NotCanonicalisable,
    as_v0_3,
    as_v1,
    canonical,
    card_hash,
)
from infrastructure.jcs import MAX_DEPTH

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "a2a"
GEO_URLS = [
    "https://georoute-agent.example.com/a2a/v1",
    "https://georoute-agent.example.com/a2a/grpc",
    "https://georoute-agent.example.com/a2a/json",
]


def sample(name: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return card


def unsigned(name: str) -> dict[str, Any]:
    card = sample(name)
    del card["signatures"]  # the specification's example signature signs nothing
    return card


# -- RFC 8785 -----------------------------------------------------------------------------------

# RFC 8785 appendix B: IEEE 754 double (hex) -> its canonical text.
NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), NUMBERS)
def test_numbers_are_written_as_rfc_8785_appendix_b_says(bits: str, text: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(bits))
    assert canonical(number) == text.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinities_have_no_canonical_form(bits: str) -> None:
    (number,) = struct.unpack(">d", bytes.fromhex(bits))
    with pytest.raises(NotCanonicalisable):
        canonical(number)


def test_the_rfcs_example_of_primitive_values() -> None:
    # RFC 8785 section 3.2.2: the input as parsed, and its canonical UTF-8 bytes.
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    assert (
        canonical(value)
        == (
            '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
            '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
        ).encode()
    )


def test_the_rfcs_example_of_property_sorting_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = [key for key in json.loads(canonical(value))]
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize("value", [2**53, {"a": "\ud800"}, {1: "a"}, {"a": {1, 2}}])
def test_values_without_a_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(NotCanonicalisable):
        canonical(value)


def test_nesting_is_bounded_before_the_serializer_recurses() -> None:
    deep: Any = 0
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert canonical(deep).startswith(b"[[")
    with pytest.raises(NotCanonicalisable):
        canonical([deep])
    for _ in range(10_000):
        deep = {"a": deep}
    with pytest.raises(NotCanonicalisable):
        canonical(deep)


def test_a_cards_hash_ignores_key_order_and_whitespace_but_not_values() -> None:
    card = sample("sample-card-v1.0.json")
    reordered = json.loads(json.dumps(dict(reversed(card.items())), indent=3))
    assert card_hash(card) == card_hash(reordered)
    assert card_hash(card).startswith("sha256:") and len(card_hash(card)) == len("sha256:") + 64
    reordered["version"] = "1.2.1"
    assert card_hash(card) != card_hash(reordered)


# -- conversions --------------------------------------------------------------------------------


def sdk_interfaces(card: dict[str, Any]) -> list[str]:
    return [interface.url for interface in parse_agent_card(copy.deepcopy(card)).supported_interfaces]


def test_each_generation_is_left_as_it_is() -> None:
    assert as_v1(sample("sample-card-v1.0.json")) == sample("sample-card-v1.0.json")
    assert as_v0_3(sample("sample-card-v0.3.json")) == sample("sample-card-v0.3.json")


@pytest.mark.parametrize("name", ["sample-card-v1.0.json", "sample-card-v0.3.json"])
@pytest.mark.parametrize("convert", [as_v1, as_v0_3])
def test_both_forms_of_both_samples_are_valid_and_read_alike_by_the_sdk(
    name: str, convert: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    converted = convert(sample(name))
    assert card_problems(converted) == {}
    parsed = parse_agent_card(copy.deepcopy(converted))
    assert parsed.name == "GeoSpatial Route Planner Agent"
    assert [s.id for s in parsed.skills] == ["route-optimizer-traffic", "custom-map-generator"]
    assert list(parsed.skills[0].tags) == sample(name)["skills"][0]["tags"]
    assert list(dict.fromkeys(sdk_interfaces(converted))) == GEO_URLS
    assert parsed.capabilities.streaming and parsed.capabilities.extended_agent_card


def test_a_v03_card_becomes_v1_with_its_protocol_version_on_every_interface() -> None:
    card = as_v1(sample("sample-card-v0.3.json"))
    assert [(i["protocolBinding"], i["protocolVersion"]) for i in card["supportedInterfaces"]] == [
        ("JSONRPC", "0.2.9"),
        ("JSONRPC", "0.2.9"),
        ("GRPC", "0.2.9"),
        ("HTTP+JSON", "0.2.9"),
    ]
    assert card["securityRequirements"] == [{"schemes": {"google": {"list": ["openid", "profile", "email"]}}}]
    assert card["securitySchemes"]["google"] == {
        "openIdConnectSecurityScheme": {
            "openIdConnectUrl": "https://accounts.google.com/.well-known/openid-configuration"
        }
    }
    assert card["capabilities"]["extendedAgentCard"] is True


def test_the_v03_sample_comes_back_from_v1_as_it_was_but_for_what_v1_dropped() -> None:
    original = sample("sample-card-v0.3.json")
    back = as_v0_3(as_v1(original))
    del original["capabilities"]["stateTransitionHistory"]  # not in v1.0's AgentCard
    assert back == original


def test_the_v1_sample_comes_back_from_v03_as_it_was_but_for_what_v03_lacks() -> None:
    original = sample("sample-card-v1.0.json")
    legacy = as_v0_3(original)
    assert (legacy["url"], legacy["preferredTransport"], legacy["protocolVersion"]) == (
        GEO_URLS[0],
        "JSONRPC",
        "1.0",
    )
    assert [i["url"] for i in legacy["additionalInterfaces"]] == GEO_URLS[1:]
    back = as_v1(legacy)
    del original["capabilities"]["stateTransitionHistory"]
    original["securityRequirements"] = [
        {"schemes": {"google": {"list": original.pop("security")[0]["google"]}}}
    ]
    assert back == original


def test_a_v1_card_with_a_legacy_interface_offers_only_those_to_v03_clients() -> None:
    card = unsigned("sample-card-v1.0.json")
    card["supportedInterfaces"].append(
        {"url": "https://old.example.com/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "0.3.0"}
    )
    legacy = as_v0_3(card)
    assert (legacy["url"], legacy["protocolVersion"]) == ("https://old.example.com/a2a", "0.3.0")
    assert "additionalInterfaces" not in legacy


def test_a_card_the_sdk_cannot_read_is_not_converted() -> None:
    with pytest.raises(CardNotConvertible):
        as_v0_3({"name": "x", "supportedInterfaces": "nowhere"})
    with pytest.raises(CardNotConvertible):
        as_v1({"name": "x", "url": "https://a.example", "skills": 3})
