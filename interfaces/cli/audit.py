"""`a2a-goals audit`: check the audit log against the event store and the chain, print proofs,
deploy the anchor contract and anchor the current root."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console

from application.anchoring import AnchorRow, ChainUnavailable
from application.audit import NotInLog, Viewer
from domain.meta import Meta
from interfaces.bootstrap import System, build_system
from interfaces.wiring.audit import audit_verifier
from interfaces.workers.anchoring import anchor_round
from projections.audit_log_queries import AuditLogQueries

audit_app = typer.Typer(
    help="The audit log: a Merkle tree of every stored event, its roots anchored on a chain.", no_args_is_help=True
)
console = Console(stderr=True)


@audit_app.command("verify")
def verify(
    start: Annotated[int, typer.Option("--from", min=1, help="First log position to check.")] = 1,
    stop: Annotated[
        int | None, typer.Option("--to", min=1, help="Last log position to check (default: the last leafed).")
    ] = None,
) -> None:
    """Re-read the event store, recompute every leaf and root, and compare them with the
    audit_log read model, with every anchored root and with the roots the chain holds (and so
    the consistency of successive anchors). Prints OK, or the first position that differs
    (exit 1); exit 2 when the chain cannot be read."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    system = build_system()
    try:
        anchors = system.anchors.confirmed()
        chain_roots = _chain_roots(system) if anchors else None
        leafed = AuditLogQueries(system.store).last_position()
        end = leafed if stop is None else min(stop, leafed)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("verifying the audit log", total=max(end - start + 1, 0))
            result = audit_verifier(system.goals, system.store).verify(
                start,
                end,
                on_page=lambda at: bar.update(task, completed=at - start + 1),
                anchors=anchors,
                chain_root=chain_roots,
            )
        behind = system.goals.log_position() - leafed
    finally:
        system.close()
    if result.first_bad is not None:
        console.print(f"[red]BAD at position {result.first_bad.position}[/]: {result.first_bad.what}")
        raise typer.Exit(1)
    typer.echo(f"OK: {result.events} events checked, tree of {result.tree_size} leaves, root {result.root_hash}")
    typer.echo(f"anchors: {result.anchors_checked} checked against the chain")
    if result.anchors_unchecked:
        console.print(
            f"{result.anchors_unchecked} anchors match the log but are on a contract this chain no longer"
            " holds (an in-process chain's, or a node started afresh): they cannot be checked here"
        )
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


def _chain_roots(system: System) -> Callable[[AnchorRow], bytes | None] | None:
    """What the chain holds for each anchor; exits 2 when the chain cannot be read."""
    if system.anchoring is None:
        console.print("ANCHORING=off: anchored roots are checked against the log only")
        return None
    try:
        held = system.anchoring.chain_roots()
    except ChainUnavailable as unavailable:
        console.print(f"[red]the chain cannot be read[/]: {unavailable}")
        raise typer.Exit(2) from None

    def root(anchor: AnchorRow) -> bytes | None:
        try:
            return held(anchor)
        except ChainUnavailable as unavailable:
            console.print(f"[red]the chain cannot be read[/]: {unavailable}")
            raise typer.Exit(2) from None

    return root


@audit_app.command("deploy")
def deploy() -> None:
    """Deploy a new AuditAnchor contract on the chain (A2A_RPC_URL) and record its address;
    the next anchors go to it."""
    system = build_system()
    try:
        if system.anchoring is None:
            console.print("[red]ANCHORING=off[/]: nothing to deploy for")
            raise typer.Exit(1)
        try:
            address = system.anchoring.deploy(Meta(actor="cli"))
        except ChainUnavailable as unavailable:
            console.print(f"[red]the chain cannot be used[/]: {unavailable}")
            raise typer.Exit(2) from None
    finally:
        system.close()
    typer.echo(address)


@audit_app.command("anchor")
def anchor() -> None:
    """Anchor the current root now (the contract is deployed first if there is none), wait for
    the projections, and print the anchor."""
    system = build_system()
    try:
        if system.anchoring is None:
            console.print("[red]ANCHORING=off[/]: nothing is anchored")
            raise typer.Exit(1)
        system.runner.catch_up()  # the leaves of everything stored so far
        result = anchor_round(system.anchoring, force=True)
        if result is None:
            console.print("[red]the chain cannot be used[/] (see the log line above); nothing was anchored")
            raise typer.Exit(2)
        system.runner.catch_up()
    finally:
        system.close()
    state = "pending" if result.pending else "confirmed"
    what = f"anchored {result.sent} leaves" if result.sent else f"nothing new to anchor ({result.tree_size} leaves)"
    typer.echo(f"{what}; {result.anchored} confirmed on {result.contract.address} (chain {result.contract.chain_id}); {state}")
