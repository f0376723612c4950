"""The actors: each one a thin entry point that calls a service of the System.

They are declared on the broker the composition root built (`declare_actors`, called by
`interfaces.bootstrap.build_system`), never at import: dramatiq's `@actor` decorator binds the
global broker as a module is imported, and makes one (RabbitMQ on localhost) if none was set,
before Settings is even read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq
from prometheus_client import Counter, Gauge

from application.federation import PeerNotFound
from application.peer_index import PeerIndexInvalid
from domain.meta import Meta
from infrastructure.jobs import Jobs
from infrastructure.outbound import OutboundError
from infrastructure.settings import POLL_TIME_LIMIT_S
from interfaces.webhook_system import DELIVER_WEBHOOKS, DISPATCH_WEBHOOKS, send_lanes
from interfaces.workers import collection
from interfaces.workers.anchoring import declare_anchoring_actor
from interfaces.workers.reachability import declare_reachability_actors
from projections.status import record_lag_metrics

if TYPE_CHECKING:
    from interfaces.bootstrap import System

REBUILD_PROJECTION = "rebuild_projection"
PROJECTION_WATCH = "projection_watch"
PRUNE_READ_SIDE = "prune_read_side"
# Queues: one-off operations, and the polls the scheduler sends.
OPERATIONS = "operations"
POLLS = "polls"
WEBHOOKS = "webhooks"
# Well above a lane job's budget (application.webhook_delivery.LANE_BUDGET_S) plus a delivery.
WEBHOOK_TIME_LIMIT_MS = 3 * 60 * 1000
# A rebuild of a big log runs long; one interrupted by this limit resumes from its shadow
# when asked for again.
REBUILD_TIME_LIMIT_MS = 6 * 3600 * 1000
POLL_TIME_LIMIT_MS = POLL_TIME_LIMIT_S * 1000
log = logging.getLogger(__name__)
SYNC_PEER = "sync_peer"
SYNC_PEERS = "sync_peers"
PEER_SYNC_TIME_LIMIT_MS = 10 * 60 * 1000
PEER_SYNCS = Counter(
    "a2a_registry_peer_syncs_total", "Syncs of peer registries, by peer and outcome.", ["peer_id", "status"]
)
PEER_ENTRIES_REFUSED = Counter(
    "a2a_registry_peer_entries_refused_total",
    "Entries of peers' indexes refused: a card on another origin than the peer's, or past its copies cap.",
    ["peer_id"],
)
FEDERATION = Meta(actor="federation")
AGENTS = Gauge(
    "a2a_registry_agents_total", "Agents in the registry, by state.", ["status"], multiprocess_mode="mostrecent"
)
AGENT_STATES = ("public", "private", "deregistered")
PRUNED_ROWS = Counter(
    "a2a_retention_pruned_rows_total", "Read-side rows deleted past their tenant's retention, by table.", ["table"]
)


def peer_sync_key(peer_id: str) -> str:
    """One sync of a peer at a time: asked for, scheduled or both."""
    return f"{SYNC_PEER}:{peer_id}"


def declare_actors(jobs: Jobs, system: Callable[[], System]) -> None:
    """Declare every actor on `jobs.broker`; `system` gives the System they call, when they run."""

    def rebuild_projection(name: str) -> None:
        """Rebuild one read model (or `all`), as asked for through the admin API."""
        system().rebuilds.run(name)

    def projection_watch() -> None:
        """Measure each read model's lag behind the log and set the lag gauges."""
        running = system()
        record_lag_metrics(running.runner, running.goals.read_log, running.goals.log_position)
        counts = running.agent_cards.counts()
        for state in AGENT_STATES:
            AGENTS.labels(state).set(counts.get(state, 0))

    def sync_peer(peer_id: str) -> None:
        """Pull what changed at one peer registry (recorded on the peer either way). A peer
        that cannot be reached or answers no index is an outcome, logged in one line; anything
        else is an error of ours, and raised."""
        try:
            result = system().federation.sync(peer_id, FEDERATION)
        except PeerNotFound:
            log.info("peer %s was removed before its sync ran", peer_id)
            return
        except (OutboundError, PeerIndexInvalid) as failure:
            PEER_SYNCS.labels(peer_id, "failed").inc()
            log.warning("sync of peer %s failed: %s", peer_id, failure)
            return
        except Exception:
            PEER_SYNCS.labels(peer_id, "failed").inc()
            raise
        PEER_SYNCS.labels(peer_id, "ok").inc()
        PEER_ENTRIES_REFUSED.labels(peer_id).inc(result.refused)

    def sync_peers() -> None:
        """Send a sync of every peer, but of one whose last sync has not run yet."""
        running = system()
        for peer in running.peers.peers():
            jobs.send_once(SYNC_PEER, {"peer_id": peer["peer_id"]}, key=peer_sync_key(peer["peer_id"]))

    def collect_metrics(tenant: str, agent_id: str, due_at: float) -> None:
        """Poll one agent's metrics and record what changed (see docs/collector.md)."""
        collection.collect_metrics(system(), tenant, agent_id, due_at)

    def check_stagnation() -> None:
        """Record the stalls of stagnant goals, once each, and set the collector's gauges."""
        collection.check_stagnation(system())

    def deliver_webhooks(subscription_id: str, agent_id: str) -> None:
        """Send one lane's due webhook deliveries, in order (one job per lane at a time)."""
        system().webhooks.delivery.deliver_lane(subscription_id, agent_id)

    def dispatch_webhooks() -> None:
        """Queue a delivery job for every lane whose next delivery is due."""
        due = system().webhooks.delivery.due_lanes()
        send_lanes(jobs, ((subscription, agent) for _, subscription, agent in due))

    def prune_read_side() -> None:
        """Delete read-side detail past each tenant's retention (docs/security.md#retention)."""
        pruned = system().retention.prune()
        for table, count in sorted(pruned.rows.items()):
            if count:
                PRUNED_ROWS.labels(table).inc(count)
        if any(pruned.rows.values()):
            log.info("retention pruned %s", ", ".join(f"{n} {t}" for t, n in sorted(pruned.rows.items()) if n))

    declare_reachability_actors(jobs, system)
    # No actor here is retried by the broker: each says below what happens instead.

    def declare(fn: Callable[..., None], name: str, queue: str, time_limit_ms: int) -> None:
        dramatiq.actor(
            broker=jobs.broker, actor_name=name, queue_name=jobs.queue(queue), max_retries=0, time_limit=time_limit_ms
        )(fn)

    # Deliveries retry on their own schedule (recorded per attempt), not as failed jobs.
    declare(deliver_webhooks, DELIVER_WEBHOOKS, WEBHOOKS, WEBHOOK_TIME_LIMIT_MS)
    declare(dispatch_webhooks, DISPATCH_WEBHOOKS, POLLS, POLL_TIME_LIMIT_MS)
    # A poll's failure is counted (and recorded on a change of state); the next one is due
    # within an interval.
    declare(collect_metrics, collection.COLLECT_METRICS, POLLS, POLL_TIME_LIMIT_MS)
    declare(check_stagnation, collection.CHECK_STAGNATION, POLLS, POLL_TIME_LIMIT_MS)
    # A failed sync is recorded on the peer, and the next one is due soon.
    declare(sync_peer, SYNC_PEER, POLLS, PEER_SYNC_TIME_LIMIT_MS)
    declare(sync_peers, SYNC_PEERS, POLLS, POLL_TIME_LIMIT_MS)
    # A failed rebuild is seen by the operator, and asking again resumes it.
    declare(rebuild_projection, REBUILD_PROJECTION, OPERATIONS, REBUILD_TIME_LIMIT_MS)
    declare(projection_watch, PROJECTION_WATCH, POLLS, POLL_TIME_LIMIT_MS)
    # A run cut short by its limit has committed its batches; the next one goes on from there.
    declare(prune_read_side, PRUNE_READ_SIDE, POLLS, POLL_TIME_LIMIT_MS)
    declare_anchoring_actor(jobs, system)
