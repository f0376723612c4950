"""The rules a configuration must keep, apart from the fields they check: what production
refuses, and how the list-valued settings are read. Each failure is a ValueError that names the
setting and never echoes a secret."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from infrastructure.settings import Settings

from infrastructure.outbound_addresses import IPNetwork

# anvil's and hardhat's first funded account: published in their docs, so anyone may spend from it.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
WELL_KNOWN_CHAIN_KEYS = frozenset({ANVIL_DEV_KEY.removeprefix("0x"), "0" * 63 + "1"})
CHAIN_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}\Z")
DEFAULT_PASSWORDS = frozenset({"postgres", "password", "change-me", "changeme", "secret", "admin", "guest"})


def refuse_insecure_production(settings: Settings) -> None:
    """APP_ENV=prod: every insecure default refused, with what replaces it."""
    if settings.debug:
        raise ValueError("DEBUG must be off when APP_ENV=prod")
    if not settings.is_postgres:
        raise ValueError("APP_ENV=prod needs DATABASE_URL naming a PostgreSQL database")
    if settings.signing_keys is None or not settings.signing_keys.get_secret_value().strip():
        raise ValueError("APP_ENV=prod needs SIGNING_KEYS (PEM private keys); none are generated")
    if settings.secrets_key is None or not settings.secrets_key.get_secret_value().strip():
        raise ValueError("APP_ENV=prod needs SECRETS_KEY (base64 of 32 random bytes); none is generated")
    if settings.encryption_on and (settings.master_keys is None or not settings.master_keys.get_secret_value().strip()):
        raise ValueError(
            "APP_ENV=prod needs MASTER_KEYS (base64 32-byte keys, comma-separated, newest first)"
            " with ENCRYPTION on; none is generated"
        )
    if settings.encryption_on and settings.erasure_register is None:
        raise ValueError(
            "APP_ENV=prod needs ERASURE_REGISTER with ENCRYPTION on: a file on storage that outlives"
            " the database and the container (where the master keys are kept), so that a backup"
            " restored from before an erasure has it applied again"
        )
    password = urlsplit(settings.database_url).password or ""
    if password.lower() in DEFAULT_PASSWORDS:
        raise ValueError("DATABASE_URL uses a well-known default password; refusing APP_ENV=prod")
    if settings.external_jwks_url and not settings.external_jwks_url.startswith("https://"):
        raise ValueError(
            "EXTERNAL_JWKS_URL must be https:// in prod (keys fetched in clear could be forged)"
        )
    if "*" in settings.trusted_proxy_list:
        raise ValueError(
            "TRUSTED_PROXIES=* lets any caller choose the address its limits are counted"
            " under; name the reverse proxies"
        )
    if not settings.broker_url:
        if not settings.redis_url:
            raise ValueError(
                "APP_ENV=prod needs BROKER_URL (or REDIS_URL, which it defaults to): jobs run"
                " on `a2a-goals worker` processes, not in an API replica's memory"
            )
        settings.broker_url = settings.redis_url
    if not settings.redis_url:
        raise ValueError("APP_ENV=prod needs REDIS_URL: rate limits must be shared by all replicas")
    broker_password = urlsplit(settings.broker_url).password or ""
    if broker_password.lower() in DEFAULT_PASSWORDS:
        raise ValueError("BROKER_URL uses a well-known default password; refusing APP_ENV=prod")
    if not settings.registry_base_url.startswith("https://"):
        raise ValueError(
            "APP_ENV=prod needs REGISTRY_BASE_URL (https://...): the base of the links the"
            " registry publishes and signs, never taken from a request's Host header"
        )
    if settings.anchoring and not settings.rpc_url:
        raise ValueError(
            "APP_ENV=prod needs A2A_RPC_URL (the chain's JSON-RPC node), or ANCHORING=off: an"
            " in-process chain's anchors are worth nothing outside the process"
        )
    if settings.anchoring and (settings.private_key is None or not settings.private_key.get_secret_value().strip()):
        raise ValueError("APP_ENV=prod needs A2A_PRIVATE_KEY (the key anchors are sent with)")
    if settings.anchoring and settings.chain_key().lower().removeprefix("0x") in WELL_KNOWN_CHAIN_KEYS:
        raise ValueError(
            "A2A_PRIVATE_KEY is a development chain's published key; refusing APP_ENV=prod"
        )
    if "operator_tenant" not in settings.model_fields_set:
        raise ValueError(
            "APP_ENV=prod needs OPERATOR_TENANT: whose admins may rebuild read models and see"
            " denials that name no tenant must be chosen, not a default any tenant may be given"
        )


def trusted_proxies(value: str) -> str:
    """TRUSTED_PROXIES as given, once every entry is an address, a network or `*`."""
    for entry in (e.strip() for e in value.split(",") if e.strip()):
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry)  # an address is a network of one
        except ValueError:
            raise ValueError(
                f"TRUSTED_PROXIES: {entry!r} is neither an IP address nor a network such as 172.30.0.0/24"
            ) from None
    return value

def retention_by_tenant(value: Any) -> dict[str, int]:
    """RETENTION_DAYS_BY_TENANT: `tenant=days` pairs, each tenant once."""
    if isinstance(value, dict):
        entries = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        entries = [(e.partition("=")[0], e.partition("=")[2]) for e in value.split(",") if e.strip()]
    else:
        raise ValueError("RETENTION_DAYS_BY_TENANT: tenant=days pairs, comma-separated")
    found: dict[str, int] = {}
    for tenant, days in entries:
        tenant, days = tenant.strip(), days.strip()
        if not tenant or not days.isdigit() or int(days) > 36_500:
            raise ValueError(
                f"RETENTION_DAYS_BY_TENANT: {tenant or '(no tenant)'}={days} is not tenant=days"
                " with days a whole number from 0 (kept for ever) to 36500"
            )
        if tenant in found:
            raise ValueError(f"RETENTION_DAYS_BY_TENANT: tenant {tenant} is named twice")
        found[tenant] = int(days)
    return found

def outbound_nets(value: Any) -> tuple[IPNetwork, ...]:
    """OUTBOUND_ALLOW_NETS: a comma-separated or JSON list of networks."""
    entries: Any = value
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            entries = json.loads(value)
        except ValueError:
            raise ValueError("OUTBOUND_ALLOW_NETS: not a JSON list of networks") from None
    elif isinstance(value, str):
        entries = [e for e in value.split(",") if e.strip()]
    if not isinstance(entries, list | tuple):
        raise ValueError("OUTBOUND_ALLOW_NETS: a comma-separated or JSON list of networks")
    nets: list[IPNetwork] = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(str(entry).strip()))  # an address is a network of one
        except ValueError:
            raise ValueError(
                f"OUTBOUND_ALLOW_NETS: {entry!r} is neither an IP address nor a network such as"
                " 10.20.0.0/16 (with no bits set past the prefix)"
            ) from None
    return tuple(nets)
