"""Tracking rows: how far each read model has applied the log, and in what state it is.

A page writes its read models' rows and their tracking rows in one transaction, so a row's
position is exactly what the read model's tables hold. Runners of the same read models
serialise on these rows (`lock_tracking`); operators' skips are kept beside them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from application.ports import ReadStore, Tx

TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL, state TEXT NOT NULL,"
    " error TEXT, failed_position BIGINT, updated_at DOUBLE PRECISION NOT NULL)"
)
# Events an operator decided a read model passes over; rebuilds honour them too.
SKIPS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_skips (name TEXT NOT NULL, position BIGINT NOT NULL,"
    " PRIMARY KEY (name, position))"
)

TrackingRows = dict[str, tuple[int, float]]  # read model -> (position, updated_at) of its tracking row
LockedRows = dict[str, tuple[int, str, float]]  # read model -> (position, state, updated_at)


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    state: str
    error: str | None
    failed_position: int | None = None
    updated_at: float = 0.0  # epoch seconds: when a runner last wrote the row (a page committed, ...)


def create_tracking(tx: Tx, names: Sequence[str]) -> None:
    """The tracking and skip tables, and a row at position 0 for each new read model."""
    tx.execute(TRACKING_DDL)
    tx.execute(SKIPS_DDL)
    for name in names:
        tx.execute(
            "INSERT INTO projection_tracking (name, position, state, error, updated_at)"
            " VALUES (?, 0, 'live', NULL, ?) ON CONFLICT (name) DO NOTHING",
            (name, time.time()),
        )


def read_statuses(store: ReadStore, names: Sequence[str]) -> list[ProjectionStatus]:
    """The named read models' tracking rows as committed (no lock)."""
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT name, position, state, error, failed_position, updated_at FROM projection_tracking"
        )
    wanted = set(names)
    return [
        ProjectionStatus(r[0], int(r[1]), r[2], r[3], None if r[4] is None else int(r[4]), float(r[5]))
        for r in rows
        if r[0] in wanted
    ]


def lock_tracking(tx: Tx, names: Sequence[str]) -> LockedRows:
    """The named tracking rows, locked until `tx` ends."""
    # FOR UPDATE serialises runners of the same read models in several processes on
    # PostgreSQL (runners of other read models go on); SQLite's BEGIN IMMEDIATE already
    # holds the write lock.
    lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
    if not names:
        return {}
    rows = tx.fetchall(
        "SELECT name, position, state, updated_at FROM projection_tracking"
        f" WHERE name IN ({', '.join('?' * len(names))}){lock}",
        names,
    )
    return {r[0]: (int(r[1]), r[2], float(r[3])) for r in rows}


def advance(tx: Tx, name: str, position: int, now: float | None = None) -> tuple[int, float]:
    """Move `name` to `position` (live again if it had failed); its row's new (position, updated_at)."""
    now = time.time() if now is None else now
    tx.execute(
        "UPDATE projection_tracking SET position = ?, error = NULL, failed_position = NULL,"
        " state = CASE WHEN state = 'failed' THEN 'live' ELSE state END, updated_at = ? WHERE name = ?",
        (position, now, name),
    )
    return position, now


def record_failure(tx: Tx, names: Sequence[str], error: str, position: int | None) -> None:
    """Mark the named read models failed, with the error and (when known) the exact position."""
    marks = ", ".join("?" * len(names))
    tx.execute(
        "UPDATE projection_tracking SET state = 'failed', error = ?, failed_position = ?,"
        f" updated_at = ? WHERE name IN ({marks})",
        (error, position, time.time(), *names),
    )


def mark_skipped(tx: Tx, name: str, position: int) -> None:
    """Let `name` pass over the event at `position`, and make it live again."""
    tx.execute("INSERT INTO projection_skips (name, position) VALUES (?, ?)", (name, position))
    tx.execute(
        "UPDATE projection_tracking SET state = 'live', error = NULL, failed_position = NULL,"
        " updated_at = ? WHERE name = ?",
        (time.time(), name),
    )


def load_skips(store: ReadStore) -> dict[str, set[int]]:
    """Every read model's skipped positions."""
    with store.read() as tx:
        return skips_in(tx)


def skips_in(tx: Tx) -> dict[str, set[int]]:
    """Every read model's skipped positions, as `tx` sees them."""
    skips: dict[str, set[int]] = {}
    for name, position in tx.fetchall("SELECT name, position FROM projection_skips"):
        skips.setdefault(str(name), set()).add(int(position))
    return skips
