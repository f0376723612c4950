"""Background jobs on Dramatiq: the broker from Settings, its middleware, and sending.

BROKER_URL picks the broker: redis:// (RedisBroker), amqp:// (RabbitmqBroker), or none: a
StubBroker whose worker runs inside the API process (the embedded default). Every queue is
named under QUEUE_PREFIX (and so is the Redis namespace), so two deployments or test runs on
one server never take each other's messages.

Nothing here runs at import: dramatiq's `@actor` would bind a global broker as a module is
imported, so actors are declared by a function the composition root calls with the broker it
built (`interfaces.workers.actors.declare_actors`), and no global broker is ever set.
"""

from __future__ import annotations

from collections import defaultdict, deque
from functools import partial
from typing import Any

import dramatiq
import pika.exceptions
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    SkipMessage,
    TimeLimit,
)

from application.ports import HeldKey, JobsUnavailable
from infrastructure.job_keys import (
    InProcessJobKeys,
    InProcessJobRecords,
    JobKeys,
    RedisJobKeys,
    RedisJobRecords,
)
from infrastructure.log_context import CURRENT, RequestContext, current_request_id
from infrastructure.settings import Settings

# The message option that carries a job's held key: [key, token].
HELD_KEY = "held_key"
# The message option that carries the id of the request that sent the job (for its log lines).
REQUEST_ID = "request_id"
# A running job holds its key this much longer than its time limit: the time its worker
# takes to let go of it after the limit interrupts it.
HOLD_MARGIN_S = 60.0
# Backoff between attempts: doubling from 1 s, up to 5 minutes (Dramatiq adds jitter).
RETRY_MIN_BACKOFF_MS = 1_000
RETRY_MAX_BACKOFF_MS = 300_000
REDIS_TIMEOUT_S = 5.0
# Failed jobs an in-process broker keeps per queue (the newest), for a look in a debugger.
DEAD_LETTERS_KEPT = 100
BROKER_ERRORS = (
    BrokerConnectionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    pika.exceptions.AMQPError,
)


class RequestIds(Middleware):
    """A job's log lines carry the id of the request that sent it (X-Request-ID), if one did."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        request_id = message.options.get(REQUEST_ID)
        CURRENT.set(RequestContext(request_id) if request_id else None)

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        CURRENT.set(None)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        CURRENT.set(None)


class HeldKeys(Middleware):
    """A job sent under a key holds it for its time limit while it runs, and lets go of it once
    it has run: done, or failed for good (a job that will be retried keeps it). A job whose key
    another send took meanwhile (its own holding expired) is skipped: the newer one runs."""

    def __init__(self, keys: JobKeys, default_time_limit_ms: float) -> None:
        self._keys = keys
        self._default_time_limit_ms = default_time_limit_ms

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        held = _held(message)
        if held is None:
            return
        actor = broker.get_actor(message.actor_name)
        limit_ms = message.options.get("time_limit") or actor.options.get(
            "time_limit", self._default_time_limit_ms
        )
        if not self._keys.renew(held.key, held.token, limit_ms / 1000 + HOLD_MARGIN_S):
            raise SkipMessage(f"a newer job holds {held.key!r}")

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        # Retries is listed after this middleware and after-hooks run in reverse order: its
        # verdict is known here (message.failed: no retry left, or an exception it never retries).
        held = _held(message)
        if held is not None and (exception is None or message.failed):
            self._keys.release(held.key, held.token)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        held = _held(message)
        if held is not None:
            self._keys.release(held.key, held.token)  # a no-op when a newer job holds it


class InProcessBroker(StubBroker):
    """Dramatiq's StubBroker for jobs that live and die with the API process. It keeps the
    newest DEAD_LETTERS_KEPT failed jobs of each queue, not all of them: a poll failing every
    few seconds through a long database outage would otherwise grow the process for good."""

    def __init__(self, middleware: list[Middleware]) -> None:
        super().__init__(middleware)
        self.dead_letters_by_queue = defaultdict(partial(deque, maxlen=DEAD_LETTERS_KEPT))  # type: ignore[arg-type]


def _held(message: Any) -> HeldKey | None:
    held = message.options.get(HELD_KEY)
    return None if not held else HeldKey(held[0], held[1])


def make_broker(settings: Settings, keys: JobKeys) -> dramatiq.Broker:
    """The broker BROKER_URL names (no connection is made until it is used)."""
    time_limit_ms = settings.job_time_limit_s * 1000
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(time_limit=time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        RequestIds(),
        HeldKeys(keys, time_limit_ms),  # before Retries: see HeldKeys.after_process_message
        Retries(
            max_retries=settings.job_max_retries,
            min_backoff=RETRY_MIN_BACKOFF_MS,
            max_backoff=RETRY_MAX_BACKOFF_MS,
        ),
    ]
    match settings.broker_kind:
        case "redis":
            client = redis.Redis.from_url(
                settings.broker_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
            return RedisBroker(  # type: ignore[no-untyped-call]
                client=client, namespace=settings.queue_prefix, middleware=middleware
            )
        case "rabbitmq":
            return RabbitmqBroker(url=settings.broker_url, middleware=middleware, confirm_delivery=True)
        case _:
            return InProcessBroker(middleware)


def queue_name(settings: Settings, queue: str) -> str:
    """The broker's name of one of our queues."""
    return f"{settings.queue_prefix}.{queue}"


class Jobs:
    """The broker, the job keys and the job records of this process (a JobQueue)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis = _keys_client(settings)
        self.keys: JobKeys = (
            InProcessJobKeys() if self._redis is None else RedisJobKeys(self._redis, settings.queue_prefix)
        )
        self.broker = make_broker(settings, self.keys)
        self._records: dict[str, InProcessJobRecords | RedisJobRecords] = {}
        self._booted = False

    def boot(self) -> None:
        """Once, in a process about to run jobs: what the middleware starts there (the
        watcher of time limits)."""
        if not self._booted:
            self.broker.emit_after("process_boot")
            self._booted = True

    @property
    def in_process(self) -> bool:
        """Whether jobs are queued in this process's memory (no BROKER_URL)."""
        return isinstance(self.broker, StubBroker)

    def queue(self, name: str) -> str:
        return queue_name(self.settings, name)

    def records(self, kind: str) -> InProcessJobRecords | RedisJobRecords:
        """The latest state of each job of `kind`, shared with every process of the deployment."""
        if kind not in self._records:
            self._records[kind] = (
                InProcessJobRecords()
                if self._redis is None
                else RedisJobRecords(self._redis, self.settings.queue_prefix, kind)
            )
        return self._records[kind]

    def hold(self, key: str) -> HeldKey | None:
        token = self.keys.acquire(key, self.settings.job_pending_ttl_s)
        return None if token is None else HeldKey(key, token)

    def send(self, actor: str, kwargs: dict[str, Any], *, held: HeldKey | None = None) -> None:
        options: dict[str, Any] = {} if held is None else {HELD_KEY: [held.key, held.token]}
        if request_id := current_request_id():
            options[REQUEST_ID] = request_id
        try:
            self.broker.get_actor(actor).send_with_options(kwargs=kwargs, **options)
        except BROKER_ERRORS as error:
            if held is not None:
                self.keys.release(held.key, held.token)
            raise JobsUnavailable(f"the job broker cannot be reached: {type(error).__name__}") from error

    def send_once(self, actor: str, kwargs: dict[str, Any], *, key: str) -> bool:
        """Send a job under `key` unless one sent under it is still pending or running."""
        held = self.hold(key)
        if held is None:
            return False
        self.send(actor, kwargs, held=held)
        return True

    def release(self, held: HeldKey) -> None:
        self.keys.release(held.key, held.token)

    def close(self) -> None:
        self.broker.close()
        self.keys.close()


def _keys_client(settings: Settings) -> redis.Redis | None:
    url = settings.job_keys_url
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
