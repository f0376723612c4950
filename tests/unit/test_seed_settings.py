"""The seeds' settings work under their own names, and their shared-secret tokens are
refused with a message that says what replaces them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infrastructure.settings import Settings

PLANTED = "seed-secret-Hq2vX9"


def settings(**values: str) -> Settings:
    return Settings(**{"APP_ENV": "test", **values})  # type: ignore[arg-type]


def test_the_seeds_names_set_ours() -> None:
    seeded = settings(
        APP_NAME="Goals Registry",
        APP_VERSION="2.3.1",
        DEBUG="true",
        DATABASE_URL="postgresql://app@db/goals",
        ACCESS_TOKEN_EXPIRE_MINUTES="30",
        MAX_AGENTS_PER_CLIENT="7",
        ENABLE_FEDERATION="false",
        REGISTRY_BASE_URL="https://registry.example.com",
    )
    assert (seeded.app_name, seeded.app_version, seeded.debug) == ("Goals Registry", "2.3.1", True)
    assert seeded.is_postgres and seeded.token_ttl_s == 1800
    assert seeded.max_agents_per_client == 7 and seeded.enable_federation is False
    assert seeded.registry_base_url == "https://registry.example.com"


@pytest.mark.parametrize("name", ["A2A_BASE_URL", "A2A_SERVICE_URL"])
def test_the_a2a_seeds_base_url_is_the_registry_base(name: str) -> None:
    assert settings(**{name: "https://a2a.example.com"}).registry_base_url == "https://a2a.example.com"


def test_token_lifetimes_given_twice_must_agree() -> None:
    assert settings(ACCESS_TOKEN_EXPIRE_MINUTES="15", TOKEN_TTL_S="900").token_ttl_s == 900
    with pytest.raises(ValidationError, match="ACCESS_TOKEN_EXPIRE_MINUTES=20 and TOKEN_TTL_S=900 disagree"):
        settings(ACCESS_TOKEN_EXPIRE_MINUTES="20", TOKEN_TTL_S="900")
    with pytest.raises(ValidationError, match="ACCESS_TOKEN_EXPIRE_MINUTES"):
        settings(ACCESS_TOKEN_EXPIRE_MINUTES="0")


@pytest.mark.parametrize(
    "values", [{"SECRET_KEY": PLANTED, "ALGORITHM": "HS256"}, {"SECRET_KEY": PLANTED}, {"ALGORITHM": "HS256"}]
)
def test_shared_secret_tokens_are_refused_naming_the_replacement(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**values)
    message = str(refused.value)
    assert "SIGNING_KEYS" in message and "ES256" in message
    assert PLANTED not in message
