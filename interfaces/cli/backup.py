"""`a2a-goals backup DIR` and `a2a-goals restore DIR`: the log and what cannot be rebuilt
from it, and back.

The event log is the only truth: read models are rebuilt from it after a restore, never
copied. What a replay cannot give back is kept beside it: the operator's skips, the security
events, the webhook outbox (with its position, so that a replay never sends history again),
the key ring and sealing key of DATA_DIR, and the settings with every secret masked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import typer
from pydantic import SecretStr
from rich.console import Console

from infrastructure.settings import Settings

backup_app = typer.Typer()
console = Console(stderr=True)
DUMP = "events.dump"
MANIFEST = "manifest.json"
SETTINGS = "settings.json"
KEYS = "keys"
# Tables no replay of the log gives back (the log itself first). A component that keeps
# such a table adds it here.
TABLES = (
    "a2a_events",
    "a2a_snapshots",
    "projection_skips",  # an operator's decisions: a rebuild honours them
    "projection_tracking",  # only the outbox's row is kept on restore
    "security_events",
    "webhook_subscriptions",
    "webhook_deliveries",
    "webhook_attempts",
    # Each tenant's data key, wrapped by the master keys (ENCRYPTION=on; absent otherwise, and
    # then skipped): without it no encrypted payload of the log could be read. The master keys
    # themselves are never in a backup: they come from MASTER_KEYS.
    "a2a_data_keys",
    # Erased tenants (no key is made for them again) and their events' timestamps, which
    # `audit verify` needs (docs/security.md#erasure); absent until a tenant is erased.
    "a2a_erased_keys",
    "a2a_erased_stamps",
)
KEPT_POSITIONS = ("webhook_outbox",)  # read models whose position survives a restore
MASK = "***"


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that gives it to libpq (so that
    it never shows in a process list)."""
    parts = urlsplit(url)
    env = {**os.environ}
    if parts.password:
        env["PGPASSWORD"] = parts.password
        netloc = parts.netloc.replace(f":{parts.password}@", "@")
        url = urlunsplit(parts._replace(netloc=netloc))
    return url, env


def masked_settings(settings: Settings) -> dict[str, Any]:
    """Every setting by its variable name; secrets and URL passwords masked."""
    shown: dict[str, Any] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        key = field.alias or name.upper()
        if isinstance(value, SecretStr):
            shown[key] = MASK if value.get_secret_value() else ""
        elif isinstance(value, str) and "://" in value and urlsplit(value).password:
            shown[key] = value.replace(f":{urlsplit(value).password}@", f":{MASK}@")
        else:
            shown[key] = value if isinstance(value, bool | int | float | str | None) else str(value)
    return shown


def _program(name: str) -> str:
    """The full path of a PostgreSQL client program (postgresql-client); exits if absent."""
    found = shutil.which(name)
    if found is None:
        console.print(f"[red]{name} is not installed (Debian: apt-get install postgresql-client)[/]")
        raise typer.Exit(2)
    return found


def _postgres(settings: Settings) -> str:
    if not settings.is_postgres:
        console.print("[red]backup and restore need DATABASE_URL naming PostgreSQL (SQLite: copy DATA_DIR)[/]")
        raise typer.Exit(2)
    return settings.database_url


@backup_app.command("backup")
def backup(directory: Annotated[Path, typer.Argument(help="Where to write the backup (created; must be empty).")]) -> None:
    """A consistent pg_dump of the log and of what cannot be rebuilt, the key ring, and the
    settings with secrets masked. The directory holds private keys: keep it as you keep them."""
    settings = Settings()
    url, env = _libpq(_postgres(settings))
    if directory.exists() and any(directory.iterdir()):
        console.print(f"[red]{directory} is not empty[/]")
        raise typer.Exit(2)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    with psycopg.connect(settings.database_url) as conn:
        position = conn.execute("SELECT COALESCE(MAX(notification_id), 0) FROM a2a_events").fetchone()
    tables = [arg for table in TABLES for arg in ("--table", table)]
    # One pg_dump is one snapshot: every table as of the same instant.
    dump = [_program("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", *tables]
    # Arguments of ours and the operator's own DATABASE_URL, never a shell.
    subprocess.run([*dump, "--file", str(directory / DUMP), url], check=True, env=env)  # noqa: S603
    (directory / KEYS).mkdir(mode=0o700)
    kept = []
    for path in (settings.keys_path, settings.secrets_key_path):
        if path.exists():
            shutil.copy2(path, directory / KEYS / path.name)
            (directory / KEYS / path.name).chmod(0o600)
            kept.append(path.name)
    (directory / SETTINGS).write_text(json.dumps(masked_settings(settings), indent=2, default=str))
    manifest = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "log_position_at_least": position[0] if position else 0,
        "tables": list(TABLES),
        "keys": kept,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
    console.print(
        f"backed up the log (position {manifest['log_position_at_least']} or later), {len(TABLES)} tables"
        f" and {len(kept)} key files to {directory}"
    )


@backup_app.command("restore")
def restore(directory: Annotated[Path, typer.Argument(help="A directory `a2a-goals backup` wrote.")]) -> None:
    """Restore into the empty database DATABASE_URL names, put the key ring back in DATA_DIR,
    then rebuild every read model from the log (with its progress bar), and erase again the
    tenants ERASURE_REGISTER holds that were erased after the backup was taken."""
    from interfaces.cli.main import projections_rebuild

    settings = Settings()
    url, env = _libpq(_postgres(settings))
    if not (directory / MANIFEST).exists() or not (directory / DUMP).exists():
        console.print(f"[red]{directory} holds no backup ({MANIFEST} and {DUMP} expected)[/]")
        raise typer.Exit(2)
    with psycopg.connect(settings.database_url) as conn:
        found = conn.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone()
    if found and found[0]:
        console.print("[red]the database DATABASE_URL names is not empty: restore only into a new database[/]")
        raise typer.Exit(2)
    load = [_program("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
    subprocess.run([*load, "--dbname", url, str(directory / DUMP)], check=True, env=env)  # noqa: S603
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM projection_tracking WHERE NOT (name = ANY(%s))", (list(KEPT_POSITIONS),))
    _restore_keys(directory / KEYS, settings)
    console.print("restored the log; rebuilding every read model")
    projections_rebuild(name=None, all_=True, restart=True, jobs=None)
    _reapply_erasures()


def _reapply_erasures() -> None:
    """Tenants erased after the backup was taken (ERASURE_REGISTER) are erased again."""
    from interfaces.bootstrap import build_system
    from interfaces.wiring.erasure import reapply_erasures

    system = build_system()
    try:
        for done in reapply_erasures(system, "restore"):
            console.print(
                f"tenant {done.tenant} was erased after this backup: erased again (data key {done.key_id})"
            )
    finally:
        system.close()


def _restore_keys(keys: Path, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for target in (settings.keys_path, settings.secrets_key_path):
        source = keys / target.name
        if not source.exists():
            continue
        if target.exists() and target.read_bytes() != source.read_bytes():
            console.print(f"[red]{target} exists and differs from the backup's: move it away first[/]")
            raise typer.Exit(2)
        shutil.copy2(source, target)
        target.chmod(0o600)
