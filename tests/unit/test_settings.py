"""Settings refuse an insecure production configuration, and say why without echoing secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from infrastructure.settings import Settings

PASSWORD = "Zq7-uNguessable-Passw0rd"
REDIS_PASSWORD = "Rk4-anOther-Redis-Secret"
PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)
PROD: dict[str, Any] = {
    "APP_ENV": "prod",
    "DATABASE_URL": f"postgresql://app:{PASSWORD}@db:5432/goals",
    "SIGNING_KEYS": PEM,
    "REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis:6379/0",
    "OPERATOR_TENANT": "platform-ops",
    "REGISTRY_BASE_URL": "https://registry.example.com",
    "SECRETS_KEY": "q9Vq1o0o3bqk3yq5Yf9d0s8Jg8y1vQ2mX5nZr7tLw0E=",
    "MASTER_KEYS": "u1J7mZkq0Wc3a9YdT2vLx8Rb5nQe6Hs4Gf1Pz0Ko7iA=,Zx9cV8bN7mA6sD5fG4hJ3kL2qW1eR0tYuI9oP8aS7dE=",
    "A2A_RPC_URL": "https://rpc.example.com/v3/project-key",
    "A2A_PRIVATE_KEY": "0x" + "5e" * 32,
    "ERASURE_REGISTER": "/var/lib/a2a-goals-keys/erasures.jsonl",
}
ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ENV_NAMES = (
    "APP_ENV",
    "DATABASE_URL",
    "SIGNING_KEYS",
    "REDIS_URL",
    "DEBUG",
    "CORS_ORIGINS",
    "CORS_ALLOW_CREDENTIALS",
    "OPERATOR_TENANT",
    "BROKER_URL",
    "QUEUE_PREFIX",
    "ELASTICSEARCH_URL",
    "ELASTICSEARCH_INDEX",
    "REGISTRY_BASE_URL",
    "SECRETS_KEY",
    "ENCRYPTION",
    "MASTER_KEYS",
    "A2A_RPC_URL",
    "A2A_PRIVATE_KEY",
    "ANCHORING",
    "ERASURE_REGISTER",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes counts: no variables and no .env file from the machine."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_a_complete_production_configuration_is_accepted() -> None:
    accepted = settings(**PROD)
    assert accepted.env == "prod" and accepted.is_postgres and not accepted.debug


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"SIGNING_KEYS": None}, "SIGNING_KEYS"),
        ({"SIGNING_KEYS": "   "}, "SIGNING_KEYS"),
        ({"DEBUG": "true"}, "DEBUG"),
        ({"DATABASE_URL": None}, "PostgreSQL"),
        ({"DATABASE_URL": "sqlite:///data/events.sqlite"}, "PostgreSQL"),
        ({"DATABASE_URL": "postgresql://app:postgres@db:5432/goals"}, "default password"),
        ({"DATABASE_URL": "postgresql://app:Change-Me@db:5432/goals"}, "default password"),
        ({"DATABASE_URL": "postgresql://postgres:password@db.internal/goals"}, "default password"),
        ({"REDIS_URL": None}, "REDIS_URL"),
        ({"CORS_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "true"}, "CORS"),
        ({"OPERATOR_TENANT": None}, "OPERATOR_TENANT"),
        ({"REDIS_URL": None}, r"needs BROKER_URL \(or REDIS_URL"),
        ({"REDIS_URL": None, "BROKER_URL": f"redis://:{REDIS_PASSWORD}@queue:6379/0"}, "rate limits"),
        ({"BROKER_URL": "amqp://guest:guest@rabbit:5672/"}, "BROKER_URL uses a well-known default password"),
        ({"A2A_RPC_URL": None}, "A2A_RPC_URL"),
        ({"A2A_PRIVATE_KEY": None}, "A2A_PRIVATE_KEY"),
        ({"A2A_PRIVATE_KEY": ANVIL_KEY}, "published key"),
        ({"A2A_PRIVATE_KEY": ANVIL_KEY[2:].upper()}, "published key"),
    ],
    ids=[
        "no-signing-keys",
        "blank-signing-keys",
        "debug",
        "sqlite-by-default",
        "sqlite-url",
        "password-postgres",
        "password-change-me",
        "password-password",
        "no-redis",
        "cors-wildcard-with-credentials",
        "no-operator-tenant",
        "no-broker-nor-redis",
        "broker-but-no-redis",
        "broker-password-guest",
        "in-process-chain",
        "no-chain-key",
        "anvil-key",
        "anvil-key-bare-upper",
    ],
)
def test_an_insecure_production_configuration_is_refused(change: dict[str, Any], reason: str) -> None:
    values = {k: v for k, v in {**PROD, **change}.items() if v is not None}
    with pytest.raises(ValidationError, match=reason):
        settings(**values)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"ELASTICSEARCH_URL": "elastic.internal:9200"}, "ELASTICSEARCH_URL"),
        ({"ELASTICSEARCH_URL": "ftp://elastic.internal"}, "ELASTICSEARCH_URL"),
        ({"ELASTICSEARCH_INDEX": "Agents*"}, "ELASTICSEARCH_INDEX"),
    ],
)
def test_elasticsearch_settings_are_checked(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        settings(**values)
    assert settings(ELASTICSEARCH_URL="https://elastic.internal:9200").elasticsearch_index == "a2a-agents"
    assert settings().elasticsearch_url == ""


def test_dev_and_test_still_start_on_the_embedded_defaults() -> None:
    for env in ("dev", "test"):
        assert not settings(APP_ENV=env).is_postgres


@pytest.mark.parametrize("change", [{"DEBUG": "true"}, {"SIGNING_KEYS": None}])
def test_a_refusal_does_not_echo_any_secret_of_the_configuration(change: dict[str, Any]) -> None:
    """The refusal is printed at start-up (terminal, container logs): it must name the problem
    without quoting the configuration, not even a fragment of a password or key."""
    values = {k: v for k, v in {**PROD, **change}.items() if v is not None}
    with pytest.raises(ValidationError) as refused:
        settings(**values)
    message = str(refused.value)
    key_body = "".join(line for line in PEM.splitlines() if not line.startswith("-----"))
    for secret in (PASSWORD, REDIS_PASSWORD, key_body):
        fragments = {secret[i : i + 6] for i in range(len(secret) - 5)}
        shown = sorted(f for f in fragments if f in message)
        assert not shown, f"the refusal quotes part of a secret: {shown}"


def test_production_jobs_go_to_the_redis_of_redis_url_unless_broker_url_names_another() -> None:
    assert settings(**PROD).broker_url == PROD["REDIS_URL"]
    assert settings(**PROD).broker_kind == "redis"
    rabbit = f"amqp://app:{PASSWORD}@rabbit:5672/"
    chosen = settings(**{**PROD, "BROKER_URL": rabbit})
    assert chosen.broker_url == rabbit and chosen.broker_kind == "rabbitmq"
    # the keys that keep polls from piling up live in REDIS_URL's Redis then
    assert chosen.job_keys_url == PROD["REDIS_URL"]


def test_without_a_broker_url_jobs_run_in_process_outside_production() -> None:
    for env in ("dev", "test"):
        chosen = settings(APP_ENV=env, REDIS_URL="redis://127.0.0.1:6379/0")
        assert chosen.broker_kind == "stub" and chosen.job_keys_url == ""


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"BROKER_URL": "http://queue:8080/"}, "BROKER_URL must be a redis:// or amqp:// URL"),
        ({"BROKER_URL": "amqp://127.0.0.1:5672/"}, "BROKER_URL=amqp:// needs REDIS_URL"),
        ({"QUEUE_PREFIX": "two words"}, "QUEUE_PREFIX"),
        ({"QUEUE_PREFIX": "9starts_with_a_digit"}, "QUEUE_PREFIX"),
    ],
    ids=["scheme", "rabbitmq-without-redis", "prefix-space", "prefix-digit"],
)
def test_a_broker_the_jobs_cannot_use_is_refused_in_any_environment(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        settings(APP_ENV="dev", **values)


@pytest.mark.parametrize("base", ["", "http://registry.example.com"])
def test_production_publishes_links_under_an_https_base_it_was_given(base: str) -> None:
    with pytest.raises(ValidationError, match="REGISTRY_BASE_URL"):
        settings(**{**PROD, "REGISTRY_BASE_URL": base})


def test_production_needs_a_secrets_key_of_32_bytes() -> None:
    without = {k: v for k, v in PROD.items() if k != "SECRETS_KEY"}
    with pytest.raises(ValidationError, match="SECRETS_KEY"):
        settings(**without)
    with pytest.raises(ValidationError, match="32 bytes") as refused:
        settings(**{**PROD, "SECRETS_KEY": "c2hvcnQ="})
    assert "c2hvcnQ=" not in str(refused.value)


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({}, False),  # 2 x 3 tries x 5 s + backoffs: 31.8 s
        ({"OUTBOUND_TIMEOUT_S": "30", "COLLECT_RETRIES": "0"}, False),  # 60 s
        ({"OUTBOUND_TIMEOUT_S": "10", "COLLECT_RETRIES": "2"}, True),  # 61.8 s
        ({"OUTBOUND_TIMEOUT_S": "5", "COLLECT_RETRIES": "10"}, True),
    ],
)
def test_settings_letting_a_poll_outlast_its_time_limit_are_refused(
    values: dict[str, Any], refused: bool
) -> None:
    if not refused:
        assert settings(**values).poll_worst_case_s <= 60
        return
    with pytest.raises(ValidationError, match="past its time limit of 60 s"):
        settings(**values)


def test_anchoring_off_needs_no_chain_in_production() -> None:
    values = {k: v for k, v in PROD.items() if not k.startswith("A2A_")}
    assert settings(**values, ANCHORING="false").anchoring is False


def test_a_malformed_chain_key_is_refused_without_showing_it() -> None:
    secret = "not-a-key-" + "7" * 40
    with pytest.raises(ValidationError) as refused:
        settings(A2A_PRIVATE_KEY=secret)
    assert "A2A_PRIVATE_KEY" in str(refused.value) and secret not in str(refused.value)
    with pytest.raises(ValidationError, match="A2A_RPC_URL"):
        settings(A2A_RPC_URL="ws://node:8546")


def test_production_encrypts_payloads_and_needs_master_keys_for_it() -> None:
    assert settings(**PROD).encryption_on
    assert not settings(APP_ENV="test").encryption_on
    assert settings(APP_ENV="test", ENCRYPTION="on").encryption_on
    without = {k: v for k, v in PROD.items() if k != "MASTER_KEYS"}
    with pytest.raises(ValidationError, match="MASTER_KEYS"):
        settings(**without)
    assert not settings(**without, ENCRYPTION="off").encryption_on


def test_production_with_encryption_needs_an_erasure_register_apart_from_data_dir() -> None:
    without = {k: v for k, v in PROD.items() if k != "ERASURE_REGISTER"}
    with pytest.raises(ValidationError, match="ERASURE_REGISTER"):
        settings(**without)
    assert settings(**without, ENCRYPTION="off").erasure_register is None  # nothing can be erased
    assert str(settings(**PROD).erasure_register_path) == PROD["ERASURE_REGISTER"]
    assert settings(APP_ENV="test", DATA_DIR="/d").erasure_register_path == Path("/d/erasures.jsonl")
    assert settings(APP_ENV="test", DATA_DIR="/d", ERASURE_REGISTER=" ").erasure_register_path == Path(
        "/d/erasures.jsonl"
    )
    with pytest.raises(ValidationError, match="ERASURE_REGISTER names a directory"):
        settings(APP_ENV="test", ERASURE_REGISTER="/tmp")


def test_a_malformed_master_key_is_refused_naming_its_place_not_its_value() -> None:
    good = PROD["MASTER_KEYS"].split(",")[0]
    bad = "bm90LWEta2V5LWF0LWFsbC1qdXN0LXRleHQ="
    with pytest.raises(ValidationError, match="MASTER_KEYS item 2") as refused:
        settings(**{**PROD, "MASTER_KEYS": f"{good},{bad}"})
    assert good not in str(refused.value) and bad not in str(refused.value)
