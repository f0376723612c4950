"""When each agent's next poll falls due: a heap of due instants, kept by one scheduler.

Each sweep reads only the targets changed since the last one (new, reconfigured, paused or
resumed), then pops the polls that have fallen due: the work of a sweep grows with what
changed and what is due, not with the number of agents. A target configured or resumed
while the schedule runs is due at once; those found when it starts are spread over their
first interval, so that a restart does not send every poll in the same second.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Target(Protocol):
    @property
    def tenant(self) -> str: ...

    @property
    def agent_id(self) -> str: ...

    @property
    def interval_s(self) -> int: ...

    @property
    def polled(self) -> bool: ...

    @property
    def position(self) -> int: ...


# Sends one poll (tenant, agent_id, due at); False if the agent's previous poll is pending.
SendPoll = Callable[[str, str, float], bool]
ChangedSince = Callable[[int], Sequence[Target]]


@dataclass
class SweepResult:
    sent: int = 0
    pending: int = 0


@dataclass
class CollectionSchedule:
    changed_since: ChangedSince
    send: SendPoll
    spread: Callable[[float], float] = field(default=lambda interval: random.uniform(0, interval))  # noqa: S311 (spreading load, not a secret)
    _seen: int = -1
    _heap: list[tuple[float, int, tuple[str, str]]] = field(default_factory=list)
    # key -> (interval, generation): an entry of the heap of another generation is stale.
    _targets: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    _generation: int = 0

    def sweep(self, now: float) -> SweepResult:
        """Take in what changed, then send what is due."""
        self._refresh(now)
        result = SweepResult()
        while self._heap and self._heap[0][0] <= now:
            due, generation, key = heapq.heappop(self._heap)
            current = self._targets.get(key)
            if current is None or current[1] != generation:
                continue
            if self.send(key[0], key[1], due):
                result.sent += 1
            else:
                result.pending += 1
            interval = current[0]
            # The next one is due an interval after this one; if that is past already (a
            # scheduler that was stopped or starved), an interval from now: the polls it
            # missed were this one poll, not a burst.
            following = due + interval
            heapq.heappush(self._heap, (following if following > now else now + interval, generation, key))
        return result

    @property
    def scheduled(self) -> int:
        return len(self._targets)

    def _refresh(self, now: float) -> None:
        starting = self._seen < 0
        while True:
            changed = self.changed_since(max(self._seen, 0))
            if not changed:
                break
            for target in changed:
                self._seen = max(self._seen, target.position)
                self._take(target, now, starting)
        self._seen = max(self._seen, 0)

    def _take(self, target: Target, now: float, starting: bool) -> None:
        key = (target.tenant, target.agent_id)
        if not target.polled:
            self._targets.pop(key, None)
            return
        self._generation += 1
        self._targets[key] = (target.interval_s, self._generation)
        due = now + self.spread(target.interval_s) if starting else now
        heapq.heappush(self._heap, (due, self._generation, key))
