"""The public keys a tenant registers for its agents' card signatures: a card signed with one
of them is `verified` whatever its `jku` says (A2A §8.4 leaves the key's discovery open)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidCommand
from domain.ids import NAMESPACE
from domain.limits import json_problems, text_problem
from domain.meta import Meta, meta_fields

MAX_KEYS = 16
MAX_KID = 200
KEY_TYPES = {"EC": ("crv", "x", "y"), "RSA": ("n", "e"), "OKP": ("crv", "x")}
# Members only a private key has: a key carrying one is refused, never stored.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def card_keys_id(tenant: str) -> UUID:
    return uuid5(NAMESPACE, f"{tenant}:card-keys")


def key_problems(keys: object) -> dict[str, str]:
    """What is wrong with a list of public JWKs (RFC 7517), by field path."""
    if not isinstance(keys, list):
        return {"keys": "must be a list of public JWKs"}
    if len(keys) > MAX_KEYS:
        return {"keys": f"at most {MAX_KEYS} keys"}
    problems = json_problems(keys, "keys")
    kids: set[str] = set()
    for i, key in enumerate(keys):
        path = f"keys.{i}"
        if not isinstance(key, dict):
            problems[path] = "must be a JWK (a JSON object)"
            continue
        if private := sorted(PRIVATE_MEMBERS & set(key)):
            problems[path] = f"holds private key members ({', '.join(private)}): send the public key only"
        required = KEY_TYPES.get(str(key.get("kty")))
        if required is None:
            problems[f"{path}.kty"] = f"must be one of {', '.join(KEY_TYPES)}"
        else:
            for member in required:
                if text_problem(key.get(member), 2048, required=True):
                    problems[f"{path}.{member}"] = "is required"
        kid = key.get("kid")
        if (problem := text_problem(kid, MAX_KID, required=True)) is not None:
            problems[f"{path}.kid"] = problem
        elif kid in kids:
            problems[f"{path}.kid"] = "is used twice"
        else:
            kids.add(str(kid))
    return problems


class CardKeys(Aggregate):
    """A tenant's card-signing public keys, replaced as a whole."""

    class Event(Aggregate.Event):
        tenant: str
        actor: str
        request_id: str
        idempotency_key: str | None

    class KeysSet(Event):
        keys: list[dict[str, Any]]

        def apply(self, aggregate: CardKeys) -> None:
            aggregate.keys = self.keys

    class Started(Event, Aggregate.Created):
        pass

    def __init__(self, tenant: str, actor: str, request_id: str, idempotency_key: str | None) -> None:
        self.tenant = tenant
        self.keys: list[dict[str, Any]] = []

    @classmethod
    def start(cls, tenant: str, meta: Meta) -> CardKeys:
        return cls._create(cls.Started, id=card_keys_id(tenant), tenant=tenant, **meta_fields(meta))

    def set_keys(self, keys: list[dict[str, Any]], meta: Meta) -> bool:
        """Replace the keys; the same keys again write nothing."""
        if problems := key_problems(keys):
            raise InvalidCommand(problems)
        if keys == self.keys:
            return False
        self.trigger_event(self.KeysSet, tenant=self.tenant, keys=keys, **meta_fields(meta))
        return True
