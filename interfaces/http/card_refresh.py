"""Hot card answers read again before they expire, in the background of a serving process.

The card cache marks an answer `due` when it is hit in its last seconds (see
infrastructure.card_cache). Without this, every hot card expired once a minute under its
callers, and each expiry cost one request a trip to the thread pool, Redis and the read model:
at 10k agents, thousands of such trips a minute (ops/bench/registry.py). Here the due answers
are read again in batches, one query per tenant and batch.

Invariant: a refreshed answer is what a request's read would have stored (the same record
columns, the same `cached_card`, put with the record's log position, so that an eviction at a
later position refuses it), and a public key keeps an answer only while the agent is public;
test_a_due_answer_is_read_again_as_a_request_would_read_it breaks otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from infrastructure.card_cache import Due, Entry
from interfaces.bootstrap import System
from interfaces.http.card_responses import cached_card

log = logging.getLogger(__name__)
REFRESH_EVERY_S = 1.0
BATCH = 500  # due answers read again per pass, at most


def refresh(system: System, due: list[Due]) -> int:
    """Read the `due` answers again and store them; the number stored."""
    by_tenant: defaultdict[str, list[Due]] = defaultdict(list)
    for item in due:
        by_tenant[item.agent[0]].append(item)
    entries: list[Entry] = []
    for tenant, items in by_tenant.items():
        agents = list(dict.fromkeys(item.agent for item in items))
        # The owner's own agents (deregistered ones are not returned): what `visible` reads.
        records = {(r.tenant, r.agent_id): r for r in system.agent_cards.records(tenant, agents)}
        for item in items:
            record = records.get(item.agent)
            if record is None or (item.public and record.visibility != "public"):
                continue  # gone, or no longer public: its eviction dropped it; a request decides
            card = cached_card(system, record, item.generation, item.original)
            entries.append((item.key, card, item.agent, record.position))
    system.card_cache.put_all(entries)  # one round trip to Redis
    return len(entries)


class CardRefresher:
    """A daemon thread reading due answers again every REFRESH_EVERY_S until `stop()`."""

    def __init__(self, system: System, every_s: float = REFRESH_EVERY_S) -> None:
        self._system = system
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="card-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        cache = self._system.card_cache
        failing = False
        while not self._stop.wait(self._every_s):
            try:
                while (due := cache.due(BATCH)) and not self._stop.is_set():
                    refresh(self._system, due)
            except Exception:
                # Nothing is lost: the answers expire as they would have, and the requests
                # that follow read them themselves (and fail visibly if the store is down).
                if not failing:
                    log.exception("hot cards not read again; they expire and are read on demand")
                failing = True
            else:
                if failing:
                    log.warning("hot cards are read again before they expire, as before")
                failing = False
