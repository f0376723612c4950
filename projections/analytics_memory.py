"""What the system analytics remembers of a tenant between requests, so that a request reads
and computes only what changed since the previous one.

- `GoalNotes`: per agent, the two things of its goal view that stagnation and risk need (the
  observed_at of its last progress, its target date), parsed once per version of the
  goal_progress row: the row's `position` changes whenever the row does.
- `ProgressWindow`: per agent, the ProgressRecorded facts recorded since the start of the
  window, and the status transitions counted, followed from event_facts by log position: facts
  are immutable and appended in position order, so the facts past the highest position seen
  are all that can have changed. It also remembers each agent's Theil-Sen fit together with
  the positions of the points it was fitted on, and fits again only when those change.

A rebuilt read model has the same rows at the same positions, so what is remembered stays
true; a store whose facts went back (reset) is noticed and read again from scratch.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from operator import itemgetter
from typing import Any, TypeVar

from application.ports import Row, Tx
from projections import forecasting
from projections.forecasting import Forecast, SlopeFit
from projections.instants import instant, stored_instant

T = TypeVar("T")

# (observed_at, overall_progress, position, recorded at) of one ProgressRecorded fact.
Point = tuple[datetime, float, int, datetime]
_OBSERVED = itemgetter(0)
_POSITION = itemgetter(2)

TAIL_PAGE = 5000
# Following the facts walks every tenant's since the last refresh (about 2.6 µs a fact on the
# bench); reading a tenant's window again from scratch reads its own only (about 10 µs a point,
# fits included). A tenant further behind than FOLLOW_AT_MOST facts and than REREAD_PER_POINT
# facts per point it remembers is read again: a small tenant asked rarely in a busy store
# costs what its own facts cost, not what everyone wrote in between.
FOLLOW_AT_MOST = 20_000
REREAD_PER_POINT = 4
# Facts recorded this long before the window's start are dropped from memory.
PRUNE_AFTER = timedelta(days=1)
CHUNK = 500


def _order(point: Point) -> tuple[datetime, int]:
    return point[0], point[2]


def _bound(tx: Tx, moment: datetime) -> Any:
    return stored_instant(tx.dialect == "postgres", moment)


def _payload_text(tx: Tx, key: str) -> str:
    return f"payload->>'{key}'" if tx.dialect == "postgres" else f"json_extract(payload, '$.{key}')"


@dataclass(frozen=True)
class GoalNote:
    """Of one version of a goal view: when it last progressed (observed_at of its last
    progress, or its creation without progress) and its target date."""

    position: int
    last_active: datetime
    target_date: str | None

    @cached_property
    def last_active_iso(self) -> str:
        return self.last_active.isoformat()


class GoalNotes:
    """Of each agent's goal view, by goal_progress row: see GoalNote."""

    def __init__(self) -> None:
        self._notes: dict[str, GoalNote] = {}
        self._positions: dict[str, int] = {}
        self.generation = 0  # changes whenever the rows do

    def refresh(self, tx: Tx, tenant: str, rows: Sequence[Row]) -> dict[str, GoalNote]:
        """Bring the notes up to date with the tenant's goal_progress rows, of which the first
        column is the agent_id and the last the position."""
        current = {r[0]: int(r[-1]) for r in rows}
        if current == self._positions:
            return self._notes
        self._positions = current
        self.generation += 1
        changed = [
            a
            for a, position in current.items()
            if (n := self._notes.get(a)) is None or n.position != position
        ]
        if len(changed) > len(current) // 4:
            found = tx.fetchall(
                "SELECT agent_id, position, view FROM goal_progress WHERE tenant = ?", (tenant,)
            )
            self._note(r for r in found if r[0] in current)
        else:
            for start in range(0, len(changed), CHUNK):
                chunk = changed[start : start + CHUNK]
                self._note(
                    tx.fetchall(
                        "SELECT agent_id, position, view FROM goal_progress"
                        f" WHERE tenant = ? AND agent_id IN ({', '.join('?' * len(chunk))})",
                        (tenant, *chunk),
                    )
                )
        if len(self._notes) > len(current):
            self._notes = {a: n for a, n in self._notes.items() if a in current}
        return self._notes

    def _note(self, rows: Iterable[Sequence[Any]]) -> None:
        for agent_id, position, raw in rows:
            view = json.loads(raw)
            last = view["progress"]["last_updated"] or view["created_at"]
            self._notes[agent_id] = GoalNote(int(position), instant(last), view["target_date"])


@dataclass(frozen=True)
class Velocity:
    """The Theil-Sen fit of an agent's points in a window, and the forecast from the latest."""

    fit: SlopeFit | None
    forecast: Forecast | None

    @cached_property
    def completion(self) -> str | None:
        """The forecast completion date (ISO), None without a forecast."""
        return self.forecast.as_json()["completion"] if self.forecast else None


NO_VELOCITY = Velocity(None, None)


@dataclass
class _Agent:
    # oldest observation first, ties by position
    points: list[Point] = field(default_factory=list)
    # changes whenever a point is added (dropping points outside every window does not count)
    revision: int = 0
    # Whether some point was recorded before it was observed (a clock ahead of the store's):
    # then the points of a window are not simply a run of those observed in it.
    recorded_early: bool = False
    fitted_on: tuple[int, ...] = ()
    velocity: Velocity = NO_VELOCITY

    def add(self, point: Point) -> None:
        if not self.points or _order(point) >= _order(self.points[-1]):
            self.points.append(point)
        else:
            insort(self.points, point, key=_order)
        self.revision += 1
        self.recorded_early = self.recorded_early or point[3] < point[0]

    def window(
        self, since: datetime, now: datetime, last: int = forecasting.MAX_POINTS
    ) -> tuple[tuple[int, ...], list[Point]]:
        """The latest `last` of the points recorded at or after `since` and observed in
        [since, now] (all a fit uses), and a key that is equal for equal sets of points: their
        positions, or, when they are a run of the list, -1, the revision, the positions at its
        ends and its length (between additions the list only loses points that are out of the
        window, so equal ends and length mean an equal run). A window that slides past points
        older than the latest `last` keeps its key."""
        lo = bisect_left(self.points, since, key=_OBSERVED)
        hi = bisect_right(self.points, now, key=_OBSERVED)
        if lo >= hi:
            return (), []
        if not self.recorded_early:
            run, lo = self.points, max(lo, hi - last)
            return (-1, self.revision, run[lo][2], run[hi - 1][2], hi - lo), run[lo:hi]
        found = [p for p in self.points[lo:hi] if p[3] >= since][-last:]
        return tuple(map(_POSITION, found)), found


class ProgressWindow:
    """A tenant's progress points recorded since `horizon`, and its status transitions, as of
    the fact at `position`."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.position = -1  # nothing read yet
        self.horizon: datetime | None = None
        self._agents: dict[str, _Agent] = {}
        self.transitions: Counter[tuple[str, str]] = Counter()
        self.generation = 0  # changes whenever points are added or dropped
        self.seen = 0  # changes whenever a fact of the tenant is read
        # every point's observed_at and recorded at, ascending: see `moved`
        self._observed: list[datetime] = []
        self._recorded: list[datetime] = []

    def refresh(self, tx: Tx, since: datetime) -> None:
        """Read what the facts gained since the last refresh (everything, the first time,
        after the facts went back, or when that is cheaper than following them: see
        FOLLOW_AT_MOST), and the points of a window that starts before `horizon`."""
        end = tx.fetchone("SELECT MAX(position) FROM event_facts")
        last = int(end[0]) if end and end[0] is not None else 0
        behind = last - self.position
        if self.position < 0 or behind < 0 or behind > max(FOLLOW_AT_MOST, REREAD_PER_POINT * self.size):
            self._load(tx, last, since)
            return
        if self.horizon is None or since < self.horizon:
            self._load_points(tx, since)
        if last > self.position:
            self._follow(tx)
        if self.horizon is not None and since - self.horizon > PRUNE_AFTER:
            self._prune(since)

    @property
    def size(self) -> int:
        """How many points are remembered."""
        return len(self._observed)

    def moved(self, before: tuple[datetime, datetime], after: tuple[datetime, datetime]) -> bool:
        """Whether some agent's points in the window [since, now] `after` may differ from those
        in the window `before`, with no point added or dropped in between (same generation):
        whether a point was observed or recorded between the two starts, or observed between
        the two ends (either way round)."""
        (since0, now0), (since1, now1) = before, after
        observed, recorded = self._observed, self._recorded
        return (
            bisect_left(observed, since0) != bisect_left(observed, since1)
            or bisect_right(observed, now0) != bisect_right(observed, now1)
            or bisect_left(recorded, since0) != bisect_left(recorded, since1)
        )

    def velocity(self, agent_id: str, since: datetime, now: datetime, target: float) -> Velocity:
        """`forecasting.fit_per_day` of the agent's points in the window, and the forecast of
        reaching `target` from the latest of them; remembered until the points change."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return NO_VELOCITY
        key, points = agent.window(since, now)
        if agent.fitted_on != key or not key:
            fit = forecasting.fit_per_day([(p[0], p[1]) for p in points])
            outlook = forecasting.forecast(points[-1][0], points[-1][1], fit, target) if fit else None
            agent.fitted_on, agent.velocity = key, Velocity(fit, outlook)
        return agent.velocity

    # --- reading the facts -------------------------------------------------------------------

    def _load(self, tx: Tx, last: int, since: datetime) -> None:
        self._agents, self.transitions, self.position, self.horizon = {}, Counter(), last, None
        self.seen += 1
        self.generation += 1
        self._observed, self._recorded = [], []
        self._load_points(tx, since)
        rows = tx.fetchall(
            f"SELECT {_payload_text(tx, 'from')}, {_payload_text(tx, 'to')}, COUNT(*) FROM event_facts"
            " WHERE tenant = ? AND type = 'StatusChanged' AND position <= ? GROUP BY 1, 2",
            (self.tenant, last),
        )
        self.transitions.update({(r[0], r[1]): int(r[2]) for r in rows})

    def _load_points(self, tx: Tx, since: datetime) -> None:
        """The points recorded in [since, horizon) (all since `since` the first time), up to
        the position already read."""
        clauses, params = "at >= ?", [_bound(tx, since)]
        if self.horizon is not None:
            clauses += " AND at < ?"
            params.append(_bound(tx, self.horizon))
        rows = tx.fetchall(
            "SELECT agent_id, observed_at, overall, position, at FROM event_facts"
            f" WHERE tenant = ? AND type = 'ProgressRecorded' AND {clauses} AND position <= ?",
            (self.tenant, *params, self.position),
        )
        self._add(rows)
        self.horizon = since

    def _follow(self, tx: Tx) -> None:
        """The facts appended since `position`, in pages; every tenant's, filtered here, so
        that the plan is a walk of the position index whatever the statistics say."""

        def status(key: str) -> str:
            return f"CASE WHEN type = 'StatusChanged' THEN {_payload_text(tx, key)} END"

        columns = (
            f"position, tenant, type, agent_id, observed_at, overall, at, {status('from')}, {status('to')}"
        )
        assert self.horizon is not None
        horizon = _bound(tx, self.horizon)
        while True:
            rows = tx.fetchall(
                f"SELECT {columns} FROM event_facts WHERE position > ? ORDER BY position LIMIT ?",
                (self.position, TAIL_PAGE),
            )
            mine = [r for r in rows if r[1] == self.tenant]
            self.seen += len(mine)
            self._add(
                (r[3], r[4], r[5], r[0], r[6]) for r in mine if r[2] == "ProgressRecorded" and r[6] >= horizon
            )
            self.transitions.update((r[7], r[8]) for r in mine if r[2] == "StatusChanged")
            if rows:
                self.position = int(rows[-1][0])
            if len(rows) < TAIL_PAGE:
                return

    def _add(self, rows: Iterable[Sequence[Any]]) -> None:
        added = [(a, (instant(o), float(v), int(p), instant(at))) for a, o, v, p, at in rows]
        for agent_id, point in added:
            self._agents.setdefault(agent_id, _Agent()).add(point)
        if len(added) > 100:
            self._observed = sorted([*self._observed, *(p[0] for _, p in added)])
            self._recorded = sorted([*self._recorded, *(p[3] for _, p in added)])
        else:
            for _, point in added:
                insort(self._observed, point[0])
                insort(self._recorded, point[3])
        self.generation += bool(added)

    def _prune(self, since: datetime) -> None:
        for agent_id, agent in list(self._agents.items()):
            kept = [p for p in agent.points if p[3] >= since]
            if kept:
                agent.points = kept
            else:
                del self._agents[agent_id]
        points = [p for agent in self._agents.values() for p in agent.points]
        self._observed = sorted(p[0] for p in points)
        self._recorded = sorted(p[3] for p in points)
        self.horizon = since
        self.generation += 1


@dataclass(frozen=True)
class Answer:
    """A figure computed from the notes and the window, and what it was computed from."""

    generations: tuple[int, int]
    today: date
    window: tuple[datetime, datetime]
    value: list[dict[str, Any]]


@dataclass
class TenantMemory:
    window: ProgressWindow
    notes: GoalNotes = field(default_factory=GoalNotes)
    lock: threading.Lock = field(default_factory=threading.Lock)
    at_risk: Answer | None = None
    _recalled: dict[str, tuple[object, Any]] = field(default_factory=dict)

    def recall(self, name: str, key: object, compute: Callable[[], T]) -> T:
        """What `compute` gave the last time `name` was asked with an equal `key` (its inputs),
        else what it gives now. Callers copy what they hand out."""
        found = self._recalled.get(name)
        if found is not None and found[0] == key:
            value: T = found[1]
            return value
        value = compute()
        self._recalled[name] = (key, value)
        return value

    def remembered_at_risk(self, today: date, since: datetime, now: datetime) -> list[dict[str, Any]] | None:
        """The at-risk goals computed last, if nothing they depend on changed since: the
        notes, the points, the day, and which points the window holds."""
        found = self.at_risk
        if (
            found is None
            or found.generations != (self.notes.generation, self.window.generation)
            or found.today != today
            or self.window.moved(found.window, (since, now))
        ):
            return None
        return [dict(item) for item in found.value]

    def remember_at_risk(
        self, today: date, since: datetime, now: datetime, value: list[dict[str, Any]]
    ) -> None:
        generations = (self.notes.generation, self.window.generation)
        self.at_risk = Answer(generations, today, (since, now), [dict(item) for item in value])


class AnalyticsMemory:
    """TenantMemory for the tenants asked most recently: at most `tenants` of them, and no
    more than `points` progress points in all (the tenant being asked is always kept)."""

    def __init__(self, tenants: int = 16, points: int = 1_000_000) -> None:
        self._tenants, self._points = tenants, points
        self._memories: OrderedDict[str, TenantMemory] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """How many tenants are remembered at most."""
        return self._tenants

    def tenants(self) -> list[str]:
        """The tenants remembered, the one asked longest ago first."""
        with self._lock:
            return list(self._memories)

    def forget(self, tenant: str) -> None:
        """Drop what is remembered of the tenant (it was erased)."""
        with self._lock:
            self._memories.pop(tenant, None)

    def of(self, tenant: str) -> TenantMemory:
        with self._lock:
            memory = self._memories.get(tenant)
            if memory is None:
                memory = self._memories[tenant] = TenantMemory(ProgressWindow(tenant))
            self._memories.move_to_end(tenant)
            while len(self._memories) > 1 and (
                len(self._memories) > self._tenants
                or sum(m.window.size for m in self._memories.values()) > self._points
            ):
                self._memories.popitem(last=False)
            return memory
