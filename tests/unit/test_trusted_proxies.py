"""TRUSTED_PROXIES: the peers whose X-Forwarded-For is believed. Each entry must be an address
or a network, and production refuses to believe everyone."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.unit.test_settings import ENV_NAMES, PROD, settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes counts: no variables from the machine."""
    for name in (*ENV_NAMES, "TRUSTED_PROXIES"):
        monkeypatch.delenv(name, raising=False)


def test_no_proxy_is_trusted_unless_configured() -> None:
    assert settings().trusted_proxy_list == []


def test_addresses_and_networks_are_accepted() -> None:
    configured = settings(**PROD, TRUSTED_PROXIES="172.30.0.10, 10.1.0.0/16,fd00::/8")
    assert configured.trusted_proxy_list == ["172.30.0.10", "10.1.0.0/16", "fd00::/8"]


@pytest.mark.parametrize("entry", ["nginx", "172.30.0.300", "10.1.0.1/16", "172.30.0.10;"])
def test_an_entry_that_is_not_an_address_or_network_is_refused_by_name(entry: str) -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES") as refused:
        settings(TRUSTED_PROXIES=f"127.0.0.1,{entry}")
    assert refused.value.errors()[0]["loc"] == ("TRUSTED_PROXIES",)


def test_production_refuses_to_trust_every_peer() -> None:
    assert settings(APP_ENV="dev", TRUSTED_PROXIES="*").trusted_proxy_list == ["*"]
    with pytest.raises(ValidationError, match=r"TRUSTED_PROXIES=\*"):
        settings(**PROD, TRUSTED_PROXIES="*")
