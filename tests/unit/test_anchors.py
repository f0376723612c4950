"""Anchors as the domain records them, and what health says of anchoring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from application.anchoring import OWN_EVENTS_AT_MOST, anchoring_state
from domain.anchors import CONFIRMED, FAILED, PENDING, Anchor, ContractRef, anchor_id
from domain.errors import InvalidCommand
from domain.meta import Meta

WHERE = ContractRef(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3", 1)
ROOT = "ab" * 32
TX = "0x" + "cd" * 32
META = Meta(actor="anchoring")


def test_an_anchor_goes_from_pending_to_confirmed_once() -> None:
    anchor = Anchor.submitted(WHERE, 10, ROOT, TX, META)
    assert (anchor.status, anchor.sends) == (PENDING, 1)
    anchor.resent("0x" + "ee" * 32, "dropped by the node", META)
    assert anchor.sends == 2 and anchor.tx_hash == "0x" + "ee" * 32
    anchor.confirmed(anchor.tx_hash, 7, META)
    assert (anchor.status, anchor.block_number) == (CONFIRMED, 7)
    before = len(anchor.pending_events)
    anchor.failed("late", META)  # a settled anchor records nothing more
    anchor.resent(TX, "late", META)
    assert len(anchor.pending_events) == before and anchor.status == CONFIRMED


def test_a_failed_anchor_stays_failed() -> None:
    anchor = Anchor.submitted(WHERE, 10, ROOT, TX, META)
    anchor.failed("superseded by a later anchor", META)
    anchor.confirmed(TX, 3, META)
    assert anchor.status == FAILED


@pytest.mark.parametrize(
    ("size", "root", "tx", "field"),
    [
        (0, ROOT, TX, "tree_size"),
        (1, "0x" + ROOT, TX, "root_hash"),
        (1, "AB" * 32, TX, "root_hash"),
        (1, ROOT, "cd" * 32, "tx_hash"),
        (1, ROOT, TX + "00", "tx_hash"),
    ],
)
def test_malformed_anchors_are_refused_naming_the_field(size: int, root: str, tx: str, field: str) -> None:
    with pytest.raises(InvalidCommand) as refused:
        Anchor.submitted(WHERE, size, root, tx, META)
    assert field in refused.value.errors


def test_one_anchor_id_per_size_and_deployment() -> None:
    assert anchor_id(1, "0xAbC", 1, 5) == anchor_id(1, "0xabc", 1, 5)
    assert anchor_id(1, "0xabc", 1, 5) != anchor_id(1, "0xabc", 2, 5)  # a chain started afresh
    assert anchor_id(1, "0xabc", 1, 5) != anchor_id(1, "0xabc", 1, 6)


def test_health_says_behind_only_when_leaves_wait_past_the_patience() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    assert anchoring_state(0, None, now, 60) == "ok"
    assert anchoring_state(5, None, now, 60) == "waiting"
    recent = (100, now - timedelta(seconds=30))
    old = (100, now - timedelta(seconds=600))
    assert anchoring_state(500, recent, now, 60) == "ok"
    assert anchoring_state(500, old, now, 60) == "behind"
    # the anchoring's own last events are never a backlog
    assert anchoring_state(100 + OWN_EVENTS_AT_MOST, old, now, 60) == "ok"
