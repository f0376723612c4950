"""Which SQLSTATEs are temporary, by class, on psycopg's own exception classes (each carries
its SQLSTATE): what real servers raise is in tests/integration/test_database_errors.py."""

from __future__ import annotations

import psycopg
import psycopg.errors as pg
import pytest
from eventsourcing.persistence import InterfaceError, OperationalError

from infrastructure.database_errors import is_cancelled_statement, is_temporary

TEMPORARY = [
    pg.ConnectionFailure,  # 08006
    pg.SqlclientUnableToEstablishSqlconnection,  # 08001
    pg.AdminShutdown,  # 57P01
    pg.CrashShutdown,  # 57P02
    pg.CannotConnectNow,  # 57P03
    pg.IdleSessionTimeout,  # 57P05
    pg.IdleInTransactionSessionTimeout,  # 25P03
    pg.SerializationFailure,  # 40001
    pg.DeadlockDetected,  # 40P01
    pg.DiskFull,  # 53100
    pg.OutOfMemory,  # 53200
    pg.TooManyConnections,  # 53300
]
LASTING = [
    pg.QueryCanceled,  # 57014: over the statement limit, see below
    pg.ProgramLimitExceeded,  # 54000
    pg.DatabaseDropped,  # 57P04
    pg.UndefinedColumn,  # 42703
    pg.NumericValueOutOfRange,  # 22003
    pg.LockNotAvailable,  # 55P03
    pg.InternalError_,  # XX000
]


@pytest.mark.parametrize("error", TEMPORARY, ids=lambda e: f"{e.__name__}-{e.sqlstate}")
def test_temporary_classes(error: type[psycopg.Error]) -> None:
    assert is_temporary(error("x"))


@pytest.mark.parametrize("error", LASTING, ids=lambda e: f"{e.__name__}-{e.sqlstate}")
def test_lasting_classes(error: type[psycopg.Error]) -> None:
    assert not is_temporary(error("x"))


def test_a_driver_error_without_a_sqlstate_is_a_failed_connection() -> None:
    assert is_temporary(psycopg.OperationalError("consuming input failed: server closed the connection"))
    assert not is_temporary(psycopg.InterfaceError("the cursor is closed"))


def test_what_eventsourcing_wraps_is_classified_by_what_it_wraps() -> None:
    def wrapped(cause: BaseException, wrapper: type[Exception] = OperationalError) -> Exception:
        try:
            raise wrapper(str(cause)) from cause
        except Exception as error:
            return error

    assert is_temporary(wrapped(pg.AdminShutdown("terminating connection")))
    assert not is_temporary(wrapped(pg.ProgramLimitExceeded("requested length too large")))
    assert not is_temporary(OperationalError("Can't do multi-row tracking with single-row tracking table"))
    assert not is_temporary(wrapped(psycopg.InterfaceError("the cursor is closed"), InterfaceError))
    assert is_cancelled_statement(wrapped(pg.QueryCanceled("canceling statement due to statement timeout")))
    assert not is_cancelled_statement(wrapped(pg.AdminShutdown("terminating connection")))
