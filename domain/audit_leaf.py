"""The canonical bytes of one stored event: what the audit log's Merkle leaf hashes.

Version 1, fields in this order, each length-prefixed so no two events share their bytes:

    0x01                                  format version
    u64 position                          the event's log position (notification id)
    u16 len + UTF-8 aggregate id          the originator id, as text (a UUID's canonical form)
    u64 version                           the originator version
    u16 len + UTF-8 topic                 the event's topic (module:class)
    u16 len + UTF-8 timestamp             the event's time, ISO 8601 in UTC (`+00:00`)
    u32 len + stored payload              the event store's bytes, exactly as stored

All integers are unsigned big-endian. The leaf hash is SHA-256(0x00 || these bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

FORMAT = 1


@dataclass(frozen=True)
class StoredEvent:
    """One stored event as the audit log sees it."""

    position: int
    aggregate_id: str
    version: int
    topic: str
    timestamp: datetime
    state: bytes


def _text(value: str, width: str) -> bytes:
    data = value.encode()
    return struct.pack(f">{width}", len(data)) + data


def canonical_bytes(event: StoredEvent) -> bytes:
    stamp = event.timestamp.astimezone(UTC).isoformat()
    return b"".join(
        (
            bytes((FORMAT,)),
            struct.pack(">Q", event.position),
            _text(event.aggregate_id, "H"),
            struct.pack(">Q", event.version),
            _text(event.topic, "H"),
            _text(stamp, "H"),
            struct.pack(">I", len(event.state)),
            event.state,
        )
    )
