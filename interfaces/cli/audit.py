"""`a2a-goals audit`: check the audit log against the event store, and print proofs."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from application.audit import NotInLog, Viewer
from interfaces.bootstrap import build_system
from interfaces.wiring.audit import audit_verifier
from projections.audit_log_queries import AuditLogQueries

audit_app = typer.Typer(help="The audit log: a Merkle tree of every stored event.", no_args_is_help=True)
console = Console(stderr=True)


@audit_app.command("verify")
def verify(
    start: Annotated[int, typer.Option("--from", min=1, help="First log position to check.")] = 1,
    stop: Annotated[
        int | None, typer.Option("--to", min=1, help="Last log position to check (default: the last leafed).")
    ] = None,
) -> None:
    """Re-read the event store, recompute every leaf and root, and compare them with the
    audit_log read model. Prints OK, or the first position that differs (exit 1)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    system = build_system()
    try:
        leafed = AuditLogQueries(system.store).last_position()
        end = leafed if stop is None else min(stop, leafed)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("verifying the audit log", total=max(end - start + 1, 0))
            result = audit_verifier(system.goals, system.store).verify(
                start, end, on_page=lambda at: bar.update(task, completed=at - start + 1)
            )
        behind = system.goals.log_position() - leafed
    finally:
        system.close()
    if result.first_bad is not None:
        console.print(f"[red]BAD at position {result.first_bad.position}[/]: {result.first_bad.what}")
        raise typer.Exit(1)
    typer.echo(f"OK: {result.events} events checked, tree of {result.tree_size} leaves, root {result.root_hash}")
    if behind > 0:
        console.print(f"{behind} events are not leafed yet (the projections are behind)")


@audit_app.command("proof")
def proof(
    position: Annotated[int, typer.Argument(min=1, help="The event's log position.")],
    tree_size: Annotated[int | None, typer.Option(min=1, help="Prove against this earlier tree size.")] = None,
) -> None:
    """Print a self-contained JSON proof of one event (docs/audit.md shows how to check it)."""
    system = build_system()
    try:
        answer = system.audit.inclusion(position, Viewer(None), tree_size)
    except NotInLog as missing:
        console.print(f"[red]{missing}[/]")
        raise typer.Exit(1) from None
    finally:
        system.close()
    answer["hash"] = "sha256, RFC 9162 section 2.1"
    typer.echo(json.dumps(answer, indent=2))
