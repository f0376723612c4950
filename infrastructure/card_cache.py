"""Hot card answers, cached: in Redis when REDIS_URL is set (shared by every process, evicted
by whichever process projects), in process otherwise.

An entry is what one caller's lookup of one card found: the served bytes with their headers,
or "not this tenant's own agent" (so that a public id looked up again goes straight to the
public entry). Keys are derived from (tenant, agent_id) and from the public id, so that the
agent_cards read model can evict every entry of an agent after its page commits.
Invariant: only the projection's eviction makes an entry stale before its TTL; a page that
changed a card evicts after it commits (test_a_cached_card_is_evicted_when_the_read_model_changes
breaks otherwise). An answer read before a change but stored after its eviction would be stale:
eviction leaves the agent's log position behind, and an answer read at an older position is not
stored (atomically, in a Lua script on Redis). A cache that fails is a miss, never an error.

Hot answers are read again before they expire: a hit in an answer's last REFRESH_AHEAD_S marks
it `due`, and the serving process reads the due answers again in the background, in batches
(interfaces/http/card_refresh.py), so that a card asked for steadily never expires under its
callers: each entry is still at most TTL_S old, and a re-read costs a share of one query rather
than a request's trip to the thread pool, Redis and the read model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import orjson
import redis

from domain.ids import registered_agent_id
from infrastructure.breaker import CircuitBreaker, CircuitOpen
from infrastructure.card_evictions import CHANNEL, EvictionFeed, eviction_message
from infrastructure.ratelimit import UNREACHABLE

log = logging.getLogger(__name__)
TTL_S = 60  # the backstop: an eviction lost (Redis down at that moment) is stale this long at most
# Memory for cards in each process: enough for the hot cards of a big registry (10k agents'
# cards of a few kB, in both generations, own and public lookups), bounded whatever is stored.
MEMORY_BYTES = 128 * 1024 * 1024
ENTRY_OVERHEAD = 200  # the key, the tuple and the CachedCard around the bytes, roughly
REFRESH_AHEAD_S = 10  # a hit this close to an answer's expiry has it read again
MAX_DUE = 10_000  # answers waiting to be read again, at most
VARIANTS = [(generation, original) for generation in ("1.0", "0.3") for original in (False, True)]


@dataclass(frozen=True)
class CachedCard:
    """A served card (`body` set) or NOT_OWN (the tenant has no own agent of that id)."""

    body: bytes | None
    etag: str = ""
    last_modified: str = ""
    public: bool = False


NOT_OWN = CachedCard(None)


Agent = tuple[str, str]  # (tenant, agent_id); tenant "" for copies of peers' agents


Entry = tuple[str, "CachedCard", Agent, int]  # what `put` takes: key, answer, agent, position


@dataclass(frozen=True)
class Due:
    """An answer hit near its expiry, to be read again: its key, whose agent it serves, and
    which answer it is (a public key's answer must still be public when read again)."""

    key: str
    agent: Agent
    generation: str
    original: bool
    public: bool


def due_of(key: str, agent: Agent) -> Due:
    """What `key` (an own_key or a public_key) names: the last two fields of either."""
    generation, original = key.rsplit(":", 2)[1:]
    return Due(key, agent, generation, original == "1", key.startswith("card:pub:"))


def own_key(tenant: str, agent_id: str, generation: str, original: bool) -> str:
    return f"card:own:{len(tenant)}:{tenant}:{agent_id}:{generation}:{int(original)}"


def public_key(public_id: str, generation: str, original: bool) -> str:
    return f"card:pub:{public_id}:{generation}:{int(original)}"


def evicted_key(tenant: str, agent_id: str) -> str:
    return f"card:evicted:{len(tenant)}:{tenant}:{agent_id}"


def keys_of(tenant: str, agent_id: str) -> list[str]:
    """Every key an agent's answers may be cached under."""
    public_id = registered_agent_id(tenant, agent_id).hex if tenant else agent_id
    return [own_key(tenant, agent_id, g, o) for g, o in VARIANTS] + [
        public_key(public_id, g, o) for g, o in VARIANTS
    ]


class CardCache(Protocol):
    def get(self, key: str) -> CachedCard | None: ...

    def get_at_once(self, key: str) -> CachedCard | None:
        """The answer if this process holds it, found without I/O (safe on the event loop);
        None when it does not, or cannot know without asking."""
        ...

    def close(self) -> None: ...

    def put(self, key: str, value: CachedCard, agent: Agent, position: int) -> None:
        """Store an answer read from the read model at the agent's log `position`, unless the
        agent was evicted at a later position since."""
        ...

    def put_all(self, entries: Sequence[Entry]) -> None:
        """`put` of each entry, in one round trip where there is one."""
        ...

    def evict(self, agents: Mapping[Agent, int]) -> bool:
        """Drop every answer of these agents, changed at these log positions; False if that
        could not be done now (the caller tries again)."""
        ...

    def due(self, limit: int) -> list[Due]:
        """At most `limit` answers hit near their expiry since the last call (taken: each is
        returned once), to be read again and `put` by this thread."""
        ...


class NoCardCache:
    """Every lookup a miss: where no cache could be kept correct (several server processes
    and no Redis to share)."""

    def get(self, key: str) -> CachedCard | None:
        return None

    def get_at_once(self, key: str) -> CachedCard | None:
        return None

    def put(self, key: str, value: CachedCard, agent: Agent, position: int) -> None:
        return None

    def put_all(self, entries: Sequence[Entry]) -> None:
        return None

    def close(self) -> None:
        return None

    def evict(self, agents: Mapping[Agent, int]) -> bool:
        return True

    def due(self, limit: int) -> list[Due]:
        return []


class InProcessCardCache:
    """Answers in this process's memory, at most `size` of them and `max_bytes` of card bytes
    (the oldest stored go first), each for `ttl_s`; a hit in the last `refresh_ahead_s` of a
    card's answer makes it due."""

    def __init__(
        self,
        size: int = 100_000,
        ttl_s: float = TTL_S,
        max_bytes: int = MEMORY_BYTES,
        *,
        refresh_ahead_s: float = REFRESH_AHEAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, CachedCard, Agent]] = OrderedDict()
        self._due: dict[str, Agent] = {}
        self._refresh_ahead_s = refresh_ahead_s
        self._clock = clock
        self._evicted: dict[Agent, tuple[float, int]] = {}
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._ttl_s = ttl_s
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedCard | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, card, agent = found
            left = expires - self._clock()
            if left < 0:
                return None
            if left < self._refresh_ahead_s and card.body is not None and len(self._due) < MAX_DUE:
                self._due[key] = agent
            return card

    get_at_once = get

    def due(self, limit: int) -> list[Due]:
        with self._lock:
            taken = [self._due.popitem() for _ in range(min(limit, len(self._due)))]
        return [due_of(key, agent) for key, agent in taken]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._due.clear()
            self._bytes = 0

    def close(self) -> None:
        return None

    def put(self, key: str, value: CachedCard, agent: Agent, position: int) -> None:
        with self._lock:
            now = self._clock()
            evicted = self._evicted.get(agent)
            if evicted is not None and evicted[0] >= now and evicted[1] > position:
                return
            self._drop(key)
            self._due.pop(key, None)  # hits while it was being read again marked it
            self._entries[key] = (now + self._ttl_s, value, agent)
            self._bytes += _weight(value)
            while len(self._entries) > self._size or self._bytes > self._max_bytes:
                _, (_, oldest, _) = self._entries.popitem(last=False)
                self._bytes -= _weight(oldest)

    def put_all(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self.put(*entry)

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= _weight(found[1])

    def evict(self, agents: Mapping[Agent, int]) -> bool:
        with self._lock:
            now = self._clock()
            self._evicted = {a: e for a, e in self._evicted.items() if e[0] >= now}
            for (tenant, agent_id), position in agents.items():
                self._evicted[(tenant, agent_id)] = (now + self._ttl_s, position)
                for key in keys_of(tenant, agent_id):
                    self._drop(key)
        return True


def _weight(card: CachedCard) -> int:
    return len(card.body or b"") + len(card.etag) + len(card.last_modified) + ENTRY_OVERHEAD


# KEYS: entry, evicted marker; ARGV: value, position, ttl. Stored unless evicted at a later position.
PUT = """
local evicted = tonumber(redis.call('GET', KEYS[2]) or '-1')
if evicted > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""
# KEYS: evicted marker, then the entries; ARGV: position, ttl.
EVICT = """
local evicted = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > evicted then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
redis.call('DEL', unpack(KEYS, 2))
return 1
"""


class RedisCardCache:
    """On Redis, behind the breaker the rate limiter shares: while Redis is known to be down
    every lookup is a miss at once (no request waits on a dead Redis)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "a2a:",
        ttl_s: int = TTL_S,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis = self.client = client
        self._prefix = self.prefix = prefix
        self._ttl_s = ttl_s
        self._breaker = breaker
        self._put = client.register_script(PUT)
        self._evict = client.register_script(EVICT)

    def get(self, key: str) -> CachedCard | None:
        entry = self.entry(key)
        return None if entry is None else entry[0]

    def get_at_once(self, key: str) -> CachedCard | None:
        return None  # every lookup is a round trip

    def due(self, limit: int) -> list[Due]:
        return []  # nothing is kept here to see hits with

    def close(self) -> None:
        return None  # the client is the rate limiter's, closed with it

    def entry(self, key: str) -> tuple[CachedCard, Agent, int] | None:
        """The answer under `key`, with the agent and the log position it was read at."""
        try:
            with self._guarded():
                raw = self._redis.get(self._prefix + key)
        except (CircuitOpen, redis.RedisError, OSError) as e:
            log.debug("card cache miss (Redis: %s)", e)
            return None
        if not isinstance(raw, bytes):
            return None
        head, _, body = raw.partition(b"\n")
        fields = orjson.loads(head)
        if len(fields) != 7:  # written by an older release: a miss, replaced on the next read
            return None
        etag, modified, public, present, tenant, agent_id, position = fields
        return CachedCard(body if present else None, etag, modified, public), (tenant, agent_id), position

    def put(self, key: str, value: CachedCard, agent: Agent, position: int) -> None:
        self.put_all([(key, value, agent, position)])

    def put_all(self, entries: Sequence[Entry]) -> None:
        try:
            with self._guarded(), self._redis.pipeline(transaction=False) as pipe:
                for key, value, agent, position in entries:
                    head = orjson.dumps(
                        [value.etag, value.last_modified, value.public, value.body is not None, *agent, position]
                    )
                    keys = [self._prefix + key, self._prefix + evicted_key(*agent)]
                    value_bytes = head + b"\n" + (value.body or b"")
                    self._put(keys=keys, args=[value_bytes, position, self._ttl_s], client=pipe)
                pipe.execute()
        except (CircuitOpen, redis.RedisError, OSError) as e:
            log.debug("cards not cached (Redis: %s)", e)

    def evict(self, agents: Mapping[Agent, int]) -> bool:
        try:
            with self._guarded(), self._redis.pipeline(transaction=False) as pipe:
                for (tenant, agent_id), position in agents.items():
                    keys = [evicted_key(tenant, agent_id), *keys_of(tenant, agent_id)]
                    self._evict(keys=[self._prefix + k for k in keys], args=[position, self._ttl_s], client=pipe)
                pipe.publish(self._prefix + CHANNEL, eviction_message(agents))
                pipe.execute()
        except (CircuitOpen, redis.RedisError, OSError):
            log.warning("cached cards not evicted (Redis unavailable): tried again after the next page")
            return False
        return True

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        breaker = self._breaker
        if breaker is None:
            yield
            return
        breaker.admit()
        try:
            yield
        except UNREACHABLE:
            breaker.failed()
            raise
        breaker.succeeded()


class TieredCardCache:
    """Redis, mirrored in this process's memory: a hit in memory costs no round trip.

    Invariant: a card in memory is never staler than Redis. Memory takes an answer (read from
    Redis, or from the read model by a `put` after this thread's `get` missed) only while the
    eviction feed is live and had no gap since that `get` began (same `epoch`), with the log
    position it was read at (an agent evicted at a later one refuses it); and every eviction
    published on the feed drops the agent here too (test_tiered_cache_forgets_what_another_
    process_evicted and test_tiered_cache_trusts_no_memory_while_the_feed_is_down break
    otherwise).
    """

    def __init__(self, shared: RedisCardCache, size: int = 100_000) -> None:
        self._shared = shared
        self._local = InProcessCardCache(size)
        self._feed = EvictionFeed(shared.client, shared.prefix, self._local.evict, self._local.clear)
        # The feed's epoch when this thread's last lookup began, if the feed was live then.
        self._began = threading.local()

    def get_at_once(self, key: str) -> CachedCard | None:
        feed = self._feed
        if not feed.live:
            feed.start()  # in the processes that serve cards only
            return None
        return self._local.get(key)

    def get(self, key: str) -> CachedCard | None:
        feed = self._feed
        epoch, live = feed.epoch, feed.live
        self._began.epoch = epoch if live else None
        if live and (found := self._local.get(key)) is not None:
            return found
        feed.start()
        entry = self._shared.entry(key)
        if entry is None:
            return None
        card, agent, position = entry
        self._remember(key, card, agent, position)
        return card

    def due(self, limit: int) -> list[Due]:
        """The due answers of memory; what this thread reads and `put`s next goes to memory
        only if the feed stays live meanwhile (as after a `get`)."""
        feed = self._feed
        self._began.epoch = feed.epoch if feed.live else None
        return self._local.due(limit)

    def put(self, key: str, value: CachedCard, agent: Agent, position: int) -> None:
        self._shared.put(key, value, agent, position)
        self._remember(key, value, agent, position)

    def put_all(self, entries: Sequence[Entry]) -> None:
        self._shared.put_all(entries)
        for entry in entries:
            self._remember(*entry)

    def _remember(self, key: str, value: CachedCard, agent: Agent, position: int) -> None:
        began = getattr(self._began, "epoch", None)
        feed = self._feed
        if began is not None and feed.live and feed.epoch == began:
            self._local.put(key, value, agent, position)

    def evict(self, agents: Mapping[Agent, int]) -> bool:
        self._local.evict(agents)
        return self._shared.evict(agents)

    def close(self) -> None:
        self._feed.close()
