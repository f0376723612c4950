"""How the projection runners tell the database's errors apart, and PostgreSQL's circuit
breaker."""

from __future__ import annotations

from functools import partial

from infrastructure.breaker import CircuitBreaker
from infrastructure.connections import probe
from infrastructure.database_errors import is_cancelled_statement, is_temporary
from infrastructure.settings import Settings
from projections.pages import StoreErrors
from projections.search.index import SearchUnavailable


def is_temporary_for_projections(error: BaseException) -> bool:
    """The database, or the search backend a read model writes to, cannot serve now: the page
    is retried after a pause (every read model of the page waits, as for the database)."""
    link: BaseException | None = error
    while link is not None:
        if isinstance(link, SearchUnavailable):
            return True
        link = link.__cause__
    return is_temporary(error)


# How the projection runners tell the database's errors apart.
STORE_ERRORS = StoreErrors(temporary=is_temporary_for_projections, cancelled=is_cancelled_statement)


def database_breaker(settings: Settings) -> CircuitBreaker:
    """Shared by both stores: they are one database."""
    return CircuitBreaker(
        "database",
        partial(probe, settings.database_url),
        failures_to_open=settings.db_breaker_failures,
        probe_every_s=settings.db_probe_interval_s,
    )
