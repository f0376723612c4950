"""AgentCard signatures (A2A specification section 8.4): JWS with a detached payload (RFC 7515
appendix F), the payload being the RFC 8785 canonical form of the card without `signatures`.

What exactly is canonicalised differs between the specification and the A2A SDK, which signs
and verifies its own protobuf form of the card (see :func:`infrastructure.sdk_cards.sdk_payload`).
A card signed by the SDK verifies only over that form, so both are tried: the card as submitted
first (it covers every field), then the SDK's form (it covers the fields the SDK knows, which
the check's detail then says). :func:`sign_card` signs the SDK's form, so that SDK clients
verify it.

No network I/O here: keys come from the caller's :class:`KeyLookup`, which fetches a ``jku``
through the system's outbound guard or gives a tenant's registered keys.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric import ec
from jwt import PyJWK, PyJWTError, api_jws
from jwt.types import SigOptions

from infrastructure.jcs import NotCanonicalisable, canonical
from infrastructure.sdk_cards import CardNotConvertible, sdk_payload

__all__ = ["ACCEPTED_ALGORITHMS", "KeyLookup", "SignatureCheck", "SignatureState", "sign_card", "verify_card"]

SignatureState = Literal["verified", "invalid", "unsigned"]
# Asymmetric algorithms only: a card's signature is checked with a published public key, so an
# HMAC ("HS256") or "none" signature proves nothing and is refused outright.
ACCEPTED_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_STRICT: SigOptions = {"verify_signature": True, "enforce_minimum_key_length": True}  # no RSA < 2048
_MAX_REPORTED = 4  # faults named in a detail; a card has at most 16 signatures anyway


class KeyLookup(Protocol):
    """Candidate public JWKs (as dicts) for a signature's ``kid`` and ``jku`` header values."""

    def __call__(self, kid: str | None, jku: str | None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class SignatureCheck:
    """What the signatures of a card prove. ``kids`` names the keys whose signatures verify."""

    state: SignatureState
    detail: str
    kids: tuple[str, ...]


@dataclass(frozen=True)
class _Signature:
    index: int
    protected: str
    signature: str
    alg: str
    kid: str | None
    jku: str | None


def verify_card(card: Mapping[str, Any], keys: KeyLookup) -> SignatureCheck:
    """``unsigned`` without signatures; ``verified`` when at least one signature verifies under a
    key that ``keys`` gives for it and none is malformed; ``invalid`` otherwise. Exceptions
    raised by ``keys`` (a JWKS that cannot be fetched) propagate."""
    entries = card.get("signatures")
    if entries is None or entries == []:
        return SignatureCheck("unsigned", "the card carries no signature", ())
    if not isinstance(entries, list):
        return SignatureCheck("invalid", "signatures must be a list", ())
    payloads = list(_payloads(card))
    verified: list[tuple[_Signature, str]] = []
    faults: list[str] = []
    failures: list[str] = []
    for index, entry in enumerate(entries):
        parsed = _parse(index, entry)
        if isinstance(parsed, str):
            faults.append(parsed)
            continue
        candidates = keys(parsed.kid, parsed.jku)
        if (covered := _verify(parsed, candidates, payloads)) is None:
            failures.append(_failure(parsed, len(candidates), bool(payloads)))
        else:
            verified.append((parsed, covered))
    kids = tuple(dict.fromkeys(s.kid for s, _ in verified if s.kid is not None))
    if verified and not faults:
        first, covered = verified[0]
        return SignatureCheck("verified", f"{_name(first)} verifies over {covered}", kids)
    reasons = faults + failures
    shown = "; ".join(reasons[:_MAX_REPORTED])
    more = f" (and {len(reasons) - _MAX_REPORTED} more)" if len(reasons) > _MAX_REPORTED else ""
    return SignatureCheck("invalid", shown + more, kids)


def sign_card(
    card: Mapping[str, Any], private_key: Any, kid: str, *, jku: str | None = None
) -> dict[str, Any]:
    """A copy of the card with one more ES256 signature, over the payload the A2A SDK verifies
    (:func:`sdk_payload`). ``private_key`` is an EC P-256 private key: an authlib ``ECKey`` (as
    ``KeyRing.signing_key()`` gives) or a ``cryptography`` key. Raises CardNotConvertible for a
    card the SDK cannot read."""
    key = _p256_private_key(private_key)
    header: dict[str, Any] = {"alg": "ES256", "typ": "JOSE", "kid": kid}
    if jku is not None:
        header["jku"] = jku
    token = api_jws.encode(sdk_payload(card), key, algorithm="ES256", headers=header)
    protected, _, signature = token.split(".")
    signed = copy.deepcopy(dict(card))
    signed["signatures"] = [
        *(signed.get("signatures") or []),
        {"protected": protected, "signature": signature},
    ]
    return signed


# -- internals ----------------------------------------------------------------------------------


def _payloads(card: Mapping[str, Any]) -> Iterator[tuple[bytes, str]]:
    """The forms a signature may cover, each with how a detail names it; the same bytes once.
    A card with no canonical form as submitted has none at all (and is not a valid card)."""
    try:
        submitted = canonical({key: value for key, value in card.items() if key != "signatures"})
    except NotCanonicalisable:
        return
    yield submitted, "the card as submitted"
    try:
        sdk = sdk_payload(card)
    except (CardNotConvertible, NotCanonicalisable):
        return
    if sdk != submitted:
        yield sdk, "the A2A SDK's form of the card (fields outside the SDK's AgentCard are not covered)"


def _parse(index: int, entry: object) -> _Signature | str:
    """The signature, or what is malformed about it."""
    where = f"signature {index}"
    if not isinstance(entry, Mapping):
        return f"{where} is not an object"
    protected, signature = entry.get("protected"), entry.get("signature")
    if not isinstance(protected, str) or not isinstance(signature, str):
        return f"{where} lacks its protected header or signature text"
    try:
        header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return f"{where}: its protected header is not base64url-encoded JSON"
    if not isinstance(header, dict):
        return f"{where}: its protected header is not a JSON object"
    alg, kid, jku = header.get("alg"), header.get("kid"), header.get("jku")
    if not isinstance(alg, str) or alg not in ACCEPTED_ALGORITHMS:
        shown = repr(alg)[:20] if isinstance(alg, str) else "missing"
        return f"{where}: algorithm {shown} is not accepted"
    if not isinstance(kid, str | None) or not isinstance(jku, str | None):
        return f"{where}: kid and jku must be texts"
    return _Signature(index, protected, signature, alg, kid, jku)


def _verify(
    signature: _Signature, candidates: list[dict[str, Any]], payloads: list[tuple[bytes, str]]
) -> str | None:
    """How the payload that the signature verifies over is named, or None."""
    for jwk in _usable_keys(signature, candidates):
        for payload, covered in payloads:
            encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
            token = f"{signature.protected}.{encoded}.{signature.signature}"
            try:
                api_jws.decode_complete(token, key=jwk, algorithms=[signature.alg], options=_STRICT)
            except PyJWTError:
                continue
            return covered
    return None


def _usable_keys(signature: _Signature, candidates: list[dict[str, Any]]) -> Iterator[PyJWK]:
    for candidate in candidates:
        if not isinstance(candidate, Mapping) or candidate.get("alg", signature.alg) != signature.alg:
            continue
        if candidate.get("use", "sig") != "sig":
            continue
        public = {name: value for name, value in candidate.items() if name not in _PRIVATE_MEMBERS}
        try:
            yield PyJWK(public, algorithm=signature.alg)
        except (PyJWTError, ValueError, TypeError, KeyError):  # a malformed or mismatched key
            continue


def _failure(signature: _Signature, found: int, canonicalisable: bool) -> str:
    if not canonicalisable:
        return f"{_name(signature)}: the card has no canonical form to verify"
    if not found:
        return f"{_name(signature)}: no key is known for it"
    return f"{_name(signature)} does not verify under the {found} key(s) known for it"


def _name(signature: _Signature) -> str:
    kid = f"kid {signature.kid[:64]!r}" if signature.kid is not None else "no kid"
    return f"signature {signature.index} ({kid}, {signature.alg})"


def _p256_private_key(private_key: Any) -> ec.EllipticCurvePrivateKey:
    key = private_key.get_private_key() if hasattr(private_key, "get_private_key") else private_key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise TypeError("sign_card needs an EC P-256 private key (an authlib ECKey or a cryptography key)")
    return key
