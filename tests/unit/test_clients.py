"""OAuth clients as data, and how their secrets are hashed."""

from __future__ import annotations

import pytest

from domain.clients import SCOPES, ClientDisabled, OAuthClient
from domain.errors import InvalidCommand
from infrastructure.client_secrets import hash_secret, new_client_id, new_secret, verify_secret


def test_a_client_records_only_a_hash_of_its_secret() -> None:
    secret = new_secret()
    client = OAuthClient.register(
        new_client_id(), "acme", "ci", ["goals:read"], hash_secret(secret), "admin-1"
    )
    events = client.collect_events()
    assert len(events) == 1
    assert secret not in repr(events[0])
    assert verify_secret(secret, client.secret_hash)
    assert client.scopes == ("goals:read",)


def test_unknown_and_missing_scopes_are_refused_by_name() -> None:
    with pytest.raises(InvalidCommand) as unknown:
        OAuthClient.register(new_client_id(), "acme", "ci", ["goals:read", "root"], "h", "a")
    assert "root" in unknown.value.errors["scopes"]
    with pytest.raises(InvalidCommand) as empty:
        OAuthClient.register(new_client_id(), "acme", "ci", [], "h", "a")
    assert "scopes" in empty.value.errors


def test_every_known_scope_can_be_granted() -> None:
    client = OAuthClient.register(new_client_id(), "acme", "ops", sorted(SCOPES), "h", "a")
    assert set(client.scopes) == SCOPES


def test_rotation_replaces_the_hash_and_disable_is_final_for_rotation() -> None:
    old, new = new_secret(), new_secret()
    client = OAuthClient.register(new_client_id(), "acme", "ci", ["admin"], hash_secret(old), "a")
    client.rotate_secret(hash_secret(new), "a")
    assert verify_secret(new, client.secret_hash)
    assert not verify_secret(old, client.secret_hash)
    client.disable("leaked", "a")
    client.disable("again", "a")  # idempotent: no second event
    assert [type(e).__name__ for e in client.collect_events()] == ["Registered", "SecretRotated", "Disabled"]
    with pytest.raises(ClientDisabled):
        client.rotate_secret(hash_secret(new_secret()), "a")


def test_hashes_are_salted_and_wrong_or_mangled_input_does_not_verify() -> None:
    secret = new_secret()
    first, second = hash_secret(secret), hash_secret(secret)
    assert first != second
    assert verify_secret(secret, first) and verify_secret(secret, second)
    assert not verify_secret(secret + "x", first)
    assert not verify_secret(secret, "plain-text-secret")
    assert not verify_secret(secret, first.replace("scrypt", "md5"))
    assert not verify_secret(secret, "scrypt$1$2$3$!!$!!")


def test_ids_and_secrets_are_unique_and_long() -> None:
    ids = {new_client_id() for _ in range(200)}
    secrets = {new_secret() for _ in range(200)}
    assert len(ids) == 200 and len(secrets) == 200
    assert all(len(s) >= 40 for s in secrets)
