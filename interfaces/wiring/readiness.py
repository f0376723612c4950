"""What `/health/ready` checks, one line per part the deployment has.

A new part (a chain node, say) is one entry in `readiness_checks`: a function that returns
when the part can serve and raises when it cannot (NotReady for a state other than "down").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pika
import redis

from infrastructure.settings import Settings
from interfaces.readiness import Check, NotReady, Readiness
from interfaces.wiring.shared_redis import answer_fast
from projections.status import read_model_lags

if TYPE_CHECKING:
    from interfaces.bootstrap import System

# The chain's node is shown, but a server whose node is away is still ready: the node holds
# anchoring back, never a request (docs/audit.md#anchors).
ADVISORY = frozenset({"chain"})
# The clients' own timeouts: redis-py's is not a builtin TimeoutError (socket.timeout is).
TIMEOUT_ERRORS = (TimeoutError, redis.exceptions.TimeoutError)


def readiness(system: System) -> Readiness:
    settings = system.settings
    return Readiness(
        readiness_checks(system),
        timeout_s=settings.ready_check_timeout_s,
        advisory=ADVISORY,
        timeout_errors=TIMEOUT_ERRORS,
    )


def readiness_checks(system: System) -> dict[str, Check]:
    """The checks of every part this deployment is configured with (none for parts it lacks)."""
    settings = system.settings
    checks: dict[str, Check] = {
        "database": lambda: _database(system),
        "projections": lambda: _projections(system),
    }
    if settings.redis_url:
        checks["redis"] = _redis_ping(settings.redis_url, settings)
    if settings.broker_kind == "redis":
        checks["broker"] = _redis_ping(settings.broker_url, settings)
    elif settings.broker_kind == "rabbitmq":
        checks["broker"] = lambda: _rabbitmq(settings)
    if system.elasticsearch is not None:
        client = system.elasticsearch.options(request_timeout=settings.ready_check_timeout_s, max_retries=0)
        checks["search"] = lambda: None if client.ping() else _down()
    else:
        checks["search"] = lambda: _search_tables(system)
    if system.anchoring is not None and settings.rpc_url:  # an in-process chain is this process
        chain = system.anchoring.chain
        checks["chain"] = lambda: None if chain().head() >= 0 else _down()
    return checks


def _down() -> None:
    raise NotReady("down")


def _database(system: System) -> None:
    """The event store answers (through the pool and breaker the API itself uses)."""
    system.goals.log_position()


def _search_tables(system: System) -> None:
    """The read store the search reads (PostgreSQL full-text or SQLite FTS) answers a query."""
    with system.store.read() as tx:
        tx.fetchone("SELECT 1")


def _projections(system: System) -> None:
    """No read model failed, and none is older than READY_MAX_LAG_S."""
    lags = read_model_lags(system.runner.statuses(), system.goals.read_log, system.goals.log_position())
    if any(lag.status.state == "failed" for lag in lags):
        raise NotReady("failed")
    if any(lag.lag_s > system.settings.ready_max_lag_s for lag in lags):
        raise NotReady("behind")


def _redis_ping(url: str, settings: Settings) -> Check:
    client = answer_fast(url, settings.ready_check_timeout_s)

    def ping() -> None:
        client.ping()

    return ping


def _rabbitmq(settings: Settings) -> None:
    parameters = pika.URLParameters(settings.broker_url)
    parameters.socket_timeout = parameters.blocked_connection_timeout = settings.ready_check_timeout_s
    parameters.connection_attempts = 1
    pika.BlockingConnection(parameters).close()
