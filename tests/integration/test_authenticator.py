"""The authenticator on a real store: requests that find the disabled-client set stale at
the same moment read it once between them, not once each (a busy store is not asked again
by every request waiting on it)."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from infrastructure.ratelimit import InProcessRateLimiter
from interfaces.bootstrap import System
from interfaces.http.auth import Authenticator
from projections.clients import ClientQueries

READERS = 8


class CountedClientQueries(ClientQueries):
    """The real queries, counting the reads of the disabled set. Once `slow()`, each read
    waits (a second at most) for the other requests to read too, as on a busy store."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reads = 0
        self._lock = threading.Lock()
        self._together: threading.Barrier | None = None

    def slow(self) -> None:
        self.reads = 0
        self._together = threading.Barrier(READERS, timeout=1.0)

    def disabled_ids(self) -> set[str]:
        with self._lock:
            self.reads += 1
        if self._together is not None:
            # broken after a second when no other request reads: they took this read's result
            with contextlib.suppress(threading.BrokenBarrierError):
                self._together.wait()
        return super().disabled_ids()


def test_requests_finding_the_disabled_set_stale_together_read_it_once(system: System, tenant: str) -> None:
    issued = system.clients.create(tenant, "reader", ["goals:read"], actor="test")
    token, _ = system.issuer.issue(issued.client_id, tenant, ["goals:read"])
    queries = CountedClientQueries(system.store)
    auth = Authenticator(
        system.auth.verifier, queries, InProcessRateLimiter(), system.auth.limits, system.security
    )
    auth.claims(token, "127.0.0.1")  # verified and cached; the set read once
    auth.forget_disabled_cache()
    queries.slow()
    with ThreadPoolExecutor(READERS) as pool:
        subjects = list(pool.map(lambda _: auth.claims(token, "127.0.0.1").subject, range(READERS)))
    assert subjects == [issued.client_id] * READERS
    assert queries.reads == 1
