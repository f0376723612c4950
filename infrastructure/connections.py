"""PostgreSQL connections that fail fast while the database is away: their time limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
# its next attempt. It gives up after this instead, and the next request that needs a
# connection has one opened at once.
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
