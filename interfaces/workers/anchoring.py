"""The anchoring actor: each round settles the anchor in flight and sends the next root when it
is due (docs/audit.md#anchors). The scheduler sends it every ANCHOR_CHECK_S under one key, so
one round runs at a time, however slow the chain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import dramatiq
from prometheus_client import Counter, Gauge

from application.anchoring import Anchoring, ChainUnavailable, Round
from infrastructure.jobs import Jobs

if TYPE_CHECKING:
    from interfaces.bootstrap import System

ANCHOR_AUDIT_LOG = "anchor_audit_log"
POLLS = "polls"
# A round waits for at most one receipt (CHAIN_TIMEOUT_S) per call; a deployment is one.
ANCHOR_TIME_LIMIT_MS = 5 * 60 * 1000
log = logging.getLogger(__name__)

# Set by whichever process ran the last round: under several processes, the most recent counts.
BACKLOG = Gauge(
    "a2a_goals_audit_anchor_backlog",
    "Leaves of the audit log not yet covered by a confirmed anchor on the chain.",
    multiprocess_mode="mostrecent",
)
CHAIN_UP = Gauge(
    "a2a_goals_chain_up",
    "1 when the last anchoring round could use the chain's node, else 0.",
    multiprocess_mode="mostrecent",
)
ANCHORED_SIZE = Gauge(
    "a2a_goals_audit_anchored_tree_size",
    "The largest tree size confirmed on the chain.",
    multiprocess_mode="mostrecent",
)
ROUNDS = Counter(
    "a2a_goals_audit_anchor_rounds_total",
    "Anchoring rounds by outcome: sent (a root was sent), waiting (an anchor awaits its"
    " confirmations), idle (nothing due), chain_unavailable.",
    ["outcome"],
)


def anchor_round(anchoring: Anchoring, *, force: bool = False) -> Round | None:
    """One round, its outcome counted and the gauges set; None when the chain could not be used."""
    try:
        result = anchoring.run(force=force)
    except ChainUnavailable as unavailable:
        CHAIN_UP.set(0)
        ROUNDS.labels("chain_unavailable").inc()
        log.warning("anchoring waits for the chain: %s", unavailable)
        return None
    CHAIN_UP.set(1)
    BACKLOG.set(result.backlog)
    ANCHORED_SIZE.set(result.anchored)
    ROUNDS.labels("sent" if result.sent else "waiting" if result.pending else "idle").inc()
    return result


def declare_anchoring_actor(jobs: Jobs, system: Callable[[], System]) -> None:
    def anchor_audit_log() -> None:
        anchoring = system().anchoring
        if anchoring is not None:
            anchor_round(anchoring)

    # Not retried: the next round is due within ANCHOR_CHECK_S.
    dramatiq.actor(
        broker=jobs.broker,
        actor_name=ANCHOR_AUDIT_LOG,
        queue_name=jobs.queue(POLLS),
        max_retries=0,
        time_limit=ANCHOR_TIME_LIMIT_MS,
    )(anchor_audit_log)
