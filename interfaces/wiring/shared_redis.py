"""The Redis client the rate limiter and the card cache share, and what each falls back to
without Redis."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from infrastructure.breaker import CircuitBreaker
from infrastructure.card_cache import (
    CardCache,
    InProcessCardCache,
    NoCardCache,
    RedisCardCache,
    TieredCardCache,
)
from infrastructure.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from infrastructure.ratelimit_leases import LeasedRateLimiter
from infrastructure.security_log import SecurityLog
from infrastructure.settings import Settings

# The longest a rate-limit call waits for Redis to connect or to answer.
REDIS_TIMEOUT_S = 0.5


def answer_fast(url: str, timeout_s: float) -> redis.Redis:
    """A client that waits at most `timeout_s` to connect or for an answer, and never retries
    (redis-py retries a timeout three times by default)."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )


def redis_with_breaker(settings: Settings) -> tuple[redis.Redis, CircuitBreaker] | None:
    """The Redis client the limiter and the card cache share, and its breaker (None: no Redis)."""
    if not settings.redis_url:
        return None
    # Short timeouts and no retries: a limiter must answer fast, even when Redis is away.
    client = answer_fast(settings.redis_url, REDIS_TIMEOUT_S)
    # While Redis is known to be down no request waits for those timeouts: each is let
    # through or refused at once, and a probe finds Redis back.
    breaker = CircuitBreaker(
        "redis",
        client.ping,
        failures_to_open=settings.redis_breaker_failures,
        probe_every_s=settings.redis_probe_interval_s,
    )
    return client, breaker


def build_card_cache(shared: tuple[redis.Redis, CircuitBreaker] | None, settings: Settings) -> CardCache:
    """Redis when there is one (shared with the projector, wherever it runs), else in process,
    but for several server processes, which could not evict each other's caches."""
    if shared is None:
        return InProcessCardCache() if settings.serve_workers == 1 else NoCardCache()
    client, breaker = shared
    return TieredCardCache(RedisCardCache(client, breaker=breaker))


def build_rate_limiter(
    settings: Settings, security: SecurityLog, shared: tuple[redis.Redis, CircuitBreaker] | None
) -> RateLimiter:
    if shared is None:
        return InProcessRateLimiter()
    client, breaker = shared
    return LeasedRateLimiter(
        RedisRateLimiter(
            client,
            fail_open=settings.rate_limit_fail_open,
            on_unavailable=lambda error: security.record("rate_limiter_unavailable", error=type(error).__name__),
            breaker=breaker,
        )
    )
