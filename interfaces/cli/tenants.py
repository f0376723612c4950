"""`a2a-goals tenants`: erasure of a tenant (docs/security.md#erasure)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from application.erasure import ErasureRefused, ErasureUnavailable
from domain.ids import TENANT
from domain.meta import Meta
from interfaces.bootstrap import build_system
from interfaces.wiring.erasure import build_erasure

tenants_app = typer.Typer(help="Tenants: erasure.", no_args_is_help=True)


@tenants_app.command("erase")
def erase(
    tenant: Annotated[str, typer.Argument(help="The tenant to erase.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a tenant for good: destroy its data key (recorded in the log as TenantErased),
    and remove its read-model rows, search documents and cached cards. Its events stay in the
    log, sealed and unreadable; audit proofs and anchors stay valid. Needs ENCRYPTION=on."""
    if not TENANT.match(tenant):
        typer.echo(f"TENANT {tenant!r} is not a tenant name (letters, digits, _ . -; at most 64)", err=True)
        raise typer.Exit(2)
    if not yes:
        typer.confirm(
            f"Erase tenant {tenant!r}? Its data cannot be read again by anything, backups after now included.",
            abort=True,
        )
    system = build_system()
    try:
        done = build_erasure(system).erase(tenant, Meta(actor="cli", request_id=f"cli-{uuid.uuid4().hex}"))
    except (ErasureUnavailable, ErasureRefused) as error:
        typer.echo(f"cannot erase: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        system.close()
    key = done.key_id or "none (it never wrote)"
    typer.echo(f"tenant {done.tenant} erased: data key {key} destroyed, {done.rows_removed} read-model rows removed")
