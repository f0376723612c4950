"""What a read model is to the projection runner: a projection, and the pages of the log it
applies."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from application.ports import ReadStore, Tx

LogPage = Sequence[tuple[int, Any]]  # (log position, event), in log order
log = logging.getLogger(__name__)
ReadLog = Callable[[int, int], LogPage]  # (after, limit): up to `limit` events after position `after`


class Projection(Protocol):
    """A read model: its tables, and how a page of events changes them."""

    name: str

    @property
    def tables(self) -> Sequence[str]:
        """The tables this read model owns (what a rebuild swaps in)."""
        ...

    def create_tables(self, tx: Tx) -> None: ...

    def apply(self, tx: Tx, events: LogPage) -> None: ...


@runtime_checkable
class Remembering(Protocol):
    """A projection that keeps state in memory between pages (optional methods)."""

    def fresh(self) -> Projection:
        """A new instance with empty memory: each runner applies through its own."""
        ...

    def forget(self) -> None:
        """Drop the memory: the tables may differ from what it remembers."""
        ...


def forget(projection: Projection) -> None:
    """Make `projection` read its tables again instead of trusting its memory."""
    if isinstance(projection, Remembering):
        projection.forget()


def own_copy(projection: Projection) -> Projection:
    """`projection` with memory of its own (a rebuild's runner works beside the live one)."""
    return projection.fresh() if isinstance(projection, Remembering) else projection


@runtime_checkable
class Announcing(Protocol):
    """A projection that acts once what it applied is committed (e.g. evicts caches)."""

    def committed(self) -> None: ...


def announce_commit(projections: Sequence[Projection]) -> None:
    """Tell the projections that want to know that their pages so far are committed. A
    failure is logged, never raised: the page is committed whatever a cache does."""
    for projection in projections:
        if isinstance(projection, Announcing):
            try:
                projection.committed()
            except Exception:
                log.exception("%s: acting on a committed page failed", projection.name)


@runtime_checkable
class Relocating(Protocol):
    """A read model kept outside the read store (an Elasticsearch index): the tables it keeps
    in the store name its outside copy, and a rebuilt copy goes live when they are swapped in."""

    def swapped_in(self, store: ReadStore) -> None:
        """Its rebuilt tables are live in `store` now: make the copy they name live too."""
        ...


def relocate(projections: Sequence[Projection], store: ReadStore) -> None:
    """Tell the rebuilt projections kept outside the store that their tables are live."""
    for projection in projections:
        if isinstance(projection, Relocating):
            projection.swapped_in(store)
