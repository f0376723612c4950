"""When a read model raises: the exact event it fails on, and the operator's skips.

A failing read model stops at the event it fails on, and never skips it by itself; the others
go on. The event is found by halving the page (`apply_around_failures`); an operator may then
decide that the read model passes over that one event (`Skips`), a decision recorded in the log.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

from projections.projection import LogPage
from projections.tracking import ProjectionStatus

FAILURES = Counter("a2a_projection_failures_total", "Read-model failures, per read model.", ["projection"])

# Applies a page, read after a log position, in one transaction; ProjectionFailed when a read
# model raises (the transaction then took everything back).
ApplyPage = Callable[[LogPage, int], None]


class ProjectionFailed(Exception):
    """A projection raised while applying events; `position` is exact when known."""

    def __init__(self, name: str, position: int | None, cause: BaseException) -> None:
        where = f"at position {position}" if position is not None else "in a page"
        super().__init__(f"{name} failed {where}: {type(cause).__name__}: {cause}")
        self.name = name
        self.position = position
        self.cause = cause


class NotSkippable(Exception):
    def __init__(self, name: str, position: int, status: ProjectionStatus | None) -> None:
        if status is None:
            found = "not a read model here"
        elif status.state == "failed":
            found = f"failed at position {status.failed_position}"
        else:
            found = f"{status.state}, at position {status.position}"
        super().__init__(f"{name} has no failure at position {position} to skip (it is {found})")


def apply_around_failures(
    apply: ApplyPage, page: LogPage, after: int, failed: Callable[[ProjectionFailed], None], models: int
) -> None:
    """Apply `page` (read after `after`) in one transaction; if a read model fails in it,
    apply each half of it the same way, in log order, down to the failing event, which is
    applied alone (`failed` records the failure). A failure in a page of n events costs about
    2·log2(n) transactions, not n; and a failure no single event reproduces (one that only a
    big page meets) ends with the page applied in smaller ones."""
    try:
        apply(page, after)
    except ProjectionFailed:
        if len(page) == 1:
            _apply_alone(apply, page, after, failed, models)
            return
        middle = len(page) // 2
        apply_around_failures(apply, page[:middle], after, failed, models)
        apply_around_failures(apply, page[middle:], page[middle - 1][0], failed, models)


def _apply_alone(
    apply: ApplyPage, page: LogPage, after: int, failed: Callable[[ProjectionFailed], None], models: int
) -> None:
    """Apply one event in a transaction of its own. A read model that fails on it is recorded
    as failed, and the event is applied again to the others: its transaction took back what
    they had done with it."""
    for _ in range(models + 1):
        try:
            apply(page, after)
            return
        except ProjectionFailed as error:
            failed(error)
    raise RuntimeError(f"could not apply or record the failure of event {page[0][0]}")


class Skips:
    """Events an operator decided read models pass over, as far as a runner knows them. A
    skip is never taken back, so what a runner reads again is added to what it knew."""

    def __init__(self, skips: dict[str, set[int]] | None = None) -> None:
        self._skips: dict[str, set[int]] = {}
        self.add(skips or {})

    def add(self, skips: dict[str, set[int]]) -> None:
        for name, positions in skips.items():
            self._skips.setdefault(name, set()).update(positions)

    def pending(self, name: str, page: LogPage, position: int) -> LogPage:
        """The events of `page` that `name` has yet to apply (after `position`, not skipped)."""
        skipped = self._skips.get(name)
        if page[0][0] > position and not skipped:
            return page
        return [(pos, e) for pos, e in page if pos > position and not (skipped and pos in skipped)]
