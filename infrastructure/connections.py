"""PostgreSQL connections that fail fast while the database is away: their time limits, a
pool that asks the circuit breaker before it lets anyone wait, and the probe that finds the
database back."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.postgres import ConnectionPool
from psycopg_pool import PoolTimeout
from psycopg_pool.abc import CT

from infrastructure.breaker import CircuitBreaker, CircuitOpen

# libpq's connect_timeout, in whole seconds (it treats anything below 2 as 2).
CONNECT_TIMEOUT_S = 2
# TCP keepalives: a peer that vanished without closing (a cut network, a frozen host) is
# noticed after about idle + interval * count seconds, not the kernel's two hours.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
# psycopg_pool reconnects a lost connection by itself with exponential backoff (1, 2, 4 ... s,
# for five minutes): after a 45 s outage a connection still waited up to half a minute for
# its next attempt. It gives up after this instead; the breaker's probe notices the return,
# and the next request that needs a connection has one opened at once.
RECONNECT_TIMEOUT_S = 2.0


def connect_kwargs() -> dict[str, Any]:
    """libpq parameters of every connection: a connect timeout and TCP keepalives."""
    return {"connect_timeout": CONNECT_TIMEOUT_S, **KEEPALIVES}


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a caller may wait for a pooled connection, and a statement may run (0: no limit)."""

    pool_timeout_s: float = 2.0
    statement_timeout_s: float = 10.0

    def options(self) -> str:
        """The `options` parameter that limits the connection's statements."""
        if not self.statement_timeout_s:
            return ""
        return f"-c statement_timeout={math.ceil(self.statement_timeout_s * 1000)}"


class DatabaseUnavailable(psycopg.OperationalError):
    """Refused without trying: the database is known to be down (its breaker is open).

    Like the pool's own PoolTimeout, an OperationalError: whatever already handles an
    unreachable database (a 503, a projection runner's pause) handles this one too.
    """

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GuardedPool(ConnectionPool[CT]):
    """A connection pool that a circuit breaker guards (once `guard` is called).

    While the breaker is open, asking for a connection raises DatabaseUnavailable at once
    instead of waiting for the pool's timeout. Each connection given back tells the breaker
    whether the database answered: a broken one (the server went away) is a failure; anything
    else is a success. No connection within the timeout is a failure only when none is out
    either: with every connection busy on slow queries, the database answers, and the caller
    gets its PoolTimeout (a 503) without the breaker refusing everyone else. When a connection
    comes back broken, or the breaker opens, the idle connections are replaced: they are
    stale too.
    """

    breaker: CircuitBreaker | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lent = 0  # connections given out and not returned yet
        self._lent_lock = threading.Lock()

    def guard(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        breaker.on_open(self.drain)

    def getconn(self, timeout: float | None = None) -> CT:
        breaker = self.breaker
        if breaker is not None:
            try:
                breaker.admit()
            except CircuitOpen as refused:
                raise DatabaseUnavailable(str(refused), refused.retry_after_s) from None
        try:
            conn = super().getconn(timeout)
        except PoolTimeout:
            # Read without the lock: a count a moment old only decides whether this one
            # timeout is counted, and a dead database fails every connection out anyway.
            if breaker is not None and not self._lent:
                breaker.failed()
            raise
        with self._lent_lock:
            self._lent += 1
        return conn

    def putconn(self, conn: CT) -> None:
        with self._lent_lock:
            self._lent -= 1
        broken = conn.broken
        super().putconn(conn)
        if broken:
            self.drain()
        if self.breaker is not None:
            if broken:
                self.breaker.failed()
            else:
                self.breaker.succeeded()


def probe(conninfo: str) -> None:
    """Connect to the database and run a trivial query on a connection of its own; raise if
    it does not answer (within CONNECT_TIMEOUT_S to connect)."""
    with psycopg.connect(conninfo, autocommit=True, **connect_kwargs()) as conn:
        conn.execute("SELECT 1")
