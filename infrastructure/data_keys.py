"""Each tenant's data key, kept wrapped by a master key (envelope encryption).

A data key is 32 random bytes, made when a tenant's first event is stored. Its row in the
event store's database (table `a2a_data_keys`) holds it wrapped with AES-256-GCM by the newest
master key, bound to its tenant and key id (the associated data), beside the id of the master
key that wrapped it. Unwrapped keys live only in this process's memory.

Rotating the master key re-wraps these rows: the log is not touched. Destroying a tenant's row
makes every payload sealed under its key unreadable for good (crypto-shredding). A process
that opened the key before another process destroyed it forgets it within RECHECK_S: it looks
every RECHECK_S for keys it holds whose rows are gone.

MASTER_KEYS: base64 32-byte keys, comma-separated, newest first. A master key is named by its
id, the first 8 bytes of its SHA-256 in hex (as SECRETS_KEY is): never by its value.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infrastructure.secret_box import KEY_BYTES, NONCE_BYTES, parse_key

log = logging.getLogger(__name__)
KEY_ID_BYTES = 8
# How long an opened key is used without looking whether another process destroyed it.
RECHECK_S = 30.0
TABLE = "a2a_data_keys"
ERASED = "a2a_erased_keys"  # the data keys destroyed, by tenant: no key is made for them again
STAMPS = "a2a_erased_stamps"  # the timestamps of the erased payloads (audit leaves cover them)


class EncryptionKeyError(RuntimeError):
    """A data key cannot be had: its master key is not configured, or its row was altered.
    The message names key ids and tenants, never a key."""


class TenantErasedError(EncryptionKeyError):
    """The tenant was erased: its data key is destroyed, and no new one is made."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} was erased: nothing more can be written for it")
        self.tenant = tenant


class PayloadErased(EncryptionKeyError):
    """The payload was sealed under a data key that erasure destroyed."""


def master_key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class MasterKeys:
    """The configured master keys, newest first."""

    keys: tuple[bytes, ...]

    @classmethod
    def parse(cls, text: str) -> MasterKeys:
        parts = [p for p in (s.strip() for s in text.split(",")) if p]
        if not parts:
            raise ValueError("MASTER_KEYS is empty: give base64 32-byte keys, comma-separated, newest first")
        keys = tuple(parse_key(p, f"MASTER_KEYS item {i + 1}") for i, p in enumerate(parts))
        return cls(keys)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(master_key_id(k) for k in self.keys)

    @property
    def newest_id(self) -> str:
        return self.ids[0]

    def __repr__(self) -> str:  # never the keys themselves
        return f"MasterKeys(ids={self.ids})"


class DataKeyRow(NamedTuple):
    key_id: bytes
    tenant: str
    wrapped: bytes
    master_id: str


class DataKeyTable(Protocol):
    """Where wrapped data keys are kept."""

    def create(self) -> None: ...
    def by_tenant(self, tenant: str) -> DataKeyRow | None: ...
    def by_id(self, key_id: bytes) -> DataKeyRow | None: ...
    def insert_if_absent(self, row: DataKeyRow) -> None: ...
    def rows(self) -> list[DataKeyRow]: ...
    def key_ids(self) -> set[bytes]: ...
    def rewrap(self, key_id: bytes, wrapped: bytes, master_id: str, was: str) -> bool: ...
    def erase(self, tenant: str, key_id: bytes, stamps: list[tuple[str, int, str]]) -> None: ...
    def erased_tenant(self, tenant: str) -> bool: ...
    def erased_key(self, key_id: bytes) -> bool: ...
    def erased_tenants(self) -> list[str]: ...
    def stamps(self, key_id: bytes) -> dict[tuple[str, int], str]: ...


class _SQLTable:
    """The same few statements on either database; `param` is its placeholder."""

    param = "?"
    name = TABLE
    binary = "BLOB"
    created = "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP"

    def _cursor(self, *, commit: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text.replace("{t}", self.name).replace("?", self.param)

    def create(self) -> None:
        with self._cursor(commit=True) as cur:
            cur.execute(
                self._sql(
                    f"CREATE TABLE IF NOT EXISTS {{t}} (key_id {self.binary} PRIMARY KEY,"
                    f" tenant TEXT NOT NULL UNIQUE, wrapped {self.binary} NOT NULL,"
                    f" master_id TEXT NOT NULL, created_at {self.created})"
                )
            )
            cur.execute(
                self._sql(
                    f"CREATE TABLE IF NOT EXISTS {self._named(ERASED)} (key_id {self.binary} PRIMARY KEY,"
                    f" tenant TEXT NOT NULL UNIQUE, erased_at {self.created})"
                )
            )
            cur.execute(
                self._sql(
                    f"CREATE TABLE IF NOT EXISTS {self._named(STAMPS)} (originator_id TEXT NOT NULL,"
                    f" originator_version BIGINT NOT NULL, key_id {self.binary} NOT NULL, stamp TEXT NOT NULL,"
                    " PRIMARY KEY (originator_id, originator_version))"
                )
            )

    def _named(self, table: str) -> str:
        return table

    def erase(self, tenant: str, key_id: bytes, stamps: list[tuple[str, int, str]]) -> None:
        """In one transaction: record the erasure and the erased payloads' timestamps, and
        delete the tenant's data key."""
        erased, kept = self._named(ERASED), self._named(STAMPS)
        with self._cursor(commit=True) as cur:
            cur.execute(
                self._sql(f"INSERT INTO {erased} (key_id, tenant) VALUES (?, ?) ON CONFLICT DO NOTHING"),
                (key_id, tenant),
            )
            if stamps:
                cur.executemany(
                    self._sql(
                        f"INSERT INTO {kept} (originator_id, originator_version, key_id, stamp)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
                    ),
                    [(o, v, key_id, t) for o, v, t in stamps],
                )
            cur.execute(self._sql("DELETE FROM {t} WHERE tenant = ?"), (tenant,))

    def erased_tenant(self, tenant: str) -> bool:
        with self._cursor(commit=False) as cur:
            cur.execute(self._sql(f"SELECT 1 FROM {self._named(ERASED)} WHERE tenant = ?"), (tenant,))
            return cur.fetchone() is not None

    def erased_tenants(self) -> list[str]:
        with self._cursor(commit=False) as cur:
            cur.execute(self._sql(f"SELECT tenant FROM {self._named(ERASED)} ORDER BY tenant"))
            found = cur.fetchall()
        return [str(next(iter(r.values())) if isinstance(r, dict) else r[0]) for r in found]

    def erased_key(self, key_id: bytes) -> bool:
        with self._cursor(commit=False) as cur:
            cur.execute(self._sql(f"SELECT 1 FROM {self._named(ERASED)} WHERE key_id = ?"), (key_id,))
            return cur.fetchone() is not None

    def stamps(self, key_id: bytes) -> dict[tuple[str, int], str]:
        with self._cursor(commit=False) as cur:
            cur.execute(
                self._sql(
                    f"SELECT originator_id, originator_version, stamp FROM {self._named(STAMPS)} WHERE key_id = ?"
                ),
                (key_id,),
            )
            found = cur.fetchall()
        values = [list(r.values()) if isinstance(r, dict) else list(r) for r in found]
        return {(str(v[0]), int(v[1])): str(v[2]) for v in values}

    def _one(self, where: str, value: Any) -> DataKeyRow | None:
        with self._cursor(commit=False) as cur:
            cur.execute(
                self._sql(f"SELECT key_id, tenant, wrapped, master_id FROM {{t}} WHERE {where} = ?"), (value,)
            )
            found = cur.fetchone()
        return None if found is None else _row(found)

    def by_tenant(self, tenant: str) -> DataKeyRow | None:
        return self._one("tenant", tenant)

    def by_id(self, key_id: bytes) -> DataKeyRow | None:
        return self._one("key_id", key_id)

    def insert_if_absent(self, row: DataKeyRow) -> None:
        with self._cursor(commit=True) as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO {t} (key_id, tenant, wrapped, master_id) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (tenant) DO NOTHING"
                ),
                tuple(row),
            )

    def rows(self) -> list[DataKeyRow]:
        with self._cursor(commit=False) as cur:
            cur.execute(self._sql("SELECT key_id, tenant, wrapped, master_id FROM {t} ORDER BY tenant"))
            return [_row(r) for r in cur.fetchall()]

    def key_ids(self) -> set[bytes]:
        with self._cursor(commit=False) as cur:
            cur.execute(self._sql("SELECT key_id FROM {t}"))
            found = cur.fetchall()
        return {bytes(next(iter(r.values())) if isinstance(r, dict) else r[0]) for r in found}

    def rewrap(self, key_id: bytes, wrapped: bytes, master_id: str, was: str) -> bool:
        with self._cursor(commit=True) as cur:
            cur.execute(
                self._sql(
                    "UPDATE {t} SET wrapped = ?, master_id = ? WHERE key_id = ? AND master_id = ? RETURNING key_id"
                ),
                (wrapped, master_id, key_id, was),
            )
            return bool(cur.fetchall())


def _row(found: Any) -> DataKeyRow:
    values = list(found.values()) if isinstance(found, dict) else list(found)
    return DataKeyRow(bytes(values[0]), str(values[1]), bytes(values[2]), str(values[3]))


class SQLiteDataKeyTable(_SQLTable):
    def __init__(self, datastore: Any) -> None:
        self._datastore = datastore

    def _cursor(self, *, commit: bool) -> AbstractContextManager[Any]:
        return self._datastore.transaction(commit=commit)  # type: ignore[no-any-return]


class PostgresDataKeyTable(_SQLTable):
    param = "%s"
    binary = "BYTEA"
    created = "TIMESTAMPTZ NOT NULL DEFAULT now()"

    def __init__(self, datastore: Any) -> None:
        self._datastore = datastore
        self.name = f'"{datastore.schema}".{TABLE}'

    def _named(self, table: str) -> str:
        return f'"{self._datastore.schema}".{table}'

    def _cursor(self, *, commit: bool) -> AbstractContextManager[Any]:
        return self._datastore.transaction(commit=commit)  # type: ignore[no-any-return]


class DataKeys:
    """Tenants' data keys, unwrapped on first use and kept in memory."""

    def __init__(
        self,
        table: DataKeyTable,
        masters: MasterKeys,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._masters = masters
        self._wrappers = {master_key_id(k): AESGCM(k) for k in masters.keys}
        self._by_tenant: dict[str, tuple[bytes, AESGCM]] = {}
        self._by_id: dict[bytes, AESGCM] = {}
        self._stamps: dict[bytes, dict[tuple[str, int], str]] = {}
        self._lock = threading.Lock()
        self._recheck_s = recheck_s
        self._clock = clock
        self._next_check = clock() + recheck_s
        # Called with the tenants whose keys were found destroyed (what else holds their data
        # opened, such as an aggregate cache, drops it).
        self.on_forget: Callable[[set[str]], None] = lambda tenants: None

    def for_tenant(self, tenant: str) -> tuple[bytes, AESGCM]:
        """The tenant's key id and cipher; its key is made (and stored wrapped) on first use."""
        if self._clock() >= self._next_check:
            self._forget_destroyed()
        # Trusted without a query until the next check: an erasure elsewhere shows within RECHECK_S.
        found = self._by_tenant.get(tenant)
        if found is not None:
            return found
        with self._lock:
            row = self._table.by_tenant(tenant)
            if row is None:
                if self._table.erased_tenant(tenant):
                    raise TenantErasedError(tenant)
                key_id = secrets.token_bytes(KEY_ID_BYTES)
                wrapped = self._wrap(key_id, tenant, secrets.token_bytes(KEY_BYTES))
                self._table.insert_if_absent(DataKeyRow(key_id, tenant, wrapped, self._masters.newest_id))
                row = self._table.by_tenant(tenant)  # another process may have made it first
                assert row is not None
            return self._remember(row)

    def by_id(self, key_id: bytes) -> AESGCM:
        """The cipher of the data key named `key_id` (as sealed payloads name it)."""
        if self._clock() >= self._next_check:
            self._forget_destroyed()
        found = self._by_id.get(key_id)  # trusted until the next check, as in for_tenant
        if found is not None:
            return found
        with self._lock:
            row = self._table.by_id(key_id)
            if row is None:
                if self._table.erased_key(key_id):
                    raise PayloadErased(f"data key {key_id.hex()} was destroyed: its tenant was erased")
                raise EncryptionKeyError(f"no data key {key_id.hex()} in {TABLE}: the payload cannot be read")
            return self._remember(row)[1]

    def _forget_destroyed(self) -> None:
        """Forget the opened keys whose rows another process deleted (it erased their tenants).
        A database that cannot be asked now is asked again at the next check."""
        with self._lock:
            if self._clock() < self._next_check:
                return  # another thread is looking, or just looked
            self._next_check = self._clock() + self._recheck_s
        try:
            stored = self._table.key_ids()  # outside the lock: a slow database holds no other thread
        except Exception:
            log.warning("could not look for destroyed data keys; looking again in %.0f s", self._recheck_s)
            return
        with self._lock:
            gone = set(self._by_id) - stored
            for key_id in gone:
                del self._by_id[key_id]
            tenants = {t for t, (key_id, _) in self._by_tenant.items() if key_id in gone}
            for tenant in tenants:
                del self._by_tenant[tenant]
        if tenants:
            log.info("forgot the data keys of %d erased tenant(s)", len(tenants))
            self.on_forget(tenants)

    def key_id_of(self, tenant: str) -> bytes | None:
        """The id of the tenant's data key, None if it has none (it never wrote, or was erased)."""
        row = self._table.by_tenant(tenant)
        return None if row is None else row.key_id

    def erase(self, tenant: str, stamps: list[tuple[str, int, str]]) -> bytes | None:
        """Destroy the tenant's data key (its row) and forget it here; record the erasure, so
        that no key is made for the tenant again, and the timestamps of its payloads
        (originator id, version, ISO time), which the audit leaves cover. The id of the key
        destroyed (None: it had none)."""
        with self._lock:
            row = self._table.by_tenant(tenant)
            key_id = row.key_id if row is not None else secrets.token_bytes(KEY_ID_BYTES)
            self._table.erase(tenant, key_id, stamps)
            self._by_tenant.pop(tenant, None)
            if row is not None:
                self._by_id.pop(row.key_id, None)
            self._stamps.pop(key_id, None)
        return row.key_id if row is not None else None

    def erased(self, tenant: str) -> bool:
        """Whether this database records the tenant as erased (its key destroyed)."""
        return self._table.erased_tenant(tenant)

    def erased_tenants(self) -> list[str]:
        """Every tenant this database records as erased."""
        return self._table.erased_tenants()

    def erased_stamp(self, key_id: bytes, originator_id: str, version: int) -> str | None:
        """The timestamp recorded at erasure of an erased payload (None if none was)."""
        found = self._stamps.get(key_id)
        if found is None:
            found = self._table.stamps(key_id)
            self._stamps[key_id] = found
        return found.get((originator_id, version))

    def check(self) -> int:
        """Unwrap every stored data key once: a master key that is missing or wrong fails here,
        at start, rather than on some later read. Returns how many there are."""
        rows = self._table.rows()
        for row in rows:
            self._unwrap(row)
        return len(rows)

    def rotate(self) -> int:
        """Re-wrap every data key not yet wrapped by the newest master key; how many were."""
        newest = self._masters.newest_id
        done = 0
        for row in self._table.rows():
            if row.master_id == newest:
                continue
            key = self._unwrap(row)
            if self._table.rewrap(row.key_id, self._wrap(row.key_id, row.tenant, key), newest, row.master_id):
                done += 1
        return done

    def _remember(self, row: DataKeyRow) -> tuple[bytes, AESGCM]:
        cipher = AESGCM(self._unwrap(row))
        self._by_id[row.key_id] = cipher
        self._by_tenant[row.tenant] = (row.key_id, cipher)
        return row.key_id, cipher

    def _wrap(self, key_id: bytes, tenant: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._wrappers[self._masters.newest_id].encrypt(nonce, key, _bound(key_id, tenant))

    def _unwrap(self, row: DataKeyRow) -> bytes:
        wrapper = self._wrappers.get(row.master_id)
        if wrapper is None:
            raise EncryptionKeyError(
                f"the data key of tenant {row.tenant!r} is wrapped by master key {row.master_id},"
                f" which is not in MASTER_KEYS (configured: {', '.join(self._masters.ids)})"
            )
        try:
            return wrapper.decrypt(
                row.wrapped[:NONCE_BYTES], row.wrapped[NONCE_BYTES:], _bound(row.key_id, row.tenant)
            )
        except InvalidTag:
            raise EncryptionKeyError(
                f"the data key of tenant {row.tenant!r} does not open with master key {row.master_id}:"
                f" its row in {TABLE} was altered"
            ) from None


def _bound(key_id: bytes, tenant: str) -> bytes:
    return key_id + tenant.encode()
