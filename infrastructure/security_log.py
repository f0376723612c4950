"""Security events: a structured log line, a Prometheus counter, and a row admins can list.

Denials are kept in a table (not process memory), so every replica's denials show up in one
list and survive restarts; the table is trimmed to the newest rows. Recording never waits on
the store: rows are written by a thread of their own (`DenialWriter`), so a denial may be
recorded on the event loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from application.ports import ReadStore
from infrastructure.denial_writer import DenialWriter

log = logging.getLogger("a2a_goals.security")

SECURITY_EVENTS = Counter(
    "a2a_security_events_total", "Security-relevant decisions, by kind and outcome.", ["kind"]
)
KEEP_ROWS = 10_000
DDL = (
    "CREATE TABLE IF NOT EXISTS security_events ("
    " at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, client_id TEXT, tenant TEXT,"
    " request_id TEXT, detail TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS security_events_by_time ON security_events (at)",
)
# Kinds worth a row; successes (token issued) are counted and logged only.
DENIALS = frozenset({"token_denied", "auth_denied", "scope_denied", "rate_limited", "client_disabled"})
# A flood of 429s, of bad tokens or of a disabled client's tokens is one row (and log line)
# every this many seconds per client, tenant and route class, or, for what names no client,
# per caller address; the next row tells how many it stands for, and the counter counts every
# one. A flood neither buries a tenant's other denials nor costs a write per refused request.
# So is an outage of the rate limiter's store, which every request meets: a line a window.
REPEAT_WINDOW_S = 10.0
REPEATS_TRACKED = 10_000
FLOODABLE = frozenset({"rate_limited", "auth_denied", "client_disabled", "rate_limiter_unavailable"})
# How long a listing of denials waits for those this process has recorded to be written.
FLUSH_BEFORE_LISTING_S = 1.0


class SecurityLog:
    def __init__(self, store: ReadStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._writer = DenialWriter(store, keep_rows=KEEP_ROWS)
        self._clock = clock
        # (kind, client_id, tenant, route_class, address) -> (start of its window, denials
        # not recorded in it); at most REPEATS_TRACKED, the least recently seen forgotten
        self._repeats: OrderedDict[tuple[Any, ...], tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self._store.transaction() as tx:
            for statement in DDL:
                tx.execute(statement)

    def record(
        self,
        kind: str,
        *,
        client_id: str | None = None,
        tenant: str | Callable[[], str | None] | None = None,
        request_id: str | None = None,
        address: str | None = None,
        logged: dict[str, Any] | None = None,
        **detail: Any,
    ) -> None:
        """Count, log and (for denials) store one security event. Never carries secrets, and
        never waits on the store (the row is written by another thread).

        `address` is the caller's: floods of what names no client are told apart by it, and
        it goes to the log line only, as do the `logged` fields (what the operator tenant's
        admins, who see denials naming no tenant, must not read of other tenants' requests).
        A `tenant` to look up is looked up only if the event is recorded (not for a repeat
        held back), on the caller's thread: pass one only off the event loop."""
        SECURITY_EVENTS.labels(kind=kind).inc()
        now = self._clock()
        if kind in FLOODABLE:
            named = tenant if isinstance(tenant, str) else None  # a client id names its tenant
            # bounded: a client id has a client id's form, an address an address's
            by = (kind, client_id, named, detail.get("route_class"), address if client_id is None else None)
            repeated = self._repeated(by, now)
            if repeated is None:
                return
            if repeated:
                detail = {**detail, "repeated": repeated}
        if callable(tenant):
            tenant = tenant()
        fields = {
            "event": kind,
            "client_id": client_id,
            "tenant": tenant,
            "request_id": request_id,
            **detail,
            **({"address": address} if address is not None else {}),
            **(logged or {}),
        }
        log.info(json.dumps(fields, default=str, sort_keys=True))
        if kind in DENIALS:
            self._writer.submit((now, kind, client_id, tenant, request_id, json.dumps(detail, default=str)))

    def close(self) -> None:
        """Write the denials recorded so far, and stop writing."""
        self._writer.close()

    def _repeated(self, key: tuple[Any, ...], now: float) -> int | None:
        """None when a denial of `key` was recorded less than REPEAT_WINDOW_S ago (it is
        counted for the next row); else how many went unrecorded since the last row."""
        with self._lock:
            started, unrecorded = self._repeats.get(key, (float("-inf"), 0))
            if now - started < REPEAT_WINDOW_S:
                self._repeats[key] = (started, unrecorded + 1)
                return None
            self._repeats[key] = (now, 0)
            self._repeats.move_to_end(key)
            if len(self._repeats) > REPEATS_TRACKED:
                self._repeats.popitem(last=False)
            return unrecorded

    def recent_denials(
        self, tenant: str, *, limit: int = 100, unattributed: bool = False
    ) -> list[dict[str, Any]]:
        """The newest denials of `tenant`, and with `unattributed` also those that name no
        tenant (a token that failed verification, a client id no client has). Those this
        process recorded are written first (waiting a second at most)."""
        self._writer.flush(FLUSH_BEFORE_LISTING_S)
        where = "WHERE (tenant = ? OR tenant IS NULL)" if unattributed else "WHERE tenant = ?"
        params: list[Any] = [tenant]
        with self._store.read() as tx:
            rows = tx.fetchall(
                "SELECT at, kind, client_id, tenant, request_id, detail FROM security_events"
                f" {where} ORDER BY at DESC LIMIT ?",
                [*params, limit],
            )
        return [
            {
                "at": r[0],
                "kind": r[1],
                "client_id": r[2],
                "tenant": r[3],
                "request_id": r[4],
                "detail": json.loads(r[5]),
            }
            for r in rows
        ]
