"""Read-your-writes: wait (bounded) until read models have reached a log position."""

from __future__ import annotations

import time
from collections.abc import Sequence

from application.errors import NotCaughtUp
from application.ports import ReadStore


def positions(store: ReadStore, names: Sequence[str]) -> dict[str, int]:
    marks = ", ".join("?" * len(names))
    with store.read() as tx:
        rows = tx.fetchall(f"SELECT name, position FROM projection_tracking WHERE name IN ({marks})", names)
    found = {r[0]: int(r[1]) for r in rows}
    return {name: found.get(name, 0) for name in names}


def wait_for_position(store: ReadStore, names: Sequence[str], position: int, timeout_s: float) -> None:
    """Return once every named read model is at `position` or beyond; else NotCaughtUp."""
    started = time.monotonic()
    delay = 0.002
    while True:
        reached = positions(store, names)
        behind = [(n, p) for n, p in reached.items() if p < position]
        if not behind:
            return
        waited = time.monotonic() - started
        if waited >= timeout_s:
            name, at = behind[0]
            raise NotCaughtUp(name, position, at, waited)
        time.sleep(min(delay, max(0.0, timeout_s - waited)))
        delay = min(delay * 2, 0.05)
