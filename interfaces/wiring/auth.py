"""What authentication is built from: the signing keys, the rate limits, an external IdP's
verifier, and how client secrets are made and checked."""

from __future__ import annotations

import re

from application.clients import SecretScheme
from infrastructure import client_secrets
from infrastructure.outbound import OutboundClient
from infrastructure.ratelimit import Rate
from infrastructure.remote_jwks import RemoteJWKS
from infrastructure.settings import Settings
from infrastructure.signing_keys import KeyRing
from infrastructure.tokens import TokenVerifier
from interfaces.http.auth import RateLimits

DAY_S = 86_400
PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.S)


def key_ring(settings: Settings) -> KeyRing:
    if settings.signing_keys is not None and settings.signing_keys.get_secret_value().strip():
        return KeyRing.from_pem(PEM_BLOCK.findall(settings.signing_keys.get_secret_value()))
    rotate_s = settings.key_rotate_days * DAY_S
    # Generated keys (dev and test only: prod refuses to start without SIGNING_KEYS).
    return KeyRing.load_or_create(
        settings.keys_path, rotate_after_s=rotate_s, retire_after_s=rotate_s + DAY_S
    )


def external_verifier(settings: Settings, outbound: OutboundClient) -> TokenVerifier | None:
    """Tokens of an external IdP, by its JWKS URL (cached; unknown kids refetch at most once a minute)."""
    if not settings.external_jwks_url:
        return None
    return TokenVerifier(
        None,
        issuer=settings.external_issuer,
        audience=settings.token_audience,
        algorithms=settings.external_algorithm_list,
        remote=RemoteJWKS(settings.external_jwks_url, outbound),
    )


def rate_limits(settings: Settings) -> RateLimits:
    token = Rate.parse(settings.rate_limit_token)
    return RateLimits(
        reads=Rate.parse(settings.rate_limit_reads),
        writes=Rate.parse(settings.rate_limit_writes),
        token=token,
        search=Rate.parse(settings.rate_limit_search),
        # Token requests from one address across all client ids, so spraying ids buys nothing.
        token_address=Rate(token.limit * 4, token.period_s),
        bad_tokens=Rate.parse(settings.rate_limit_bad_tokens),
    )


def secret_scheme() -> SecretScheme:
    return SecretScheme(
        new_client_id=client_secrets.new_client_id,
        new_secret=client_secrets.new_secret,
        hash=client_secrets.hash_secret,
        verify=client_secrets.verify_secret,
    )
