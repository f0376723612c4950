"""Erasure of a tenant by crypto-shredding (docs/security.md#erasure).

The log is append-only and its leaves are anchored: nothing in it is rewritten. Erasing a
tenant records the erasure (`TenantErased`, an event of no tenant), destroys the tenant's data
key, so that none of its payloads can be opened again, and removes its rows from the read
models, the search index and the card cache. Its webhook subscriptions and collection targets
are read-model rows: removing them stops its deliveries and polls.

Every erasure is also written to a register kept apart from the database: when it begins,
before the key is destroyed, and when it is finished. A backup from before the erasure,
restored, holds the tenant's key again: `reapply` (run by restore and at every server start)
erases again every tenant of the register that the database does not show as erased, and
finishes every erasure begun but not finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from application.aggregate_changes import change
from application.goals import GoalsApp
from application.ports import ReadStore, Tx
from domain.erasure import TenantErasure, erasure_id
from domain.meta import Meta

log = logging.getLogger(__name__)

# Read models whose rows name a tenant but hold none of its data, and must stay: the audit
# tree's leaves (position, index and tenant name), which every proof and anchor depends on.
KEPT = frozenset({"audit_leaves", "audit_nodes", "projection_tracking", "projection_skips"})
PAGE = 5000
# Rows of the tenant in tables without a tenant column, found through a table that has one:
# removed first (table: statement, the tenant as its one parameter).
DEPENDENT = {
    "webhook_attempts": "DELETE FROM webhook_attempts WHERE delivery_id IN"
    " (SELECT delivery_id FROM webhook_deliveries WHERE tenant = ?)",
    "agent_search_text": "DELETE FROM agent_search_text WHERE rowid IN (SELECT doc FROM agent_search WHERE tenant = ?)",
    "agent_search_keys": "DELETE FROM agent_search_keys WHERE doc IN (SELECT doc FROM agent_search WHERE tenant = ?)",
    # The words of the tenant's private agents, counted in its own scope (index.vocabulary_scope).
    "agent_search_word_scopes": "DELETE FROM agent_search_word_scopes WHERE scope = ?",
}

Agent = tuple[str, str]


class ErasureUnavailable(Exception):
    """ENCRYPTION is off: payloads are in the clear in an append-only log."""


class ErasureRefused(Exception):
    """The tenant may not be erased: it is the operator tenant, whose admins run the system."""


class Shredder(Protocol):
    """The tenant data keys that erasure destroys (infrastructure.data_keys.DataKeys)."""

    def key_id_of(self, tenant: str) -> bytes | None: ...
    def erase(self, tenant: str, stamps: list[tuple[str, int, str]]) -> bytes | None: ...
    def erased(self, tenant: str) -> bool: ...
    def erased_tenants(self) -> list[str]: ...


@dataclass(frozen=True)
class RegisterEntries:
    tenants: list[str]  # every tenant whose erasure began, in the order first begun
    finished: frozenset[str]  # those whose erasure was finished at least once


class Register(Protocol):
    """The erasures, kept where no restore of the database rolls them back
    (infrastructure.erasure_register.ErasureRegister)."""

    def begun(self, tenant: str) -> None: ...
    def finished(self, tenant: str) -> None: ...
    def entries(self) -> RegisterEntries: ...
    def exclusive(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class Erased:
    tenant: str
    key_id: str  # hex; '' when the tenant had no data key
    position: int  # the TenantErased event's log position
    rows_removed: int


class Erasure:
    def __init__(
        self,
        app: GoalsApp,
        keys: Shredder | None,
        register: Register,
        store: ReadStore,
        tables: Callable[[], Sequence[str]],
        read_rows: Callable[[int, int], Sequence[Any]],
        *,
        settle: Callable[[int], None] = lambda position: None,
        evict: Callable[[Mapping[Agent, int]], bool] = lambda agents: True,
        forget: Callable[[str], None] = lambda tenant: None,
        search_delete: Callable[[str], None] | None = None,
        reindex: Callable[[], None] = lambda: None,
        protected: frozenset[str] = frozenset(),
    ) -> None:
        """`tables`: the read models' tables; `read_rows(after, limit)`: the log's stored rows;
        `settle(position)`: wait until the read models have reached a log position; `forget`:
        drop what projections and queries hold in memory of the tenant; `search_delete`: remove a tenant's documents
        from an external search index; `reindex`: have the search read model rebuilt, which
        drops the words only the tenant's agents used from its shared vocabulary; `protected`:
        tenants never erased (the operator tenant)."""
        self._app = app
        self._keys = keys
        self._register = register
        self._store = store
        self._tables = tables
        self._read_rows = read_rows
        self._settle = settle
        self._evict = evict
        self._forget = forget
        self._search_delete = search_delete
        self._reindex = reindex
        self._protected = protected

    def erase(self, tenant: str, meta: Meta) -> Erased:
        if self._keys is None:
            raise ErasureUnavailable(
                "ENCRYPTION is off: event payloads are stored in the clear in an append-only log,"
                " so a tenant's data cannot be erased from it. Erasure destroys the tenant's data"
                " key, which exists only with ENCRYPTION=on."
            )
        if tenant in self._protected:
            raise ErasureRefused(
                f"tenant {tenant!r} is the operator tenant: its admins run this system (erasures"
                " included), so it cannot be erased. Set OPERATOR_TENANT to another tenant first."
            )
        self._register.begun(tenant)  # first: a restore or a restart finishes what is cut short
        key_id = self._keys.key_id_of(tenant)
        stamps = self._stamps(key_id) if key_id is not None else []
        hex_id = key_id.hex() if key_id is not None else ""

        def record(found: TenantErasure | None) -> TenantErasure | None:
            return TenantErasure.erased(tenant, hex_id, meta) if found is None else None

        change(self._app, erasure_id(tenant), TenantErasure, record)
        self._keys.erase(tenant, stamps)
        position = self._app.log_position()
        # What the read models had not applied of the tenant now reads as erased: let them
        # pass it, then remove what they hold.
        self._settle(position)
        removed, agents = self._remove_rows(tenant)
        self._forget(tenant)
        try:
            if self._search_delete is not None:
                self._search_delete(tenant)
            # Also drops the tenant's documents from an external index, whose rebuild swaps it.
            self._reindex()
        except Exception:
            log.exception("the search read model could not be rebuilt after erasing %r", tenant)
        if agents and not self._evict(dict.fromkeys(agents, position)):
            log.warning("the card cache could not evict erased tenant %r's agents now", tenant)
        self._register.finished(tenant)
        log.info("tenant %r erased: data key %s destroyed, %d read-model rows removed", tenant, hex_id, removed)
        return Erased(tenant, hex_id, position, removed)

    def reapply(self, meta: Meta) -> list[Erased]:
        """Erase again each tenant of the register this database does not show as erased (a
        backup from before its erasure was restored), and finish each erasure the register
        does not show as finished (cut short). One process at a time. A tenant this database
        shows as erased but the register lacks (a register lost or replaced) is added to it."""
        if self._keys is None or not self._unsettled():
            return []
        keys = self._keys
        done = []
        with self._register.exclusive():
            entries = self._register.entries()
            for tenant in sorted(set(keys.erased_tenants()) - set(entries.tenants)):
                log.warning("tenant %r is erased in this database but not in the erasure register: adding it", tenant)
                self._register.begun(tenant)
                self._register.finished(tenant)
            for tenant in entries.tenants:
                if keys.erased(tenant) and tenant in entries.finished:
                    continue
                if tenant in self._protected:
                    log.warning("tenant %r is in the erasure register but is the operator tenant: not erased", tenant)
                    continue
                log.warning("the erasure of tenant %r is not complete in this database: erasing it", tenant)
                done.append(self.erase(tenant, meta))
        return done

    def _unsettled(self) -> bool:
        """Whether the register and this database disagree (read without the lock: cheap at
        every start, and looked at again under it)."""
        assert self._keys is not None
        entries = self._register.entries()
        erased = set(self._keys.erased_tenants())
        if erased - set(entries.tenants):
            return True
        unprotected = (t for t in entries.tenants if t not in self._protected)
        return any(t not in erased or t not in entries.finished for t in unprotected)

    def _stamps(self, key_id: bytes) -> list[tuple[str, int, str]]:
        """(originator id, version, ISO timestamp) of every payload sealed under `key_id` in the
        earlier form, whose timestamp is sealed with it: the audit leaves cover them."""
        found: list[tuple[str, int, str]] = []
        after = 0
        while rows := self._read_rows(after, PAGE):
            for row in rows:
                state = bytes(row.state)
                # The earlier sealed form only (payload_cipher.MARKER_V1): the current one
                # carries its timestamp in the clear.
                if state[2:10] == key_id and state[:2] == b"\x00\xe1":
                    event: Any = self._app.mapper.to_domain_event(row)
                    found.append((str(row.originator_id), row.originator_version, event.timestamp.isoformat()))
            after = rows[-1].id
        return found

    def _remove_rows(self, tenant: str) -> tuple[int, set[Agent]]:
        removed = 0
        with self._store.transaction() as tx:
            agents = {(tenant, str(r[0])) for r in tx.fetchall("SELECT agent_id FROM agent_cards WHERE tenant = ?", (tenant,))}
            agents |= {
                (tenant, str(r[0])) for r in tx.fetchall("SELECT agent_id FROM goal_progress WHERE tenant = ?", (tenant,))
            }
            tables = set(self._tables())
            for table, statement in DEPENDENT.items():
                if table in tables:
                    tx.execute(statement, (tenant,))
            for table in sorted(tables - KEPT):
                if not _has_tenant(tx, self._store, table):
                    continue
                count = tx.fetchone(f"SELECT COUNT(*) FROM {table} WHERE tenant = ?", (tenant,))
                removed += int(count[0]) if count is not None else 0
                tx.execute(f"DELETE FROM {table} WHERE tenant = ?", (tenant,))
        return removed, agents


def _has_tenant(tx: Tx, store: ReadStore, table: str) -> bool:
    if getattr(store, "dialect", "sqlite") == "postgres":
        found = tx.fetchone(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = ? AND column_name = 'tenant'",
            (table,),
        )
    else:
        found = tx.fetchone("SELECT 1 FROM pragma_table_info(?) WHERE name = 'tenant'", (table,))
    return found is not None
