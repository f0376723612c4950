"""Aggregate ids: every id carries its tenant, so tenants can never collide."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c1a52-37a4-4bd6-9a55-0d3f4f7c2b10")


def goals_id(tenant: str, agent_id: str) -> UUID:
    return uuid5(NAMESPACE, f"{tenant}:goals:{agent_id}")


def idempotency_id(tenant: str, key: str) -> UUID:
    return uuid5(NAMESPACE, f"{tenant}:idempotency:{key}")


def client_id_to_uuid(client_id: str) -> UUID:
    """Client ids are global: the token endpoint learns the tenant from the client."""
    return uuid5(NAMESPACE, f"oauth-client:{client_id}")
