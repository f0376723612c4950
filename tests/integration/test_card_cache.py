"""The card cache, in process and on a real Redis: eviction after a change, and no stale
answer stored after an eviction (an answer read at an older log position is refused)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from domain.ids import registered_agent_id
from domain.meta import Meta
from domain.registry import RegisteredAgent, SubmittedCard
from infrastructure.breaker import CircuitBreaker
from infrastructure.card_cache import (
    NOT_OWN,
    CachedCard,
    CardCache,
    InProcessCardCache,
    RedisCardCache,
    TieredCardCache,
    own_key,
    public_key,
)
from infrastructure.readstore import SQLiteReadStore
from projections.agent_cards import AgentCardsProjection
from tests.conftest import free_port
from tests.integration.support import wait_until

SAMPLE = json.loads((Path(__file__).parent.parent / "fixtures" / "a2a" / "sample-card-v1.0.json").read_text())
CARD = CachedCard(b'{"name": "x"}', '"e1"', "Fri, 04 Dec 2026 10:00:00 GMT", public=True)
NEWER = CachedCard(b'{"name": "y"}', '"e2"', "Fri, 04 Dec 2026 11:00:00 GMT", public=True)


@pytest.fixture(params=["in-process", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[CardCache]:
    if request.param == "in-process":
        yield InProcessCardCache()
        return
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    client = redis.Redis.from_url(url)
    yield RedisCardCache(client, prefix=f"test-{uuid.uuid4().hex}:")
    client.close()


def agent() -> tuple[str, str]:
    return (f"t{uuid.uuid4().hex[:8]}", "planner")


def test_a_cached_card_is_evicted_when_the_read_model_changes(cache: CardCache) -> None:
    tenant, agent_id = agent()
    public_id = registered_agent_id(tenant, agent_id).hex
    own, public = own_key(tenant, agent_id, "1.0", False), public_key(public_id, "0.3", True)
    cache.put(own, CARD, (tenant, agent_id), 5)
    cache.put(public, CARD, (tenant, agent_id), 5)
    assert cache.get(own) == CARD and cache.get(public) == CARD
    cache.evict({(tenant, agent_id): 9})
    assert cache.get(own) is None and cache.get(public) is None


def test_an_answer_read_before_a_change_is_not_stored_after_its_eviction(cache: CardCache) -> None:
    tenant, agent_id = agent()
    key = own_key(tenant, agent_id, "1.0", False)
    cache.evict({(tenant, agent_id): 9})  # the change at position 9 committed, then evicted
    cache.put(key, CARD, (tenant, agent_id), 5)  # a reader that read position 5 before it
    assert cache.get(key) is None
    cache.put(key, NEWER, (tenant, agent_id), 9)
    assert cache.get(key) == NEWER


def test_answers_stored_together_are_each_refused_after_a_later_eviction(cache: CardCache) -> None:
    """`put_all` (the background re-reads of hot cards) applies `put`'s guard to each answer."""
    (tenant, one), (_, two) = agent(), (None, "router")
    first, second = own_key(tenant, one, "1.0", False), own_key(tenant, two, "1.0", False)
    cache.evict({(tenant, one): 9})
    cache.put_all([(first, CARD, (tenant, one), 5), (second, CARD, (tenant, two), 5)])
    assert cache.get(first) is None and cache.get(second) == CARD
    cache.put_all([(first, NEWER, (tenant, one), 9)])
    assert cache.get(first) == NEWER


def test_not_own_is_remembered_until_the_tenant_registers_that_id(cache: CardCache) -> None:
    tenant, ref = agent()
    key = own_key(tenant, ref, "1.0", False)
    cache.put(key, NOT_OWN, (tenant, ref), 0)
    found = cache.get(key)
    assert found is not None and found.body is None
    cache.evict({(tenant, ref): 3})  # the tenant registered an agent of that id
    assert cache.get(key) is None


def test_a_redis_that_is_down_is_a_miss_not_an_error_and_opens_the_breaker() -> None:
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    breaker = CircuitBreaker("redis", client.ping, failures_to_open=2, probe_every_s=60)
    dead = RedisCardCache(client, breaker=breaker)
    try:
        dead.put("k", CARD, ("t", "a"), 1)
        assert dead.get("k") is None
        dead.evict({("t", "a"): 2})
        assert breaker.state == "open"
        assert dead.get("k") is None  # at once, without asking Redis
    finally:
        breaker.close()


def test_an_eviction_that_failed_is_tried_again_and_not_lost(tmp_path: Path) -> None:
    """The agent_cards read model keeps what it could not evict (Redis away) and evicts it
    after the next commit, or when the runner finds nothing more to apply."""
    asked: list[dict[tuple[str, str], int]] = []
    answers = iter([False, True])

    def evict(agents: Mapping[tuple[str, str], int]) -> bool:
        asked.append(dict(agents))
        return next(answers)

    projection = AgentCardsProjection(evict=evict)
    store = SQLiteReadStore(tmp_path / "read.sqlite")
    agent = RegisteredAgent.register("acme", "x", SubmittedCard(SAMPLE, "sha256:x"), "public", Meta("t"))
    with store.transaction() as tx:
        projection.create_tables(tx)
        projection.apply(tx, [(7, e) for e in agent.collect_events()])
    projection.committed()  # Redis away: nothing evicted
    projection.committed()  # tried again
    projection.committed()  # nothing left to evict: Redis is not asked
    assert asked == [{("acme", "x"): 7}, {("acme", "x"): 7}]
    store.close()


@pytest.fixture
def tiered_pair() -> Iterator[tuple[TieredCardCache, TieredCardCache, redis.Redis]]:
    """Two serving processes' caches on one real Redis (one prefix), each with its own memory."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail("TEST_REDIS_URL is not set: run the suite with ops/test")
        pytest.skip("Redis not configured (TEST_REDIS_URL)")
    prefix = f"test-{uuid.uuid4().hex}:"
    # Named, so that a test can drop its own feed's connection and no one else's.
    clients = [redis.Redis.from_url(url, socket_timeout=5, client_name=f"{prefix}{i}") for i in range(3)]
    one, two = (TieredCardCache(RedisCardCache(c, prefix=prefix)) for c in clients[:2])
    yield one, two, clients[2]
    one.close()
    two.close()
    for c in clients:
        c.close()


def _in_memory(cache: TieredCardCache, key: str) -> CachedCard | None:
    """What `cache` holds in memory after a read (which fills it once its eviction feed is up)."""
    cache.get(key)
    return cache.get_at_once(key)


def _drop_feed(admin: redis.Redis, cache: TieredCardCache) -> None:
    """Close the connection of `cache`'s eviction feed, server side (the second of the pair)."""
    for connection in admin.client_list(_type="pubsub"):
        if connection["name"] == f"{cache._shared.prefix}1":
            admin.client_kill_filter(_id=connection["id"])


def test_tiered_cache_forgets_what_another_process_evicted(
    tiered_pair: tuple[TieredCardCache, TieredCardCache, redis.Redis],
) -> None:
    projector, server, _ = tiered_pair
    tenant, agent_id = agent()
    key = own_key(tenant, agent_id, "1.0", False)
    projector.put(key, CARD, (tenant, agent_id), 5)
    wait_until(lambda: _in_memory(server, key) == CARD, 5, "the card in the server's memory")
    projector.evict({(tenant, agent_id): 9})  # the change committed elsewhere
    wait_until(lambda: server.get_at_once(key) is None, 5, "the eviction heard")
    assert server.get(key) is None
    projector.put(key, NEWER, (tenant, agent_id), 9)
    wait_until(lambda: _in_memory(server, key) == NEWER, 5, "the new card in memory")


def test_tiered_cache_trusts_no_memory_while_the_feed_is_down(
    tiered_pair: tuple[TieredCardCache, TieredCardCache, redis.Redis],
) -> None:
    """An eviction published while a process was not listening is lost to it: its memory is
    dropped when the feed comes back, so what it serves is never staler than Redis."""
    projector, server, admin = tiered_pair
    tenant, agent_id = agent()
    key = own_key(tenant, agent_id, "1.0", False)
    projector.put(key, CARD, (tenant, agent_id), 5)
    wait_until(lambda: _in_memory(server, key) == CARD, 5, "the card in the server's memory")
    admin.delete(f"{server._shared.prefix}{key}")  # gone from Redis, and no message heard
    assert server.get_at_once(key) == CARD  # memory alone does not know yet
    epoch = server._feed.epoch
    _drop_feed(admin, server)  # its connection drops; it reconnects
    wait_until(lambda: server._feed.epoch > epoch and server._feed.live, 10, "the feed back")
    assert server.get_at_once(key) is None
    assert server.get(key) is None


def test_tiered_cache_keeps_what_it_read_unless_the_feed_had_a_gap_meanwhile(
    tiered_pair: tuple[TieredCardCache, TieredCardCache, redis.Redis],
) -> None:
    _, server, admin = tiered_pair
    tenant, agent_id = agent()
    read, gapped = own_key(tenant, agent_id, "1.0", False), own_key(tenant, agent_id, "0.3", False)
    server.get(read)
    wait_until(lambda: server._feed.live, 5, "the feed up")
    assert server.get(read) is None  # a miss: the caller reads the read model, then puts
    server.put(read, CARD, (tenant, agent_id), 5)
    assert server.get_at_once(read) == CARD
    assert server.get(gapped) is None
    epoch = server._feed.epoch
    _drop_feed(admin, server)  # an eviction may be missed meanwhile
    wait_until(lambda: server._feed.epoch > epoch and server._feed.live, 10, "the feed back")
    server.put(gapped, CARD, (tenant, agent_id), 5)
    assert server.get_at_once(gapped) is None  # Redis has it; memory does not trust it
    assert server.get(gapped) == CARD
