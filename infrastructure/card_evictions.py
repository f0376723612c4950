"""The card cache's evictions, heard by every process: a Redis pub/sub channel that the
projecting process publishes each evicted agent on (with the log position of its change), and
a thread per serving process that listens and drops those agents from its own memory.

`live` is True only while the subscription is known to be up: a message published while it was
not is lost, so the local entries are dropped whenever it goes down and again as it comes back
(`epoch` counts those clears), and no local entry is trusted meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import orjson
import redis

log = logging.getLogger(__name__)
CHANNEL = "card:evictions"
# The subscription is pinged this often; one silent for STALE_AFTER_S is taken for dead.
PING_EVERY_S = 2.0
STALE_AFTER_S = 6.0
RECONNECT_S = 1.0

Agent = tuple[str, str]


def eviction_message(agents: Mapping[Agent, int]) -> bytes:
    return orjson.dumps([[tenant, agent_id, position] for (tenant, agent_id), position in agents.items()])


def evicted_agents(message: bytes) -> dict[Agent, int]:
    return {(str(tenant), str(agent_id)): int(position) for tenant, agent_id, position in orjson.loads(message)}


class EvictionFeed:
    """Listens on `prefix + CHANNEL` in a daemon thread started by `start()`; calls `evict`
    with each message's agents, and `clear` whenever messages may have been missed."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        evict: Callable[[Mapping[Agent, int]], object],
        clear: Callable[[], None],
    ) -> None:
        self._client = client
        self._channel = prefix + CHANNEL
        self._evict = evict
        self._clear = clear
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.live = False
        self.epoch = 0

    def start(self) -> None:
        """Start listening (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="card-evictions", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._down()
        if self._thread is not None:
            self._thread.join(STALE_AFTER_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (redis.RedisError, OSError, ValueError) as error:
                log.debug("card evictions not heard (Redis: %s); local card cache off", error)
            self._down()
            self._stop.wait(RECONNECT_S)

    def _listen(self) -> None:
        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel)
            heard = time.monotonic()
            pinged = heard
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=PING_EVERY_S / 2)
                now = time.monotonic()
                if message is not None:
                    heard = now
                    self._take(message)
                if now - pinged >= PING_EVERY_S:
                    pubsub.ping()
                    pinged = now
                if now - heard > STALE_AFTER_S:
                    raise redis.ConnectionError("the eviction subscription went silent")
        finally:
            pubsub.close()

    def _take(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # From here on every eviction reaches us: drop what was kept before, then trust.
            self._clear()
            self.epoch += 1
            self.live = True
        elif kind == "message" and isinstance(message.get("data"), bytes):
            self._evict(evicted_agents(message["data"]))  # type: ignore[arg-type]

    def _down(self) -> None:
        if self.live:
            self.live = False
        self.epoch += 1
        self._clear()
