"""The embedded event store: eventsourcing's SQLite persistence, with one repair.

When COMMIT itself fails (a deferred constraint, a full disk), SQLite keeps the transaction
open, and the library hands the connection back to its pool as it is: every later save on
that connection then fails to BEGIN ("cannot start a transaction within a transaction").
Here a connection whose COMMIT failed is rolled back before the error goes on.
"""

from __future__ import annotations

from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory
from eventsourcing.utils import Environment, EnvType


class RollingBackConnection(SQLiteConnection):
    def commit(self) -> None:
        try:
            super().commit()
        except BaseException:
            if self._sqlite_conn.in_transaction:
                self._sqlite_conn.rollback()
            raise


class RollingBackPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        made = super()._create_connection()
        return RollingBackConnection(made._sqlite_conn, max_age=self.max_age)


class EventStoreFactory(SQLiteFactory):
    """eventsourcing's SQLite factory, whose connections roll back a failed COMMIT."""

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        library_pool = self.datastore.pool
        self.datastore.pool = RollingBackPool(
            db_name=library_pool.db_name, lock_timeout=library_pool.lock_timeout
        )
        library_pool.close()
