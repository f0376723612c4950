"""The canonical bytes of a stored event: every field is in them, and none can bleed into another."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from domain.audit_leaf import StoredEvent, canonical_bytes

EVENT = StoredEvent(
    position=42,
    aggregate_id="0b5f7c8e-2a8e-5d7a-9a43-1f0e5a1f2c3d",
    version=3,
    topic="domain.goals:AgentGoals.ProgressRecorded",
    timestamp=datetime(2026, 12, 5, 2, 30, tzinfo=UTC),
    state=b'{"speed":60}',
)


def _fields(data: bytes) -> list[object]:
    """Read the bytes back as docs/audit.md lays them out."""
    at = 9
    out: list[object] = [data[0], struct.unpack(">Q", data[1:9])[0]]
    for width in ("H", "Q", "H", "H", "I"):
        size = struct.calcsize(">" + width)
        (value,) = struct.unpack(">" + width, data[at : at + size])
        at += size
        if width == "Q":
            out.append(value)
            continue
        out.append(data[at : at + value])
        at += value
    assert at == len(data)
    return out


def test_the_bytes_read_back_as_documented() -> None:
    assert _fields(canonical_bytes(EVENT)) == [
        1,
        42,
        EVENT.aggregate_id.encode(),
        3,
        EVENT.topic.encode(),
        b"2026-12-05T02:30:00+00:00",
        b'{"speed":60}',
    ]


def test_each_field_changes_the_bytes_and_the_same_instant_in_another_zone_does_not() -> None:
    base = canonical_bytes(EVENT)
    changes = [
        {"position": 43},
        {"aggregate_id": EVENT.aggregate_id[:-1] + "e"},
        {"version": 4},
        {"topic": EVENT.topic + "x"},
        {"timestamp": EVENT.timestamp + timedelta(microseconds=1)},
        {"state": b'{"speed":61}'},
    ]
    for change in changes:
        assert canonical_bytes(replace(EVENT, **change)) != base  # type: ignore[arg-type]
    elsewhere = EVENT.timestamp.astimezone(timezone(timedelta(hours=2)))
    assert canonical_bytes(replace(EVENT, timestamp=elsewhere)) == base


def test_moving_bytes_between_topic_and_payload_is_another_leaf() -> None:
    one = replace(EVENT, topic="ab", state=b"c")
    two = replace(EVENT, topic="a", state=b"bc")
    assert canonical_bytes(one) != canonical_bytes(two)
