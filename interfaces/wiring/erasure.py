"""Erasure of a tenant, wired from a built System (docs/security.md#erasure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from application.aggregate_changes import forget_aggregates
from application.erasure import Erased, Erasure
from domain.meta import Meta
from infrastructure.erasure_register import ErasureRegister
from infrastructure.payload_cipher import TenantCipherMapper
from interfaces.wiring.audit import rows_after
from projections.freshness import wait_for_position
from projections.projection import forget

if TYPE_CHECKING:
    from interfaces.bootstrap import System

# Tables written beside the projections that name tenants.
OTHER_TABLES = ("security_events",)


def build_erasure(system: System) -> Erasure:
    mapper = system.goals.mapper
    keys = mapper.keys if isinstance(mapper, TenantCipherMapper) else None
    runner = system.runner

    def tables() -> list[str]:
        return [t for p in runner.projections for t in p.tables] + list(OTHER_TABLES)

    def settle(position: int) -> None:
        if runner.running:
            runner.wake()
            wait_for_position(system.store, runner.names, position, system.settings.min_position_timeout_s)
        else:
            runner.catch_up()

    def forget_all(tenant: str) -> None:
        for projection in runner.projections:
            forget(projection)
        system.analytics.forget(tenant)
        forget_aggregates(system.goals)  # opened before the key was destroyed

    def reindex() -> None:
        """A server queues the search read model's rebuild as a job; the CLI rebuilds it now."""
        if runner.running:
            system.rebuilds.start(system.search_model)
        else:
            system.rebuilder.rebuild([system.search_model])

    search_delete = None
    client = system.elasticsearch
    if client is not None:
        alias = system.settings.elasticsearch_index

        def search_delete(tenant: str) -> None:
            client.delete_by_query(index=alias, query={"term": {"tenant": tenant}}, refresh=True, conflicts="proceed")

    return Erasure(
        system.goals,
        keys,
        ErasureRegister(system.settings.erasure_register_path),
        system.store,
        tables,
        lambda after, limit: rows_after(system.goals, after, limit),
        settle=settle,
        evict=system.card_cache.evict,
        forget=forget_all,
        search_delete=search_delete,
        reindex=reindex,
        protected=frozenset({system.settings.operator_tenant}),
    )


def reapply_erasures(system: System, actor: str) -> list[Erased]:
    """Erase again the tenants of the erasure register that this database does not show as
    erased (a backup from before their erasure was restored); none without ENCRYPTION."""
    if not system.settings.encryption_on:
        return []
    return build_erasure(system).reapply(Meta(actor=actor, request_id=f"{actor}-erasure-register"))
