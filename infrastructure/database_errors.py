"""Which database errors are temporary and which are not, for every caller in one place: the
projection runner retries the first kind and records the second as a failing read model; the
HTTP edge answers the first with a 503 and Retry-After, the second with a 500 and its traceback.

Temporary means "the database cannot serve this now, and the same call, unchanged, may succeed
later": a lost connection, a server shutting down or starting, no connection in time, a breaker
that knows the database is down, a transaction the server rolled back for another one, a file
another connection holds. Anything else (a statement over the time limit, a value too large,
a missing column) says something about the call itself, and retrying it changes nothing.

eventsourcing wraps the drivers' errors in its own (`raise OperationalError(...) from error`),
so the predicates look at the whole chain of `__cause__`s for what the driver said.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import psycopg_pool
from eventsourcing.persistence import ConnectionUnavailableError

from infrastructure.connections import DatabaseUnavailable

# SQLSTATE classes, by their first two characters.
CONNECTION_EXCEPTION = "08"
TRANSACTION_ROLLBACK = "40"  # serialization failure, deadlock: run the transaction again
# Class 53, insufficient resources (disk full, out of memory, too many connections), is
# temporary: what is missing is the server's, not anything in the statement or its data, and
# the same statement succeeds unchanged once space is freed or other sessions end. Taken as a
# failing event, it would stop read models at events that are not at fault, each to be retried
# by hand afterwards; and a 503 tells a client the truth. It is not silent: the runner's pause
# names the error in its log line and in health.
INSUFFICIENT_RESOURCES = "53"
TEMPORARY_CLASSES = frozenset({CONNECTION_EXCEPTION, TRANSACTION_ROLLBACK, INSUFFICIENT_RESOURCES})
# A session the server ended or would not start: a new connection is all a retry needs.
SESSION_ENDED = frozenset(
    {
        "57P01",  # admin_shutdown: a fast shutdown, pg_terminate_backend
        "57P02",  # crash_shutdown: another backend crashed, the server restarts
        "57P03",  # cannot_connect_now: starting up, or in recovery
        "57P05",  # idle_session_timeout
        "25P03",  # idle_in_transaction_session_timeout
    }
)
QUERY_CANCELED = "57014"
# Refused before any statement ran: the breaker knows the database is down, or no pooled
# connection came in time (PostgreSQL's pools, and eventsourcing's own for SQLite).
NO_CONNECTION_IN_TIME: tuple[type[BaseException], ...] = (
    DatabaseUnavailable,
    psycopg_pool.PoolTimeout,
    psycopg_pool.TooManyRequests,
    ConnectionUnavailableError,
)
# SQLite's primary result codes for a file another connection holds, and, as class 53 above,
# for a full disk (Python raises its out-of-memory code as MemoryError, not a database error).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL = 5, 6, 13
SQLITE_TEMPORARY = frozenset({SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL})


def is_temporary(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) means the database cannot serve the call now, and
    the same call may succeed later."""
    return any(_temporary(link) for link in _chain(error))


def is_cancelled_statement(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) is a statement PostgreSQL cancelled: one that ran
    past the statement time limit (or that an operator cancelled)."""
    return any(isinstance(link, psycopg.Error) and link.sqlstate == QUERY_CANCELED for link in _chain(error))


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__


def _temporary(error: BaseException) -> bool:
    if isinstance(error, NO_CONNECTION_IN_TIME):
        return True
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        if state is None:
            # psycopg raises an OperationalError without a SQLSTATE only where libpq's
            # connection fails: connecting, sending, receiving, a connection already closed.
            return isinstance(error, psycopg.OperationalError)
        return state[:2] in TEMPORARY_CLASSES or state in SESSION_ENDED
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)  # absent when raised by Python code
        return code is not None and (code & 0xFF) in SQLITE_TEMPORARY  # an extended code's primary part
    return False
