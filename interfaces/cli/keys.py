"""`a2a-goals keys`: the master keys that wrap each tenant's data key (docs/security.md)."""

from __future__ import annotations

import typer

from application.goals import GoalsApp
from infrastructure.data_keys import EncryptionKeyError
from infrastructure.eventstore import eventsourcing_env
from infrastructure.payload_cipher import data_keys
from infrastructure.settings import Settings
from interfaces.wiring.encryption import master_keys

keys_app = typer.Typer(help="Encryption at rest: master keys and tenants' data keys.", no_args_is_help=True)


@keys_app.command("rotate-master")
def rotate_master() -> None:
    """Re-wrap every tenant's data key with the newest of MASTER_KEYS (the first). The log is
    not touched. Afterwards the older master keys can be dropped from MASTER_KEYS. Every
    process also does this when it starts; this command does it now, and says what it did."""
    settings = Settings()
    if not settings.encryption_on:
        typer.echo("ENCRYPTION is off: there are no data keys to re-wrap", err=True)
        raise typer.Exit(2)
    masters = master_keys(settings)
    log = GoalsApp(eventsourcing_env(settings), snapshot_interval=0)
    try:
        keys = data_keys(log.factory, masters)
        rewrapped = keys.rotate()
        total = keys.check()
    except EncryptionKeyError as error:
        typer.echo(f"cannot rotate: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        log.close()
    typer.echo(
        f"re-wrapped {rewrapped} of {total} data keys; all are wrapped by master key {masters.newest_id}"
    )
