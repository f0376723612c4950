"""Aggregate ids: every id carries its tenant, so tenants can never collide."""

from __future__ import annotations

import re
from uuid import UUID, uuid5

# Tenants never contain ':', so "tenant:kind:key" names exactly one aggregate.
# \Z, not $: with `match`, $ would also accept a trailing newline ("acme\n").
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
NAMESPACE = UUID("6f1c1a52-37a4-4bd6-9a55-0d3f4f7c2b10")


def goals_id(tenant: str, agent_id: str) -> UUID:
    return uuid5(NAMESPACE, f"{tenant}:goals:{agent_id}")


def idempotency_id(tenant: str, actor: str, key: str) -> UUID:
    """Keys belong to the client that sent them: two clients may pick the same key."""
    return uuid5(NAMESPACE, f"{tenant}:idempotency:{len(actor)}:{actor}:{key}")


def client_id_to_uuid(client_id: str) -> UUID:
    """Client ids are global: the token endpoint learns the tenant from the client."""
    return uuid5(NAMESPACE, f"oauth-client:{client_id}")


def registered_agent_id(tenant: str, agent_id: str) -> UUID:
    """The registry's record of an agent: the same agent_id as its goals, another aggregate."""
    return uuid5(NAMESPACE, f"{tenant}:agent:{agent_id}")
