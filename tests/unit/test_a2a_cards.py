"""AgentCards in and out: RFC 8785 canonical form, hash, v1.0/v0.3 conversions through the A2A SDK,
and signatures that the SDK and we both verify."""

from __future__ import annotations

import base64
import copy
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from a2a.client.card_resolver import parse_agent_card
from a2a.utils.signing import (
    InvalidSignaturesError,
    ProtectedHeader,
    create_agent_card_signer,
    create_signature_verifier,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from google.protobuf.json_format import MessageToDict
from jwt import PyJWK, api_jws
from jwt.algorithms import get_default_algorithms

from domain.cards import card_problems
from infrastructure.a2a_cards import (
    CardNotConvertible,
    KeyLookup,
    NotCanonicalisable,
    as_v0_3,
    as_v1,
    canonical,
    card_hash,
    sign_card,
    verify_card,
)
from infrastructure.jcs import MAX_DEPTH
from infrastructure.sdk_cards import sdk_payload
from infrastructure.signing_keys import KeyRing

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


# -- signatures ---------------------------------------------------------------------------------


def public_jwk(private: Any, alg: str = "ES256") -> dict[str, Any]:
    jwk: dict[str, Any] = get_default_algorithms()[alg].to_jwk(private.public_key(), as_dict=True)
    return jwk


def es256_key() -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    private = ec.generate_private_key(ec.SECP256R1())
    return private, public_jwk(private)


def pem(private: Any) -> bytes:
    encoded: bytes = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return encoded


def keys_for(
    known: dict[str, dict[str, Any]], calls: list[tuple[str | None, str | None]] | None = None
) -> KeyLookup:
    def lookup(kid: str | None, jku: str | None) -> list[dict[str, Any]]:
        if calls is not None:
            calls.append((kid, jku))
        return [known[kid]] if kid in known else []

    return lookup


def sdk_signed(card: dict[str, Any], private: Any, kid: str, alg: str = "ES256") -> dict[str, Any]:
    """The card signed by the A2A SDK's own signer, as JSON again."""
    header: ProtectedHeader = {"alg": alg, "typ": "JOSE", "kid": kid, "jku": None}
    signed = create_agent_card_signer(pem(private), header)(parse_agent_card(copy.deepcopy(card)))
    return {**card, "signatures": [MessageToDict(s) for s in signed.signatures]}


def sdk_verifies(card: dict[str, Any], jwk: dict[str, Any]) -> bool:
    verifier = create_signature_verifier(lambda kid, jku: PyJWK(jwk), ["ES256"])
    try:
        verifier(parse_agent_card(copy.deepcopy(card)))
    except InvalidSignaturesError:
        return False
    return True


@pytest.mark.parametrize("name", ["sample-card-v1.0.json", "sample-card-v0.3.json"])
def test_a_card_signed_by_the_sdk_verifies(name: str) -> None:
    private, jwk = es256_key()
    card = sdk_signed(unsigned(name), private, "k1")
    check = verify_card(card, keys_for({"k1": jwk}))
    assert (check.state, check.kids) == ("verified", ("k1",))
    # The samples carry fields the SDK drops (v0.3 names, stateTransitionHistory): the SDK signed
    # its own form of the card, and the detail says that it covers less.
    assert "signature 0 (kid 'k1', ES256) verifies over the A2A SDK's form" in check.detail


def test_a_changed_byte_makes_a_signed_card_invalid() -> None:
    private, jwk = es256_key()
    card = sdk_signed(unsigned("sample-card-v1.0.json"), private, "k1")
    card["description"] = card["description"].replace("advanced", "advancEd")
    check = verify_card(card, keys_for({"k1": jwk}))
    assert check.state == "invalid"
    assert check.detail == "signature 0 (kid 'k1', ES256) does not verify under the 1 key(s) known for it"
    assert check.kids == ()


@pytest.mark.parametrize("name", ["sample-card-v1.0.json", "sample-card-v0.3.json"])
def test_a_card_we_sign_verifies_with_the_sdk_and_with_us(name: str) -> None:
    private, jwk = es256_key()
    card = sign_card(unsigned(name), private, "ours", jku="https://registry.example/jwks.json")
    assert sdk_verifies(card, jwk)
    calls: list[tuple[str | None, str | None]] = []
    assert verify_card(card, keys_for({"ours": jwk}, calls)).state == "verified"
    assert calls == [("ours", "https://registry.example/jwks.json")]
    header = json.loads(base64.urlsafe_b64decode(card["signatures"][0]["protected"] + "=="))
    assert header == {
        "alg": "ES256",
        "typ": "JOSE",
        "kid": "ours",
        "jku": "https://registry.example/jwks.json",
    }
    tampered = copy.deepcopy(card)
    tampered["skills"][0]["tags"].append("fishing")
    assert not sdk_verifies(tampered, jwk)


def odd_card() -> dict[str, Any]:
    """A card with what the SDK's form drops: empty texts and lists, false flags without
    presence, unknown fields, extension params of every JSON kind."""
    card = unsigned("sample-card-v1.0.json")
    card["description"] = ""
    card["defaultInputModes"] = []
    card["capabilities"] = {
        "streaming": False,
        "extensions": [
            {
                "uri": "https://example.com/ext",
                "required": False,
                "description": "",
                "params": {
                    "n": 1,
                    "f": 2.5,
                    "big": 1e21,
                    "t": "",
                    "l": [],
                    "o": {"e": {}},
                    "z": None,
                    "b": False,
                },
            }
        ],
    }
    card["skills"][0]["examples"] = []
    card["x-unknown"] = {"kept": "only as submitted"}
    return card


@pytest.mark.parametrize(
    "card",
    [unsigned("sample-card-v1.0.json"), unsigned("sample-card-v0.3.json"), odd_card()],
    ids=["v1.0", "v0.3", "odd"],
)
def test_our_sdk_payload_is_the_sdks_own(card: dict[str, Any]) -> None:
    from a2a.utils.signing import _canonicalize_agent_card  # the SDK's own, to hold ours to it

    assert sdk_payload(card) == _canonicalize_agent_card(parse_agent_card(copy.deepcopy(card))).encode()


def test_a_card_with_what_the_sdk_drops_signed_either_way_verifies_both_ways() -> None:
    private, jwk = es256_key()
    ours = sign_card(odd_card(), private, "k1")
    assert sdk_verifies(ours, jwk)
    assert verify_card(ours, keys_for({"k1": jwk})).state == "verified"
    theirs = sdk_signed(odd_card(), private, "k1")
    assert verify_card(theirs, keys_for({"k1": jwk})).state == "verified"


def test_a_signature_over_a_v03_card_still_verifies_on_its_v1_form() -> None:
    private, jwk = es256_key()
    card = sign_card(unsigned("sample-card-v0.3.json"), private, "k1")
    assert sdk_payload(card) == sdk_payload(as_v1(card))
    assert verify_card(as_v1(card), keys_for({"k1": jwk})).state == "verified"


def test_the_key_rings_signing_key_signs_and_its_jwks_verifies() -> None:
    ring = KeyRing.from_pem([pem(ec.generate_private_key(ec.SECP256R1())).decode()])
    card = sign_card(unsigned("sample-card-v1.0.json"), ring.signing_key(), ring.signing_kid)
    by_kid = {jwk["kid"]: jwk for jwk in ring.jwks()["keys"]}
    assert verify_card(card, keys_for(by_kid)).kids == (ring.signing_kid,)
    assert sdk_verifies(card, by_kid[ring.signing_kid])


def test_signing_covers_the_same_bytes_each_time_and_keeps_earlier_signatures() -> None:
    private, jwk = es256_key()
    card = unsigned("sample-card-v1.0.json")
    once = sign_card(card, private, "k1")
    twice = sign_card(once, private, "k2")
    assert card == unsigned("sample-card-v1.0.json")  # the card given is not changed
    assert sdk_payload(once) == sdk_payload(twice) == sdk_payload(card)
    assert [s["protected"] for s in twice["signatures"]][:1] == [once["signatures"][0]["protected"]]
    check = verify_card(twice, keys_for({"k1": jwk, "k2": jwk}))
    assert (check.state, check.kids) == ("verified", ("k1", "k2"))


def test_a_card_signed_over_exactly_what_it_says_verifies_as_submitted() -> None:
    private, jwk = es256_key()
    card = unsigned("sample-card-v1.0.json")
    token = api_jws.encode(canonical(card), private, algorithm="ES256", headers={"kid": "k1", "typ": "JOSE"})
    protected, _, signature = token.split(".")
    card["signatures"] = [{"protected": protected, "signature": signature}]
    check = verify_card(card, keys_for({"k1": jwk}))
    assert (check.state, check.detail) == (
        "verified",
        "signature 0 (kid 'k1', ES256) verifies over the card as submitted",
    )


@pytest.mark.parametrize("signatures", [None, []])
def test_a_card_without_signatures_is_unsigned(signatures: list[Any] | None) -> None:
    card = unsigned("sample-card-v1.0.json")
    if signatures is not None:
        card["signatures"] = signatures
    assert verify_card(card, keys_for({})) == verify_card(card, keys_for({}))
    assert verify_card(card, keys_for({})).state == "unsigned"


def test_an_unknown_kid_is_invalid() -> None:
    private, jwk = es256_key()
    card = sign_card(unsigned("sample-card-v1.0.json"), private, "k1")
    check = verify_card(card, keys_for({"k2": jwk}))
    assert (check.state, check.detail) == ("invalid", "signature 0 (kid 'k1', ES256): no key is known for it")


def test_the_specifications_example_signature_signs_nothing() -> None:
    _, jwk = es256_key()
    check = verify_card(sample("sample-card-v1.0.json"), keys_for({"key-1": jwk}))
    assert check.state == "invalid"


def test_a_malformed_signature_beside_a_good_one_makes_the_card_invalid() -> None:
    private, jwk = es256_key()
    card = sign_card(unsigned("sample-card-v1.0.json"), private, "k1")
    card["signatures"].append({"protected": "not base64 json!", "signature": "x"})
    check = verify_card(card, keys_for({"k1": jwk}))
    assert (check.state, check.kids) == ("invalid", ("k1",))
    assert check.detail.startswith("signature 1: its protected header is not base64url-encoded JSON")


def test_a_good_signature_beside_one_under_a_retired_key_still_verifies() -> None:
    private, jwk = es256_key()
    retired, _ = es256_key()
    card = sign_card(sign_card(unsigned("sample-card-v1.0.json"), retired, "old"), private, "new")
    assert verify_card(card, keys_for({"new": jwk})).state == "verified"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "none", "kid": "k1"},
        {"alg": "HS256", "kid": "k1"},
        {"kid": "k1"},
        {"alg": ["ES256"]},
        ["ES256"],
    ],
)
def test_symmetric_none_and_missing_algorithms_are_refused(header: Any) -> None:
    card = unsigned("sample-card-v1.0.json")
    protected = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    card["signatures"] = [{"protected": protected, "signature": ""}]
    _, jwk = es256_key()
    assert verify_card(card, keys_for({"k1": jwk, "": {"kty": "oct", "k": "c2VjcmV0"}})).state == "invalid"


def test_a_key_of_another_algorithm_or_use_is_not_used() -> None:
    private, jwk = es256_key()
    card = sign_card(unsigned("sample-card-v1.0.json"), private, "k1")
    for wrong in (
        {**jwk, "alg": "ES384"},
        {**jwk, "use": "enc"},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "EC"},
    ):
        assert verify_card(card, keys_for({"k1": wrong})).state == "invalid"


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA"])
def test_rsa_and_eddsa_signatures_by_the_sdk_verify(alg: str) -> None:
    if alg == "EdDSA":
        private: Any = ed25519.Ed25519PrivateKey.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    card = sdk_signed(unsigned("sample-card-v1.0.json"), private, "k1", alg)
    assert verify_card(card, keys_for({"k1": public_jwk(private, alg)})).state == "verified"


def test_the_detail_names_no_key_material() -> None:
    private, jwk = es256_key()
    card = sign_card(unsigned("sample-card-v1.0.json"), private, "k1")
    card["version"] = "9"
    private_jwk = {**jwk, "d": base64.urlsafe_b64encode(b"\x01" * 32).rstrip(b"=").decode()}
    check = verify_card(card, keys_for({"k1": private_jwk}))
    assert check.state == "invalid"
    for secret in (jwk["x"], jwk["y"], private_jwk["d"]):
        assert secret not in check.detail


def test_sign_card_takes_only_a_p256_private_key() -> None:
    card = unsigned("sample-card-v1.0.json")
    with pytest.raises(TypeError):
        sign_card(card, ec.generate_private_key(ec.SECP384R1()), "k1")
    with pytest.raises(TypeError):
        sign_card(card, "-----BEGIN PRIVATE KEY-----", "k1")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_signature_under_a_short_rsa_key_does_not_verify() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    card = sdk_signed(unsigned("sample-card-v1.0.json"), private, "k1", "RS256")
    assert verify_card(card, keys_for({"k1": public_jwk(private, "RS256")})).state == "invalid"


def test_a_card_with_no_canonical_form_verifies_nothing() -> None:
    private, jwk = es256_key()
    card = sign_card(unsigned("sample-card-v1.0.json"), private, "k1")
    deep: Any = 0
    for _ in range(5_000):
        deep = [deep]
    card["x-deep"] = deep
    check = verify_card(card, keys_for({"k1": jwk}))
    assert (check.state, check.detail) == (
        "invalid",
        "signature 0 (kid 'k1', ES256): the card has no canonical form to verify",
    )
