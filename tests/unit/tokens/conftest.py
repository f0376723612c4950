"""Fixtures of the token tests: a fake clock, a key ring in a file under tmp_path, and the
issuer and verifier on that ring."""

from __future__ import annotations

from pathlib import Path

import pytest

from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import TokenIssuer, TokenVerifier
from tests.unit.tokens.forging import (
    AUD,
    ISS,
    FakeClock,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring(tmp_path: Path, clock: FakeClock) -> KeyRing:
    return KeyRing.load_or_create(tmp_path / "keys" / "signing.json", clock=clock)


@pytest.fixture
def issuer(ring: KeyRing, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(ring, issuer=ISS, audience=AUD, clock=clock)


@pytest.fixture
def verifier(ring: KeyRing, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(ring, issuer=ISS, audience=AUD, clock=clock)
