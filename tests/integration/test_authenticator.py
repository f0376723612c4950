"""The authenticator on a real store: requests that find the disabled-client set stale at
the same moment read it once between them, not once each (a busy store is not asked again
by every request waiting on it). A caller's address is held back by the signature checks its
tokens failed, never by valid tokens or by garbage that costs no check."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from infrastructure.ratelimit import InProcessRateLimiter, Rate
from infrastructure.tokens import InvalidToken, TokenVerifier
from interfaces.bootstrap import System
from interfaces.http.auth import Authenticator, RateLimited
from projections.clients import ClientQueries

READERS = 8


class CountedClientQueries(ClientQueries):
    """The real queries, counting the reads of the disabled set. Once `slow()`, each read
    waits (a second at most) for the other requests to read too, as on a busy store."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reads = 0
        self._lock = threading.Lock()
        self._together: threading.Barrier | None = None

    def slow(self) -> None:
        self.reads = 0
        self._together = threading.Barrier(READERS, timeout=1.0)

    def disabled_ids(self) -> set[str]:
        with self._lock:
            self.reads += 1
        if self._together is not None:
            # broken after a second when no other request reads: they took this read's result
            with contextlib.suppress(threading.BrokenBarrierError):
                self._together.wait()
        return super().disabled_ids()


def test_requests_finding_the_disabled_set_stale_together_read_it_once(system: System, tenant: str) -> None:
    issued = system.clients.create(tenant, "reader", ["goals:read"], actor="test")
    token, _ = system.issuer.issue(issued.client_id, tenant, ["goals:read"])
    queries = CountedClientQueries(system.store)
    auth = Authenticator(
        system.auth.verifier, queries, InProcessRateLimiter(), system.auth.limits, system.security
    )
    auth.claims(token, "127.0.0.1")  # verified and cached; the set read once
    auth.forget_disabled_cache()
    queries.slow()
    with ThreadPoolExecutor(READERS) as pool:
        subjects = list(pool.map(lambda _: auth.claims(token, "127.0.0.1").subject, range(READERS)))
    assert subjects == [issued.client_id] * READERS
    assert queries.reads == 1


# -- tokens not verified yet, per caller address ----------------------------------------------

ADDRESS = "198.51.100.7"  # one address shared by many callers, as behind a NAT
BUDGET = Rate(3, 60.0)  # signature checks that may fail per address


class CountedVerifier(TokenVerifier):
    """The real verifier, counting the signatures it checks: authlib asks for a key for each."""

    checks = 0

    def _load_key(self, header: Mapping[str, Any], payload: Any) -> Any:
        self.checks += 1
        return super()._load_key(header, payload)


def counted(system: System) -> tuple[Authenticator, CountedVerifier]:
    settings = system.settings
    verifier = CountedVerifier(
        system.keys,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        algorithms=settings.algorithm_list,
    )
    limits = replace(system.auth.limits, bad_tokens=BUDGET)
    auth = Authenticator(
        verifier, ClientQueries(system.store), InProcessRateLimiter(), limits, system.security
    )
    return auth, verifier


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(system: System, tenant: str, *, signature_bytes: int = 64, **header: Any) -> str:
    """A token that looks like ours (our kid, ES256, fresh claims) with a random signature."""
    now = int(time.time())
    head = {"alg": "ES256", "kid": system.keys.signing_kid, "typ": "at+jwt", **header}
    claims = {
        "iss": system.settings.token_issuer,
        "aud": system.settings.token_audience,
        "sub": "c_forged",
        "tenant": tenant,
        "scope": "goals:read",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(8),
    }
    signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(secrets.token_bytes(signature_bytes))}"


def fresh_tokens(system: System, tenant: str, count: int) -> list[str]:
    issued = system.clients.create(tenant, "reader", ["goals:read"], actor="test")
    return [system.issuer.issue(issued.client_id, tenant, ["goals:read"])[0] for _ in range(count)]


def test_valid_first_uses_from_one_address_are_never_refused(system: System, tenant: str) -> None:
    auth, _ = counted(system)
    tokens = fresh_tokens(system, tenant, 5 * BUDGET.limit)
    assert {auth.claims(token, ADDRESS).tenant for token in tokens} == {tenant}


def test_garbage_is_refused_without_a_signature_check_and_costs_its_address_nothing(
    system: System, tenant: str
) -> None:
    auth, verifier = counted(system)
    garbage = [
        "garbage",
        "a.b.c",
        forged(system, tenant, alg="none"),
        forged(system, tenant, alg="HS256"),
        forged(system, tenant, kid="no-such-key"),
        forged(system, tenant, kid=None),
        forged(system, tenant, signature_bytes=32),  # no ES256 signature is this short
        forged(system, tenant, signature_bytes=0),
    ]
    for token in garbage * (5 * BUDGET.limit):
        with pytest.raises(InvalidToken):
            auth.claims(token, ADDRESS)
    assert verifier.checks == 0
    (token,) = fresh_tokens(system, tenant, 1)
    assert auth.claims(token, ADDRESS).tenant == tenant  # the address is not held back


def test_an_address_past_its_budget_of_failed_checks_has_new_tokens_refused_unverified(
    system: System, tenant: str
) -> None:
    auth, verifier = counted(system)
    verified_before, valid_new, elsewhere = fresh_tokens(system, tenant, 3)
    auth.claims(verified_before, ADDRESS)
    checks = verifier.checks
    for _ in range(BUDGET.limit):
        with pytest.raises(InvalidToken) as caught:
            auth.claims(forged(system, tenant), ADDRESS)
        assert caught.value.reason == "bad_signature"
    assert verifier.checks == checks + BUDGET.limit
    # the budget is spent: whatever the address presents for the first time is refused unchecked
    for _ in range(50):
        with pytest.raises(RateLimited) as limited:
            auth.claims(forged(system, tenant), ADDRESS)
        assert limited.value.decision.retry_after_s > 0
    # ...a valid token too: it cannot be told from a forgery without the check the budget spares
    with pytest.raises(RateLimited):
        auth.claims(valid_new, ADDRESS)
    with pytest.raises(RateLimited):
        auth.claims("garbage", ADDRESS)  # and garbage, unscreened: refused as cheaply either way
    assert verifier.checks == checks + BUDGET.limit
    # what the address had verified before goes on working, and other addresses are not held back
    assert auth.claims(verified_before, ADDRESS).tenant == tenant
    assert auth.claims(elsewhere, "203.0.113.9").tenant == tenant
